"""Threads and runs: who owns an agent context, and what each run did.

The thread row (``threads``) ties a LangGraph thread to its user and project and holds
its expiry (maintained by :class:`~builder.graphs.checkpointer.TTLCheckpointer`). A run
row (``runs``) records one run's status and, once it ends, its result; it is what
``GET …/runs`` lists and what survives the process that ran it.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from builder.persistence.database import Database
from builder.persistence.models import runs, threads

__all__ = ["ensure_thread", "get_run", "list_runs", "record_run_finished", "record_run_started"]

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
    values: dict[str, Any] = {"thread_id": thread_id, "user_id": user_id, "project_id": project_id}
    if metadata is not None:
        values["metadata"] = metadata
    statement = insert(threads).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[threads.c.thread_id],
        set_={
            "user_id": func.coalesce(threads.c.user_id, statement.excluded.user_id),
            "project_id": func.coalesce(threads.c.project_id, statement.excluded.project_id),
            "updated_at": func.now(),
        },
    )

    async def work(session: AsyncSession) -> None:
        await session.execute(statement)

    await db.run(work)


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


async def record_run_finished(db: Database, *, run_id: str, result: dict[str, Any]) -> None:
    """Record how a run ended: its status, result and error."""
    status = str(result.get("status", "error"))
    thread_status = {"success": "idle", "cancelled": "idle", "interrupted": "interrupted"}

    async def work(session: AsyncSession) -> None:
        row = await session.execute(
            runs.update()
            .where(runs.c.run_id == run_id)
            .values(
                status=status,
                result=result,
                error=result.get("error"),
                updated_at=func.now(),
                ended_at=func.now(),
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

    await db.run(work)


async def get_run(db: Database, *, run_id: str) -> dict[str, Any] | None:
    """One run's row as a dict, or None."""

    async def work(session: AsyncSession) -> dict[str, Any] | None:
        row = (await session.execute(select(*_RUN_COLUMNS).where(runs.c.run_id == run_id))).first()
        return None if row is None else dict(row._mapping)

    return await db.run(work)


async def list_runs(
    db: Database, *, thread_id: str, limit: int = 10, offset: int = 0, status: str | None = None
) -> list[dict[str, Any]]:
    """A thread's runs, newest first."""
    query = select(*_RUN_COLUMNS).where(runs.c.thread_id == thread_id)
    if status is not None:
        query = query.where(runs.c.status == status)
    query = query.order_by(runs.c.created_at.desc(), runs.c.run_id).limit(limit).offset(offset)

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in (await session.execute(query)).all()]

    return await db.run(work)
