"""Child processes of the local sandbox, and one-shot commands.

Every child runs ``/bin/sh -c <command>``

* in its own session and process group, so a timeout or a stop kills it *with* every
  process it started (children that call ``setsid`` themselves escape);
* in a directory opened through the workspace's symlink-free walk (``fchdir`` in the
  child, so no path is resolved twice);
* with a scrubbed environment: only ``PATH``, ``HOME`` (the workspace), ``LANG``,
  ``TERM=dumb`` and ``PORT`` for servers — never the service's secrets — set through
  ``env -i`` so nothing that patches ``subprocess.Popen`` can add to it;
* under resource limits set in the child before ``exec``: CPU seconds, address space,
  data segment (not the address space, which V8 and WebAssembly reserve freely),
  largest file (the project quota) and process count. Linux does not enforce the
  process count for root;
* optionally confined by bubblewrap (:mod:`builder.sandbox.local.confine`), with
  user-mode networking attached (:mod:`builder.sandbox.local.network`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder.errors import InvalidInput
from builder.sandbox.base import CommandResult
from builder.sandbox.local.confine import SANDBOX_HOME, Confinement, inner_path
from builder.sandbox.local.network import attach_network, read_child_pid, stop_network
from builder.sandbox.output import OutputCapture
from builder.sandbox.workspace import Workspace
from builder.settings import Settings

__all__ = [
    "TERM_GRACE_SECONDS",
    "Child",
    "ChildLimits",
    "check_command",
    "child_env",
    "finish",
    "free_port",
    "pump",
    "run_command",
    "shell_argv",
    "signal_group",
    "spawn",
]

TERM_GRACE_SECONDS = 3.0
"""Time between SIGTERM and SIGKILL when a process group is stopped."""
SHELL = "/bin/sh"
ENV_PROGRAM = "/usr/bin/env"
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
            # The data segment, not the address space: V8 and WebAssembly (esbuild,
            # Vite) reserve large address ranges they never touch.
            (resource.RLIMIT_DATA, self.memory_bytes),
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


def _child_setup(
    rlimits: list[tuple[int, int]], cwd_fd: int, user: tuple[int, int] | None = None
) -> Callable[[], None]:
    # Runs in the forked child before exec: only system calls, nothing that locks. The
    # switch to the sandbox user is made here, not with Popen's ``user=``/``group=``,
    # which uvloop (the server's event loop) does not take.
    def setup() -> None:
        os.fchdir(cwd_fd)
        for rid, value in rlimits:
            resource.setrlimit(rid, (value, value))
        if user is not None:
            uid, gid = user
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

    return setup


def child_env(
    home: Path, *, port: int | None = None, confinement: Confinement | None = None
) -> dict[str, str]:
    """The whole environment of a sandbox child: an allow-list, nothing inherited else.

    A confined child gets a private home and the ``PATH`` of its mount namespace.
    """
    confined = confinement is not None
    env = {
        "PATH": (
            inner_path(confinement.user)
            if confinement is not None
            else (os.environ.get("PATH") or _DEFAULT_PATH)
        ),
        "HOME": str(SANDBOX_HOME) if confined else str(home),
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "TERM": "dumb",
    }
    if confined:
        # The private home starts empty, so npm would ask the registry whether a newer
        # npm exists in every command, wait for it, and print a notice the agent can't act on.
        env["npm_config_update_notifier"] = "false"
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


_live_groups: set[int] = set()
"""Process groups of spawned shells whose leader still runs (killed at interpreter exit)."""


@atexit.register
def _kill_live_groups() -> None:
    """At interpreter exit, SIGKILL every group whose shell still runs.

    A program that never closes its sandboxes (a script that ends after one run) would
    otherwise leave their dev servers running: each leads its own session, so nothing
    else ends them. A group is forgotten as soon as its leader exits, so no reused
    process id is ever signalled.
    """
    for pgid in list(_live_groups):
        signal_group(pgid, signal.SIGKILL)
    _live_groups.clear()


class ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Stream protocol that also reports the moment the child exits.

    ``Process.wait()`` (Python 3.11) returns only once every pipe is closed, so a
    background grandchild holding stdout would make it wait forever.
    """

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()
        self.pid: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if isinstance(transport, asyncio.SubprocessTransport):
            self.pid = transport.get_pid()

    def process_exited(self) -> None:
        if self.pid is not None:
            _live_groups.discard(self.pid)
        super().process_exited()
        self.exited.set()


@dataclass(slots=True)
class Child:
    """A spawned ``/bin/sh`` leading its own process group."""

    transport: asyncio.SubprocessTransport
    protocol: ExitProtocol
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None
    network: asyncio.Task[None] | None = None
    """Stops the child's ``pasta`` once the child exits (isolated networking)."""

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


def check_command(command: str) -> str:
    if not isinstance(command, str) or not command.strip():
        raise InvalidInput("a command must be a non-empty string")
    if "\x00" in command:
        raise InvalidInput("a command must not contain a NUL byte")
    return command


def shell_argv(command: str, env: dict[str, str]) -> list[str]:
    """``env -i NAME=value ... /bin/sh -c command``.

    ``env -i`` sets the shell's environment itself, so instrumentation that patches
    ``subprocess.Popen`` (Sentry adds ``SUBPROCESS_*`` trace variables) cannot add to it.
    """
    return [ENV_PROGRAM, "-i", *(f"{k}={v}" for k, v in env.items()), SHELL, "-c", command]


async def spawn(
    workspace: Workspace,
    command: str,
    *,
    cwd: str,
    rlimits: list[tuple[int, int]],
    env: dict[str, str],
    merge_stderr: bool,
    confinement: Confinement | None = None,
    server_port: int | None = None,
) -> Child:
    """Start ``/bin/sh -c command`` in ``cwd`` with exactly ``env``, limits and its own group.

    With a ``confinement`` the shell runs inside bubblewrap (see
    :mod:`builder.sandbox.local.confine`); killing the group kills the whole namespace.
    With isolated networking ``pasta`` is attached before the shell starts and
    ``server_port`` (a long-running process's) is forwarded to the host.

    Raises:
        DependencyUnavailable: pasta could not give the namespace its network.
    """
    loop = asyncio.get_running_loop()
    cwd_fd = workspace.open_directory(cwd)
    argv = shell_argv(command, env)
    server = server_port is not None
    pasta = confinement.pasta if confinement is not None else None
    user = confinement.user if confinement is not None else None
    sync = (*os.pipe(), *os.pipe()) if pasta is not None else None  # info r/w, block r/w
    if confinement is not None:
        argv = confinement.wrap(
            argv, cwd=cwd, server=server, sync_fds=(sync[1], sync[2]) if sync else None
        )
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: ExitProtocol(limit=_READ_CHUNK, loop=loop),
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            env=env,
            start_new_session=True,
            pass_fds=(sync[1], sync[2]) if sync else (),
            # Limits must be set in the child, between fork and exec.
            # Limits and (for a root service) the sandbox user are set in the child,
            # between fork and exec: bwrap starts as that user, the namespace is theirs.
            preexec_fn=_child_setup(rlimits, cwd_fd, (user.uid, user.gid) if user else None),
        )
    except BaseException:
        if sync:
            for fd in sync:
                os.close(fd)
        raise
    finally:
        os.close(cwd_fd)
    child = Child(transport, protocol, protocol.stdout, protocol.stderr)
    if child.returncode is None:
        _live_groups.add(child.pid)
    if pasta is not None and sync is not None:
        await _connect(child, pasta, sync, server_port)
    return child


async def _connect(
    child: Child, pasta: str, sync: tuple[int, int, int, int], port: int | None
) -> None:
    """Attach ``pasta`` to the child's namespace, then let the command start."""
    info_r, info_w, block_r, block_w = sync
    os.close(info_w)
    os.close(block_r)  # the number stays that of bwrap's --block-fd in the child
    try:
        pid = await asyncio.to_thread(read_child_pid, info_r)
        if pid is None:
            return  # bwrap failed before making the namespace; its error is the output
        try:
            helper = await attach_network(pasta, pid, block_fd=block_r, forward_port=port)
        except BaseException:
            signal_group(child.pid, signal.SIGKILL)
            await child.wait_exit()
            child.transport.close()
            raise
        child.network = asyncio.create_task(_stop_with(child, helper))
        with contextlib.suppress(OSError):
            os.write(block_w, b"1")
    finally:
        os.close(info_r)
        os.close(block_w)


async def _stop_with(child: Child, helper: subprocess.Popen[bytes]) -> None:
    _live_groups.add(helper.pid)
    try:
        await child.wait_exit()
    finally:
        _live_groups.discard(helper.pid)
        stop_network(helper)


async def pump(stream: asyncio.StreamReader | None, sink: Callable[[bytes], None]) -> None:
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
    confinement: Confinement | None = None,
) -> CommandResult:
    """Run a command in the workspace and wait for it; see :meth:`LocalSandbox.exec`."""
    check_command(command)
    if timeout <= 0:
        raise InvalidInput(f"timeout must be positive, not {timeout!r}")
    started = time.monotonic()
    child = await spawn(
        workspace,
        command,
        cwd=cwd,
        rlimits=limits.rlimits(),
        env=child_env(workspace.root, confinement=confinement),
        merge_stderr=False,
        confinement=confinement,
    )
    out, err = OutputCapture(output_limit), OutputCapture(output_limit)
    pumps = [
        asyncio.create_task(pump(child.stdout, out.feed)),
        asyncio.create_task(pump(child.stderr, err.feed)),
    ]
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            await child.wait_exit()
    except TimeoutError:
        timed_out = True
        await child.terminate()
    finally:
        # exec waits for the command, not for what it left running in the background
        # (which would also keep the pipes open): the rest of the group goes too.
        signal_group(child.pid, signal.SIGKILL)
        await finish(pumps, child)
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


async def finish(readers: list[asyncio.Task[None]], child: Child) -> None:
    """Stop reading soon (a grandchild that left the group may hold a pipe) and close."""
    await asyncio.wait(readers, timeout=1.0)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    if child.network is not None:
        await asyncio.gather(child.network, return_exceptions=True)  # pasta killed
    child.transport.close()
