"""The E2B sandbox: the protocol over an E2B cloud sandbox (``e2b.AsyncSandbox``).

The project lives under :data:`E2B_ROOT` inside the sandbox's VM. Paths pass the same
lexical checks as locally (:func:`~builder.sandbox.paths.split_path`) and are joined
under that root; the VM holds nothing but the project, so a symlink inside it can only
reach the VM's own files, never the service's.

Commands run in a session of their own (:mod:`builder.sandbox.e2b.processes`), killed
whole on a timeout or a stop. An E2B sandbox expires on its own ``timeout``: every use
extends it (at most once a minute) to ``sandbox_idle_seconds``, so a sandbox leaked by
a crashed replica dies by itself. Once expired, operations raise
``DependencyUnavailable`` and :meth:`E2BSandbox.health` answers False; the pool then
creates a new sandbox and restores the latest snapshot into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable
from typing import TypeVar

from e2b import AsyncSandbox, FileType

from builder.errors import (
    BuilderError,
    ConcurrentModification,
    DependencyUnavailable,
    InvalidInput,
    LimitExceeded,
    NotFound,
    PathOutsideSandbox,
)
from builder.sandbox.base import CommandResult, FileInfo, ProcessInfo
from builder.sandbox.e2b.errors import api_key, call_sdk
from builder.sandbox.e2b.processes import RemoteProcesses
from builder.sandbox.ignore import GITIGNORE, ignore_rules
from builder.sandbox.paths import SKIPPED_DIRS, join_parts, split_path
from builder.sandbox.slots import DEFAULT_MAX_PROCESSES
from builder.sandbox.workspace import MAX_LIST_ENTRIES
from builder.settings import Settings, get_settings

__all__ = ["E2B_ROOT", "KEEPALIVE_INTERVAL", "E2BSandbox", "check_e2b_access"]

E2B_ROOT = "/home/user/project"
"""Where the project lives inside the sandbox."""
KEEPALIVE_INTERVAL = 60.0
"""Least seconds between two extensions of the sandbox's lifetime."""
_DISK_USAGE = (
    "find . \\( -name node_modules -o -name .git \\) -prune -o -type f -printf '%s\\n' "
    "| awk '{s += $1} END {print s + 0}'"
)
T = TypeVar("T")


async def check_e2b_access(
    settings: Settings, *, timeout: float, sandbox_class: type[AsyncSandbox] = AsyncSandbox
) -> None:
    """Make one authenticated E2B API call (list one sandbox) within ``timeout``.

    Raises:
        ConfigurationError: No API key is configured.
        Exception: What the SDK raises when E2B refuses the key or cannot be reached.
    """
    paginator = sandbox_class.list(limit=1, api_key=api_key(settings), request_timeout=timeout)
    await asyncio.wait_for(paginator.next_items(), timeout)


class E2BSandbox:
    """A :class:`~builder.sandbox.base.Sandbox` backed by an E2B ``AsyncSandbox``.

    Build one with :meth:`create` (a new sandbox from ``settings.e2b_template``) or
    :meth:`connect` (reattach by id, e.g. from another replica).

    Args:
        project_id: The project this sandbox belongs to.
        sdk: The connected E2B sandbox.
        settings: Timeouts and limits; defaults to :func:`~builder.settings.get_settings`.
        root: The project directory inside the sandbox.
        max_processes: Most named long-running processes kept at once.
    """

    def __init__(
        self,
        project_id: str,
        sdk: AsyncSandbox,
        *,
        settings: Settings | None = None,
        root: str = E2B_ROOT,
        max_processes: int = DEFAULT_MAX_PROCESSES,
    ) -> None:
        self._project_id = project_id
        self._sdk = sdk
        self._settings = settings or get_settings()
        self._root = root.rstrip("/")
        self._processes = RemoteProcesses(
            sdk, settings=self._settings, touch=self._touch, max_processes=max_processes
        )
        self._stripes = tuple(asyncio.Lock() for _ in range(16))
        self._extended_at = time.monotonic()

    @classmethod
    async def create(
        cls,
        project_id: str,
        *,
        settings: Settings | None = None,
        sandbox_class: type[AsyncSandbox] = AsyncSandbox,
    ) -> E2BSandbox:
        """Create a sandbox from the configured template, tagged with the project id.

        Raises:
            ConfigurationError: ``BUILDER_E2B_API_KEY`` is not set.
            DependencyUnavailable: E2B refused or could not be reached.
        """
        settings = settings or get_settings()
        sdk = await call_sdk(
            sandbox_class.create(
                template=settings.e2b_template,
                timeout=settings.sandbox_idle_seconds,
                metadata={"project_id": project_id, "created_by": "builder"},
                api_key=api_key(settings),
                request_timeout=settings.timeout_sandbox,
            ),
            settings,
        )
        sandbox = cls(project_id, sdk, settings=settings)
        await sandbox._sdkcall_sdk(sdk.files.make_dir(sandbox._root))
        return sandbox

    @classmethod
    async def connect(
        cls,
        project_id: str,
        sandbox_id: str,
        *,
        settings: Settings | None = None,
        sandbox_class: type[AsyncSandbox] = AsyncSandbox,
    ) -> E2BSandbox:
        """Reattach to a running (or paused) sandbox by its id.

        Raises:
            DependencyUnavailable: The sandbox is gone or E2B is unreachable.
        """
        settings = settings or get_settings()
        sdk = await call_sdk(
            sandbox_class.connect(
                sandbox_id,
                timeout=settings.sandbox_idle_seconds,
                api_key=api_key(settings),
                request_timeout=settings.timeout_sandbox,
            ),
            settings,
        )
        return cls(project_id, sdk, settings=settings)

    def __repr__(self) -> str:
        return f"E2BSandbox({self._project_id!r}, sandbox_id={self.sandbox_id!r})"

    @property
    def sandbox_id(self) -> str:
        """The E2B sandbox id."""
        return str(self._sdk.sandbox_id)

    @property
    def project_id(self) -> str:
        """The project this sandbox belongs to."""
        return self._project_id

    # --- plumbing ----------------------------------------------------------------
    def _abs(self, parts: tuple[str, ...]) -> str:
        return "/".join((self._root, *parts))

    def _rel(self, absolute: str) -> str:
        return absolute.removeprefix(self._root).lstrip("/") or "."

    async def _sdkcall_sdk(self, work: Awaitable[T], *, path: str | None = None) -> T:
        await self._touch()
        return await call_sdk(work, self._settings, path=path)

    async def _touch(self) -> None:
        if time.monotonic() - self._extended_at < KEEPALIVE_INTERVAL:
            return
        self._extended_at = time.monotonic()
        await self.keep_alive()

    async def keep_alive(self, seconds: int | None = None) -> None:
        """Extend the sandbox's lifetime (default ``sandbox_idle_seconds`` from now)."""
        lifetime = seconds or self._settings.sandbox_idle_seconds
        await call_sdk(self._sdk.set_timeout(lifetime), self._settings)

    def _lock(self, rel: str) -> asyncio.Lock:
        return self._stripes[hash(rel) % len(self._stripes)]

    # --- files -------------------------------------------------------------------
    async def read_file(self, path: str) -> bytes:
        """The bytes of a file. Raises ``NotFound`` when it does not exist."""
        parts = split_path(path)
        data = await self._sdkcall_sdk(
            self._sdk.files.read(self._abs(parts), format="bytes"), path=join_parts(parts)
        )
        return bytes(data)

    async def write_file(
        self, path: str, data: bytes, *, expected_sha256: str | None = None
    ) -> None:
        """Create or replace a file; see :meth:`Sandbox.write_file`.

        The compare-and-swap is serialized against other writers through this
        object; a process inside the sandbox writing between the check and the write
        is not detected.
        """
        parts = split_path(path)
        rel = join_parts(parts)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput(f"file content must be bytes, not {type(data).__name__}")
        async with self._lock(rel):
            if expected_sha256 is not None:
                try:
                    current: bytes | None = await self.read_file(rel)
                except NotFound:
                    current = None
                if current is None or expected_sha256 == "":
                    matches = current is None and expected_sha256 == ""
                else:
                    matches = hashlib.sha256(current).hexdigest() == expected_sha256
                if not matches:
                    raise ConcurrentModification(rel)
            await self._sdkcall_sdk(self._sdk.files.write(self._abs(parts), bytes(data)), path=rel)

    async def delete_file(self, path: str) -> None:
        """Delete a file or a directory tree. Raises ``NotFound`` when missing."""
        parts = split_path(path)
        rel = join_parts(parts)
        if not await self._sdkcall_sdk(self._sdk.files.exists(self._abs(parts)), path=rel):
            raise NotFound("file", rel)
        await self._sdkcall_sdk(self._sdk.files.remove(self._abs(parts)), path=rel)

    async def rename_file(self, path: str, new_path: str) -> None:
        """Move a file or directory; the target must not exist."""
        src, dst = split_path(path), split_path(new_path)
        src_rel, dst_rel = join_parts(src), join_parts(dst)
        if not await self._sdkcall_sdk(self._sdk.files.exists(self._abs(src)), path=src_rel):
            raise NotFound("file", src_rel)
        if await self._sdkcall_sdk(self._sdk.files.exists(self._abs(dst)), path=dst_rel):
            raise InvalidInput(f"cannot move {src_rel} to {dst_rel}: the target exists")
        if dst[: len(src)] == src:
            raise InvalidInput(f"cannot move {src_rel} into itself")
        if len(dst) > 1:
            await self._sdkcall_sdk(self._sdk.files.make_dir(self._abs(dst[:-1])), path=dst_rel)
        await self._sdkcall_sdk(
            self._sdk.files.rename(self._abs(src), self._abs(dst)), path=src_rel
        )

    async def stat(self, path: str) -> FileInfo | None:
        """Facts about one path, or None when it does not exist."""
        parts = split_path(path, allow_root=True)
        try:
            entry = await self._sdkcall_sdk(
                self._sdk.files.get_info(self._abs(parts)), path=join_parts(parts)
            )
        except NotFound:
            return None
        return _info(join_parts(parts), entry.type, entry.size, entry.modified_time.timestamp())

    async def list_files(
        self, path: str = ".", *, recursive: bool = False, include_ignored: bool = False
    ) -> list[FileInfo]:
        """Entries under a directory, sorted by path; see :meth:`Sandbox.list_files`."""
        parts = split_path(path, allow_root=True)
        rules = None
        if not include_ignored:
            try:
                rules = ignore_rules(await self.read_file(GITIGNORE))
            except (NotFound, InvalidInput, PathOutsideSandbox):
                rules = None
        pending = [self._abs(parts)]
        found: list[FileInfo] = []
        while pending:
            directory = pending.pop()
            entries = await self._sdkcall_sdk(
                self._sdk.files.list(directory, depth=1), path=self._rel(directory)
            )
            for entry in entries:
                if entry.name in SKIPPED_DIRS:
                    continue
                if len(found) >= MAX_LIST_ENTRIES:
                    raise LimitExceeded(
                        f"more than {MAX_LIST_ENTRIES} entries under {join_parts(parts)}; "
                        "list a subdirectory or without recursion",
                        limit=MAX_LIST_ENTRIES,
                        size=len(found) + 1,
                    )
                rel = self._rel(entry.path)
                if rules is not None and rules.ignored(rel, is_dir=entry.type == FileType.DIR):
                    continue
                found.append(_info(rel, entry.type, entry.size, entry.modified_time.timestamp()))
                if recursive and entry.type == FileType.DIR:
                    pending.append(entry.path)
        found.sort(key=lambda info: info.path)
        return found

    async def disk_usage(self) -> int:
        """Bytes in regular files, leaving out node_modules and .git."""
        result = await self.exec(_DISK_USAGE, output_limit=1024)
        if not result.ok:
            raise DependencyUnavailable("e2b", f"disk usage failed: {result.stderr.strip()}")
        return int(result.stdout.strip() or 0)

    # --- commands ----------------------------------------------------------------
    async def exec(
        self,
        command: str,
        *,
        cwd: str = ".",
        timeout: float | None = None,
        output_limit: int | None = None,
    ) -> CommandResult:
        """Run a command in the project directory and wait for it.

        On timeout the command's whole session is killed and the result has
        ``timed_out=True`` and ``exit_code=-1``; each of stdout and stderr keeps at
        most ``output_limit`` bytes (head and tail).
        """
        return await self._processes.exec(
            command,
            cwd=self._abs(split_path(cwd, allow_root=True)),
            timeout=timeout,
            output_limit=output_limit,
        )

    async def start_process(
        self, name: str, command: str, *, cwd: str = ".", port: int | None = None
    ) -> ProcessInfo:
        """Start a long-running process in the background (replacing one of that name).

        Without ``port`` the first port from 3000 not used by another running process
        of this sandbox is chosen.
        """
        absolute = self._abs(split_path(cwd, allow_root=True))
        return await self._processes.start(name, command, cwd=absolute, port=port)

    async def stop_process(self, name: str) -> bool:
        """Kill a long-running process's session; False when it was not running."""
        return await self._processes.stop(name)

    async def process_info(self, name: str, *, log_lines: int = 50) -> ProcessInfo | None:
        """The state and recent output of a long-running process, or None."""
        return self._processes.info(name, log_lines=log_lines)

    async def preview_url(self, port: int) -> str:
        """The public ``https://`` URL of ``port`` inside the sandbox."""
        return self._processes.preview_url(port)

    async def health(self) -> bool:
        """Whether the sandbox is still running (False once it expired)."""
        try:
            return bool(await call_sdk(self._sdk.is_running(), self._settings))
        except BuilderError:
            return False

    async def close(self) -> None:
        """Stop every process and kill the sandbox (its files go with it)."""
        await self._processes.stop_all()
        with contextlib.suppress(DependencyUnavailable):  # already expired or killed
            await call_sdk(self._sdk.kill(), self._settings)


def _info(rel: str, kind: FileType | None, size: int, modified: float) -> FileInfo:
    is_dir = kind == FileType.DIR
    return FileInfo(path=rel, size=0 if is_dir else size, is_dir=is_dir, modified=modified)
