"""Token usage and cost: one row per model call, summed per project or per run."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from builder.persistence.database import Database
from builder.persistence.models import token_usage
from builder.persistence.repositories import usage as repo
from builder.persistence.schemas import UsageTotals

__all__ = ["project_usage", "record_usage", "run_usage", "usage_values"]


def usage_values(
    *, project_id: uuid.UUID, run_id: str | None, tokens: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``token_usage`` row of one model call of a run.

    Args:
        project_id: The project.
        run_id: The run.
        tokens: The call's ``step``, ``model``, ``input_tokens``, ``output_tokens`` and
            optionally ``cache_read_tokens`` and ``cache_write_tokens`` (a graph state's
            ``pending_usage``).
    """
    return {
        "project_id": project_id,
        "run_id": run_id,
        "model": tokens["model"],
        "prompt_tokens": tokens["input_tokens"],
        "completion_tokens": tokens["output_tokens"],
        "total_tokens": tokens["input_tokens"] + tokens["output_tokens"],
        "cost": None,
        "step": tokens["step"],
        "cache_read_tokens": tokens.get("cache_read_tokens", 0),
        "cache_write_tokens": tokens.get("cache_write_tokens", 0),
    }


async def record_usage(
    db: Database,
    *,
    project_id: uuid.UUID,
    prompt_tokens: int,
    completion_tokens: int,
    total_tokens: int | None = None,
    run_id: str | None = None,
    model: str | None = None,
    cost: Decimal | None = None,
    step: int | None = None,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> None:
    """Record the tokens (and cost, when known) of one model call.

    ``cache_read_tokens`` and ``cache_write_tokens`` are the part of ``prompt_tokens``
    the provider read from or wrote to its prompt cache.

    Raises:
        NotFound: No such project.
        InvalidInput: A negative token count.
    """
    values = {
        "project_id": project_id,
        "run_id": run_id,
        "model": model,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens if total_tokens is None else total_tokens,
        "cost": cost,
        "step": step,
        "cache_read_tokens": cache_read_tokens,
        "cache_write_tokens": cache_write_tokens,
    }

    async def work(session: AsyncSession) -> None:
        await repo.insert_usage(session, values=values)

    await db.run(work)


async def _totals(db: Database, where: Any) -> UsageTotals:
    async def work(session: AsyncSession) -> Any:
        return await repo.usage_totals(session, where=where)

    row = await db.run(work)
    return UsageTotals(
        calls=row.calls,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        total_tokens=row.total_tokens,
        cost=Decimal(row.cost),
    )


async def project_usage(db: Database, *, project_id: uuid.UUID) -> UsageTotals:
    """Everything a project has used."""
    return await _totals(db, token_usage.c.project_id == project_id)


async def run_usage(db: Database, *, run_id: str) -> UsageTotals:
    """Everything one run has used."""
    return await _totals(db, token_usage.c.run_id == run_id)
