"""File tools: write, read, batch write, delete and rename — and the checks every write passes.

Every tool that changes a file holds the lock ``file:{sandbox_id}:{path}`` while it
does, so writers in any task or process take turns per path. Before anything is
written, the per-write size limit and the project quota are checked; a refused write
changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Annotated

from pydantic import BaseModel, Field

from builder.errors import FileTooLarge, InvalidInput, NotFound, QuotaExceeded
from builder.log import get_logger
from builder.sandbox.paths import join_parts, split_path
from builder.tools.context import ToolContext

__all__ = [
    "MAX_BATCH_FILES",
    "FileContent",
    "batch_write_files",
    "check_write_limits",
    "delete_file",
    "file_lock_key",
    "normalize_path",
    "read_file",
    "rename_file",
    "sha256_hex",
    "write_file",
]

log = get_logger(__name__)

MAX_BATCH_FILES = 200
"""Most files one ``batch_write_files`` call may write."""
MAX_LINE_CHARS = 2000
"""``read_file`` cuts longer lines (minified code) so one line cannot fill the result."""


class FileContent(BaseModel):
    """One file of a batch write."""

    path: str = Field(description="Path relative to the project root.")
    content: str = Field(description="The complete new content of the file.")


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


async def check_write_limits(
    ctx: ToolContext, writes: Mapping[str, bytes], *, replaced: Mapping[str, int]
) -> None:
    """Refuse writes over the per-write limit or the project quota, before any is made.

    Args:
        ctx: The run context (sandbox and limits).
        writes: Path → new content of every file about to be written.
        replaced: Path → size of the content each write replaces (0 for new files).

    Raises:
        FileTooLarge: One content is larger than ``settings.max_write_bytes``.
        QuotaExceeded: The project would grow beyond ``settings.project_quota_bytes``.
    """
    limit = ctx.settings.max_write_bytes
    for path, data in writes.items():
        if len(data) > limit:
            raise FileTooLarge(path, len(data), limit)
    usage = await ctx.sandbox.disk_usage()
    total = usage - sum(replaced.values()) + sum(len(data) for data in writes.values())
    quota = ctx.settings.project_quota_bytes
    # A write that does not grow the project is allowed even when it is over quota
    # already (say, after a build), so the agent can still fix and shrink files.
    if total > quota and total > usage:
        raise QuotaExceeded(total, quota, path=next(iter(writes)) if len(writes) == 1 else None)


def _describe(data: bytes) -> str:
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return f"{len(data):,} bytes, {lines:,} line{'s' if lines != 1 else ''}"


async def write_file(path: str, content: str, *, ctx: ToolContext) -> str:
    """Create or overwrite a file with the given content.

    Args:
        path: Path relative to the project root, e.g. `src/index.html`.
        content: The complete new content of the file.
    """
    path = normalize_path(path)
    data = content.encode("utf-8")
    async with ctx.locks.hold(file_lock_key(ctx, path)):
        info = await ctx.sandbox.stat(path)
        if info is not None and info.is_dir:
            raise InvalidInput(f"{path} is a directory")
        await check_write_limits(ctx, {path: data}, replaced={path: info.size if info else 0})
        await ctx.sandbox.write_file(path, data)
    ctx.effects.file_written(path, sha256_hex(data))
    return f"{'Updated' if info else 'Created'} {path} ({_describe(data)})."


async def batch_write_files(files: list[FileContent], *, ctx: ToolContext) -> str:
    """Write several files at once: all of them are written, or none is.

    Args:
        files: The files, each with its path and complete new content.
    """
    if not files:
        raise InvalidInput("files is empty; give at least one {path, content}")
    if len(files) > MAX_BATCH_FILES:
        raise InvalidInput(f"{len(files)} files in one batch; the limit is {MAX_BATCH_FILES}")
    writes: dict[str, bytes] = {}
    for item in files:
        path = normalize_path(item.path)
        if path in writes:
            raise InvalidInput(f"{path} appears twice in the batch")
        writes[path] = item.content.encode("utf-8")
    async with ctx.locks.hold_many([file_lock_key(ctx, path) for path in writes]):
        previous = {path: await _read_or_none(ctx, path) for path in writes}
        replaced = {path: len(old or b"") for path, old in previous.items()}
        await check_write_limits(ctx, writes, replaced=replaced)
        await _write_all(ctx, writes, previous)
    for path, data in writes.items():
        ctx.effects.file_written(path, sha256_hex(data))
    listing = "\n".join(
        f"- {path} ({'updated' if previous[path] is not None else 'created'}, {_describe(data)})"
        for path, data in writes.items()
    )
    total = sum(len(data) for data in writes.values())
    return f"Wrote {len(writes)} files ({total:,} bytes):\n{listing}"


async def _read_or_none(ctx: ToolContext, path: str) -> bytes | None:
    try:
        return await ctx.sandbox.read_file(path)
    except NotFound:
        return None


async def _write_all(
    ctx: ToolContext, writes: Mapping[str, bytes], previous: Mapping[str, bytes | None]
) -> None:
    written: list[str] = []
    try:
        for path, data in writes.items():
            old = previous[path]
            await ctx.sandbox.write_file(
                path, data, expected_sha256=sha256_hex(old) if old is not None else ""
            )
            written.append(path)
    except BaseException:
        await _restore(ctx, written, previous)
        raise


async def _restore(
    ctx: ToolContext, written: Sequence[str], previous: Mapping[str, bytes | None]
) -> None:
    for path in reversed(written):
        old = previous[path]
        try:
            if old is None:
                await ctx.sandbox.delete_file(path)
            else:
                await ctx.sandbox.write_file(path, old)
        except Exception:
            log.exception("batch_write.restore_failed", path=path)


async def read_file(
    path: str,
    offset: Annotated[int, Field(ge=1)] = 1,
    limit: Annotated[int, Field(ge=1, le=2000)] = 400,
    *,
    ctx: ToolContext,
) -> str:
    """Read a text file, numbered line by line, a window of lines at a time.

    Args:
        path: Path relative to the project root.
        offset: First line to show (1 = the first line of the file).
        limit: Most lines to show.
    """
    path = normalize_path(path)
    data = await ctx.sandbox.read_file(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"{path} is a binary file ({len(data):,} bytes); it cannot be shown as text."
    lines = text.splitlines()
    if not lines:
        return f"{path} is empty."
    if offset > len(lines):
        raise InvalidInput(f"offset {offset} is past the end of {path} ({len(lines)} lines)")
    end = min(offset - 1 + limit, len(lines))
    body = "\n".join(
        f"{number:>6}\t{_cut_line(lines[number - 1])}" for number in range(offset, end + 1)
    )
    more = f"; read on with offset={end + 1}" if end < len(lines) else ""
    return f"{path}: lines {offset}-{end} of {len(lines)}{more}\n{body}"


def _cut_line(line: str) -> str:
    if len(line) <= MAX_LINE_CHARS:
        return line
    return f"{line[:MAX_LINE_CHARS]}… [{len(line) - MAX_LINE_CHARS:,} more characters]"


async def delete_file(path: str, *, ctx: ToolContext) -> str:
    """Delete a file or a directory with everything in it.

    Args:
        path: Path relative to the project root.
    """
    path = normalize_path(path)
    async with ctx.locks.hold(file_lock_key(ctx, path)):
        info = await ctx.sandbox.stat(path)
        if info is None:
            raise NotFound("file", path)
        removed = await _files_under(ctx, path, is_dir=info.is_dir)
        await ctx.sandbox.delete_file(path)
    for gone in removed:
        ctx.effects.file_deleted(gone)
    if info.is_dir:
        return f"Deleted directory {path} ({len(removed)} files)."
    return f"Deleted {path}."


async def rename_file(path: str, new_path: str, *, ctx: ToolContext) -> str:
    """Rename or move a file or directory; the new path must not exist yet.

    Args:
        path: Current path relative to the project root.
        new_path: New path relative to the project root.
    """
    path, new_path = normalize_path(path), normalize_path(new_path)
    keys = [file_lock_key(ctx, path), file_lock_key(ctx, new_path)]
    async with ctx.locks.hold_many(keys):
        info = await ctx.sandbox.stat(path)
        if info is None:
            raise NotFound("file", path)
        moved = await _files_under(ctx, path, is_dir=info.is_dir)
        await ctx.sandbox.rename_file(path, new_path)
        for old in moved:
            target = new_path + old[len(path) :]
            ctx.effects.file_deleted(old)
            ctx.effects.file_written(target, sha256_hex(await ctx.sandbox.read_file(target)))
    what = f"directory ({len(moved)} files)" if info.is_dir else "file"
    return f"Renamed {what} {path} → {new_path}."


async def _files_under(ctx: ToolContext, path: str, *, is_dir: bool) -> list[str]:
    if not is_dir:
        return [path]
    entries = await ctx.sandbox.list_files(path, recursive=True)
    return [entry.path for entry in entries if entry.is_file]
