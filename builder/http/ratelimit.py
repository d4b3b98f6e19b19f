"""Rate limits per API key, shared through Redis, with an in-process fallback.

Three tiers, each a moving window (``limits``' ``MovingWindowRateLimiter``: no burst
at window edges): ``chat`` (``BUILDER_RATE_LIMIT_CHAT``), ``prompt`` (the prompt
helpers, ``BUILDER_RATE_LIMIT_PROMPT``) and ``default`` (everything else,
``BUILDER_RATE_LIMIT_DEFAULT``). Counts are kept per API key (per user for the
anonymous local user, per client address on the public OAuth callback); health
probes and ``/metrics`` are not limited.

Every limited response carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (seconds until the window frees a request); a refusal is 429 with
``Retry-After``.

With ``BUILDER_REDIS_URL`` the counts live in Redis, so every replica enforces the same
limit. Redis calls have the cache's tight timeouts and no retries, behind the cache's
:class:`~builder.circuit.Circuit`: after a failure the limiter counts in process memory
for ``BUILDER_CACHE_COOLDOWN_SECONDS`` (each replica then allows the full limit on its
own), and a request never waits on a Redis that does not answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

from builder.circuit import REDIS_ERRORS, Circuit, Unavailable, redis_options
from builder.errors import ConfigurationError, RateLimited
from builder.http.scope import add_response_header
from builder.settings import Settings

__all__ = ["Decision", "RateLimiter", "Tier", "rate_limited"]

Tier = Literal["chat", "prompt", "default"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request against its limit."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    """Seconds until the window has room again."""
    backend: Literal["redis", "memory"]


def _parse(name: str, value: str) -> RateLimitItem:
    try:
        return parse(value)
    except ValueError:
        raise ConfigurationError(
            f"BUILDER_RATE_LIMIT_{name.upper()}={value!r} is not a rate like `20/minute`"
        ) from None


class RateLimiter:
    """Moving-window limits in Redis (when configured) or in process memory.

    Args:
        settings: The tiers, the Redis URL, prefix, timeout and cool-down.
    """

    def __init__(self, settings: Settings) -> None:
        self.tiers: dict[Tier, RateLimitItem] = {
            "chat": _parse("chat", settings.rate_limit_chat),
            "prompt": _parse("prompt", settings.rate_limit_prompt),
            "default": _parse("default", settings.rate_limit_default),
        }
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._timeout = settings.redis_timeout
        self.circuit = Circuit(settings.cache_cooldown_seconds, name="ratelimit")
        self._pool: ConnectionPool | None = None
        self._redis: MovingWindowRateLimiter | None = None
        if settings.redis_url is not None:
            self._pool = ConnectionPool.from_url(
                settings.redis_url,
                **redis_options(settings.redis_timeout),
            )
            options: dict[str, Any] = {"connection_pool": self._pool}
            storage = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                key_prefix=f"{settings.redis_key_prefix}ratelimit",
                wrap_exceptions=True,
                **options,
            )
            self._redis = MovingWindowRateLimiter(storage)

    async def check(self, tier: Tier, identity: str) -> Decision:
        """Count one request of ``identity`` against ``tier``; says whether it may go on."""
        item = self.tiers[tier]
        if self._redis is not None:
            limiter = self._redis
            decision = await self.circuit.call(
                lambda: self._decide(limiter, item, tier, identity, "redis"),
                timeout=self._timeout * 4,
                errors=(StorageError, *REDIS_ERRORS),
            )
            if not isinstance(decision, Unavailable):
                return decision
        return await self._decide(self._memory, item, tier, identity, "memory")

    @staticmethod
    async def _decide(
        limiter: MovingWindowRateLimiter,
        item: RateLimitItem,
        tier: Tier,
        identity: str,
        backend: Literal["redis", "memory"],
    ) -> Decision:
        # The tier is part of the key: two tiers with the same rate share `limits`'
        # key for that rate, and would otherwise count against each other.
        allowed = await limiter.hit(item, tier, identity)
        stats = await limiter.get_window_stats(item, tier, identity)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, item.amount, max(0, stats.remaining), reset, backend)

    async def aclose(self) -> None:
        """Close the Redis connections."""
        if self._pool is not None:
            await self._pool.disconnect()


def rate_limited(tier: Tier) -> Callable[[Request], Awaitable[None]]:
    """A route dependency that counts the request against ``tier`` (429 when over)."""

    async def dependency(request: Request) -> None:
        services = request.app.state.services
        principal = getattr(request.state, "principal", None)
        if principal is not None:
            identity = principal.rate_key
        else:
            identity = f"ip:{request.client.host if request.client else 'unknown'}"
        decision = await services.limiter.check(tier, identity)
        scope = request.scope
        add_response_header(scope, "x-ratelimit-limit", str(decision.limit))
        add_response_header(scope, "x-ratelimit-remaining", str(decision.remaining))
        add_response_header(scope, "x-ratelimit-reset", str(decision.reset_seconds))
        if not decision.allowed:
            services.metrics.rate_limited(tier)
            raise RateLimited(
                retry_after=decision.reset_seconds, limit=str(services.limiter.tiers[tier])
            )

    dependency.__name__ = f"rate_limit_{tier}"
    return dependency
