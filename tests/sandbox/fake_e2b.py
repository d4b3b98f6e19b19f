"""An E2B stand-in built on the SDK's own classes, backed by a directory and real processes.

``create_autospec`` copies the signatures of ``AsyncSandbox``, ``Filesystem``,
``Commands`` and ``AsyncCommandHandle``, so a call E2BSandbox makes with a wrong
argument fails here as it would against E2B. Methods the SDK wraps in its
``class_method_variant`` descriptor (``connect``, ``kill``, ``set_timeout``) lose
their signature under autospec; they are checked against the wrapped function's
signature explicitly. Keyword options must be keys of ``e2b.ApiParams``.

The sandbox's VM is a directory: ``/home/user/project/a.txt`` lives at
``<vm>/home/user/project/a.txt``. Commands run for real as
``/bin/bash -l -c <cmd>`` in a new session, like envd starts them.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import inspect
import os
import shutil
import signal
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, NonCallableMagicMock, create_autospec

from e2b import (
    ApiParams,
    AsyncSandbox,
    CommandExitException,
    EntryInfo,
    FileNotFoundException,
    FileType,
    InvalidArgumentException,
    SandboxNotRunningException,
    TimeoutException,
    WriteInfo,
)
from e2b.sandbox.commands.command_handle import CommandResult as E2BCommandResult
from e2b.sandbox_async.commands.command import Commands
from e2b.sandbox_async.commands.command_handle import AsyncCommandHandle
from e2b.sandbox_async.filesystem.filesystem import Filesystem

_API_PARAMS = set(ApiParams.__annotations__)
_CREATE_PARAMS = set(inspect.signature(AsyncSandbox.create).parameters) - {"opts"}


def _checked(
    function: Callable[..., Any], impl: Callable[..., Any], *, drop_self: bool
) -> AsyncMock:
    """An AsyncMock that refuses calls not matching ``function``'s signature."""
    signature = inspect.signature(function)
    if drop_self:
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])

    async def side_effect(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        _check_api_params(bound.arguments.get("opts", {}))
        result = impl(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    return AsyncMock(side_effect=side_effect)


def _check_api_params(opts: dict[str, Any]) -> None:
    unknown = set(opts) - _API_PARAMS
    if unknown:
        raise TypeError(f"not an e2b ApiParams key: {sorted(unknown)}")


@dataclass
class FakeVM:
    """One fake sandbox: its directory, liveness and what it was asked."""

    sandbox_id: str
    root: Path
    metadata: dict[str, str]
    template: str
    alive: bool = True
    timeout: int | None = None
    paths: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    tasks: list[asyncio.Task[int]] = field(default_factory=list)

    def local(self, path: str) -> Path:
        assert path.startswith("/"), path
        self.paths.append(path)
        return self.root / path.lstrip("/")

    def check_alive(self) -> None:
        if not self.alive:
            raise SandboxNotRunningException(f"sandbox {self.sandbox_id} was not found")


class FakeE2B:
    """Fake E2B service: ``sandbox_class`` stands in for ``e2b.AsyncSandbox``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.vms: dict[str, FakeVM] = {}
        self.sandbox_class = create_autospec(AsyncSandbox)
        self.sandbox_class.create.side_effect = self._create
        self.sandbox_class.connect = _checked(
            AsyncSandbox._cls_connect_sandbox, self._connect, drop_self=False
        )
        self.create_calls: list[dict[str, Any]] = []

    async def _create(self, template: str | None = None, **kwargs: Any) -> NonCallableMagicMock:
        _check_api_params({k: v for k, v in kwargs.items() if k not in _CREATE_PARAMS})
        self.create_calls.append({"template": template, **kwargs})
        sandbox_id = f"sbx{len(self.vms) + 1}"
        vm = FakeVM(
            sandbox_id=sandbox_id,
            root=self.base / sandbox_id,
            metadata=dict(kwargs.get("metadata") or {}),
            template=template or "base",
            timeout=kwargs.get("timeout"),
        )
        (vm.root / "home" / "user").mkdir(parents=True)
        self.vms[sandbox_id] = vm
        return self.instance(vm)

    async def shutdown(self) -> None:
        """Kill every process the fake started and wait until each is reaped."""
        tasks = []
        for vm in self.vms.values():
            for pid in vm.pids:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            tasks.extend(vm.tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    async def _connect(self, sandbox_id: str, timeout: int | None = None, **kwargs: Any) -> Any:
        vm = self.vms.get(sandbox_id)
        if vm is None or not vm.alive:
            raise SandboxNotRunningException(f"sandbox {sandbox_id} was not found")
        return self.instance(vm)

    def instance(self, vm: FakeVM) -> NonCallableMagicMock:
        sdk = create_autospec(AsyncSandbox, instance=True)
        sdk.sandbox_id = vm.sandbox_id
        sdk.files = _filesystem(vm)
        sdk.commands = _commands(vm)
        sdk.get_host.side_effect = lambda port: f"{port}-{vm.sandbox_id}.e2b.app"

        async def is_running(request_timeout: float | None = None) -> bool:
            return vm.alive

        async def set_timeout(timeout: int, **opts: Any) -> None:
            vm.check_alive()
            vm.timeout = timeout

        async def kill(**opts: Any) -> bool:
            was_alive, vm.alive = vm.alive, False
            for pid in vm.pids:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            return was_alive

        sdk.is_running.side_effect = is_running
        sdk.set_timeout = _checked(_raw(AsyncSandbox, "set_timeout"), set_timeout, drop_self=True)
        sdk.kill = _checked(_raw(AsyncSandbox, "kill"), kill, drop_self=True)
        return sdk


def _raw(cls: type, name: str) -> Callable[..., Any]:
    method: Callable[..., Any] = cls.__dict__[name].method
    return method


def _entry(vm: FakeVM, path: str, local: Path) -> EntryInfo:
    st = local.lstat()
    kind = (
        FileType.SYMLINK
        if stat.S_ISLNK(st.st_mode)
        else FileType.DIR
        if stat.S_ISDIR(st.st_mode)
        else FileType.FILE
    )
    return EntryInfo(
        name=local.name,
        type=kind,
        path=path,
        size=st.st_size,
        mode=st.st_mode,
        permissions=stat.filemode(st.st_mode),
        owner="user",
        group="user",
        modified_time=datetime.fromtimestamp(st.st_mtime, tz=UTC),
        symlink_target=os.readlink(local) if kind == FileType.SYMLINK else None,
    )


def _filesystem(vm: FakeVM) -> NonCallableMagicMock:
    files = create_autospec(Filesystem, instance=True)

    def existing(path: str) -> Path:
        vm.check_alive()
        local = vm.local(path)
        if not local.exists() and not local.is_symlink():
            raise FileNotFoundException(f"path '{path}' does not exist")
        return local

    async def read(path: str, format: str = "text", **_: Any) -> Any:
        local = existing(path)
        if local.is_dir():
            raise InvalidArgumentException(f"path '{path}' is a directory")
        data = local.read_bytes()
        return bytearray(data) if format == "bytes" else data.decode()

    async def write(path: str, data: Any, **_: Any) -> WriteInfo:
        vm.check_alive()
        local = vm.local(path)
        if local.is_dir():
            raise InvalidArgumentException(f"path '{path}' is a directory")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data if isinstance(data, bytes) else str(data).encode())
        return WriteInfo(name=local.name, type=FileType.FILE, path=path)

    async def list_(path: str, depth: int | None = 1, **_: Any) -> list[EntryInfo]:
        local = existing(path)
        assert depth == 1, "E2BSandbox walks one level at a time"
        if not local.is_dir():
            raise InvalidArgumentException(f"path '{path}' is not a directory")
        return [_entry(vm, f"{path.rstrip('/')}/{c.name}", c) for c in sorted(local.iterdir())]

    async def exists(path: str, **_: Any) -> bool:
        vm.check_alive()
        local = vm.local(path)
        return local.exists() or local.is_symlink()

    async def get_info(path: str, **_: Any) -> EntryInfo:
        return _entry(vm, path, existing(path))

    async def remove(path: str, **_: Any) -> None:
        local = existing(path)
        if local.is_dir() and not local.is_symlink():
            shutil.rmtree(local)
        else:
            local.unlink()

    async def rename(old_path: str, new_path: str, **_: Any) -> EntryInfo:
        local = existing(old_path)
        target = vm.local(new_path)
        local.rename(target)
        return _entry(vm, new_path, target)

    async def make_dir(path: str, **_: Any) -> bool:
        vm.check_alive()
        local = vm.local(path)
        if local.is_dir():
            return False
        local.mkdir(parents=True)
        return True

    for name, impl in [
        ("read", read),
        ("write", write),
        ("list", list_),
        ("exists", exists),
        ("get_info", get_info),
        ("remove", remove),
        ("rename", rename),
        ("make_dir", make_dir),
    ]:
        getattr(files, name).side_effect = impl
    return files


def _commands(vm: FakeVM) -> NonCallableMagicMock:
    commands = create_autospec(Commands, instance=True)

    async def run(
        cmd: str,
        background: bool | None = None,
        envs: dict[str, str] | None = None,
        user: str | None = None,
        cwd: str | None = None,
        on_stdout: Callable[[str], Any] | None = None,
        on_stderr: Callable[[str], Any] | None = None,
        stdin: bool | None = None,
        timeout: float | None = 60,
        request_timeout: float | None = None,
        *,
        retain_output: bool = True,
    ) -> Any:
        vm.check_alive()
        vm.commands.append(cmd)
        workdir = vm.local(cwd) if cwd else vm.root / "home" / "user"
        if not workdir.is_dir():
            raise InvalidArgumentException(f"cwd '{cwd}' does not exist")
        env = {"PATH": os.environ["PATH"], "HOME": str(vm.root / "home" / "user"), **(envs or {})}
        proc = await asyncio.create_subprocess_exec(
            "/bin/bash",
            "-l",
            "-c",
            cmd,
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        vm.pids.append(proc.pid)
        chunks: dict[str, list[str]] = {"stdout": [], "stderr": []}

        async def pump(stream: asyncio.StreamReader | None, key: str, cb: Any) -> None:
            assert stream is not None
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            while data := await stream.read(4096):
                text = decoder.decode(data)
                if retain_output:
                    chunks[key].append(text)
                if cb is not None and text:
                    cb(text)

        async def finish() -> int:
            await asyncio.gather(
                pump(proc.stdout, "stdout", on_stdout), pump(proc.stderr, "stderr", on_stderr)
            )
            code = await proc.wait()
            return -1 if code < 0 else code  # envd reports a signal death as -1

        done = asyncio.create_task(finish())
        vm.tasks.append(done)
        handle = create_autospec(AsyncCommandHandle, instance=True)
        handle.pid = proc.pid

        async def wait() -> E2BCommandResult[Any]:
            try:
                code = await asyncio.wait_for(asyncio.shield(done), timeout or None)
            except TimeoutError:
                raise TimeoutException("context deadline exceeded") from None
            out = "".join(chunks["stdout"]) if retain_output else None
            err = "".join(chunks["stderr"]) if retain_output else None
            if code != 0:
                raise CommandExitException(stdout=out, stderr=err, exit_code=code, error=None)
            return E2BCommandResult(stdout=out, stderr=err, exit_code=0, error=None)

        async def kill() -> bool:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                return False
            return True

        handle.wait.side_effect = wait
        handle.kill.side_effect = kill
        return handle if background else await wait()

    commands.run.side_effect = run
    return commands
