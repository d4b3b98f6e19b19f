"""The run queue in PostgreSQL: runs waiting for a worker, and the leases of those working.

A run is a row of ``runs``. Starting one writes it ``pending`` (:func:`enqueue`); a
worker claims it (:func:`claim`): the row becomes ``running`` with the worker's id and a
lease deadline, which the worker renews for all its runs at once (:func:`heartbeat`).
A worker that stops renewing loses its runs: once the deadline has passed, any worker
claims the run again and takes it over from its last checkpoint. Finishing is
conditional on still holding the lease (see
:func:`~builder.persistence.runs.record_run_finished`), so a run ends exactly once.

Exclusivity is the row, not a session held open: nothing here keeps a connection
between statements, so a run waiting on the model holds no database connection.

* One run per project: claims are serialized by a transaction-scoped advisory lock
  (short: one statement's worth), and a run is claimed only when no other run of its
  project holds a live lease. The project's run lock (:func:`run_lock_key`) is taken
  with ``pg_try_advisory_xact_lock`` in the same transaction, so work that holds it
  (a file edit through the API, deleting a project) keeps runs from starting meanwhile.
* Caps: per user (``BUILDER_RUNS_PER_USER``) and overall (``BUILDER_RUNS_GLOBAL``),
  counted in the claiming transaction, so they hold across every worker.
* Order: oldest first; a queued run's position is how many pending runs are older.
* Affinity: a project whose dev server runs in one replica's sandbox has its queued runs
  claimed by that replica (``BUILDER_RUN_AFFINITY_SECONDS``; any worker after that).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from builder.errors import RunInProgress
from builder.locks import advisory_key
from builder.persistence.database import Database
from builder.persistence.runs import THREAD_UPSERT_SQL

__all__ = [
    "ClaimedRun",
    "QueueLimits",
    "QueuePlace",
    "cancel_queued",
    "claim",
    "enqueue",
    "heartbeat",
    "queue_positions",
    "release",
    "reset_abandoned",
    "resumable_run",
    "run_lock_key",
]

_CLAIM_KEY = advisory_key("builder:runs:claim")
_SCAN = 200
"""Most queued rows one claim looks at."""

_LOCK_PROJECT = text("SELECT pg_advisory_xact_lock(:key)")
_TRY_LOCK_PROJECTS = text(
    "SELECT k FROM unnest(CAST(:keys AS bigint[])) AS k WHERE pg_try_advisory_xact_lock(k)"
)
"""The projects' run locks that could be taken now, tried in one statement."""
_LOCK_CLAIMS = text("SELECT pg_advisory_xact_lock(:key)")

# After the project's run lock: in one statement, whether another run of the project
# is pending or running (``reject`` refuses then, and nothing is written), the thread
# row (as ensure_thread_in writes it), and the run (or, under its id, a run queued
# again).
_ENQUEUE_HEAD = """
WITH busy AS (
    SELECT run_id FROM runs
    WHERE CAST(:reject AS boolean) AND project_id = :project_id AND run_id <> :run_id
      AND status IN ('pending', 'running')
    LIMIT 1
), thread AS (
    INSERT INTO threads (thread_id, user_id, project_id, metadata)
    SELECT CAST(:thread_id AS text), :user_id, :project_id, '{}'::jsonb
    WHERE NOT EXISTS (SELECT 1 FROM busy)
"""
_ENQUEUE_TAIL = """
), queued AS (
    INSERT INTO runs (run_id, thread_id, project_id, user_id, status, multitask_strategy, input)
    SELECT CAST(:run_id AS text), CAST(:thread_id AS text), :project_id, :user_id, 'pending',
           CAST(:multitask AS text), CAST(:input AS jsonb)
    WHERE NOT EXISTS (SELECT 1 FROM busy)
    ON CONFLICT (run_id) DO UPDATE
    SET status = 'pending', worker_id = NULL, lease_expires_at = NULL, ended_at = NULL,
        cancel_requested = false, updated_at = now(),
        user_id = coalesce(runs.user_id, excluded.user_id),
        -- A run whose worker stopped is taken over as it was; one that ended and is
        -- resumed under its id (its turn was interrupted afterwards) starts afresh.
        input = CASE WHEN runs.status IN ('running', 'interrupted')
                     THEN coalesce(runs.input, excluded.input) ELSE excluded.input END,
        attempts = CASE WHEN runs.status IN ('running', 'interrupted')
                        THEN runs.attempts ELSE 0 END
    WHERE runs.status NOT IN ('pending', 'running')
       OR (runs.status = 'running' AND coalesce(runs.lease_expires_at, now()) <= now())
    RETURNING run_id
)
SELECT EXISTS (SELECT 1 FROM busy) AS busy, EXISTS (SELECT 1 FROM queued) AS queued
"""
_ENQUEUE = text("".join((_ENQUEUE_HEAD, THREAD_UPSERT_SQL, _ENQUEUE_TAIL)))

# The runs a claim may take, oldest first, with (in every row) how many runs each user
# has working now, by user id ('' for none), for the caps.
_CANDIDATES = text(
    """
SELECT r.run_id, r.project_id, r.user_id, r.attempts,
       (SELECT coalesce(jsonb_object_agg(coalesce(w.user_id::text, ''), w.n), '{}'::jsonb)
        FROM (SELECT user_id, count(*) AS n FROM runs
              WHERE status = 'running' AND lease_expires_at > now()
              GROUP BY user_id) AS w) AS working
FROM runs r
WHERE (r.status = 'pending'
       OR (r.status = 'running' AND coalesce(r.lease_expires_at, now()) <= now()))
  AND r.input IS NOT NULL
  AND (CAST(:only AS text[]) IS NULL OR r.run_id = ANY(CAST(:only AS text[])))
  AND (r.status <> 'pending' OR CAST(:own AS text[]) IS NULL
       OR r.run_id = ANY(CAST(:own AS text[]))
       OR r.created_at < now() - make_interval(secs => :lease))
  -- A project's dev server runs in one replica's sandbox: its queued runs wait a moment
  -- for that replica, whose sandbox the run edits and the preview shows.
  AND (r.status <> 'pending' OR r.created_at < now() - make_interval(secs => :affinity)
       OR NOT EXISTS (
           SELECT 1 FROM projects p
           WHERE p.id = r.project_id AND p.sandbox_replica IS NOT NULL
             AND p.sandbox_replica IS DISTINCT FROM CAST(:replica AS text)))
  AND NOT (r.run_id = ANY(CAST(:mine AS text[])))
  AND NOT EXISTS (
      SELECT 1 FROM runs o
      WHERE o.project_id = r.project_id AND o.run_id <> r.run_id
        AND o.status = 'running'
        AND (o.lease_expires_at > now()
             -- A queued run whose lease ran out is still the project's until it is
             -- taken over and ends: no pending run starts beside it, even while its
             -- row is locked or its old worker (asking with ``mine``) still works it.
             OR (r.status = 'pending' AND o.input IS NOT NULL)))
ORDER BY r.created_at, r.run_id
LIMIT :scan
FOR UPDATE OF r SKIP LOCKED
"""
)

# The runs taken, and their threads marked busy, in one statement.
_TAKE = text(
    """
WITH taken AS (
    UPDATE runs
    SET status = 'running', worker_id = :worker, attempts = attempts + 1,
        lease_expires_at = now() + make_interval(secs => :lease),
        updated_at = now(), ended_at = NULL
    WHERE run_id = ANY(CAST(:ids AS text[]))
    RETURNING run_id, thread_id, project_id, user_id, input, attempts, created_at,
              cancel_requested
), busy AS (
    UPDATE threads SET status = 'busy', updated_at = now(), last_activity_at = now()
    WHERE thread_id IN (SELECT thread_id FROM taken)
)
SELECT * FROM taken
"""
)

_GIVE_UP = text(
    """
UPDATE runs
SET status = 'error', error = CAST(:error AS text), worker_id = NULL,
    lease_expires_at = NULL, updated_at = now(), ended_at = now(),
    result = jsonb_build_object('run_id', run_id, 'status', 'error',
                                'error', CAST(:error AS text), 'error_code', 'run_abandoned')
WHERE run_id = ANY(CAST(:ids AS text[]))
"""
)

_HEARTBEAT = text(
    """
UPDATE runs SET lease_expires_at = now() + make_interval(secs => :lease)
WHERE worker_id = :worker AND status = 'running' AND run_id = ANY(CAST(:ids AS text[]))
RETURNING run_id, cancel_requested
"""
)

_RELEASE = text(
    """
UPDATE runs SET lease_expires_at = now(), updated_at = now()
WHERE worker_id = :worker AND status = 'running' AND run_id = ANY(CAST(:ids AS text[]))
"""
)

_POSITIONS = text(
    """
SELECT r.run_id, r.status, r.attempts, r.ended_at IS NOT NULL AS ended,
       CASE WHEN r.status = 'pending' THEN (
           SELECT count(*) FROM runs p
           WHERE p.status = 'pending' AND (p.created_at, p.run_id) < (r.created_at, r.run_id)
       ) + 1 END AS position
FROM runs r WHERE r.run_id = ANY(CAST(:ids AS text[]))
"""
)

_CANCEL_PENDING = text(
    """
UPDATE runs SET status = 'cancelled', updated_at = now(), ended_at = now(),
    result = jsonb_build_object('run_id', run_id, 'project_id', project_id::text,
                                'status', 'cancelled', 'stop_reason', 'cancelled')
WHERE run_id = :run_id AND status = 'pending'
RETURNING run_id
"""
)

_CANCEL_RUNNING = text(
    "UPDATE runs SET cancel_requested = true WHERE run_id = :run_id AND status = 'running' "
    "RETURNING run_id"
)

_RESUMABLE = text(
    """
SELECT run_id FROM runs
WHERE project_id = :project_id AND status IN ('interrupted', 'running')
ORDER BY created_at DESC LIMIT 1
"""
)

_ABANDONED = text(
    """
UPDATE runs
SET status = 'interrupted', error = :error, worker_id = NULL, lease_expires_at = NULL,
    updated_at = now(), ended_at = now()
WHERE status = 'running'
  -- A run this process holds is not abandoned, even with its lease run out: it is
  -- about to take it over (resuming), or still works it.
  AND NOT (run_id = ANY(CAST(:mine AS text[])))
  AND (coalesce(lease_expires_at, now()) <= now() OR worker_id = :worker)
RETURNING run_id, thread_id
"""
)

_THREADS_INTERRUPTED = text(
    "UPDATE threads SET status = 'interrupted', updated_at = now() "
    "WHERE thread_id = ANY(CAST(:ids AS text[])) AND status = 'busy'"
)


def run_lock_key(project_id: uuid.UUID | str) -> str:
    """The name of a project's run lock (one name for every process and module)."""
    return f"run:{project_id}"


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """Caps a claim respects (0 = no cap) and the lease it grants."""

    lease_seconds: float
    per_user: int = 0
    overall: int = 0
    max_attempts: int = 3
    affinity_seconds: float = 0
    """How long a queued run waits for the replica recorded as running its project's
    dev server (``projects.sandbox_replica``) before any worker may take it."""


class QueuePlace(NamedTuple):
    """Where a run stands (see :func:`queue_positions`)."""

    status: str
    position: int | None
    """Its place in the queue (1 = next) while pending, else None."""
    attempts: int
    """How many times a worker has claimed it."""


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A run a worker has just claimed."""

    run_id: str
    thread_id: str
    project_id: uuid.UUID
    user_id: uuid.UUID
    input: dict[str, Any]
    attempts: int
    cancel_requested: bool = False
    """Someone asked to cancel it (while its earlier worker ran it, or as it was claimed)."""

    @property
    def takeover(self) -> bool:
        """True when an earlier attempt started the run (its worker stopped)."""
        return self.attempts > 1


async def enqueue(
    db: Database,
    *,
    run_id: str,
    thread_id: str,
    project_id: uuid.UUID,
    user_id: uuid.UUID,
    run_input: dict[str, Any],
    multitask: str,
) -> bool:
    """Write a pending run (or queue an interrupted one with this id again), and its
    thread row when it has none yet, in one transaction.

    Returns:
        False when the run with this id is still working (its lease has not run out):
        nothing was written.

    Raises:
        RunInProgress: ``multitask`` is ``reject`` and another run of the project is
            pending or running.
    """

    async def work(session: AsyncSession) -> bool:
        # Serializes starts on one project (and waits out an API edit holding its lock);
        # the next statement, which sees every run committed before, comes after it.
        await session.execute(_LOCK_PROJECT, {"key": advisory_key(run_lock_key(project_id))})
        row = (
            await session.execute(
                _ENQUEUE,
                {
                    "reject": multitask == "reject",
                    "run_id": run_id,
                    "thread_id": thread_id,
                    "project_id": project_id,
                    "user_id": user_id,
                    "multitask": multitask,
                    "input": json.dumps(run_input),
                },
            )
        ).one()
        if row.busy:
            raise RunInProgress(project_id)
        return bool(row.queued)

    return await db.run(work)


async def claim(
    db: Database,
    *,
    worker: str,
    limit: int,
    limits: QueueLimits,
    only: list[str] | None = None,
    mine: list[str] | None = None,
    own: list[str] | None = None,
    replica: str | None = None,
) -> list[ClaimedRun]:
    """Claim up to ``limit`` runs for ``worker``: pending ones, and ones whose lease ran out.

    Args:
        db: The database.
        worker: The claiming worker's id.
        limit: Most runs to claim.
        limits: Caps and the lease.
        only: Claim only among these run ids (a process working only its own runs).
        mine: Run ids this worker already works (never claimed again by it).
        own: When given, the pending runs started in this process: other pending runs
            are claimed only once they have waited a lease's length (their process
            follows them itself; without Redis no other process could show their
            events). Runs whose worker died are claimed either way.
        replica: The claiming process's ``BUILDER_ADVERTISE_URL``. A pending run of a
            project whose dev server another replica runs is left to that replica for
            ``limits.affinity_seconds``: a run elsewhere would edit a copy of the files
            the preview does not show.

    Returns:
        The claimed runs, oldest first. A run already claimed ``max_attempts`` times is
        failed instead of claimed again.
    """
    if limit <= 0 or (only is not None and not only):
        return []

    async def work(session: AsyncSession) -> list[ClaimedRun]:
        await session.execute(_LOCK_CLAIMS, {"key": _CLAIM_KEY})
        rows = (
            await session.execute(
                _CANDIDATES,
                {
                    "only": only,
                    "mine": mine or [],
                    "own": own,
                    "lease": limits.lease_seconds,
                    "affinity": limits.affinity_seconds,
                    "replica": replica,
                    "scan": _SCAN,
                },
            )
        ).all()
        if not rows:
            return []
        working = {uuid.UUID(user) if user else None: int(n) for user, n in rows[0].working.items()}
        # The runs this round takes, assuming every project lock is free; the locks
        # are tried together, and a project found locked (being edited or deleted right
        # now) is left out and the choice made again, so a round costs one statement
        # for its locks instead of one per run.
        refused: set[int] = set()
        locked: set[int] = set()
        while True:
            chosen, spent = _choose(rows, working, limit=limit, limits=limits, refused=refused)
            wanted = [
                key
                for key in dict.fromkeys(_project_key(row) for row in (*chosen, *spent))
                if key not in locked
            ]
            if not wanted:
                break
            got = set((await session.execute(_TRY_LOCK_PROJECTS, {"keys": wanted})).scalars())
            locked |= got
            refused.update(key for key in wanted if key not in got)
            if len(got) == len(wanted):
                break
        if spent:
            await session.execute(
                _GIVE_UP,
                {
                    "ids": [row.run_id for row in spent],
                    "error": f"the run was started {limits.max_attempts} times and its "
                    "worker stopped every time",
                },
            )
        if not chosen:
            return []
        ids = [row.run_id for row in chosen]
        taken = (
            await session.execute(
                _TAKE, {"ids": ids, "worker": worker, "lease": limits.lease_seconds}
            )
        ).all()
        order = {run_id: n for n, run_id in enumerate(ids)}
        return sorted(
            (
                ClaimedRun(
                    run_id=row.run_id,
                    thread_id=row.thread_id,
                    project_id=row.project_id,
                    user_id=row.user_id,
                    input=dict(row.input or {}),
                    attempts=int(row.attempts),
                    cancel_requested=bool(row.cancel_requested),
                )
                for row in taken
            ),
            key=lambda run: order[run.run_id],
        )

    return await db.run(work)


def _project_key(row: Any) -> int:
    return advisory_key(run_lock_key(row.project_id))


def _choose(
    rows: Sequence[Any],
    working: dict[Any, int],
    *,
    limit: int,
    limits: QueueLimits,
    refused: set[int],
) -> tuple[list[Any], list[Any]]:
    """The candidate rows a claim takes (oldest first), and those it gives up: one run
    per project, within ``limit`` and the per-user and overall caps, none of a project
    whose lock was ``refused``. A run started ``max_attempts`` times already is given up
    instead of taken, and counts toward no cap."""
    working = dict(working)
    total = sum(working.values())
    chosen: list[Any] = []
    spent: list[Any] = []
    projects: set[uuid.UUID] = set()
    for row in rows:
        if len(chosen) >= limit or (limits.overall and total >= limits.overall):
            break
        if row.project_id in projects or _project_key(row) in refused:
            continue
        if limits.per_user and working.get(row.user_id, 0) >= limits.per_user:
            continue
        projects.add(row.project_id)
        if row.attempts >= limits.max_attempts:
            spent.append(row)
            continue
        chosen.append(row)
        working[row.user_id] = working.get(row.user_id, 0) + 1
        total += 1
    return chosen, spent


async def heartbeat(
    db: Database, *, worker: str, run_ids: list[str], lease_seconds: float
) -> dict[str, bool]:
    """Renew the leases of a worker's runs in one statement.

    Returns:
        For each run whose lease this worker still holds, whether a cancel was asked
        for it; a run missing from the answer was taken over (or ended) elsewhere.
    """
    if not run_ids:
        return {}

    async def work(session: AsyncSession) -> dict[str, bool]:
        rows = await session.execute(
            _HEARTBEAT, {"worker": worker, "ids": run_ids, "lease": lease_seconds}
        )
        return {row.run_id: bool(row.cancel_requested) for row in rows}

    return await db.run(work)


async def release(db: Database, *, worker: str, run_ids: list[str]) -> None:
    """End a worker's leases now, so other workers take its runs over at once."""
    if not run_ids:
        return

    async def work(session: AsyncSession) -> None:
        await session.execute(_RELEASE, {"worker": worker, "ids": run_ids})

    await db.run(work)


async def queue_positions(db: Database, *, run_ids: list[str]) -> dict[str, QueuePlace]:
    """Each run's status, its place in the queue while pending, and its attempts."""
    if not run_ids:
        return {}

    async def work(session: AsyncSession) -> dict[str, QueuePlace]:
        rows = await session.execute(_POSITIONS, {"ids": run_ids})
        return {
            row.run_id: QueuePlace(
                row.status, None if row.position is None else int(row.position), int(row.attempts)
            )
            for row in rows
        }

    return await db.run(work)


async def cancel_queued(db: Database, *, run_id: str) -> str | None:
    """Cancel a run from any process: a pending one at once, a running one through its
    worker's next heartbeat.

    Returns:
        ``"dropped"`` (it was pending and is now cancelled), ``"requested"`` (it is
        running; its worker will stop it), or None (it has ended, or is unknown).
    """

    async def work(session: AsyncSession) -> str | None:
        if (await session.execute(_CANCEL_PENDING, {"run_id": run_id})).first() is not None:
            return "dropped"
        if (await session.execute(_CANCEL_RUNNING, {"run_id": run_id})).first() is not None:
            return "requested"
        return None

    return await db.run(work)


async def resumable_run(db: Database, *, project_id: uuid.UUID) -> str | None:
    """The id of the project's newest run that has not ended: interrupted, or recorded as
    running (its worker died, or has not been heard from since its lease began)."""

    async def work(session: AsyncSession) -> str | None:
        row = (await session.execute(_RESUMABLE, {"project_id": project_id})).first()
        return None if row is None else str(row.run_id)

    return await db.run(work)


async def reset_abandoned(db: Database, *, worker: str, mine: list[str], error: str) -> list[str]:
    """Mark runs nobody works any more as interrupted (for processes that take none over).

    A run is abandoned when its lease has run out, or when it is this worker's and not
    among the runs it works (its end could not be recorded).

    Returns:
        The run ids marked.
    """

    async def work(session: AsyncSession) -> list[str]:
        rows = (
            await session.execute(_ABANDONED, {"worker": worker, "mine": mine, "error": error})
        ).all()
        if rows:
            await session.execute(_THREADS_INTERRUPTED, {"ids": [row.thread_id for row in rows]})
        return [row.run_id for row in rows]

    return await db.run(work)
