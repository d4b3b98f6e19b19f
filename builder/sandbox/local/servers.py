"""Long-running processes of the local sandbox: dev servers and watchers.

Each runs like a command (:mod:`builder.sandbox.local.processes`: own process group,
scrubbed environment, resource limits) but without a CPU-time limit, since a server
runs for hours. Its merged stdout and stderr go into a :class:`~builder.sandbox.output.LogRing`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

from builder.sandbox.base import ProcessInfo
from builder.sandbox.local.confine import Confinement
from builder.sandbox.local.leftovers import ProcessLedger
from builder.sandbox.local.processes import (
    Child,
    ChildLimits,
    check_command,
    child_env,
    finish,
    free_port,
    pump,
    spawn,
)
from builder.sandbox.output import DEFAULT_LOG_LINES, LogRing
from builder.sandbox.paths import check_port, check_process_name
from builder.sandbox.slots import DEFAULT_MAX_PROCESSES, ProcessSlots
from builder.sandbox.workspace import Workspace

__all__ = ["ProcessTable"]


@dataclass(slots=True)
class _Server:
    name: str
    command: str
    port: int
    started_at: float
    child: Child
    ring: LogRing
    reader: asyncio.Task[None]

    @property
    def finished(self) -> bool:
        return self.child.returncode is not None

    def info(self, log_lines: int) -> ProcessInfo:
        return ProcessInfo(
            name=self.name,
            command=self.command,
            running=self.child.returncode is None,
            exit_code=self.child.returncode,
            port=self.port,
            preview_url=f"http://127.0.0.1:{self.port}/",
            started_at=self.started_at,
            logs=self.ring.tail(log_lines),
        )


class ProcessTable:
    """The named long-running processes of one local sandbox.

    A finished process stays listed (with its logs) until its slot is needed; when
    every slot holds a running process, starting another raises ``LimitExceeded``.

    Args:
        workspace: Where the processes run.
        limits: Resource limits (the CPU-time limit is dropped).
        max_processes: Most processes held.
        log_lines: Lines of output kept per process.
        confinement: Run the processes inside bubblewrap (their port reachable from the host).
        ledger: Where running servers are recorded, so that a later table stops the
            ones a dead process left behind (which it does when created).
    """

    def __init__(
        self,
        workspace: Workspace,
        *,
        limits: ChildLimits,
        max_processes: int = DEFAULT_MAX_PROCESSES,
        log_lines: int = DEFAULT_LOG_LINES,
        confinement: Confinement | None = None,
        ledger: ProcessLedger | None = None,
    ) -> None:
        self._workspace = workspace
        self._ledger = ledger
        if ledger is not None:
            ledger.reap()
        self._confinement = confinement
        self._limits = replace(limits, cpu_seconds=0)
        self._slots: ProcessSlots[_Server] = ProcessSlots(max_processes)
        self._log_lines = log_lines
        self._lock = asyncio.Lock()

    async def start(self, name: str, command: str, *, cwd: str, port: int | None) -> ProcessInfo:
        """Start ``command`` as ``name`` (stopping a previous one of that name)."""
        check_process_name(name)
        check_command(command)
        check_port(port)
        async with self._lock:
            previous = self._slots.pop(name)
            if previous is not None:
                await self._stop(previous)
            self._slots.make_room()
            chosen = port or free_port()
            expanded = command.replace("{port}", str(chosen))
            child = await spawn(
                self._workspace,
                expanded,
                cwd=cwd,
                rlimits=self._limits.rlimits(),
                env=child_env(self._workspace.root, port=chosen, confinement=self._confinement),
                merge_stderr=True,
                confinement=self._confinement,
                # The preview and screenshot code reach the server's port on the host.
                server_port=chosen,
            )
            ring = LogRing(self._log_lines)
            server = _Server(
                name=name,
                command=expanded,
                port=chosen,
                started_at=time.time(),
                child=child,
                ring=ring,
                reader=asyncio.create_task(_read_logs(child, ring)),
            )
            self._slots.add(name, server)
            if self._ledger is not None:
                self._ledger.add(name, child.pid)
            return server.info(self._log_lines)

    async def stop(self, name: str) -> bool:
        """Stop ``name`` with its process group; False when it was not running."""
        async with self._lock:
            server = self._slots.get(name)
            return False if server is None else await self._stop(server)

    async def stop_all(self) -> None:
        """Stop every process (their entries and logs stay)."""
        async with self._lock:
            for server in self._slots.values():
                await self._stop(server)

    async def _stop(self, server: _Server) -> bool:
        stopped = await _stop(server)
        if self._ledger is not None:
            self._ledger.remove(server.name)
        return stopped

    def info(self, name: str, *, log_lines: int = 50) -> ProcessInfo | None:
        """The state and last ``log_lines`` lines of ``name``, or None."""
        server = self._slots.get(name)
        return None if server is None else server.info(log_lines)


async def _read_logs(child: Child, ring: LogRing) -> None:
    try:
        await pump(child.stdout, ring.feed)
    finally:
        ring.flush()


async def _stop(server: _Server) -> bool:
    was_running = server.child.returncode is None
    await server.child.terminate()
    await finish([server.reader], server.child)
    return was_running
