"""Token usage: recorded per call, summed per project and per run."""

from __future__ import annotations

from decimal import Decimal

import pytest

from builder.errors import InvalidInput
from builder.persistence import Database, project_usage, record_usage, run_usage
from builder.persistence.schemas import ProjectPublic, UsageTotals


async def test_totals_per_project_and_per_run(db: Database, project: ProjectPublic) -> None:
    await record_usage(
        db,
        project_id=project.id,
        run_id="r1",
        prompt_tokens=100,
        completion_tokens=20,
        cost=Decimal("0.001500"),
        step=1,
        model="m",
    )
    await record_usage(
        db, project_id=project.id, run_id="r1", prompt_tokens=50, completion_tokens=5
    )
    await record_usage(db, project_id=project.id, run_id="r2", prompt_tokens=1, completion_tokens=1)

    assert await run_usage(db, run_id="r1") == UsageTotals(
        calls=2, prompt_tokens=150, completion_tokens=25, total_tokens=175, cost=Decimal("0.0015")
    )
    assert (await project_usage(db, project_id=project.id)).total_tokens == 177
    assert await run_usage(db, run_id="none") == UsageTotals(
        calls=0, prompt_tokens=0, completion_tokens=0, total_tokens=0, cost=Decimal(0)
    )
    with pytest.raises(InvalidInput):
        await record_usage(db, project_id=project.id, prompt_tokens=-1, completion_tokens=0)
