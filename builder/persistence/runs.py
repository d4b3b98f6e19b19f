"""Threads and runs: who owns an agent context, and what each run did.

The thread row (``threads``) ties a LangGraph thread to its user and project and holds
its expiry (maintained by :class:`~builder.graphs.checkpointer.TTLCheckpointer`). A run
row (``runs``) records one run's status and, once it ends, its result; it is what
``GET …/runs`` lists and what survives the process that ran it.

A project *is* a thread (its id is the thread id): the thread queries below read
projects, with the thread row's metadata, status and TTL when it has one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from sqlalchemy import String, case, cast, func, literal, select, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from builder.persistence.database import Database
from builder.persistence.models import projects, runs, threads
from builder.persistence.projects import invalidate_project
from builder.persistence.snapshots import save_first_version

__all__ = [
    "THREAD_SORT_KEYS",
    "THREAD_UPSERT_SQL",
    "count_threads",
    "create_thread",
    "ensure_thread",
    "ensure_thread_in",
    "get_run",
    "get_thread",
    "list_runs",
    "record_run_abandoned",
    "record_run_created",
    "record_run_dropped",
    "record_run_finished",
    "record_run_started",
    "running_runs",
    "search_threads",
    "update_thread",
]

# Written as SQL once: it is on every chat's path, and building the statement each
# time cost more than running it.
THREAD_UPSERT_SQL = """
ON CONFLICT (thread_id) DO UPDATE
SET user_id = coalesce(threads.user_id, excluded.user_id),
    project_id = coalesce(threads.project_id, excluded.project_id),
    updated_at = now()
"""
"""How an insert of a thread row takes a thread that exists: its owner and project are
filled in where unknown, never replaced (also the run queue's, which writes the row in
its own statement)."""

_ENSURE_THREAD = text(
    "".join(
        (
            "INSERT INTO threads (thread_id, user_id, project_id, metadata)\n"
            "VALUES (:thread_id, :user_id, :project_id, "
            "coalesce(CAST(:metadata AS jsonb), '{}'::jsonb))",
            THREAD_UPSERT_SQL,
        )
    )
)

_RUN_COLUMNS = (
    runs.c.run_id,
    runs.c.thread_id,
    runs.c.project_id,
    runs.c.assistant_id,
    runs.c.status,
    runs.c.multitask_strategy,
    runs.c.metadata,
    runs.c.kwargs,
    runs.c.result,
    runs.c.error,
    runs.c.created_at,
    runs.c.updated_at,
    runs.c.ended_at,
)


async def ensure_thread(
    db: Database,
    *,
    thread_id: str,
    user_id: uuid.UUID | None,
    project_id: uuid.UUID | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Create a thread row, or fill in its owner and project if they were unknown."""

    async def work(session: AsyncSession) -> None:
        await ensure_thread_in(
            session, thread_id=thread_id, user_id=user_id, project_id=project_id, metadata=metadata
        )

    await db.run(work)


async def ensure_thread_in(
    session: AsyncSession,
    *,
    thread_id: str,
    user_id: uuid.UUID | None,
    project_id: uuid.UUID | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """:func:`ensure_thread` inside a transaction of the caller's (one statement)."""
    await session.execute(
        _ENSURE_THREAD,
        {
            "thread_id": thread_id,
            "user_id": user_id,
            "project_id": project_id,
            "metadata": None if metadata is None else json.dumps(metadata),
        },
    )


async def record_run_started(
    db: Database,
    *,
    run_id: str,
    thread_id: str,
    project_id: uuid.UUID | None,
    resumed: bool = False,
    multitask_strategy: str | None = None,
    kwargs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Record that a run started (or, for a resumed run, started again)."""
    statement = insert(runs).values(
        run_id=run_id,
        thread_id=thread_id,
        project_id=project_id,
        status="running",
        multitask_strategy=multitask_strategy,
        kwargs=kwargs or {},
        metadata=metadata or {},
    )
    statement = statement.on_conflict_do_update(
        index_elements=[runs.c.run_id],
        set_={"status": "running", "updated_at": func.now(), "ended_at": None},
    )

    async def work(session: AsyncSession) -> None:
        await session.execute(statement)
        await session.execute(
            threads.update()
            .where(threads.c.thread_id == thread_id)
            .values(status="busy", updated_at=func.now())
        )

    await db.run(work)


async def record_run_finished(
    db: Database, *, run_id: str, result: dict[str, Any], worker: str | None = None
) -> bool:
    """Record how a run ended: its status, result and error.

    Args:
        db: The database.
        run_id: The run.
        result: Its result (``RunResult.as_dict()``).
        worker: Record it only while this worker holds the run's lease (a worker
            whose run was taken over must not end it too).

    Returns:
        Whether it was recorded.
    """
    status = str(result.get("status", "error"))
    thread_status = {"success": "idle", "cancelled": "idle", "interrupted": "interrupted"}
    where = [runs.c.run_id == run_id]
    if worker is not None:
        where += [runs.c.worker_id == worker, runs.c.status == "running"]

    async def work(session: AsyncSession) -> bool:
        row = await session.execute(
            runs.update()
            .where(*where)
            .values(
                status=status,
                result=result,
                error=result.get("error"),
                updated_at=func.now(),
                ended_at=func.now(),
                lease_expires_at=None,
            )
            .returning(runs.c.thread_id)
        )
        thread_id = row.scalar_one_or_none()
        if thread_id is not None:
            await session.execute(
                threads.update()
                .where(threads.c.thread_id == thread_id)
                .values(status=thread_status.get(status, "error"), updated_at=func.now())
            )
        return thread_id is not None

    return await db.run(work)


async def running_runs(db: Database, *, limit: int = 1000) -> list[tuple[str, str]]:
    """``(run_id, thread_id)`` of runs recorded as running, oldest first."""
    statement = (
        select(runs.c.run_id, runs.c.thread_id)
        .where(runs.c.status == "running")
        .order_by(runs.c.updated_at)
        .limit(limit)
    )

    async def work(session: AsyncSession) -> list[tuple[str, str]]:
        return [(row.run_id, row.thread_id) for row in await session.execute(statement)]

    return await db.run(work)


async def record_run_abandoned(db: Database, *, run_id: str, error: str) -> bool:
    """Mark a run still recorded as running as interrupted (its process is gone).

    Returns:
        Whether the run was still running; a run that ended meanwhile keeps its status.
    """

    async def work(session: AsyncSession) -> bool:
        row = await session.execute(
            runs.update()
            .where(runs.c.run_id == run_id, runs.c.status == "running")
            .values(status="interrupted", error=error, updated_at=func.now(), ended_at=func.now())
            .returning(runs.c.thread_id)
        )
        thread_id = row.scalar_one_or_none()
        if thread_id is None:
            return False
        await session.execute(
            threads.update()
            .where(threads.c.thread_id == thread_id, threads.c.status == "busy")
            .values(status="interrupted", updated_at=func.now())
        )
        return True

    return await db.run(work)


async def get_run(db: Database, *, run_id: str) -> dict[str, Any] | None:
    """One run's row as a dict, or None."""

    async def work(session: AsyncSession) -> dict[str, Any] | None:
        row = (await session.execute(select(*_RUN_COLUMNS).where(runs.c.run_id == run_id))).first()
        return None if row is None else dict(row._mapping)

    return await db.run(work)


async def list_runs(
    db: Database,
    *,
    thread_id: str,
    limit: int = 10,
    offset: int = 0,
    status: str | Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """A thread's runs, newest first (``status``: one status or any of several)."""
    query = select(*_RUN_COLUMNS).where(runs.c.thread_id == thread_id)
    if isinstance(status, str):
        query = query.where(runs.c.status == status)
    elif status is not None:
        query = query.where(runs.c.status.in_(list(status)))
    query = query.order_by(runs.c.created_at.desc(), runs.c.run_id).limit(limit).offset(offset)

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in (await session.execute(query)).all()]

    return await db.run(work)


async def record_run_created(
    db: Database,
    *,
    run_id: str,
    thread_id: str,
    project_id: uuid.UUID | None,
    assistant_id: str,
    multitask_strategy: str | None,
    metadata: dict[str, Any],
    kwargs: dict[str, Any],
) -> None:
    """Record who asked for a run and how, whether or not it has started yet.

    A run waiting its turn (``enqueue``) is listed as ``pending`` until it starts; a
    run that has already started or ended keeps its status and only gains these fields.
    """
    statement = insert(runs).values(
        run_id=run_id,
        thread_id=thread_id,
        project_id=project_id,
        assistant_id=assistant_id,
        status="pending",
        multitask_strategy=multitask_strategy,
        metadata=metadata,
        kwargs=kwargs,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[runs.c.run_id],
        set_={
            "assistant_id": statement.excluded.assistant_id,
            "multitask_strategy": statement.excluded.multitask_strategy,
            "metadata": statement.excluded.metadata,
            "kwargs": statement.excluded.kwargs,
        },
    )

    async def work(session: AsyncSession) -> None:
        await session.execute(statement)

    await db.run(work)


async def record_run_dropped(db: Database, *, run_id: str) -> bool:
    """Mark a run that never started (cancelled while queued) as cancelled.

    Returns:
        Whether the run was still pending (a run that started keeps its status).
    """
    statement = (
        runs.update()
        .where(runs.c.run_id == run_id, runs.c.status == "pending")
        .values(status="cancelled", updated_at=func.now(), ended_at=func.now())
        .returning(runs.c.run_id)
    )

    async def work(session: AsyncSession) -> bool:
        return (await session.execute(statement)).first() is not None

    return await db.run(work)


# --- threads as the LangGraph API sees them: a user's projects --------------------------
THREAD_SORT_KEYS = ("thread_id", "status", "created_at", "updated_at")
"""Columns :func:`search_threads` can sort by."""

_thread_id_col = cast(projects.c.id, String)
_thread_metadata = func.coalesce(threads.c.metadata, literal({}, JSONB))
_thread_status = func.coalesce(threads.c.status, "idle")
_thread_updated = func.greatest(projects.c.updated_at, threads.c.updated_at)
_THREAD_COLUMNS = (
    _thread_id_col.label("thread_id"),
    projects.c.id.label("project_id"),
    projects.c.user_id,
    projects.c.name,
    projects.c.created_at,
    _thread_updated.label("updated_at"),
    _thread_metadata.label("metadata"),
    _thread_status.label("status"),
    threads.c.ttl_seconds,
    threads.c.expires_at,
)
_thread_from = projects.outerjoin(threads, threads.c.thread_id == _thread_id_col)


def _thread_filter(
    user_id: uuid.UUID,
    metadata: dict[str, Any] | None,
    status: str | None,
    ids: Sequence[uuid.UUID] | None,
) -> list[Any]:
    where: list[Any] = [projects.c.user_id == user_id]
    if metadata:
        where.append(_thread_metadata.op("@>")(literal(metadata, JSONB)))
    if status is not None:
        where.append(_thread_status == status)
    if ids is not None:
        where.append(projects.c.id.in_(list(ids)))
    return where


async def create_thread(
    db: Database,
    *,
    user_id: uuid.UUID,
    name: str,
    thread_id: uuid.UUID | None = None,
    metadata: dict[str, Any] | None = None,
    ttl_seconds: int | None = None,
    files: Mapping[str, bytes] | None = None,
    files_summary: str = "",
) -> dict[str, Any]:
    """Create a project and its thread row (and its first version) in one transaction.

    Args:
        db: The database.
        user_id: The owner.
        name: The project's name.
        thread_id: The id to give both (default: a new one).
        metadata: The thread's metadata.
        ttl_seconds: Idle seconds before the thread's context expires (default: the
            server's).
        files: The project's first version (a starter's files), if any.
        files_summary: That version's summary.

    Returns:
        The thread, as :func:`get_thread` returns it.

    Raises:
        AlreadyExists: ``thread_id`` is taken (by any user).
    """
    project_values: dict[str, Any] = {"user_id": user_id, "name": name}
    if thread_id is not None:
        project_values["id"] = thread_id

    async def work(session: AsyncSession) -> uuid.UUID:
        statement = projects.insert().values(**project_values).returning(projects.c.id)
        project_id: uuid.UUID = (await session.execute(statement)).scalar_one()
        await session.execute(
            insert(threads).values(
                thread_id=str(project_id),
                user_id=user_id,
                project_id=project_id,
                metadata=metadata or {},
                ttl_seconds=ttl_seconds,
            )
        )
        if files:
            await save_first_version(
                session, project_id=project_id, files=files, summary=files_summary
            )
        return project_id

    project_id = await db.run(work)
    await invalidate_project(db, project_id=project_id, user_id=user_id)
    thread = await get_thread(db, user_id=user_id, thread_id=project_id)
    assert thread is not None
    return thread


async def get_thread(
    db: Database, *, user_id: uuid.UUID, thread_id: uuid.UUID
) -> dict[str, Any] | None:
    """A user's thread (project) with its metadata, status and TTL; None for anyone else's."""
    query = (
        select(*_THREAD_COLUMNS)
        .select_from(_thread_from)
        .where(*_thread_filter(user_id, None, None, [thread_id]))
    )

    async def work(session: AsyncSession) -> dict[str, Any] | None:
        row = (await session.execute(query)).first()
        return None if row is None else dict(row._mapping)

    return await db.run(work)


async def search_threads(
    db: Database,
    *,
    user_id: uuid.UUID,
    metadata: dict[str, Any] | None = None,
    status: str | None = None,
    ids: Sequence[uuid.UUID] | None = None,
    limit: int = 10,
    offset: int = 0,
    sort_by: str = "created_at",
    sort_order: Literal["asc", "desc"] = "desc",
) -> list[dict[str, Any]]:
    """A user's threads whose metadata contains ``metadata``, in the order asked for.

    Raises:
        ValueError: ``sort_by`` is not one of :data:`THREAD_SORT_KEYS`.
    """
    keys = {
        "thread_id": _thread_id_col,
        "status": _thread_status,
        "created_at": projects.c.created_at,
        "updated_at": _thread_updated,
    }
    key = keys[sort_by].asc() if sort_order == "asc" else keys[sort_by].desc()
    tie = projects.c.id.asc() if sort_order == "asc" else projects.c.id.desc()
    query = (
        select(*_THREAD_COLUMNS)
        .select_from(_thread_from)
        .where(*_thread_filter(user_id, metadata, status, ids))
        .order_by(key, tie)
        .limit(limit)
        .offset(offset)
    )

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in (await session.execute(query)).all()]

    return await db.run(work)


async def count_threads(
    db: Database,
    *,
    user_id: uuid.UUID,
    metadata: dict[str, Any] | None = None,
    status: str | None = None,
) -> int:
    """How many of a user's threads match, as :func:`search_threads` filters them."""
    query = (
        select(func.count())
        .select_from(_thread_from)
        .where(*_thread_filter(user_id, metadata, status, None))
    )

    async def work(session: AsyncSession) -> int:
        return int((await session.execute(query)).scalar_one())

    return await db.run(work)


async def update_thread(
    db: Database,
    *,
    user_id: uuid.UUID,
    thread_id: uuid.UUID,
    metadata: dict[str, Any] | None = None,
    ttl_seconds: int | None = None,
) -> dict[str, Any] | None:
    """Merge ``metadata`` into a user's thread and set its TTL; None for anyone else's.

    A new TTL applies at once: a live context expires ``ttl_seconds`` after its last use.
    """
    if await get_thread(db, user_id=user_id, thread_id=thread_id) is None:
        return None
    await ensure_thread(db, thread_id=str(thread_id), user_id=user_id, project_id=thread_id)
    values: dict[str, Any] = {"updated_at": func.now()}
    if metadata:
        values["metadata"] = threads.c.metadata.op("||")(literal(metadata, JSONB))
    if ttl_seconds is not None:
        values["ttl_seconds"] = ttl_seconds
        moved = threads.c.last_activity_at + func.make_interval(0, 0, 0, 0, 0, 0, ttl_seconds)
        # Only a live context has an expiry to move; a swept one stays swept.
        values["expires_at"] = case((threads.c.expires_at.is_(None), None), else_=moved)
    statement = (
        threads.update()
        .where(threads.c.thread_id == str(thread_id), threads.c.user_id == user_id)
        .values(**values)
    )

    async def work(session: AsyncSession) -> None:
        await session.execute(statement)

    await db.run(work)
    return await get_thread(db, user_id=user_id, thread_id=thread_id)
