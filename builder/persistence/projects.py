"""Projects: create, read (scoped to their owner), list, update, star, open, delete.

Every read is scoped to a user: another user's project is :class:`NotFound`, exactly
like a project that does not exist. Reads go through the database's cache when it has
one; every write invalidates the project's entry and its owner's list pages.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from builder.errors import NotFound
from builder.persistence.cursors import decode_cursor, encode_cursor
from builder.persistence.database import Database
from builder.persistence.messages import messages_scope
from builder.persistence.repositories import projects as repo
from builder.persistence.schemas import (
    Page,
    ProjectCreate,
    ProjectPublic,
    ProjectSummary,
    ProjectUpdate,
)

__all__ = [
    "create_project",
    "delete_project",
    "get_project",
    "invalidate_project",
    "list_projects",
    "open_project",
    "project_owner",
    "project_replica",
    "project_sandbox",
    "record_replica",
    "record_sandbox",
    "set_starred",
    "update_project",
]

_CURSOR = "projects"


def _project_scope(project_id: uuid.UUID) -> str:
    return f"project:{project_id}"


def _list_scope(user_id: uuid.UUID) -> str:
    return f"user:{user_id}:projects"


async def invalidate_project(db: Database, *, project_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Drop a project's cached entry and its owner's cached list pages."""
    if db.cache is not None:
        await db.cache.invalidate(_project_scope(project_id), _list_scope(user_id))


async def create_project(
    db: Database, *, user_id: uuid.UUID, name: str, description: str = ""
) -> ProjectPublic:
    """Create a project for a user.

    Raises:
        InvalidInput: The name is empty or too long.
        NotFound: No such user.
    """
    fields = ProjectCreate(name=name, description=description)

    async def work(session: AsyncSession) -> Any:
        return await repo.insert_project(
            session, user_id=user_id, name=fields.name, description=fields.description
        )

    project = ProjectPublic.model_validate(await db.run(work))
    if db.cache is not None:
        await db.cache.invalidate(_list_scope(user_id))
    return project


async def get_project(db: Database, *, user_id: uuid.UUID, project_id: uuid.UUID) -> ProjectPublic:
    """A user's project.

    Raises:
        NotFound: No such project, or it belongs to someone else.
    """
    lookup = None
    if db.cache is not None:
        lookup = await db.cache.lookup(
            "project", str(project_id), scopes=[_project_scope(project_id)]
        )
        if lookup.hit:
            cached = ProjectPublic.model_validate(lookup.value)
            if cached.user_id != user_id:
                raise NotFound("project", project_id)
            return cached

    async def work(session: AsyncSession) -> Any:
        return await repo.project_of(session, project_id=project_id, user_id=user_id)

    row = await db.run(work)
    if row is None:
        raise NotFound("project", project_id)
    project = ProjectPublic.model_validate(row)
    if db.cache is not None and lookup is not None:
        await db.cache.store(lookup, project.model_dump(mode="json"))
    return project


async def list_projects(
    db: Database,
    *,
    user_id: uuid.UUID,
    limit: int = 50,
    cursor: str | None = None,
    query: str | None = None,
) -> Page[ProjectSummary]:
    """One page of a user's projects, starred first, then most recently updated.

    Args:
        db: The database.
        user_id: Whose projects.
        limit: Most items on the page (1-200).
        cursor: ``next_cursor`` of the previous page; None for the first page.
        query: Only projects whose name contains this, ignoring case.

    Raises:
        InvalidInput: A malformed cursor.
    """
    limit = max(1, min(limit, 200))
    after = None
    if cursor is not None:
        starred, updated_at, last_id = decode_cursor(_CURSOR, cursor, size=3)
        after = (bool(starred), datetime.fromisoformat(updated_at), uuid.UUID(last_id))
    lookup = None
    if db.cache is not None:
        lookup = await db.cache.lookup(
            "project",
            f"list:{user_id}:{limit}:{cursor or ''}:{query or ''}",
            scopes=[_list_scope(user_id)],
        )
        if lookup.hit:
            return Page[ProjectSummary].model_validate(lookup.value)

    async def work(session: AsyncSession) -> Any:
        return await repo.projects_page(
            session, user_id=user_id, limit=limit + 1, after=after, name_contains=query
        )

    rows = await db.run(work)
    items = [ProjectSummary.model_validate(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(
            _CURSOR, last.starred, last.updated_at.isoformat(), str(last.id)
        )
    page = Page[ProjectSummary](items=items, next_cursor=next_cursor)
    if db.cache is not None and lookup is not None:
        await db.cache.store(lookup, page.model_dump(mode="json"))
    return page


async def _change(
    db: Database,
    *,
    user_id: uuid.UUID,
    project_id: uuid.UUID,
    values: dict[str, Any],
    touch: bool,
) -> ProjectPublic:
    async def work(session: AsyncSession) -> Any:
        return await repo.update_project(
            session, project_id=project_id, user_id=user_id, values=values, touch=touch
        )

    row = await db.run(work)
    if row is None:
        raise NotFound("project", project_id)
    await invalidate_project(db, project_id=project_id, user_id=user_id)
    return ProjectPublic.model_validate(row)


async def update_project(
    db: Database, *, user_id: uuid.UUID, project_id: uuid.UUID, changes: ProjectUpdate
) -> ProjectPublic:
    """Change the fields set in ``changes``; the others stay as they are.

    Raises:
        NotFound: No such project for this user.
        AlreadyExists: The sandbox id is used by another project.
    """
    values = changes.model_dump(exclude_unset=True)
    if not values:
        return await get_project(db, user_id=user_id, project_id=project_id)
    return await _change(db, user_id=user_id, project_id=project_id, values=values, touch=True)


async def set_starred(
    db: Database, *, user_id: uuid.UUID, project_id: uuid.UUID, starred: bool
) -> ProjectPublic:
    """Star or unstar a project (its ``updated_at`` stays: starring is not an edit).

    Raises:
        NotFound: No such project for this user.
    """
    return await _change(
        db, user_id=user_id, project_id=project_id, values={"starred": starred}, touch=False
    )


async def open_project(db: Database, *, user_id: uuid.UUID, project_id: uuid.UUID) -> ProjectPublic:
    """Record that the user opened the project now (``last_opened_at``).

    Raises:
        NotFound: No such project for this user.
    """
    return await _change(
        db,
        user_id=user_id,
        project_id=project_id,
        values={"last_opened_at": func.now()},
        touch=False,
    )


async def delete_project(db: Database, *, user_id: uuid.UUID, project_id: uuid.UUID) -> None:
    """Delete a project with its messages, versions and usage.

    File contents shared with other projects stay; the rest become unreferenced blobs.

    Raises:
        NotFound: No such project for this user.
    """

    async def work(session: AsyncSession) -> bool:
        return await repo.delete_project(session, project_id=project_id, user_id=user_id)

    if not await db.run(work):
        raise NotFound("project", project_id)
    await invalidate_project(db, project_id=project_id, user_id=user_id)
    if db.cache is not None:
        await db.cache.invalidate(messages_scope(project_id))


async def project_owner(db: Database, *, project_id: uuid.UUID) -> uuid.UUID:
    """The id of the user who owns a project.

    Raises:
        NotFound: No such project.
    """

    async def work(session: AsyncSession) -> Any:
        return await repo.sandbox_of(session, project_id=project_id)

    row = await db.run(work)
    if row is None:
        raise NotFound("project", project_id)
    return uuid.UUID(str(row.user_id))


async def project_sandbox(db: Database, *, project_id: uuid.UUID) -> str | None:
    """The sandbox id recorded for a project (by the runs service), if any.

    Raises:
        NotFound: No such project.
    """

    async def work(session: AsyncSession) -> Any:
        return await repo.sandbox_of(session, project_id=project_id)

    row = await db.run(work)
    if row is None:
        raise NotFound("project", project_id)
    return str(row.sandbox_id) if row.sandbox_id else None


async def project_replica(db: Database, *, project_id: uuid.UUID) -> str | None:
    """The replica recorded as running the project's dev server (its
    ``BUILDER_ADVERTISE_URL``); None when none is recorded or the project is gone."""

    async def work(session: AsyncSession) -> Any:
        return await repo.sandbox_of(session, project_id=project_id)

    row = await db.run(work)
    return str(row.sandbox_replica) if row is not None and row.sandbox_replica else None


async def record_sandbox(
    db: Database,
    *,
    project_id: uuid.UUID,
    sandbox_id: str | None = None,
    sandbox_url: str | None = None,
) -> None:
    """Record the project's live sandbox and/or preview URL (set by builder, not callers).

    Raises:
        NotFound: No such project.
        AlreadyExists: Another project records the same sandbox id.
    """
    values: dict[str, Any] = {}
    if sandbox_id is not None:
        values["sandbox_id"] = sandbox_id
    if sandbox_url is not None:
        values["sandbox_url"] = sandbox_url
    if values:
        await _set_sandbox(db, project_id, values)


async def record_replica(db: Database, *, project_id: str, replica: str | None) -> None:
    """Record which replica runs the project's dev server: its ``BUILDER_ADVERTISE_URL``,
    where the other replicas forward the project's previews (None: no replica can be
    reached). Nothing happens for an id that is not a project of this database."""
    try:
        key = uuid.UUID(project_id)
    except ValueError:  # an application's own thread id
        return
    try:
        await _set_sandbox(db, key, {"sandbox_replica": replica})
    except NotFound:
        return


async def _set_sandbox(db: Database, project_id: uuid.UUID, values: dict[str, Any]) -> None:
    async def work(session: AsyncSession) -> uuid.UUID | None:
        return await repo.set_sandbox(session, project_id=project_id, values=values)

    owner = await db.run(work)
    if owner is None:
        raise NotFound("project", project_id)
    await invalidate_project(db, project_id=project_id, user_id=owner)
