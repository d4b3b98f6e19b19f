"""The agent's plan: ``plan_changes`` and ``mark_step_complete``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from builder.errors import InvalidInput
from builder.tools.context import Plan, PlanStep, ToolContext

__all__ = ["MAX_STEPS", "mark_step_complete", "plan_changes", "render_plan"]

MAX_STEPS = 50


def render_plan(plan: Plan) -> str:
    """The plan as a numbered checklist with progress."""
    lines = [f"Goal: {plan.goal} ({plan.completed}/{len(plan.steps)} steps done)"]
    for number, step in enumerate(plan.steps, 1):
        mark = "x" if step.done else " "
        note = f" — {step.notes}" if step.notes else ""
        lines.append(f"{number}. [{mark}] {step.description}{note}")
    return "\n".join(lines)


async def plan_changes(goal: str, steps: list[str], *, ctx: ToolContext) -> str:
    """Write down the plan for the work ahead: the goal and the steps in order.

    Args:
        goal: What the finished change should achieve.
        steps: Short descriptions of the steps, in the order they will be done.
    """
    cleaned = [step.strip() for step in steps if step.strip()]
    if not goal.strip() or not cleaned:
        raise InvalidInput("a plan needs a goal and at least one step")
    if len(cleaned) > MAX_STEPS:
        raise InvalidInput(f"{len(cleaned)} steps; keep the plan to {MAX_STEPS} at most")
    plan = Plan(goal=goal.strip(), steps=[PlanStep(description=step) for step in cleaned])
    ctx.effects.set_plan(plan)
    return "Plan recorded.\n" + render_plan(plan)


async def mark_step_complete(
    step: Annotated[int, Field(ge=1)], notes: str | None = None, *, ctx: ToolContext
) -> str:
    """Mark a step of the current plan as done.

    Args:
        step: The step's number in the plan (1 = the first step).
        notes: What was done, or anything worth remembering about the step.
    """
    plan = ctx.effects.plan
    if plan is None:
        raise InvalidInput("there is no plan yet; call plan_changes first")
    if step > len(plan.steps):
        raise InvalidInput(f"the plan has {len(plan.steps)} steps; there is no step {step}")
    entry = plan.steps[step - 1]
    entry.done = True
    entry.notes = notes.strip() if notes and notes.strip() else entry.notes
    ctx.effects.set_plan(plan)
    return render_plan(plan)
