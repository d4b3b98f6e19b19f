"""SQL for publish targets (settings and sealed credentials) and publications."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from builder.persistence.models import publications, publish_targets
from builder.persistence.repositories import AnyRow

TARGET_COLUMNS = (
    publish_targets.c.publisher,
    publish_targets.c.config,
    publish_targets.c.secret,
    publish_targets.c.key_id,
    publish_targets.c.updated_at,
)
PUBLICATION_COLUMNS = (
    publications.c.id,
    publications.c.project_id,
    publications.c.publisher,
    publications.c.version,
    publications.c.status,
    publications.c.url,
    publications.c.detail,
    publications.c.error,
    publications.c.created_at,
    publications.c.updated_at,
)


async def target(session: AsyncSession, *, project_id: uuid.UUID, publisher: str) -> AnyRow | None:
    """A project's target for one publisher, locked until the transaction ends."""
    statement = (
        select(*TARGET_COLUMNS)
        .where(publish_targets.c.project_id == project_id)
        .where(publish_targets.c.publisher == publisher)
    )
    return (await session.execute(statement)).first()


async def targets_of(session: AsyncSession, *, project_id: uuid.UUID) -> Sequence[AnyRow]:
    """Every target of a project, by publisher."""
    statement = (
        select(*TARGET_COLUMNS)
        .where(publish_targets.c.project_id == project_id)
        .order_by(publish_targets.c.publisher)
    )
    return (await session.execute(statement)).all()


async def upsert_target(session: AsyncSession, *, values: Mapping[str, Any]) -> AnyRow:
    """Insert or replace a project's target for one publisher."""
    statement = insert(publish_targets).values(**values)
    replaced = {k: statement.excluded[k] for k in values if k not in {"project_id", "publisher"}}
    upsert = statement.on_conflict_do_update(
        index_elements=[publish_targets.c.project_id, publish_targets.c.publisher],
        set_={**replaced, "updated_at": func.now()},
    ).returning(*TARGET_COLUMNS)
    return (await session.execute(upsert)).one()


async def insert_publication(session: AsyncSession, *, values: Mapping[str, Any]) -> AnyRow:
    """Record a push or deploy that starts."""
    statement = insert(publications).values(**values).returning(*PUBLICATION_COLUMNS)
    return (await session.execute(statement)).one()


async def update_publication(
    session: AsyncSession, *, publication_id: uuid.UUID, values: Mapping[str, Any]
) -> AnyRow:
    """Record how a push or deploy ended."""
    statement = (
        update(publications)
        .where(publications.c.id == publication_id)
        .values(**values, updated_at=func.now())
        .returning(*PUBLICATION_COLUMNS)
    )
    return (await session.execute(statement)).one()


async def publications_of(
    session: AsyncSession, *, project_id: uuid.UUID, publisher: str | None, limit: int
) -> Sequence[AnyRow]:
    """A project's publications, newest first."""
    statement = select(*PUBLICATION_COLUMNS).where(publications.c.project_id == project_id)
    if publisher is not None:
        statement = statement.where(publications.c.publisher == publisher)
    statement = statement.order_by(publications.c.created_at.desc()).limit(limit)
    return (await session.execute(statement)).all()
