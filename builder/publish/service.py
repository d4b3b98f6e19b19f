"""Publishing a project version with a publisher, and recording how it went.

:func:`publish_version` is the one way in for the REST routes, the CLI and the agent's
tool: it checks the publisher's settings, stores them (credentials sealed), picks the
files (the build output for a publisher that wants it when the project builds), records
the publication as ``running``, calls the publisher, and records ``ready`` with the link
or ``error`` with what failed. No credential reaches an error, a log line or a record:
every secret the job handled is cut out of the message before it is stored or raised.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from builder.crypto import Keyring
from builder.errors import BuilderError, InvalidInput, PublishFailed
from builder.log import get_logger
from builder.persistence.database import Database
from builder.persistence.integrations import get_integration_tokens
from builder.persistence.publishing import (
    finish_publication,
    publish_target,
    save_publish_target,
    start_publication,
)
from builder.persistence.repositories import snapshots as snapshots_repo
from builder.persistence.schemas import ProjectPublic, PublicationPublic, UserPublic
from builder.persistence.snapshots import get_snapshot
from builder.publish.publishers import PublisherRegistry, PublishJob
from builder.publish.source import FileSource, VersionFiles, builds, latest_build
from builder.sandbox.base import Sandbox
from builder.settings import Settings

__all__ = ["SandboxOpener", "keyring_of", "publish_version", "redact"]

SandboxOpener = Callable[[], AbstractAsyncContextManager[Sandbox]]
"""Opens the project's sandbox (for a build); the context ends when publishing does."""

_log = get_logger("builder.publish")
_MAX_OPTION_CHARS = 2000


def keyring_of(settings: Settings) -> Keyring | None:
    """The configured keyring, or None when ``BUILDER_ENCRYPTION_KEYS`` is unset."""
    return Keyring.from_settings(settings) if settings.parsed_encryption_keys() else None


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret (of four characters or more) replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if not isinstance(value, str | bool | int) or (
            isinstance(value, str) and len(value) > _MAX_OPTION_CHARS
        ):
            raise InvalidInput(
                f"publish option {key!r} must be a string (at most {_MAX_OPTION_CHARS} "
                "characters), a number or a boolean"
            )
        clean[key] = value
    return clean


async def publish_version(
    db: Database,
    settings: Settings,
    *,
    registry: PublisherRegistry,
    user: UserPublic,
    project: ProjectPublic,
    publisher: str,
    version: int | None = None,
    options: Mapping[str, Any] | None = None,
    open_sandbox: SandboxOpener | None = None,
    on_progress: Callable[[str], Awaitable[None]] | None = None,
) -> PublicationPublic:
    """Publish one version of ``project`` with ``publisher`` and record the outcome.

    Args:
        db: The database.
        settings: builder's settings.
        registry: The publishers.
        user: The project's owner (the caller checks ownership).
        project: The project.
        publisher: A registered publisher's name.
        version: The version; None for the latest.
        options: Settings for this target, stored for next time (credentials among
            them sealed): e.g. ``url``, ``branch``, ``password`` for ``git``.
        open_sandbox: Opens the project's sandbox, for a publisher that publishes the
            build output; without it such a project is refused.
        on_progress: Receives a line per step.

    Returns:
        The publication, ``ready``.

    Raises:
        InvalidInput: Unknown publisher, bad options, or a project that does not build.
        NotFound: No such version, or an OAuth connection the publisher needs is missing.
        PublishFailed: The push or deploy failed; the publication is recorded as
            ``error`` with the same message.
    """
    info = registry.get(publisher)
    keyring = keyring_of(settings)
    given = _options(options or {})
    secret_values = {k: str(v) for k, v in given.items() if k in info.publisher.secret_options}
    stored_config, stored_secrets = await publish_target(
        db, project_id=project.id, publisher=publisher, keyring=keyring
    )
    config = {**stored_config, **{k: v for k, v in given.items() if k not in secret_values}}
    secrets = {**stored_secrets, **secret_values}
    info.publisher.check(config)
    if given:
        await save_publish_target(
            db,
            project_id=project.id,
            publisher=publisher,
            config=config,
            secrets=secrets,
            keyring=keyring,
        )

    if version is None:

        async def latest(session: AsyncSession) -> int:
            return await snapshots_repo.max_version(session, project_id=project.id)

        version = await db.run(latest)
        if version == 0:
            raise InvalidInput("the project has no version yet: nothing to publish")
    snapshot = await get_snapshot(db, project_id=project.id, version=version)
    used: list[str] = list(secrets.values())

    async def integration_token(provider: str) -> str:
        if keyring is None:
            from builder.errors import ConfigurationError

            raise ConfigurationError("BUILDER_ENCRYPTION_KEYS is not set")
        tokens = await get_integration_tokens(
            db, user_id=user.id, provider=provider, keyring=keyring
        )
        token = tokens.access_token.get_secret_value()
        used.append(token)
        return token

    async with contextlib.AsyncExitStack() as stack:
        files: FileSource = VersionFiles(db, project_id=project.id, version=version)
        if info.publisher.wants_build and await builds(files):
            if open_sandbox is None:
                raise InvalidInput(f"{publisher} publishes the build output: no sandbox to build")
            sandbox = await stack.enter_async_context(open_sandbox())
            if on_progress is not None:
                await on_progress("building the site (npm run build)")
            version, files = await latest_build(
                db, sandbox, project_id=project.id, version=version, settings=settings
            )
        record = await start_publication(
            db, project_id=project.id, publisher=publisher, version=version
        )
        job = PublishJob(
            project_id=project.id,
            project_name=project.name,
            user=user,
            version=version,
            summary=snapshot.summary,
            files=files,
            config=config,
            secrets=secrets,
            settings=settings,
            integration_token=integration_token,
            on_progress=on_progress,
        )
        started = time.perf_counter()
        try:
            outcome = await info.publisher.publish(job)
        except BuilderError as exc:
            message = redact(exc.message, used)
            await finish_publication(db, publication_id=record.id, status="error", error=message)
            # The caller gets the error; the log keeps it at info level.
            _log.info(
                "publish.failed", publisher=publisher, project_id=str(project.id), error=message
            )
            if message != exc.message:
                raise PublishFailed(publisher, "publish", message) from None
            raise
        except Exception:
            await finish_publication(
                db, publication_id=record.id, status="error", error="internal error"
            )
            raise
        if outcome.remember:
            await save_publish_target(
                db,
                project_id=project.id,
                publisher=publisher,
                config={**config, **outcome.remember},
                secrets=secrets,
                keyring=keyring,
            )
        done = await finish_publication(
            db,
            publication_id=record.id,
            status="ready",
            url=outcome.url,
            detail={**outcome.detail, "seconds": round(time.perf_counter() - started, 2)},
        )
        _log.info("publish.ready", publisher=publisher, project_id=str(project.id), version=version)
        return done
    raise AssertionError("unreachable")  # pragma: no cover
