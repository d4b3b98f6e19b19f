"""The workspace as a tool should change it: the guards every file write passes.

``ctx.files`` (a :class:`WorkspaceFiles`) is how any tool, built-in or plugin, reads
and writes the project's files. Every change holds the lock
``file:{sandbox_id}:{path}`` (writers in any task or process take turns per path),
passes the per-write size limit and the project quota before anything is written,
can be a compare-and-swap against the content the tool read, and is recorded in the
run's effects so the graph saves it in the next version.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from builder.errors import FileTooLarge, InvalidInput, NotFound, QuotaExceeded
from builder.sandbox.paths import join_parts, split_path

if TYPE_CHECKING:
    from builder.sandbox.base import Sandbox
    from builder.tools.context import ToolContext

__all__ = [
    "DiskUsage",
    "FileWrite",
    "WorkspaceFiles",
    "check_write_limits",
    "file_lock_key",
    "normalize_path",
    "sha256_hex",
    "within_limits",
]


def sha256_hex(data: bytes) -> str:
    """The hex sha256 of ``data`` (what manifests and compare-and-swap use)."""
    return hashlib.sha256(data).hexdigest()


def normalize_path(path: str) -> str:
    """The canonical form of a workspace path (``./a//b`` → ``a/b``).

    Raises:
        PathOutsideSandbox: The path is absolute or escapes the workspace.
        InvalidInput: The path is malformed or names the workspace root.
    """
    return join_parts(split_path(path))


def file_lock_key(ctx: ToolContext, path: str) -> str:
    """The lock every writer of ``path`` in this sandbox holds."""
    return f"file:{ctx.sandbox.sandbox_id}:{normalize_path(path)}"


class DiskUsage:
    """A workspace's bytes in regular files, kept as a running total.

    Walking a workspace costs time in proportion to its size, so a run walks it once,
    at its first write, and then adds what each of its writes adds. Whatever changes
    files in ways the total does not see — a command, a deleted directory — calls
    :meth:`forget`, and the next write walks again.
    """

    def __init__(self) -> None:
        self._bytes: int | None = None

    async def current(self, sandbox: Sandbox) -> int:
        """The bytes in the workspace's regular files (walks it when not known)."""
        if self._bytes is None:
            self._bytes = await sandbox.disk_usage()
        return self._bytes

    def set(self, total: int) -> None:
        """The workspace now holds ``total`` bytes."""
        self._bytes = total

    def add(self, delta: int) -> None:
        """The workspace grew (or, negative, shrank) by ``delta`` bytes."""
        if self._bytes is not None:
            self._bytes = max(self._bytes + delta, 0)

    def forget(self) -> None:
        """Files changed in ways not counted: walk again before the next write."""
        self._bytes = None


async def check_write_limits(
    ctx: ToolContext, writes: Mapping[str, bytes], *, replaced: Mapping[str, int]
) -> int:
    """Refuse writes over the per-write limit or the project quota, before any is made.

    Args:
        ctx: The run context (sandbox and limits).
        writes: Path → new content of every file about to be written.
        replaced: Path → size of the content each write replaces (0 for new files).

    Raises:
        FileTooLarge: One content is larger than ``settings.max_write_bytes``.
        QuotaExceeded: The project would grow beyond ``settings.project_quota_bytes``.

    Returns:
        The bytes the workspace will hold once the writes are made.
    """
    limit = ctx.settings.max_write_bytes
    for path, data in writes.items():
        if len(data) > limit:
            raise FileTooLarge(path, len(data), limit)
    usage = await (ctx.disk.current(ctx.sandbox) if ctx.disk else ctx.sandbox.disk_usage())
    total = usage - sum(replaced.values()) + sum(len(data) for data in writes.values())
    quota = ctx.settings.project_quota_bytes
    # A write that does not grow the project is allowed even when it is over quota
    # already (say, after a build), so the agent can still fix and shrink files.
    if total > quota and total > usage:
        raise QuotaExceeded(total, quota, path=next(iter(writes)) if len(writes) == 1 else None)
    return total


@asynccontextmanager
async def within_limits(
    ctx: ToolContext, writes: Mapping[str, bytes], *, replaced: Mapping[str, int]
) -> AsyncIterator[None]:
    """Check the limits (:func:`check_write_limits`), then make the writes in the body.

    The run's running total (``ctx.disk``) takes the new size when the body succeeds,
    and is forgotten (walked again next time) when it fails part-way.
    """
    total = await check_write_limits(ctx, writes, replaced=replaced)
    try:
        yield
    except BaseException:
        if ctx.disk is not None:
            ctx.disk.forget()
        raise
    if ctx.disk is not None:
        ctx.disk.set(total)


@dataclass(frozen=True, slots=True)
class FileWrite:
    """What a write did."""

    path: str
    """The normalised path."""
    sha256: str
    """The hash of the new content (pass it as ``expected_sha256`` to change it again)."""
    size: int
    created: bool
    """True when the file did not exist before."""


class WorkspaceFiles:
    """The run's workspace files, behind the same guards as the built-in tools.

    Args:
        ctx: The run context whose sandbox, limits, locks and effects are used.
    """

    def __init__(self, ctx: ToolContext) -> None:
        self._ctx = ctx

    async def read(self, path: str) -> bytes:
        """A file's content.

        Raises:
            NotFound: No such file.
            PathOutsideSandbox: The path escapes the workspace.
        """
        return await self._ctx.sandbox.read_file(normalize_path(path))

    async def write(
        self, path: str, content: str | bytes, *, expected_sha256: str | None = None
    ) -> FileWrite:
        """Create or replace a file, with the limits, the lock and an optional check.

        Args:
            path: Path relative to the project root.
            content: The new content (text is written as UTF-8).
            expected_sha256: Compare-and-swap: the hash of the content this write
                replaces (the one you read), ``""`` for "must not exist yet", None to
                write whatever is there now.

        Raises:
            FileTooLarge: Over ``BUILDER_MAX_WRITE_BYTES``.
            QuotaExceeded: The project would grow past ``BUILDER_PROJECT_QUOTA_BYTES``.
            ConcurrentModification: The file changed since it was read.
            InvalidInput: The path names a directory.
        """
        ctx = self._ctx
        path = normalize_path(path)
        data = content.encode("utf-8") if isinstance(content, str) else content
        async with ctx.locks.hold(file_lock_key(ctx, path)):
            info = await ctx.sandbox.stat(path)
            if info is not None and info.is_dir:
                raise InvalidInput(f"{path} is a directory")
            async with within_limits(ctx, {path: data}, replaced={path: info.size if info else 0}):
                await ctx.sandbox.write_file(path, data, expected_sha256=expected_sha256)
        digest = sha256_hex(data)
        ctx.effects.file_written(path, digest, data)
        return FileWrite(path=path, sha256=digest, size=len(data), created=info is None)

    async def delete(self, path: str) -> None:
        """Delete a file (under its lock) and record it.

        Raises:
            NotFound: No such file.
            InvalidInput: The path names a directory.
        """
        ctx = self._ctx
        path = normalize_path(path)
        async with ctx.locks.hold(file_lock_key(ctx, path)):
            info = await ctx.sandbox.stat(path)
            if info is None:
                raise NotFound("file", path)
            if info.is_dir:
                raise InvalidInput(f"{path} is a directory; delete its files one by one")
            await ctx.sandbox.delete_file(path)
            if ctx.disk is not None:
                ctx.disk.add(-info.size)
        ctx.effects.file_deleted(path)
