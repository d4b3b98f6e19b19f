"""Kill this process with SIGKILL at one exact point of a run (tests only).

Put this directory on ``PYTHONPATH`` and name the point in ``KILL_AT``:

* ``tool:N`` — right after the N-th tool call returns, before its checkpoint;
* ``snapshot:N`` — inside the N-th snapshot transaction, after its rows are written
  and before it commits;
* ``reply`` — after the graph finished, before the assistant message is stored.

Nothing of the run sees it coming: the process dies as a power cut or an OOM kill
would, without running a handler.
"""

from __future__ import annotations

import functools
import os
import signal
from typing import Any

_POINT, _, _NTH = os.environ.get("KILL_AT", "").partition(":")
_calls = 0


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _count() -> bool:
    global _calls
    _calls += 1
    return _calls == int(_NTH or 1)


if _POINT == "tool":
    from builder.tools.bound import BoundTool

    original_ainvoke = BoundTool.ainvoke

    @functools.wraps(original_ainvoke)
    async def ainvoke(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original_ainvoke(self, *args, **kwargs)
        if _count():
            _die()
        return result

    BoundTool.ainvoke = ainvoke  # type: ignore[method-assign]

elif _POINT == "snapshot":
    from builder.persistence.repositories import snapshots as repo

    original_version = repo.insert_version

    @functools.wraps(original_version)
    async def insert_version(*args: Any, **kwargs: Any) -> Any:
        result = await original_version(*args, **kwargs)
        if _count():
            _die()
        return result

    repo.insert_version = insert_version  # type: ignore[assignment]

elif _POINT == "reply":
    from builder.runs import service

    original_append = service.append_message

    @functools.wraps(original_append)
    async def append_message(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("role") == "assistant":
            _die()
        return await original_append(*args, **kwargs)

    service.append_message = append_message  # type: ignore[assignment]
