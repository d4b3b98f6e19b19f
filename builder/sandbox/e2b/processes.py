"""Commands and long-running processes inside an E2B sandbox.

E2B starts every command as ``/bin/bash -l -c <cmd>``. Ours is wrapped so it runs
under ``setsid`` in a session of its own, as a child of a small shell that, once the
command exits, terminates whatever it left in the background (a finished command
holds no pipes and no ports; servers belong in :meth:`RemoteProcesses.start`). On a
timeout or a stop, the whole session is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from e2b import AsyncSandbox, CommandExitException, TimeoutException
from e2b.sandbox_async.commands.command_handle import AsyncCommandHandle

from builder.errors import BuilderError, InvalidInput
from builder.sandbox.base import CommandResult, ProcessInfo
from builder.sandbox.e2b.errors import GONE, call_sdk, map_sdk_error
from builder.sandbox.output import DEFAULT_LOG_LINES, LogRing, OutputCapture
from builder.sandbox.paths import check_port, check_process_name
from builder.sandbox.slots import DEFAULT_MAX_PROCESSES, ProcessSlots
from builder.settings import Settings

__all__ = ["FIRST_SERVER_PORT", "RemoteProcesses", "session_kill_script", "wrap_command"]

FIRST_SERVER_PORT = 3000
"""Where port choice starts when a process is started without one."""
_STREAM_MARGIN = 10.0
_RUNNER = '/bin/sh -c "$1" & pid=$!; trap "" TERM; wait $pid; rc=$?; kill -TERM 0; exit $rc'

Handle = AsyncCommandHandle[Any]


def wrap_command(command: str) -> str:
    """``command`` as run in the sandbox: in its own session, leftovers terminated."""
    return f"exec setsid --wait /bin/sh -c {shlex.quote(_RUNNER)} sh {shlex.quote(command)}"


def session_kill_script(pid: int) -> str:
    """A shell line that kills the wrapper with this pid and the session it started."""
    # setsid forks when it already leads a process group; the session is then led by
    # its only child. Note that child first, kill the wrapper (so the command always
    # ends by a signal, not by setsid reporting its child's death), then both groups.
    children = f"$(cat /proc/{pid}/task/{pid}/children 2>/dev/null || pgrep -P {pid})"
    return (
        f"leaders={children}; kill -KILL {pid} 2>/dev/null; "
        f"for c in $leaders {pid}; do kill -KILL -- -$c 2>/dev/null; done; true"
    )


async def exit_code(handle: Handle) -> int:
    """Wait for a command and return its exit status (E2B reports a signal as -1)."""
    try:
        result = await handle.wait()
    except CommandExitException as exc:
        return int(exc.exit_code)
    return int(result.exit_code)


@dataclass(slots=True)
class _Remote:
    name: str
    command: str
    port: int
    started_at: float
    handle: Handle
    ring: LogRing
    watcher: asyncio.Task[int]

    @property
    def finished(self) -> bool:
        return self.watcher.done()

    def info(self, preview_url: str, log_lines: int) -> ProcessInfo:
        ended = self.watcher.done() and not self.watcher.cancelled()
        return ProcessInfo(
            name=self.name,
            command=self.command,
            running=not self.watcher.done(),
            exit_code=self.watcher.result() if ended else None,
            port=self.port,
            preview_url=preview_url,
            started_at=self.started_at,
            logs=self.ring.tail(log_lines),
        )


class RemoteProcesses:
    """Commands and named long-running processes of one E2B sandbox.

    Args:
        sdk: The connected E2B sandbox.
        settings: Timeouts and the output cap.
        touch: Awaited before each use (keeps the sandbox alive).
        max_processes: Most named long-running processes kept at once.
    """

    def __init__(
        self,
        sdk: AsyncSandbox,
        *,
        settings: Settings,
        touch: Callable[[], Awaitable[None]],
        max_processes: int = DEFAULT_MAX_PROCESSES,
    ) -> None:
        self._sdk = sdk
        self._settings = settings
        self._touch = touch
        self._slots: ProcessSlots[_Remote] = ProcessSlots(max_processes)

    async def exec(
        self, command: str, *, cwd: str, timeout: float | None, output_limit: int | None
    ) -> CommandResult:
        """Run ``command`` with ``cwd`` (absolute) and wait; see :meth:`Sandbox.exec`."""
        if not isinstance(command, str) or not command.strip() or "\x00" in command:
            raise InvalidInput("a command must be a non-empty string without NUL bytes")
        seconds = self._settings.timeout_sandbox if timeout is None else timeout
        limit = self._settings.sandbox_output_bytes if output_limit is None else output_limit
        out, err = OutputCapture(limit), OutputCapture(limit)
        started = time.monotonic()
        await self._touch()
        handle = await call_sdk(
            self._sdk.commands.run(
                wrap_command(command),
                background=True,
                cwd=cwd,
                on_stdout=lambda text: out.feed(text.encode()),
                on_stderr=lambda text: err.feed(text.encode()),
                timeout=seconds + _STREAM_MARGIN,
                retain_output=False,
            ),
            self._settings,
        )
        timed_out = False
        code: int | None = None
        try:
            code = await asyncio.wait_for(exit_code(handle), seconds)
        except TimeoutError:
            timed_out = True
        except GONE as exc:
            raise map_sdk_error(exc, self._settings) from exc
        except TimeoutException:
            timed_out = True  # the SDK's stream deadline, a backstop to ours
        except Exception as exc:
            raise map_sdk_error(exc, self._settings) from exc
        finally:
            if code is None:
                await self._kill(handle)
        return CommandResult(
            command=command,
            exit_code=-1 if code is None else code,
            stdout=out.text(),
            stderr=err.text(),
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
            truncated_bytes=out.truncated_bytes + err.truncated_bytes,
        )

    async def _kill(self, handle: Handle) -> None:
        """Kill the command's session, then the command; a gone sandbox is fine."""
        with contextlib.suppress(BuilderError, CommandExitException):
            await call_sdk(
                self._sdk.commands.run(session_kill_script(handle.pid), timeout=_STREAM_MARGIN),
                self._settings,
            )
            await call_sdk(handle.kill(), self._settings)

    async def start(self, name: str, command: str, *, cwd: str, port: int | None) -> ProcessInfo:
        """Start ``command`` in the background as ``name``; see :meth:`Sandbox.start_process`.

        Without ``port`` the first port from 3000 that no other running process of
        this sandbox uses is chosen.
        """
        check_process_name(name)
        if not isinstance(command, str) or not command.strip():
            raise InvalidInput("a command must be a non-empty string")
        check_port(port)
        if self._slots.get(name) is not None:
            await self.stop(name)
            self._slots.pop(name)
        self._slots.make_room()
        used = {p.port for p in self._slots.values() if not p.finished}
        chosen = port or next(p for p in range(FIRST_SERVER_PORT, 65536) if p not in used)
        expanded = command.replace("{port}", str(chosen))
        ring = LogRing(DEFAULT_LOG_LINES)
        await self._touch()
        handle = await call_sdk(
            self._sdk.commands.run(
                wrap_command(expanded),
                background=True,
                envs={"PORT": str(chosen)},
                cwd=cwd,
                on_stdout=ring.feed,
                on_stderr=ring.feed,
                timeout=0,  # no limit: a server runs until stopped
                retain_output=False,
            ),
            self._settings,
        )
        remote = _Remote(
            name=name,
            command=expanded,
            port=chosen,
            started_at=time.time(),
            handle=handle,
            ring=ring,
            watcher=asyncio.create_task(exit_code(handle)),
        )
        self._slots.add(name, remote)
        return remote.info(self.preview_url(chosen), DEFAULT_LOG_LINES)

    async def stop(self, name: str) -> bool:
        """Kill a process's session; False when it was not running."""
        remote = self._slots.get(name)
        if remote is None or remote.finished:
            return False
        await self._kill(remote.handle)
        await asyncio.wait([remote.watcher], timeout=self._settings.timeout_sandbox)
        remote.watcher.cancel()
        await asyncio.gather(remote.watcher, return_exceptions=True)
        return True

    async def stop_all(self) -> None:
        """Stop every process (their entries and logs stay)."""
        for remote in self._slots.values():
            await self.stop(remote.name)

    def info(self, name: str, *, log_lines: int = 50) -> ProcessInfo | None:
        """The state and recent output of ``name``, or None."""
        remote = self._slots.get(name)
        return None if remote is None else remote.info(self.preview_url(remote.port), log_lines)

    def preview_url(self, port: int) -> str:
        """The public ``https://`` URL of ``port`` inside the sandbox."""
        check_port(port)
        return f"https://{self._sdk.get_host(port)}/"
