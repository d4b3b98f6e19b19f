"""Awaiting independent work side by side.

A run's start reads several things that do not depend on each other (its state, its
sandbox, the project's messages). Awaited one after another under load, each waits its
turn behind every other task on the event loop; awaited together they wait once.
:func:`all_of` is :func:`asyncio.gather` with the failure handling a caller wants:
the first failure cancels the rest and is raised as it was (not wrapped in an
``ExceptionGroup``, as :class:`asyncio.TaskGroup` would), after the rest have finished
unwinding, so nothing they hold (a connection, a lease) outlives the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar, overload

__all__ = ["all_of"]

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


@overload
async def all_of(first: Awaitable[A], second: Awaitable[B], /) -> tuple[A, B]: ...


@overload
async def all_of(
    first: Awaitable[A], second: Awaitable[B], third: Awaitable[C], /
) -> tuple[A, B, C]: ...


async def all_of(*works: Awaitable[Any]) -> tuple[Any, ...]:
    """Await ``works`` concurrently; their results, in order.

    Raises:
        The first failure among them (the others cancelled and finished first), or
        ``CancelledError`` when the caller is cancelled (the same for them).
    """
    tasks = [asyncio.ensure_future(work) for work in works]
    try:
        return tuple(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
