"""Child processes of the local sandbox: one-shot commands and long-running servers.

Every child runs ``/bin/sh -c <command>``

* in its own session and process group, so a timeout or a stop kills it *with* every
  process it started (children that call ``setsid`` themselves escape; E2B does not
  have this gap);
* in a directory opened through the workspace's symlink-free walk (``fchdir`` in the
  child, so no path is resolved twice);
* with a scrubbed environment: only ``PATH``, ``HOME`` (the workspace), ``LANG``,
  ``TERM=dumb`` and ``PORT`` for servers — never the service's secrets;
* under resource limits set in the child before ``exec``: CPU seconds, address space,
  largest file (the project quota) and process count. Linux does not enforce the
  process count for root.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from builder.errors import InvalidInput, LimitExceeded
from builder.sandbox.base import CommandResult, ProcessInfo
from builder.sandbox.output import DEFAULT_LOG_LINES, LogRing, OutputCapture
from builder.sandbox.paths import check_process_name
from builder.sandbox.workspace import Workspace
from builder.settings import Settings

__all__ = [
    "DEFAULT_MAX_PROCESSES",
    "TERM_GRACE_SECONDS",
    "ChildLimits",
    "ProcessTable",
    "child_env",
    "free_port",
    "run_command",
    "signal_group",
]

DEFAULT_MAX_PROCESSES = 8
"""Named long-running processes one sandbox keeps (running or finished with logs)."""
TERM_GRACE_SECONDS = 3.0
"""Time between SIGTERM and SIGKILL when a process group is stopped."""
SHELL = "/bin/sh"
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class ChildLimits:
    """Resource limits applied to every child (0 = leave that limit alone)."""

    cpu_seconds: int
    memory_bytes: int
    file_bytes: int
    max_processes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ChildLimits:
        """Limits from the ``sandbox_*`` settings; the largest file is the project quota."""
        return cls(
            cpu_seconds=settings.sandbox_cpu_seconds,
            memory_bytes=settings.sandbox_memory_bytes,
            file_bytes=settings.project_quota_bytes,
            max_processes=settings.sandbox_max_processes,
        )

    def rlimits(self) -> list[tuple[int, int]]:
        """``(resource, value)`` pairs, lowered to this process's hard limits.

        An unprivileged process may not raise a hard limit, so asking for more than
        the service itself has would make the child fail to start.
        """
        wanted = [
            (resource.RLIMIT_CPU, self.cpu_seconds),
            (resource.RLIMIT_AS, self.memory_bytes),
            (resource.RLIMIT_FSIZE, self.file_bytes),
            (resource.RLIMIT_NPROC, self.max_processes),
        ]
        pairs = []
        for rid, value in wanted:
            if value <= 0:
                continue
            hard = resource.getrlimit(rid)[1]
            pairs.append((rid, value if hard == resource.RLIM_INFINITY else min(value, hard)))
        return pairs


def _child_setup(rlimits: list[tuple[int, int]], cwd_fd: int) -> Callable[[], None]:
    # Runs in the forked child before exec: only system calls, nothing that locks.
    def setup() -> None:
        os.fchdir(cwd_fd)
        for rid, value in rlimits:
            resource.setrlimit(rid, (value, value))

    return setup


def child_env(home: Path, *, port: int | None = None) -> dict[str, str]:
    """The whole environment of a sandbox child: an allow-list, nothing inherited else."""
    env = {
        "PATH": os.environ.get("PATH") or _DEFAULT_PATH,
        "HOME": str(home),
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "TERM": "dumb",
    }
    if port is not None:
        env["PORT"] = str(port)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to a process group; a group that is gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Stream protocol that also reports the moment the child exits.

    ``Process.wait()`` (Python 3.11) returns only once every pipe is closed, so a
    background grandchild holding stdout would make it wait forever.
    """

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


@dataclass(slots=True)
class _Child:
    """A spawned ``/bin/sh`` leading its own process group."""

    transport: asyncio.SubprocessTransport
    protocol: _ExitProtocol
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None

    @property
    def pid(self) -> int:
        pid = self.transport.get_pid()
        assert pid is not None
        return pid

    @property
    def returncode(self) -> int | None:
        return self.transport.get_returncode()

    async def wait_exit(self) -> None:
        await self.protocol.exited.wait()

    async def terminate(self, grace: float = TERM_GRACE_SECONDS) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
        if self.returncode is None:
            signal_group(self.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait_exit(), grace)
        signal_group(self.pid, signal.SIGKILL)
        await self.wait_exit()


def _check_command(command: str) -> str:
    if not isinstance(command, str) or not command.strip():
        raise InvalidInput("a command must be a non-empty string")
    if "\x00" in command:
        raise InvalidInput("a command must not contain a NUL byte")
    return command


async def _spawn(
    workspace: Workspace,
    command: str,
    *,
    cwd: str,
    rlimits: list[tuple[int, int]],
    env: dict[str, str],
    merge_stderr: bool,
) -> _Child:
    loop = asyncio.get_running_loop()
    cwd_fd = workspace.open_directory(cwd)
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: _ExitProtocol(limit=_READ_CHUNK, loop=loop),
            SHELL,
            "-c",
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            env=env,
            start_new_session=True,
            # Limits must be set in the child, between fork and exec.
            preexec_fn=_child_setup(rlimits, cwd_fd),
        )
    finally:
        os.close(cwd_fd)
    return _Child(transport, protocol, protocol.stdout, protocol.stderr)


async def _pump(stream: asyncio.StreamReader | None, sink: Callable[[bytes], None]) -> None:
    if stream is None:
        return
    while chunk := await stream.read(_READ_CHUNK):
        sink(chunk)


async def run_command(
    workspace: Workspace,
    command: str,
    *,
    cwd: str,
    limits: ChildLimits,
    timeout: float,
    output_limit: int,
) -> CommandResult:
    """Run a command in the workspace and wait for it; see :meth:`LocalSandbox.exec`."""
    _check_command(command)
    if timeout <= 0:
        raise InvalidInput(f"timeout must be positive, not {timeout!r}")
    started = time.monotonic()
    child = await _spawn(
        workspace,
        command,
        cwd=cwd,
        rlimits=limits.rlimits(),
        env=child_env(workspace.root),
        merge_stderr=False,
    )
    out, err = OutputCapture(output_limit), OutputCapture(output_limit)
    pumps = [
        asyncio.create_task(_pump(child.stdout, out.feed)),
        asyncio.create_task(_pump(child.stderr, err.feed)),
    ]
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            await child.wait_exit()
            # Background children would keep the pipes open; exec waits for the
            # command, not for what it left running.
            signal_group(child.pid, signal.SIGKILL)
            await asyncio.gather(*pumps)
    except TimeoutError:
        timed_out = True
        await child.terminate()
    finally:
        signal_group(child.pid, signal.SIGKILL)
        await _finish(pumps, child)
    exit_code = child.returncode
    return CommandResult(
        command=command,
        exit_code=-1 if timed_out or exit_code is None else exit_code,
        stdout=out.text(),
        stderr=err.text(),
        duration_s=time.monotonic() - started,
        timed_out=timed_out,
        truncated_bytes=out.truncated_bytes + err.truncated_bytes,
    )


async def _finish(readers: list[asyncio.Task[None]], child: _Child) -> None:
    """Stop reading soon (a grandchild that left the group may hold a pipe) and close."""
    await asyncio.wait(readers, timeout=1.0)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    child.transport.close()


@dataclass(slots=True)
class _Managed:
    name: str
    command: str
    port: int
    started_at: float
    child: _Child
    ring: LogRing
    reader: asyncio.Task[None]

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
    """The named long-running processes of one local sandbox, at most ``max_processes``.

    A finished process stays listed (with its logs) until its slot is needed; when
    every slot holds a running process, starting another raises ``LimitExceeded``.
    Servers get no CPU-time limit (they run for hours); the other limits apply.
    """

    def __init__(
        self,
        workspace: Workspace,
        *,
        limits: ChildLimits,
        max_processes: int = DEFAULT_MAX_PROCESSES,
        log_lines: int = DEFAULT_LOG_LINES,
    ) -> None:
        self._workspace = workspace
        self._limits = replace(limits, cpu_seconds=0)
        self._max = max_processes
        self._log_lines = log_lines
        self._entries: dict[str, _Managed] = {}
        self._lock = asyncio.Lock()

    async def start(self, name: str, command: str, *, cwd: str, port: int | None) -> ProcessInfo:
        """Start ``command`` as ``name`` (stopping a previous one of that name)."""
        check_process_name(name)
        _check_command(command)
        if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
            raise InvalidInput(f"port {port!r} is not between 1 and 65535")
        async with self._lock:
            previous = self._entries.pop(name, None)
            if previous is not None:
                await _stop(previous)
            self._make_room()
            chosen = port or free_port()
            expanded = command.replace("{port}", str(chosen))
            child = await _spawn(
                self._workspace,
                expanded,
                cwd=cwd,
                rlimits=self._limits.rlimits(),
                env=child_env(self._workspace.root, port=chosen),
                merge_stderr=True,
            )
            ring = LogRing(self._log_lines)
            entry = _Managed(
                name=name,
                command=expanded,
                port=chosen,
                started_at=time.time(),
                child=child,
                ring=ring,
                reader=asyncio.create_task(_read_logs(child, ring)),
            )
            self._entries[name] = entry
            return entry.info(self._log_lines)

    def _make_room(self) -> None:
        if len(self._entries) < self._max:
            return
        finished = sorted(
            (e for e in self._entries.values() if e.child.returncode is not None),
            key=lambda e: e.started_at,
        )
        for entry in finished[: len(self._entries) - self._max + 1]:
            del self._entries[entry.name]
        if len(self._entries) >= self._max:
            raise LimitExceeded(
                f"{self._max} long-running processes are running already; stop one first",
                limit=self._max,
                size=len(self._entries) + 1,
            )

    async def stop(self, name: str) -> bool:
        """Stop ``name`` with its process group; False when it was not running."""
        async with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                return False
            return await _stop(entry)

    async def stop_all(self) -> None:
        """Stop every process (their entries and logs stay)."""
        async with self._lock:
            for entry in list(self._entries.values()):
                await _stop(entry)

    def info(self, name: str, *, log_lines: int = 50) -> ProcessInfo | None:
        """The state and last ``log_lines`` lines of ``name``, or None."""
        entry = self._entries.get(name)
        return None if entry is None else entry.info(log_lines)


async def _read_logs(child: _Child, ring: LogRing) -> None:
    try:
        await _pump(child.stdout, ring.feed)
    finally:
        ring.flush()


async def _stop(entry: _Managed) -> bool:
    was_running = entry.child.returncode is None
    await entry.child.terminate()
    await _finish([entry.reader], entry.child)
    return was_running
