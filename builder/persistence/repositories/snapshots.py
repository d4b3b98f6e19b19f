"""SQL for blobs, snapshots and snapshot entries.

Entries are deltas: version ``v`` of a project holds an entry only for each path that
version added, changed (a blob) or deleted (a tombstone, ``blob_sha256 IS NULL``). The
tree at ``v`` is the newest entry of every path at or below ``v``, tombstones left out:
one ``DISTINCT ON (path)`` over the ``(project_id, path, version)`` index.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, func, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, BYTEA, TEXT, distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from builder.persistence.models import blobs, snapshot_entries, snapshots
from builder.persistence.repositories import AnyRow

COLUMNS = (
    snapshots.c.id,
    snapshots.c.project_id,
    snapshots.c.version,
    snapshots.c.parent_version,
    snapshots.c.message_id,
    snapshots.c.run_id,
    snapshots.c.summary,
    snapshots.c.file_count,
    snapshots.c.total_bytes,
    snapshots.c.changed_paths,
    snapshots.c.created_at,
)
Entry = tuple[str | None, int | None]
"""``(sha256, size)`` of a path's content, or ``(None, None)`` for a deletion."""


async def head(
    session: AsyncSession, *, project_id: uuid.UUID, idempotency_key: str | None
) -> tuple[AnyRow | None, AnyRow | None]:
    """The newest version and the one saved with ``idempotency_key``, in one query."""
    s = snapshots.c
    newest = select(func.max(s.version)).where(s.project_id == project_id).scalar_subquery()
    wanted = [s.version == newest]
    if idempotency_key is not None:
        wanted.append(s.idempotency_key == idempotency_key)
    statement = select(*COLUMNS, s.idempotency_key).where(s.project_id == project_id, or_(*wanted))
    rows = (await session.execute(statement)).all()
    latest = max(rows, key=lambda row: row.version, default=None)
    keyed = next(
        (row for row in rows if idempotency_key and row.idempotency_key == idempotency_key),
        None,
    )
    return latest, keyed


async def snapshot_at(
    session: AsyncSession, *, project_id: uuid.UUID, version: int
) -> AnyRow | None:
    """One version of a project."""
    statement = select(*COLUMNS).where(
        snapshots.c.project_id == project_id, snapshots.c.version == version
    )
    return (await session.execute(statement)).first()


async def snapshots_page(
    session: AsyncSession, *, project_id: uuid.UUID, limit: int, before_version: int | None
) -> Sequence[AnyRow]:
    """Up to ``limit`` versions, newest first, below ``before_version``."""
    statement = (
        select(*COLUMNS)
        .where(snapshots.c.project_id == project_id)
        .order_by(snapshots.c.version.desc())
        .limit(limit)
    )
    if before_version is not None:
        statement = statement.where(snapshots.c.version < before_version)
    return (await session.execute(statement)).all()


def _latest_entries(project_id: uuid.UUID, version: int) -> Any:
    e = snapshot_entries.c
    return (
        select(e.path, e.blob_sha256, e.size)
        .where(e.project_id == project_id, e.version <= version)
        .ext(distinct_on(e.path))
        .order_by(e.path, e.version.desc())
    )


async def entries_for_paths(
    session: AsyncSession, *, project_id: uuid.UUID, version: int, paths: Iterable[str]
) -> dict[str, Entry]:
    """The newest entry (tombstones included) of each of ``paths`` at ``version``."""
    statement = _latest_entries(project_id, version).where(snapshot_entries.c.path.in_(list(paths)))
    rows = (await session.execute(statement)).all()
    return {row.path: (row.blob_sha256, row.size) for row in rows}


async def tree_at(
    session: AsyncSession, *, project_id: uuid.UUID, version: int
) -> dict[str, tuple[str, int]]:
    """Every file of a version: path → (sha256, size), sorted by path."""
    latest = _latest_entries(project_id, version).subquery()
    statement = (
        select(latest.c.path, latest.c.blob_sha256, latest.c.size)
        .where(latest.c.blob_sha256.is_not(None))
        .order_by(latest.c.path)
    )
    rows = (await session.execute(statement)).all()
    return {row.path: (row.blob_sha256, row.size) for row in rows}


# One statement writes a whole version: the blobs it needs (a blob stored meanwhile
# by someone else is kept as is), the snapshot row, its entries and the project's
# ``updated_at``. Foreign keys are checked at the end of the statement, so the entries
# may reference blobs inserted by the same statement.
_INSERT_VERSION = text(
    """
WITH new_blobs AS (
  INSERT INTO blobs (sha256, size, data)
  SELECT b.sha256, octet_length(b.data), b.data
  FROM unnest(:blob_shas, :blob_datas) AS b(sha256, data)
  ON CONFLICT (sha256) DO NOTHING
),
snapshot AS (
  INSERT INTO snapshots (id, project_id, version, parent_version, message_id, run_id,
                         idempotency_key, summary, file_count, total_bytes, changed_paths)
  VALUES (gen_random_uuid(), :project_id, :version, :parent_version, :message_id, :run_id,
          :idempotency_key, :summary, :file_count, :total_bytes, :changed_paths)
  RETURNING id, project_id, version, parent_version, message_id, run_id, summary,
            file_count, total_bytes, changed_paths, created_at
),
entries AS (
  INSERT INTO snapshot_entries (project_id, version, path, blob_sha256, size)
  SELECT :project_id, :version, e.path, e.sha256, e.size
  FROM unnest(:paths, :entry_shas, :sizes) AS e(path, sha256, size)
),
touched AS (
  UPDATE projects SET updated_at = now() WHERE id = :project_id
)
SELECT * FROM snapshot
"""
).bindparams(
    bindparam("blob_shas", type_=ARRAY(TEXT)),
    bindparam("blob_datas", type_=ARRAY(BYTEA)),
    bindparam("paths", type_=ARRAY(TEXT)),
    bindparam("entry_shas", type_=ARRAY(TEXT)),
    bindparam("sizes", type_=ARRAY(BIGINT)),
)


async def insert_version(
    session: AsyncSession,
    *,
    values: Mapping[str, Any],
    entries: Mapping[str, Entry],
    contents: Mapping[str, bytes],
) -> AnyRow:
    """Record a new version in one statement: ``contents`` (sha256 → data) as blobs,
    the snapshot row (``values``), one entry per changed path, and the project's
    ``updated_at``."""
    params = {
        "message_id": None,
        "run_id": None,
        "idempotency_key": None,
        "parent_version": None,
        **values,
        "blob_shas": list(contents),
        "blob_datas": list(contents.values()),
        "paths": list(entries),
        "entry_shas": [sha for sha, _ in entries.values()],
        "sizes": [size for _, size in entries.values()],
    }
    return (await session.execute(_INSERT_VERSION, params)).one()


async def insert_blobs(session: AsyncSession, *, contents: Mapping[str, bytes]) -> None:
    """Store contents by SHA-256 outside a version (a message's images); a blob stored
    meanwhile by someone else is kept as is."""
    if not contents:
        return
    statement = insert(blobs).on_conflict_do_nothing(index_elements=[blobs.c.sha256])
    await session.execute(
        statement,
        [{"sha256": sha, "size": len(data), "data": data} for sha, data in contents.items()],
    )


async def blob_data(session: AsyncSession, *, shas: Iterable[str]) -> dict[str, bytes]:
    """The contents of these blobs."""
    wanted = list(shas)
    if not wanted:
        return {}
    statement = select(blobs.c.sha256, blobs.c.data).where(blobs.c.sha256.in_(wanted))
    return {row.sha256: bytes(row.data) for row in await session.execute(statement)}


async def max_version(session: AsyncSession, *, project_id: uuid.UUID) -> int:
    """The newest version number of a project, 0 when it has none."""
    statement = select(func.coalesce(func.max(snapshots.c.version), 0)).where(
        snapshots.c.project_id == project_id
    )
    return int((await session.execute(statement)).scalar_one())
