"""What the HTTP service holds while it runs, opened at start and closed at shutdown."""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from builder.circuit import redis_options
from builder.crypto import Keyring
from builder.errors import ConfigurationError
from builder.http.auth import Principal
from builder.http.metrics import Metrics
from builder.http.oauth import StateSigner, state_secret
from builder.http.ratelimit import RateLimiter
from builder.http.screenshot import Screenshotter
from builder.http.sentry import init_sentry
from builder.log import get_logger
from builder.models.factory import load_chat_model
from builder.persistence.database import Database
from builder.persistence.migrations import upgrade_database
from builder.persistence.models import api_keys
from builder.persistence.schemas import UserPublic
from builder.persistence.users import get_or_create_user
from builder.preflight import preflight
from builder.runs.service import RunHandle, RunService
from builder.settings import Settings

__all__ = ["LOCAL_USER", "Services"]

LOCAL_USER = "local"
"""The user requests without an API key act as, when anonymous access is on."""

_log = get_logger("builder.http")


@dataclass
class Services:
    """Everything routes use, one instance per process (``app.state.services``)."""

    settings: Settings
    db: Database
    runs: RunService
    limiter: RateLimiter
    metrics: Metrics
    screenshotter: Screenshotter
    signer: StateSigner
    helper_model: BaseChatModel
    keyring: Keyring | None = None
    redis: Redis | None = None
    local_user_or_none: UserPublic | None = None
    started_at: float = field(default_factory=time.monotonic)
    _observers: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def local_user(self) -> UserPublic:
        """The anonymous local user (only when anonymous access is on)."""
        assert self.local_user_or_none is not None, "anonymous access is off"
        return self.local_user_or_none

    @functools.cached_property
    def local_principal(self) -> Principal:
        """Who a request without a key is (only when anonymous access is on)."""
        return Principal(user=self.local_user, key_hash=None)

    def require_keyring(self) -> Keyring:
        """The encryption keyring.

        Raises:
            ConfigurationError: ``BUILDER_ENCRYPTION_KEYS`` is not set.
        """
        if self.keyring is None:
            raise ConfigurationError("BUILDER_ENCRYPTION_KEYS is not set")
        return self.keyring

    def observe(self, handle: RunHandle) -> None:
        """Follow a run for the metrics, whether or not anyone streams it."""
        task = asyncio.create_task(self.metrics.observe_run(handle))
        self._observers.add(task)
        task.add_done_callback(self._observers.discard)

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings, *, metrics: Metrics) -> AsyncIterator[Services]:
        """Check the settings and the database, open every service, close them on exit.

        Raises:
            UnsafeProductionSettings: Production with unsafe settings.
            ConfigurationError: Production with a database that is not migrated, or no
                model configured.
            DependencyUnavailable: PostgreSQL cannot be reached.
        """
        settings.validate_for_production()
        init_sentry(settings)
        async with AsyncExitStack() as stack:
            db = Database.from_settings(settings)
            stack.push_async_callback(db.dispose)
            if db.cache is not None:
                await stack.enter_async_context(db.cache.listening())
            # The same checks as `builder config check`: what it passes, this accepts.
            report = await preflight(settings, db=db)
            report.raise_for_errors()
            for warning in report.warnings:
                _log.warning("http.preflight", detail=warning)
            if report.migrate:
                _log.info("http.migrating")
                await upgrade_database(db)
            helper_model = load_chat_model(settings=settings, temperature=0)
            runs = await stack.enter_async_context(
                RunService.open(settings, db=db, worker="all" if settings.run_worker else "none")
            )
            limiter = RateLimiter(settings)
            stack.push_async_callback(limiter.aclose)
            redis = None
            if settings.redis_url is not None:
                redis = Redis.from_url(settings.redis_url, **redis_options(settings.redis_timeout))
                stack.push_async_callback(redis.aclose)
            secret = state_secret(settings)
            if secret is None:
                _log.warning(
                    "http.ephemeral_secret",
                    detail="neither BUILDER_SECRET_KEY nor BUILDER_ENCRYPTION_KEYS is set: "
                    "OAuth links only work on this process until it restarts",
                )
                secret = secrets.token_bytes(32)
            screenshotter = Screenshotter(settings)
            stack.push_async_callback(screenshotter.aclose)
            services = cls(
                settings=settings,
                db=db,
                runs=runs,
                limiter=limiter,
                metrics=metrics,
                screenshotter=screenshotter,
                signer=StateSigner(
                    secret,
                    lifetime=settings.oauth_state_seconds,
                    redis=redis,
                    nonce_prefix=f"{settings.redis_key_prefix}oauth:nonce:",
                    redis_timeout=settings.redis_timeout,
                    cooldown=settings.cache_cooldown_seconds,
                ),
                helper_model=helper_model,
                keyring=Keyring.from_settings(settings) if settings.encryption_keys else None,
                redis=redis,
            )
            stack.push_async_callback(services._stop_observers)
            await _announce_access(services)
            yield services

    async def _stop_observers(self) -> None:
        for task in list(self._observers):
            task.cancel()
        await asyncio.gather(*self._observers, return_exceptions=True)


async def _announce_access(services: Services) -> None:
    settings = services.settings
    if settings.anonymous_allowed:
        services.local_user_or_none = await get_or_create_user(services.db, name=LOCAL_USER)
        _log.warning(
            "http.anonymous_access",
            detail=f"requests without an API key act as the user {LOCAL_USER!r}; "
            "set BUILDER_ALLOW_ANONYMOUS=false or BUILDER_ENVIRONMENT=production to require keys",
        )

    async def active_keys(session: AsyncSession) -> int:
        statement = (
            select(func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
        )
        return int((await session.execute(statement)).scalar_one())

    if await services.db.run(active_keys) == 0 and not settings.anonymous_allowed:
        _log.warning(
            "http.no_api_keys",
            detail="no active API key exists: every request will be refused until one is "
            "created with `builder keys create --user NAME`",
        )
