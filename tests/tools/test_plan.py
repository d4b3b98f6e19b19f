"""plan_changes and mark_step_complete."""

from __future__ import annotations

from builder.tools.context import Plan, PlanStep, ToolContext
from tests.tools.conftest import Caller


async def test_plan_then_complete_steps(call: Caller, ctx: ToolContext) -> None:
    assert await call(
        "plan_changes", goal="A landing page", steps=["Write HTML", " ", "Style it"]
    ) == (
        "Plan recorded.\nGoal: A landing page (0/2 steps done)\n1. [ ] Write HTML\n2. [ ] Style it"
    )
    ctx.effects.take()
    assert await call("mark_step_complete", step=2, notes="dark theme") == (
        "Goal: A landing page (1/2 steps done)\n1. [ ] Write HTML\n2. [x] Style it — dark theme"
    )
    assert ctx.effects.plan_changed is True
    assert ctx.effects.plan == Plan(
        "A landing page",
        [PlanStep("Write HTML"), PlanStep("Style it", done=True, notes="dark theme")],
    )


async def test_plan_errors(call: Caller) -> None:
    assert "call plan_changes first" in await call.error("mark_step_complete", step=1)
    assert "needs a goal and at least one step" in await call.error(
        "plan_changes", goal="g", steps=[]
    )
    await call("plan_changes", goal="g", steps=["one"])
    assert "there is no step 2" in await call.error("mark_step_complete", step=2)
    assert "Error (invalid_arguments)" in await call.error("mark_step_complete", step=0)
