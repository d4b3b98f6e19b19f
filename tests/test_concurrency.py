"""all_of: independent awaits side by side, failing as the first failure did."""

from __future__ import annotations

import asyncio

import pytest

from builder.concurrency import all_of
from builder.errors import NotFound


async def test_results_come_in_order_and_the_work_overlaps() -> None:
    both_started = asyncio.Event()
    started: list[str] = []

    async def work(name: str, pause: float) -> str:
        started.append(name)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 1)  # neither ends before both began
        await asyncio.sleep(pause)
        return name

    assert await all_of(work("slow", 0.05), work("quick", 0)) == ("slow", "quick")


async def test_the_first_failure_is_raised_as_it_was_after_the_rest_unwound() -> None:
    unwound = asyncio.Event()

    async def holds() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0)  # unwinding takes a turn of the loop
            unwound.set()

    async def fails() -> None:
        await asyncio.sleep(0)
        raise NotFound("project", "p1")

    with pytest.raises(NotFound) as raised:  # not an ExceptionGroup
        await all_of(holds(), fails())
    assert raised.value.code == "not_found"
    assert unwound.is_set()


async def test_cancelling_the_caller_cancels_every_part() -> None:
    cancelled: list[str] = []
    running = asyncio.Event()

    async def part(name: str) -> None:
        try:
            running.set()
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    caller = asyncio.create_task(all_of(part("a"), part("b")))
    await running.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert sorted(cancelled) == ["a", "b"]
