"""Versions of a project's files, stored so that a version costs what changed.

File contents are content-addressed blobs (SHA-256), stored once however many versions
and projects use them. A version (snapshot) records only its delta: one entry per path
it added or changed, and a tombstone per path it deleted. Saving after editing ``k``
files of a 2,000-file project writes one snapshot row, ``k`` entries and the blobs not
already stored — never the whole manifest, never unchanged content.

Versions are numbered 1, 2, 3... per project. Saving locks the project row, so
concurrent saves get consecutive versions; an ``idempotency_key`` (e.g. a run id and
step) makes a re-run of the same step return the version it saved the first time.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from builder.errors import AlreadyExists, InvalidInput, NotFound, StaleWorkspace
from builder.persistence.cursors import decode_cursor, encode_cursor
from builder.persistence.database import Database
from builder.persistence.projects import invalidate_project
from builder.persistence.repositories import projects as project_repo
from builder.persistence.repositories import snapshots as repo
from builder.persistence.repositories import usage as usage_repo
from builder.persistence.schemas import (
    FileEntry,
    Page,
    ProjectCreate,
    ProjectPublic,
    SnapshotPublic,
)
from builder.sandbox.paths import join_parts, split_path

__all__ = [
    "StepSave",
    "create_project_with_files",
    "get_snapshot",
    "list_snapshots",
    "read_file",
    "save_first_version",
    "save_snapshot",
    "save_step",
    "step_save",
    "step_saved",
    "tree",
]

_CURSOR = "snapshots"


@dataclass(frozen=True, slots=True)
class _Content:
    sha256: str
    data: bytes


def _normalise(changes: Mapping[str, bytes | None]) -> dict[str, _Content | None]:
    hashed: dict[str, _Content | None] = {}
    for raw_path, data in changes.items():
        path = join_parts(split_path(raw_path))
        if path in hashed:
            raise InvalidInput(f"{raw_path!r} names the same file as another change")
        if data is not None and not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput(f"content of {path!r} must be bytes or None (deleted)")
        hashed[path] = (
            None if data is None else _Content(hashlib.sha256(data).hexdigest(), bytes(data))
        )
    return hashed


async def save_snapshot(
    db: Database,
    *,
    project_id: uuid.UUID,
    changes: Mapping[str, bytes | None],
    message_id: uuid.UUID | None = None,
    run_id: str | None = None,
    idempotency_key: str | None = None,
    summary: str = "",
    base_version: int | None = None,
    usage: Mapping[str, Any] | None = None,
) -> SnapshotPublic | None:
    """Save a new version holding ``changes`` on top of the latest one.

    Args:
        db: The database.
        project_id: The project.
        changes: Path → new content, or None for a deleted file. Paths that do not
            change anything (same content, deleting a missing file) are ignored.
        message_id: The message whose turn produced this version.
        run_id: The run that produced it.
        idempotency_key: Unique per project; saving again with the same key returns
            the version saved the first time and writes nothing.
        summary: A line describing the change.
        base_version: The version the changes were made on (0: none yet). When given
            and it is not the latest any more, nothing is saved: a workspace that
            missed a newer version must never be written as the newest.
        usage: A ``token_usage`` row (:func:`~builder.persistence.usage.usage_values`)
            recorded in the same transaction, once per run and step: a step saved
            again after a crash records nothing twice.

    Returns:
        The new version; the earlier one for a repeated ``idempotency_key``; None when
        nothing changed (no version is created).

    Raises:
        NotFound: No such project (or message).
        StaleWorkspace: ``base_version`` is not the latest version.
        PathOutsideSandbox: A path is absolute or escapes the workspace.
        InvalidInput: A malformed path or content.
    """
    # Hash before the transaction: the project stays locked only for the writes.
    hashed = _normalise(changes)

    async def work(session: AsyncSession) -> tuple[Any, uuid.UUID, bool]:
        saved = await _save_in(
            session,
            project_id=project_id,
            hashed=hashed,
            message_id=message_id,
            run_id=run_id,
            idempotency_key=idempotency_key,
            summary=summary,
            base_version=base_version,
        )
        if usage is not None:
            await usage_repo.insert_usage(session, values=usage, once=True)
        return saved

    row, owner, created = await db.run(work)
    if created:
        await invalidate_project(db, project_id=project_id, user_id=owner)
    return None if row is None else SnapshotPublic.model_validate(row)


@dataclass(frozen=True, slots=True)
class StepSave:
    """One model step's save, ready to run (:func:`save_step`) or to be carried by a
    checkpoint write (:meth:`~builder.graphs.checkpointer.TTLCheckpointer.carry`)."""

    project_id: uuid.UUID
    base_version: int | None
    statement: str
    params: dict[str, Any]
    """The parameters of ``statement``
    (:data:`~builder.persistence.repositories.snapshots.SAVE_STEP_SQL`)."""

    @property
    def changes_files(self) -> bool:
        """Whether the step changed paths: then it makes version ``base + 1``."""
        return bool(self.params["paths"])

    def outcome(self, row: Mapping[str, Any]) -> int | None:
        """The version the statement's result row says was saved (or saved before,
        for a repeated key); None when the step changed no path."""
        version = row["repeated"] if row["repeated"] is not None else row["saved"]
        return None if version is None else int(version)

    def refusal(self, constraint: object) -> StaleWorkspace | None:
        """The stale workspace a failure on ``constraint`` means: another save took
        this one's version (None for any other constraint)."""
        if constraint != repo.STEP_VERSION_CONSTRAINT:
            return None
        base = self.base_version or 0
        return StaleWorkspace(self.project_id, base, base + 1)


def step_save(
    *,
    project_id: uuid.UUID,
    changes: Mapping[str, bytes | None],
    base_version: int | None,
    idempotency_key: str,
    run_id: str | None = None,
    message_id: uuid.UUID | None = None,
    summary: str = "",
    usage: Mapping[str, Any] | None = None,
) -> StepSave:
    """Prepare a model step's save: its ``usage`` and, when it changed paths, version
    ``base_version + 1`` holding ``changes``.

    Args:
        project_id: The project.
        changes: Path → new content, or None for a deleted file. Only paths whose
            content differs from the base version's get an entry.
        base_version: The version the workspace holds; None when unknown (then the
            latest, whatever it is).
        idempotency_key: The run and step (``run:step``): a save made again with the
            same key writes nothing a second time.
        run_id: The run.
        message_id: The user message whose turn this is.
        summary: A line describing the change.
        usage: The model call's ``token_usage`` row
            (:func:`~builder.persistence.usage.usage_values`), recorded once per run
            and step.

    Raises:
        PathOutsideSandbox: A path is absolute or escapes the workspace.
        InvalidInput: A malformed path or content.
    """
    hashed = _normalise(changes)
    return StepSave(
        project_id,
        base_version,
        repo.SAVE_STEP_SQL,
        repo.save_step_params(
            project_id=project_id,
            base_version=base_version,
            idempotency_key=idempotency_key,
            run_id=run_id,
            message_id=message_id,
            summary=summary,
            entries={
                path: (None, None) if c is None else (c.sha256, len(c.data))
                for path, c in hashed.items()
            },
            contents={c.sha256: c.data for c in hashed.values() if c is not None},
            usage=usage,
        ),
    )


async def save_step(db: Database, save: StepSave) -> Mapping[str, Any]:
    """Run a step's save (:func:`step_save`): one statement, which locks nothing.

    Unlike :func:`save_snapshot`, which waits for concurrent saves and builds on the
    newest, this saves on the base version the workspace holds or not at all.

    Returns:
        The statement's row, for :meth:`StepSave.outcome` (its ``owner`` is the
        project's owner when a version was made).

    Raises:
        StaleWorkspace: The base version is not the latest (also when another save
            took its place meanwhile).
        NotFound: No such project (or message).
    """

    async def work(session: AsyncSession) -> Any:
        connection = await session.connection()
        result = await connection.exec_driver_sql(save.statement, save.params)
        return result.mappings().one()

    try:
        row: Mapping[str, Any] = await db.run(work, single_statement=True)
    except AlreadyExists as exc:
        stale = save.refusal(getattr(exc, "constraint", None))
        if stale is not None:
            raise stale from exc
        raise
    await step_saved(db, save, row)
    return row


async def step_saved(db: Database, save: StepSave, row: Mapping[str, Any]) -> None:
    """After a step's save committed: the cached project is out of date when it made a
    version."""
    if row["owner"] is not None:
        await invalidate_project(db, project_id=save.project_id, user_id=row["owner"])


async def _save_in(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    hashed: Mapping[str, _Content | None],
    message_id: uuid.UUID | None,
    run_id: str | None,
    idempotency_key: str | None,
    summary: str,
    base_version: int | None = None,
) -> tuple[Any, uuid.UUID, bool]:
    """Save a version inside the caller's transaction: (row, owner, created).

    Raises:
        StaleWorkspace: ``base_version`` is given and is not the latest version.
    """
    owner = await project_repo.lock_project(session, project_id=project_id)
    if owner is None:
        raise NotFound("project", project_id)
    latest, existing = await repo.head(
        session, project_id=project_id, idempotency_key=idempotency_key
    )
    if existing is not None:
        return existing, owner, False
    base = latest.version if latest is not None else 0
    if base_version is not None and base_version != base:
        raise StaleWorkspace(project_id, base_version, base)
    current = (
        await repo.entries_for_paths(session, project_id=project_id, version=base, paths=hashed)
        if latest is not None
        else {}
    )
    delta: dict[str, repo.Entry] = {}
    files, size = (latest.file_count, latest.total_bytes) if latest is not None else (0, 0)
    for path, new in hashed.items():
        old_sha, old_size = current.get(path, (None, None))
        if new is None:
            if old_sha is not None:
                delta[path] = (None, None)
                files, size = files - 1, size - (old_size or 0)
        elif new.sha256 != old_sha:
            delta[path] = (new.sha256, len(new.data))
            files += old_sha is None
            size += len(new.data) - (old_size or 0)
    if not delta:
        return None, owner, False
    needed = _shas(delta)
    row = await repo.insert_version(
        session,
        values={
            "project_id": project_id,
            "version": base + 1,
            "parent_version": base or None,
            "message_id": message_id,
            "run_id": run_id,
            "idempotency_key": idempotency_key,
            "summary": summary,
            "file_count": files,
            "total_bytes": size,
            "changed_paths": len(delta),
        },
        entries=delta,
        # Sent whether or not the content is stored already: checking first would
        # cost a round trip on every save to spare one on a rare repeat.
        contents={c.sha256: c.data for c in hashed.values() if c and c.sha256 in needed},
    )
    return row, owner, True


async def save_first_version(
    session: AsyncSession, *, project_id: uuid.UUID, files: Mapping[str, bytes], summary: str
) -> None:
    """Save a new project's first version inside the caller's transaction (the project
    row is created in the same one, so both exist or neither does)."""
    await _save_in(
        session,
        project_id=project_id,
        hashed=_normalise(files),
        message_id=None,
        run_id=None,
        idempotency_key=None,
        summary=summary,
    )


async def create_project_with_files(
    db: Database,
    *,
    user_id: uuid.UUID,
    name: str,
    description: str = "",
    files: Mapping[str, bytes],
    summary: str,
) -> tuple[ProjectPublic, SnapshotPublic | None]:
    """Create a project whose first version holds ``files``, in one transaction.

    Either both the project and its first version exist afterwards, or neither does.

    Raises:
        InvalidInput: The name, a path or a content is not acceptable.
        NotFound: No such user.
    """
    fields = ProjectCreate(name=name, description=description)
    hashed = _normalise(files)

    async def work(session: AsyncSession) -> tuple[Any, Any]:
        project = await project_repo.insert_project(
            session, user_id=user_id, name=fields.name, description=fields.description
        )
        row, _, _ = await _save_in(
            session,
            project_id=project.id,
            hashed=hashed,
            message_id=None,
            run_id=None,
            idempotency_key=None,
            summary=summary,
        )
        return project, row

    project, row = await db.run(work)
    created = ProjectPublic.model_validate(project)
    await invalidate_project(db, project_id=created.id, user_id=user_id)
    return created, None if row is None else SnapshotPublic.model_validate(row)


def _shas(delta: Mapping[str, repo.Entry]) -> set[str]:
    return {sha for sha, _ in delta.values() if sha is not None}


async def _resolve(session: AsyncSession, project_id: uuid.UUID, version: int | None) -> int:
    """The version asked for (the latest for None); 0 when the project has none yet."""
    if version is None:
        return await repo.max_version(session, project_id=project_id)
    if await repo.snapshot_at(session, project_id=project_id, version=version) is None:
        raise NotFound("snapshot", f"{project_id} version {version}")
    return version


async def tree(
    db: Database, *, project_id: uuid.UUID, version: int | None = None
) -> dict[str, FileEntry]:
    """Every file of a version, sorted by path: path → (sha256, size).

    Args:
        db: The database.
        project_id: The project.
        version: A version number; None for the latest (empty when there is none).

    Raises:
        NotFound: No such version.
    """

    async def work(session: AsyncSession) -> dict[str, tuple[str, int]]:
        resolved = await _resolve(session, project_id, version)
        if resolved == 0:
            return {}
        return await repo.tree_at(session, project_id=project_id, version=resolved)

    return {path: FileEntry(*entry) for path, entry in (await db.run(work)).items()}


async def read_file(
    db: Database, *, project_id: uuid.UUID, path: str, version: int | None = None
) -> bytes:
    """The content of one file in a version (the latest for None).

    Raises:
        NotFound: No such version, or the file is not in it.
    """
    normalised = join_parts(split_path(path))

    async def work(session: AsyncSession) -> bytes | None:
        resolved = await _resolve(session, project_id, version)
        if resolved == 0:
            return None
        entries = await repo.entries_for_paths(
            session, project_id=project_id, version=resolved, paths=[normalised]
        )
        sha, _ = entries.get(normalised, (None, None))
        if sha is None:
            return None
        return (await repo.blob_data(session, shas=[sha]))[sha]

    data = await db.run(work)
    if data is None:
        raise NotFound("file", normalised)
    return data


async def get_snapshot(db: Database, *, project_id: uuid.UUID, version: int) -> SnapshotPublic:
    """One version's record.

    Raises:
        NotFound: No such version.
    """

    async def work(session: AsyncSession) -> Any:
        return await repo.snapshot_at(session, project_id=project_id, version=version)

    row = await db.run(work)
    if row is None:
        raise NotFound("snapshot", f"{project_id} version {version}")
    return SnapshotPublic.model_validate(row)


async def list_snapshots(
    db: Database, *, project_id: uuid.UUID, limit: int = 50, cursor: str | None = None
) -> Page[SnapshotPublic]:
    """A project's versions, newest first.

    Raises:
        InvalidInput: A malformed cursor.
    """
    limit = max(1, min(limit, 200))
    before = None
    if cursor is not None:
        (before,) = decode_cursor(_CURSOR, cursor, size=1)

    async def work(session: AsyncSession) -> Any:
        return await repo.snapshots_page(
            session,
            project_id=project_id,
            limit=limit + 1,
            before_version=int(before) if before is not None else None,
        )

    rows = await db.run(work)
    items = [SnapshotPublic.model_validate(row) for row in rows[:limit]]
    next_cursor = encode_cursor(_CURSOR, items[-1].version) if len(rows) > limit else None
    return Page[SnapshotPublic](items=items, next_cursor=next_cursor)
