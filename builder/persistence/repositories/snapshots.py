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


# A model step's save in one statement, with no lock: the step's token usage and, when
# it changed paths, a new version on top of the base version the workspace holds —
# the snapshot row, an entry for each path whose content differs from the base's, the
# blobs they need and the project's ``updated_at``. When the idempotency key was used
# (a step saved again after a crash) it writes nothing but the usage row, which is
# kept once per run and step. The new version is always ``base + 1``: when the base is
# not the latest (saved elsewhere before or meanwhile), the insert breaks the unique
# ``(project_id, version)`` and the whole statement fails, also inside a checkpoint
# write's transaction. Every parameter is cast, so the statement runs as psycopg sends
# it, in a session or in a pipeline. The contents go in binary (``%(...)b``): as text,
# psycopg would write each as escaped hex in an array literal (a regex pass over twice
# the file's bytes) and the server would parse it back.
SAVE_STEP_SQL = """
WITH base AS (
  SELECT coalesce(%(base)s::integer,
                  (SELECT max(version) FROM snapshots WHERE project_id = %(project_id)s::uuid),
                  0) AS version
),
keyed AS (
  SELECT version FROM snapshots
  WHERE project_id = %(project_id)s::uuid AND idempotency_key = %(key)s::text
),
fresh AS (
  SELECT version FROM base WHERE NOT EXISTS (SELECT 1 FROM keyed)
),
changes AS (
  SELECT * FROM unnest(%(paths)s::text[], %(shas)s::text[], %(sizes)s::bigint[])
    AS c(path, sha256, size)
),
old AS (
  SELECT DISTINCT ON (e.path) e.path, e.blob_sha256, e.size
  FROM snapshot_entries e, fresh
  WHERE e.project_id = %(project_id)s::uuid AND e.version <= fresh.version
    AND e.path = ANY(%(paths)s::text[])
  ORDER BY e.path, e.version DESC
),
delta AS (
  SELECT c.path, c.sha256, c.size, o.blob_sha256 AS old_sha, coalesce(o.size, 0) AS old_size
  FROM fresh, changes c LEFT JOIN old o ON o.path = c.path
  WHERE c.sha256 IS DISTINCT FROM o.blob_sha256
),
totals AS (
  SELECT count(*) AS changed,
         count(*) FILTER (WHERE sha256 IS NOT NULL AND old_sha IS NULL)
           - count(*) FILTER (WHERE sha256 IS NULL) AS files,
         coalesce(sum(coalesce(size, 0) - old_size), 0) AS bytes
  FROM delta
),
new_blobs AS (
  INSERT INTO blobs (sha256, size, data)
  SELECT b.sha256, octet_length(b.data), b.data
  FROM unnest(%(blob_shas)s::text[], %(blob_datas)b::bytea[]) AS b(sha256, data)
  WHERE b.sha256 IN (SELECT sha256 FROM delta)
  ON CONFLICT (sha256) DO NOTHING
),
snapshot AS (
  INSERT INTO snapshots (id, project_id, version, parent_version, message_id, run_id,
                         idempotency_key, summary, file_count, total_bytes, changed_paths)
  SELECT gen_random_uuid(), %(project_id)s::uuid, fresh.version + 1, nullif(fresh.version, 0),
         %(message_id)s::uuid, %(run_id)s::text, %(key)s::text, %(summary)s::text,
         coalesce(prior.file_count, 0) + totals.files,
         coalesce(prior.total_bytes, 0) + totals.bytes, totals.changed
  FROM fresh CROSS JOIN totals
  LEFT JOIN snapshots prior
    ON prior.project_id = %(project_id)s::uuid AND prior.version = fresh.version
  WHERE EXISTS (SELECT 1 FROM changes)
  RETURNING version
),
entries AS (
  INSERT INTO snapshot_entries (project_id, version, path, blob_sha256, size)
  SELECT %(project_id)s::uuid, s.version, d.path, d.sha256, d.size
  FROM delta d CROSS JOIN snapshot s
),
touched AS (
  UPDATE projects SET updated_at = now()
  WHERE id = %(project_id)s::uuid AND EXISTS (SELECT 1 FROM snapshot)
  RETURNING user_id
),
usage AS (
  INSERT INTO token_usage (id, project_id, run_id, model, prompt_tokens, completion_tokens,
                           total_tokens, step, cache_read_tokens, cache_write_tokens)
  SELECT gen_random_uuid(), %(project_id)s::uuid, %(run_id)s::text, %(model)s::text,
         %(prompt_tokens)s::integer, %(completion_tokens)s::integer,
         %(prompt_tokens)s::integer + %(completion_tokens)s::integer, %(step)s::integer,
         %(cache_read_tokens)s::integer, %(cache_write_tokens)s::integer
  WHERE %(usage)s::boolean
  ON CONFLICT (run_id, step) DO NOTHING
)
SELECT (SELECT version FROM snapshot) AS saved, (SELECT version FROM keyed) AS repeated,
       (SELECT user_id FROM touched) AS owner
"""

STEP_VERSION_CONSTRAINT = "uq_snapshots_project_id_version"
"""The constraint a step's save on a stale base breaks."""


def save_step_params(
    *,
    project_id: uuid.UUID,
    base_version: int | None,
    idempotency_key: str,
    run_id: str | None,
    message_id: uuid.UUID | None,
    summary: str,
    entries: Mapping[str, Entry],
    contents: Mapping[str, bytes],
    usage: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The parameters of :data:`SAVE_STEP_SQL`.

    Args:
        entries: Each changed path's new ``(sha256, size)``, ``(None, None)`` when deleted.
        contents: The new contents by sha256.
        usage: A ``token_usage`` row (:func:`~builder.persistence.usage.usage_values`),
            or None.
    """
    tokens = usage or {}
    return {
        "project_id": project_id,
        "base": base_version,
        "key": idempotency_key,
        "run_id": run_id,
        "message_id": message_id,
        "summary": summary,
        "paths": list(entries),
        "shas": [sha for sha, _ in entries.values()],
        "sizes": [size for _, size in entries.values()],
        "blob_shas": list(contents),
        "blob_datas": list(contents.values()),
        "usage": usage is not None,
        "model": tokens.get("model"),
        "prompt_tokens": tokens.get("prompt_tokens", 0),
        "completion_tokens": tokens.get("completion_tokens", 0),
        "step": tokens.get("step"),
        "cache_read_tokens": tokens.get("cache_read_tokens", 0),
        "cache_write_tokens": tokens.get("cache_write_tokens", 0),
    }
