"""ToolEffects: what tools changed, bounded, taken in batches; events."""

from __future__ import annotations

from builder.tools.context import (
    MAX_RECENT_ERRORS,
    MAX_TRACKED_FILES,
    Plan,
    PlanStep,
    ToolContext,
    ToolEffects,
    ToolEvent,
)


def test_take_returns_changes_and_starts_a_new_batch() -> None:
    effects = ToolEffects(plan=Plan("goal", [PlanStep("one")]))
    effects.file_written("a.txt", "aa")
    effects.file_deleted("b.txt")
    effects.file_written("b.txt", "bb")
    effects.set_plan(effects.plan or Plan("x"))
    taken = effects.take()
    assert (taken.files, taken.plan_changed, taken.rescan) == (
        {"a.txt": "aa", "b.txt": "bb"},
        True,
        False,
    )
    assert (effects.files, effects.plan_changed, effects.plan) == ({}, False, taken.plan)


def test_file_tracking_is_bounded() -> None:
    effects = ToolEffects()
    for n in range(MAX_TRACKED_FILES + 5):
        effects.file_written(f"f{n}", "h")
    assert len(effects.files) == MAX_TRACKED_FILES
    assert effects.rescan is True
    effects.file_written("f0", "new")  # a known path still updates
    assert effects.files["f0"] == "new"
    assert effects.take().rescan is True and effects.rescan is False


def test_errors_are_bounded_and_one_line() -> None:
    effects = ToolEffects()
    for n in range(MAX_RECENT_ERRORS + 3):
        effects.error(f"error {n}\nwith details")
    assert list(effects.errors) == [f"error {n}" for n in range(3, MAX_RECENT_ERRORS + 3)]
    effects.error("x" * 1000)
    assert len(effects.errors[-1]) == 300


async def test_events_reach_sync_and_async_sinks(ctx: ToolContext) -> None:
    seen: list[ToolEvent] = []

    async def async_sink(event: ToolEvent) -> None:
        seen.append(event)

    await ctx.emit("t", "ignored without a sink")
    ctx.on_event = seen.append
    await ctx.emit("write_file", "progress", done=1)
    ctx.on_event = async_sink
    await ctx.emit("write_file", "progress", done=2)
    assert seen == [
        ToolEvent("write_file", "progress", {"done": 1}),
        ToolEvent("write_file", "progress", {"done": 2}),
    ]
