"""SQL for token usage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from builder.persistence.models import token_usage
from builder.persistence.repositories import AnyRow


async def insert_usage(
    session: AsyncSession, *, values: Mapping[str, Any], once: bool = False
) -> None:
    """Record one model call; with ``once``, a row already recorded for the same run
    and step is kept and this one dropped."""
    statement = insert(token_usage).values(**values)
    if once:
        statement = statement.on_conflict_do_nothing(index_elements=["run_id", "step"])
    await session.execute(statement)


async def usage_totals(session: AsyncSession, *, where: Any) -> AnyRow:
    """Sums over the rows matching ``where``."""
    t = token_usage.c
    statement = select(
        func.count().label("calls"),
        func.coalesce(func.sum(t.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(t.completion_tokens), 0).label("completion_tokens"),
        func.coalesce(func.sum(t.total_tokens), 0).label("total_tokens"),
        func.coalesce(func.sum(t.cost), 0).label("cost"),
    ).where(where)
    return (await session.execute(statement)).one()
