"""Publish targets and publications: where each project goes, and how each push went.

A target holds a publisher's settings for a project (``config``: a remote URL and
branch, a repository, a site id) and, when the publisher needs one of its own, a
credential sealed with :class:`~builder.crypto.Keyring` for
``"<project id>:<publisher>:secret"`` — the plaintext never reaches the database and is
never returned by a listing. A publication records one push or deploy of a version:
``running`` when it starts, then ``ready`` with its URL or ``error`` with what failed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from builder.crypto import Keyring
from builder.persistence.database import Database
from builder.persistence.repositories import AnyRow
from builder.persistence.repositories import publishing as repo
from builder.persistence.schemas import PublicationPublic, PublishTargetPublic

__all__ = [
    "finish_publication",
    "list_publications",
    "list_publish_targets",
    "publish_target",
    "save_publish_target",
    "start_publication",
]


def _aad(project_id: uuid.UUID, publisher: str) -> str:
    return f"{project_id}:{publisher}:secret"


def _public(row: AnyRow) -> PublishTargetPublic:
    return PublishTargetPublic(
        publisher=row.publisher,
        config=row.config,
        has_credentials=row.secret is not None,
        updated_at=row.updated_at,
    )


async def publish_target(
    db: Database, *, project_id: uuid.UUID, publisher: str, keyring: Keyring | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """A target's settings and its credentials, decrypted (both empty when there is none).

    Raises:
        ConfigurationError: A credential is stored but no keyring is configured.
        DecryptionFailed: The keyring cannot open it.
    """

    async def work(session: AsyncSession) -> AnyRow | None:
        return await repo.target(session, project_id=project_id, publisher=publisher)

    row = await db.run(work)
    if row is None:
        return {}, {}
    secrets: dict[str, str] = {}
    if row.secret is not None:
        if keyring is None:
            from builder.errors import ConfigurationError

            raise ConfigurationError("BUILDER_ENCRYPTION_KEYS is not set")
        secrets = json.loads(keyring.decrypt_text(row.secret, aad=_aad(project_id, publisher)))
    return dict(row.config), secrets


async def save_publish_target(
    db: Database,
    *,
    project_id: uuid.UUID,
    publisher: str,
    config: Mapping[str, Any],
    secrets: Mapping[str, str],
    keyring: Keyring | None,
) -> PublishTargetPublic:
    """Store a target's settings and credentials (replacing both).

    Raises:
        ConfigurationError: Credentials to store but no keyring configured.
    """
    values: dict[str, Any] = {
        "project_id": project_id,
        "publisher": publisher,
        "config": dict(config),
        "secret": None,
        "key_id": None,
    }
    if secrets:
        if keyring is None:
            from builder.errors import ConfigurationError

            raise ConfigurationError(
                "BUILDER_ENCRYPTION_KEYS is not set: credentials cannot be stored"
            )
        values["secret"] = keyring.encrypt(
            json.dumps(dict(secrets), sort_keys=True), aad=_aad(project_id, publisher)
        )
        values["key_id"] = keyring.primary_key_id

    async def work(session: AsyncSession) -> AnyRow:
        return await repo.upsert_target(session, values=values)

    return _public(await db.run(work))


async def list_publish_targets(db: Database, *, project_id: uuid.UUID) -> list[PublishTargetPublic]:
    """A project's targets, without credentials."""

    async def work(session: AsyncSession) -> list[AnyRow]:
        return list(await repo.targets_of(session, project_id=project_id))

    return [_public(row) for row in await db.run(work)]


async def start_publication(
    db: Database, *, project_id: uuid.UUID, publisher: str, version: int
) -> PublicationPublic:
    """Record that a push or deploy of ``version`` starts."""
    values = {"project_id": project_id, "publisher": publisher, "version": version}

    async def work(session: AsyncSession) -> AnyRow:
        return await repo.insert_publication(session, values=values)

    return PublicationPublic.model_validate(await db.run(work))


async def finish_publication(
    db: Database,
    *,
    publication_id: uuid.UUID,
    status: str,
    url: str | None = None,
    detail: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> PublicationPublic:
    """Record how a push or deploy ended: ``ready`` with its URL, or ``error``."""
    values: dict[str, Any] = {"status": status, "url": url, "error": error}
    if detail is not None:
        values["detail"] = dict(detail)

    async def work(session: AsyncSession) -> AnyRow:
        return await repo.update_publication(session, publication_id=publication_id, values=values)

    return PublicationPublic.model_validate(await db.run(work))


async def list_publications(
    db: Database, *, project_id: uuid.UUID, publisher: str | None = None, limit: int = 20
) -> list[PublicationPublic]:
    """A project's pushes and deploys, newest first."""

    async def work(session: AsyncSession) -> list[AnyRow]:
        return list(
            await repo.publications_of(
                session, project_id=project_id, publisher=publisher, limit=limit
            )
        )

    return [PublicationPublic.model_validate(row) for row in await db.run(work)]
