"""Dev servers left running by a service process that died without stopping them.

A local sandbox's server runs in a session of its own, so that stopping it kills its
whole process group; the other side of that is that an unconfined server outlives a
service process killed with SIGKILL or by the OOM killer (a confined one dies with
bubblewrap's ``--die-with-parent``). Each running server's process group is
therefore written to a ledger outside the workspace, where the agent cannot touch it
(``<data_dir>/processes/<project id>.json``), and the next sandbox opened for the
project kills the groups whose owning process is gone.

A process is recognised by its pid *and* its start time (``/proc/<pid>/stat``), so a
pid reused since is never mistaken for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from builder.log import get_logger

__all__ = ["ProcessLedger"]

_log = get_logger("builder.sandbox")


def _started(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces and parentheses); the
    # 22nd field of the line, the start time, is the 20th of these.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def _parse(text: str) -> dict[str, Any]:
    try:
        entries = json.loads(text) if text.strip() else {}
    except ValueError:
        entries = None
    if not isinstance(entries, dict):
        _log.warning("sandbox.ledger_unreadable")
        return {}
    return entries


class ProcessLedger:
    """The process groups of one project's running servers, kept on disk.

    Args:
        path: The ledger file; its directory is created when needed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, name: str, pgid: int) -> None:
        """Record the server ``name``, leader of process group ``pgid``."""
        me = os.getpid()
        with self._entries() as entries:
            entries[name] = {
                "pgid": pgid,
                "started": _started(pgid),
                "owner": me,
                "owner_started": _started(me),
            }

    def remove(self, name: str) -> None:
        """Forget the server ``name`` (it was stopped)."""
        if self.path.exists():
            with self._entries() as entries:
                entries.pop(name, None)

    def reap(self) -> list[str]:
        """Kill the servers whose owning process is gone; returns their names."""
        if not self.path.exists():
            return []
        reaped = []
        with self._entries() as entries:
            for name, entry in list(entries.items()):
                if _started(entry["owner"]) == entry["owner_started"]:
                    continue  # its owner still runs it
                leader = _started(entry["pgid"])
                # A leader with another start time means the pid was reused: not ours.
                # No leader at all: the group's other members may still run.
                if leader is None or leader == entry["started"]:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(entry["pgid"], signal.SIGKILL)
                        reaped.append(name)
                del entries[name]
        if reaped:
            _log.warning("sandbox.leftovers_stopped", servers=reaped, ledger=str(self.path))
        return reaped

    @contextlib.contextmanager
    def _entries(self) -> Iterator[dict[str, Any]]:
        # Read, change and write under an exclusive lock: several processes may share
        # a data directory.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "r+") as file:
                entries = _parse(file.read())
                yield entries
                file.seek(0)
                file.truncate()
                if entries:
                    json.dump(entries, file)
        finally:
            os.close(fd)
