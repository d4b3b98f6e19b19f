"""Watching child processes from tests: are they dead yet, and a command that spawns some."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

__all__ = ["RUNAWAY", "is_dead", "wait_until"]


def is_dead(pid: int) -> bool:
    """Gone, or a zombie nobody has reaped yet (it runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def wait_until(condition: Callable[[], bool], *, attempts: int = 200) -> bool:
    """Poll ``condition`` (up to ~10 s) and return whether it became true."""
    for _ in range(attempts):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


# Two background sleeps (one a grandchild), their pids in pids.txt, the shell's own
# pid in leader.txt, then waits forever for them.
RUNAWAY = (
    "sleep 300 & echo $! >> pids.txt; "
    "sh -c 'sleep 300 & echo $! >> pids.txt; wait' & echo $! >> pids.txt; "
    "echo $$ > leader.txt; wait"
)
