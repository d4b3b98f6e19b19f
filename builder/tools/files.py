"""File tools: write, read, batch write, delete and rename — and the checks every write passes.

Every tool that changes a file holds the lock ``file:{sandbox_id}:{path}`` while it
does, so writers in any task or process take turns per path. Before anything is
written, the per-write size limit and the project quota are checked; a refused write
changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated

from pydantic import BaseModel, Field

from builder.errors import InvalidInput, NotFound
from builder.log import get_logger
from builder.sandbox.base import FileInfo
from builder.tools.context import ToolContext
from builder.tools.workspace_files import (
    file_lock_key,
    normalize_path,
    sha256_hex,
    within_limits,
)

__all__ = [
    "MAX_BATCH_FILES",
    "FileContent",
    "batch_write_files",
    "delete_file",
    "read_file",
    "rename_file",
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


def _describe(data: bytes) -> str:
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return f"{len(data):,} bytes, {lines:,} line{'s' if lines != 1 else ''}"


async def write_file(path: str, content: str, *, ctx: ToolContext) -> str:
    """Create or overwrite a file with the given content.

    Args:
        path: Path relative to the project root, e.g. `src/index.html`.
        content: The complete new content of the file.
    """
    data = content.encode("utf-8")
    written = await ctx.files.write(path, data)
    return f"{'Created' if written.created else 'Updated'} {written.path} ({_describe(data)})."


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
        async with within_limits(ctx, writes, replaced=replaced):
            await _write_all(ctx, writes, previous)
    for path, data in writes.items():
        ctx.effects.file_written(path, sha256_hex(data), data)
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
        removed = await _files_under(ctx, path, info)
        await ctx.sandbox.delete_file(path)
        if ctx.disk is not None:
            ctx.disk.forget()  # a directory's files were not each counted
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
        moved = await _files_under(ctx, path, info)
        await ctx.sandbox.rename_file(path, new_path)
        for old in moved:
            target = new_path + old[len(path) :]
            ctx.effects.file_deleted(old)
            ctx.effects.file_written(target, sha256_hex(await ctx.sandbox.read_file(target)))
        if not info.is_file and not info.is_dir:
            ctx.effects.workspace_changed()
    what = f"directory ({len(moved)} files)" if info.is_dir else "file"
    return f"Renamed {what} {path} → {new_path}."


async def _files_under(ctx: ToolContext, path: str, info: FileInfo) -> list[str]:
    """The regular files at or under ``path`` (a link or FIFO is none: never tracked)."""
    if not info.is_dir:
        return [path] if info.is_file else []
    entries = await ctx.sandbox.list_files(path, recursive=True)
    return [entry.path for entry in entries if entry.is_file]
