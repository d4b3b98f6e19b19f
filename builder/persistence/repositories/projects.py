"""SQL for projects."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from builder.persistence.models import projects
from builder.persistence.repositories import AnyRow

SUMMARY_COLUMNS = (
    projects.c.id,
    projects.c.name,
    projects.c.starred,
    projects.c.created_at,
    projects.c.updated_at,
    projects.c.last_opened_at,
)
PUBLIC_COLUMNS = (
    *SUMMARY_COLUMNS,
    projects.c.user_id,
    projects.c.description,
    projects.c.sandbox_id,
    projects.c.sandbox_url,
    projects.c.dependencies,
)
UPDATABLE = frozenset({"name", "description", "sandbox_id", "sandbox_url", "dependencies"})


def _owned(project_id: uuid.UUID, user_id: uuid.UUID) -> Any:
    return (projects.c.id == project_id) & (projects.c.user_id == user_id)


async def insert_project(
    session: AsyncSession, *, user_id: uuid.UUID, name: str, description: str
) -> AnyRow:
    """Create a project."""
    statement = (
        projects.insert()
        .values(user_id=user_id, name=name, description=description)
        .returning(*PUBLIC_COLUMNS)
    )
    return (await session.execute(statement)).one()


async def project_of(
    session: AsyncSession, *, project_id: uuid.UUID, user_id: uuid.UUID
) -> AnyRow | None:
    """A project, only if it belongs to the user."""
    statement = select(*PUBLIC_COLUMNS).where(_owned(project_id, user_id))
    return (await session.execute(statement)).first()


async def projects_page(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    limit: int,
    after: tuple[bool, datetime, uuid.UUID] | None,
    name_contains: str | None = None,
) -> Sequence[AnyRow]:
    """Up to ``limit`` of a user's projects: starred first, then most recently updated.

    ``after`` is the ``(starred, updated_at, id)`` of the last row of the previous
    page; every sort column is descending, so one row comparison continues the order.
    ``name_contains`` keeps the projects whose name contains it, ignoring case (``%``
    and ``_`` are literal).
    """
    key = tuple_(projects.c.starred, projects.c.updated_at, projects.c.id)
    statement = (
        select(*SUMMARY_COLUMNS)
        .where(projects.c.user_id == user_id)
        .order_by(projects.c.starred.desc(), projects.c.updated_at.desc(), projects.c.id.desc())
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(key < tuple_(*after))
    if name_contains:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(projects.c.name.ilike(f"%{escaped}%", escape="\\"))
    return (await session.execute(statement)).all()


async def update_project(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    user_id: uuid.UUID,
    values: Mapping[str, Any],
    touch: bool = True,
) -> AnyRow | None:
    """Change columns of a user's project; ``touch`` also moves ``updated_at`` to now."""
    if not set(values) <= UPDATABLE | {"starred", "last_opened_at"}:
        raise ValueError(f"not updatable: {sorted(set(values) - UPDATABLE)}")
    changes = dict(values)
    if touch:
        changes["updated_at"] = func.now()
    statement = (
        update(projects)
        .where(_owned(project_id, user_id))
        .values(**changes)
        .returning(*PUBLIC_COLUMNS)
    )
    return (await session.execute(statement)).first()


async def delete_project(
    session: AsyncSession, *, project_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """Delete a user's project and everything that hangs off it (cascades)."""
    statement = delete(projects).where(_owned(project_id, user_id)).returning(projects.c.id)
    return (await session.execute(statement)).first() is not None


async def lock_project(session: AsyncSession, *, project_id: uuid.UUID) -> uuid.UUID | None:
    """Lock a project row until the transaction ends; returns its owner, None if missing.

    ``FOR NO KEY UPDATE`` serialises writers of the project's versions without blocking
    inserts that merely reference the project (messages, usage).
    """
    statement = (
        select(projects.c.user_id)
        .where(projects.c.id == project_id)
        .with_for_update(key_share=True)
    )
    owner: uuid.UUID | None = (await session.execute(statement)).scalar()
    return owner


async def touch_project(session: AsyncSession, *, project_id: uuid.UUID) -> None:
    """Move ``updated_at`` to now (its files changed)."""
    await session.execute(
        update(projects).where(projects.c.id == project_id).values(updated_at=func.now())
    )


async def sandbox_of(session: AsyncSession, *, project_id: uuid.UUID) -> AnyRow | None:
    """A project's recorded sandbox id, preview URL and replica, and its owner."""
    statement = select(
        projects.c.user_id,
        projects.c.sandbox_id,
        projects.c.sandbox_url,
        projects.c.sandbox_replica,
    ).where(projects.c.id == project_id)
    return (await session.execute(statement)).first()


async def set_sandbox(
    session: AsyncSession, *, project_id: uuid.UUID, values: Mapping[str, Any]
) -> uuid.UUID | None:
    """Record a project's sandbox columns (not an edit: ``updated_at`` stays); its owner."""
    statement = (
        update(projects)
        .where(projects.c.id == project_id)
        .values(**values)
        .returning(projects.c.user_id)
    )
    owner: uuid.UUID | None = (await session.execute(statement)).scalar_one_or_none()
    return owner
