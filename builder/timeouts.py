"""Per-operation time budgets.

Every operation that can hang — a sandbox command, a model call, a database round
trip, a dev server start, a package install — runs under the budget of its kind from
:class:`~builder.settings.Settings`. When the budget runs out the work is cancelled and
:class:`~builder.errors.OperationTimeout` names the operation and the seconds allowed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from builder.errors import OperationTimeout
from builder.settings import OperationKind, Settings, get_settings

__all__ = ["with_timeout"]

T = TypeVar("T")


async def with_timeout(
    work: Awaitable[T],
    operation: OperationKind | str,
    *,
    seconds: float | None = None,
    settings: Settings | None = None,
) -> T:
    """Await ``work`` within the time budget of ``operation``.

    Args:
        work: A coroutine or other awaitable. It is cancelled when time runs out.
        operation: An operation kind from settings (``"sandbox"``, ``"ai"``, ``"db"``,
            ``"dev_server"``, ``"install"``), or any name when ``seconds`` is given.
        seconds: An explicit budget that overrides the configured one.
        settings: Settings to read budgets from; defaults to :func:`get_settings`.

    Returns:
        What ``work`` returns.

    Raises:
        OperationTimeout: The budget ran out; ``work`` has been cancelled.
    """
    if seconds is None:
        seconds = (settings or get_settings()).timeout_for(operation)  # type: ignore[arg-type]
    try:
        # Awaited in this task, not a task of its own: when time runs out the
        # cancellation unwinds ``work`` (its locks, its connections) before the error.
        async with asyncio.timeout(seconds):
            return await work
    except TimeoutError:
        raise OperationTimeout(operation=str(operation), seconds=seconds) from None
