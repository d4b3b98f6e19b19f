"""Per-operation timeouts cancel the work and name the operation."""

from __future__ import annotations

import asyncio

import pytest

from builder.errors import OperationTimeout
from builder.settings import Settings
from builder.timeouts import with_timeout


async def test_expired_budget_cancels_the_work_and_names_the_operation() -> None:
    events: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        finally:
            events.append("cleaned up")

    with pytest.raises(OperationTimeout) as info:
        await with_timeout(slow(), "sandbox", settings=Settings(timeout_sandbox=0.05))
    assert events == ["cancelled", "cleaned up"]
    assert (info.value.operation, info.value.seconds) == ("sandbox", 0.05)
    assert str(info.value) == "sandbox operation timed out after 0.05 s"


async def test_work_that_finishes_in_time_returns_its_value() -> None:
    async def quick() -> int:
        await asyncio.sleep(0)
        return 7

    assert await with_timeout(quick(), "ai", settings=Settings()) == 7


async def test_explicit_seconds_override_the_configured_budget() -> None:
    with pytest.raises(OperationTimeout) as info:
        await with_timeout(asyncio.sleep(5), "custom-step", seconds=0.01)
    assert info.value.operation == "custom-step"


async def test_errors_inside_the_work_pass_through_unchanged() -> None:
    async def broken() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await with_timeout(broken(), "db", settings=Settings())


async def test_outer_cancellation_is_not_turned_into_a_timeout() -> None:
    started = asyncio.Event()

    async def waits() -> None:
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(with_timeout(waits(), "ai", settings=Settings()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
