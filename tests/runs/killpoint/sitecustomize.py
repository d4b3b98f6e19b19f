"""Kill this process with SIGKILL at one exact point of a run (tests only).

Put this directory on ``PYTHONPATH`` and name the point in ``KILL_AT``:

* ``tool:N`` — right after the N-th tool call returns, before its checkpoint;
* ``snapshot:N`` — at the N-th save of a model step (its files and tokens), before
  it commits (on its own, or with the tools node's writes);
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
    from builder.graphs import toolcalls

    original_answer = toolcalls.answer_call

    @functools.wraps(original_answer)
    async def answer_call(*args: Any, **kwargs: Any) -> Any:
        result = await original_answer(*args, **kwargs)
        if _count():
            _die()
        return result

    toolcalls.answer_call = answer_call  # type: ignore[assignment]

elif _POINT == "snapshot":
    from builder.graphs import saving
    from builder.graphs.checkpointer import TTLCheckpointer

    original_save = saving.save_step
    original_settled = TTLCheckpointer._settled

    @functools.wraps(original_save)
    async def save_step(*args: Any, **kwargs: Any) -> Any:
        if _count():
            _die()
        return await original_save(*args, **kwargs)

    @functools.wraps(original_settled)
    async def settled(self: Any, carried: Any, write: Any) -> Any:
        if carried and _count():
            _die()
        return await original_settled(self, carried, write)

    saving.save_step = save_step  # type: ignore[assignment]
    TTLCheckpointer._settled = settled  # type: ignore[method-assign]

elif _POINT == "reply":
    from builder.runs import service

    original_append = service.append_message

    @functools.wraps(original_append)
    async def append_message(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("role") == "assistant":
            _die()
        return await original_append(*args, **kwargs)

    service.append_message = append_message  # type: ignore[assignment]
