"""SQL for messages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from builder.persistence.models import messages
from builder.persistence.repositories import AnyRow

COLUMNS = (
    messages.c.id,
    messages.c.seq,
    messages.c.project_id,
    messages.c.role,
    messages.c.content,
    messages.c.parts,
    messages.c.model,
    messages.c.created_at,
)


async def insert_messages(
    session: AsyncSession, *, project_id: uuid.UUID, rows: Sequence[dict[str, Any]]
) -> Sequence[AnyRow]:
    """Append messages in order (their ``seq`` follows the order given)."""
    statement = messages.insert().returning(*COLUMNS, sort_by_parameter_order=True)
    result = await session.execute(statement, [{**row, "project_id": project_id} for row in rows])
    return result.all()


async def messages_page(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    limit: int,
    after_seq: int | None,
    newest_first: bool,
) -> Sequence[AnyRow]:
    """Up to ``limit`` messages of a project past ``after_seq`` in the chosen direction."""
    order = messages.c.seq.desc() if newest_first else messages.c.seq.asc()
    statement = (
        select(*COLUMNS).where(messages.c.project_id == project_id).order_by(order).limit(limit)
    )
    if after_seq is not None:
        past = messages.c.seq < after_seq if newest_first else messages.c.seq > after_seq
        statement = statement.where(past)
    return (await session.execute(statement)).all()


async def delete_messages(session: AsyncSession, *, project_id: uuid.UUID) -> int:
    """Delete a project's messages; returns how many."""
    result = await session.execute(
        delete(messages).where(messages.c.project_id == project_id).returning(messages.c.id)
    )
    return len(result.all())
