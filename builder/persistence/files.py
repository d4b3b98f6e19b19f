"""Comparing versions and putting a version back into a sandbox."""

from __future__ import annotations

import difflib
import hashlib
import uuid
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from builder.errors import NotFound
from builder.log import get_logger
from builder.persistence.database import Database
from builder.persistence.repositories import snapshots as repo
from builder.persistence.schemas import FileEntry, SnapshotDiff
from builder.persistence.snapshots import tree
from builder.sandbox.base import Sandbox
from builder.sandbox.paths import STATE_DIR

_log = get_logger("builder.persistence.files")
_VERSION_FILE = f"{STATE_DIR}/version"

__all__ = [
    "diff_snapshots",
    "record_workspace_version",
    "restore_snapshot",
    "sync_workspace",
    "workspace_version",
]

_MAX_DIFF_FILE_BYTES = 256 * 1024
_BATCH_BYTES = 8 * 1024 * 1024
_BATCH_BLOBS = 256


async def _fetch(db: Database, shas: Iterable[str]) -> dict[str, bytes]:
    wanted = sorted(set(shas))

    async def work(session: AsyncSession) -> dict[str, bytes]:
        return await repo.blob_data(session, shas=wanted)

    return await db.run(work) if wanted else {}


def _depths(path: str) -> range:
    """``rsplit`` depths that yield each parent directory of ``path``."""
    return range(1, path.count("/") + 1)


def _text(data: bytes) -> list[str] | None:
    if b"\0" in data or len(data) > _MAX_DIFF_FILE_BYTES:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


async def diff_snapshots(
    db: Database,
    *,
    project_id: uuid.UUID,
    from_version: int,
    to_version: int,
    max_patch_chars: int = 100_000,
) -> SnapshotDiff:
    """What changed from one version to another, with a unified diff of text files.

    Args:
        db: The database.
        project_id: The project.
        from_version: The older side; 0 means "before the first version" (empty).
        to_version: The newer side.
        max_patch_chars: The patch is cut at this many characters.

    Raises:
        NotFound: Either version does not exist.
    """
    before = await tree(db, project_id=project_id, version=from_version) if from_version else {}
    after = await tree(db, project_id=project_id, version=to_version)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    modified = sorted(p for p in set(before) & set(after) if before[p].sha256 != after[p].sha256)
    changed = sorted([*added, *removed, *modified])
    small = [
        entry.sha256
        for path in changed
        for entry in (before.get(path), after.get(path))
        if entry is not None and entry.size <= _MAX_DIFF_FILE_BYTES
    ]
    contents = await _fetch(db, small)
    chunks: list[str] = []
    length = 0
    truncated = False
    for path in changed:
        old, new = before.get(path), after.get(path)
        old_lines = _text(contents.get(old.sha256, b"\0")) if old else []
        new_lines = _text(contents.get(new.sha256, b"\0")) if new else []
        if old_lines is None or new_lines is None:
            chunk = f"Binary files a/{path} and b/{path} differ\n"
        else:
            chunk = "".join(
                difflib.unified_diff(
                    old_lines,
                    new_lines,
                    fromfile=f"a/{path}" if old else "/dev/null",
                    tofile=f"b/{path}" if new else "/dev/null",
                )
            )
            if chunk and not chunk.endswith("\n"):
                chunk += "\n\\ No newline at end of file\n"
        if length + len(chunk) > max_patch_chars:
            truncated = True
            break
        chunks.append(chunk)
        length += len(chunk)
    return SnapshotDiff(
        from_version=from_version,
        to_version=to_version,
        added=added,
        removed=removed,
        modified=modified,
        patch="".join(chunks),
        truncated=truncated,
    )


async def restore_snapshot(
    db: Database, *, project_id: uuid.UUID, sandbox: Sandbox, version: int | None = None
) -> dict[str, FileEntry]:
    """Make a sandbox's files exactly those of a version.

    Files of the version are written (unless the sandbox already has the same bytes),
    files the version does not have are deleted; ``node_modules`` and ``.git`` are left
    alone, as sandbox listings skip them. Blobs are fetched in bounded batches.

    Args:
        db: The database.
        project_id: The project.
        sandbox: Where to write, through the :class:`~builder.sandbox.base.Sandbox`
            protocol only.
        version: The version; None for the latest.

    Returns:
        The restored tree.

    Raises:
        NotFound: No such version.
    """
    wanted = await tree(db, project_id=project_id, version=version)
    present = {info.path: info for info in await sandbox.list_files(".", recursive=True)}
    needed_dirs = {path.rsplit("/", depth)[0] for path in wanted for depth in _depths(path)}
    # Deepest first, so a directory's files go before the directory itself.
    for path in sorted(present, key=lambda p: p.count("/"), reverse=True):
        if present[path].is_dir:
            stale = path in wanted or path not in needed_dirs
        elif not present[path].is_file:
            # A symbolic link or special file is left alone unless it is in the way of
            # the version's files: then the entry itself goes (never its target), so
            # nothing is ever written through a link.
            stale = path in wanted or path in needed_dirs
        else:
            stale = path not in wanted
        if stale:
            await sandbox.delete_file(path)
    to_write: list[tuple[str, FileEntry]] = []
    for path, entry in wanted.items():
        found = present.get(path)
        if found is not None and found.is_file and found.size == entry.size:
            current = await sandbox.read_file(path)
            if hashlib.sha256(current).hexdigest() == entry.sha256:
                continue
        to_write.append((path, entry))
    batch: list[tuple[str, FileEntry]] = []
    batch_bytes = 0
    for item in [*to_write, None]:
        if item is not None:
            batch.append(item)
            batch_bytes += item[1].size
        if batch and (item is None or batch_bytes >= _BATCH_BYTES or len(batch) >= _BATCH_BLOBS):
            contents = await _fetch(db, (entry.sha256 for _, entry in batch))
            for path, entry in batch:
                await sandbox.write_file(path, contents[entry.sha256])
            batch, batch_bytes = [], 0
    return wanted


async def workspace_version(sandbox: Sandbox) -> int | None:
    """The version a workspace was restored from or last saved as; None when unknown.

    It is kept in the workspace itself (``.builder/version``, a directory listings and
    snapshots leave out), so it travels with the files: a replica's own copy of a
    project says which version it holds.
    """
    try:
        raw = await sandbox.read_file(_VERSION_FILE)
    except NotFound:
        return None
    try:
        return int(raw.decode().strip())
    except ValueError:
        return None


async def record_workspace_version(sandbox: Sandbox, version: int) -> None:
    """Note that a workspace now holds ``version`` of its project."""
    await sandbox.write_file(_VERSION_FILE, f"{version}\n".encode())


async def sync_workspace(
    db: Database, *, project_id: uuid.UUID, sandbox: Sandbox, force: bool = False
) -> int:
    """Bring a workspace to its project's latest version unless it is there already.

    A workspace that holds the latest version keeps its files as they are (also edits
    not saved yet by a run that crashed on this machine); one that holds an older or
    unknown version — a copy another replica has moved past — is restored from the
    latest version first, so nothing is ever built on a stale copy.

    Args:
        db: The database.
        project_id: The project.
        sandbox: Its workspace.
        force: Restore even when the recorded version is the latest.

    Returns:
        The version the workspace now holds (0: the project has none yet).
    """

    async def latest(session: AsyncSession) -> int:
        return await repo.max_version(session, project_id=project_id)

    newest = await db.run(latest)
    held = await workspace_version(sandbox)
    if held == newest and not force:
        return newest
    if newest or held is not None or force:
        await restore_snapshot(db, project_id=project_id, sandbox=sandbox, version=newest or None)
        _log.info("workspace.refreshed", project_id=str(project_id), held=held, latest=newest)
    await record_workspace_version(sandbox, newest)
    return newest
