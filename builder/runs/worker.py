"""A process's worker: claims queued runs, keeps their leases, hands them over on shutdown.

One :class:`RunWorker` per :class:`~builder.runs.service.RunService`. Its pump claims
runs (:func:`~builder.runs.queue.claim`) whenever it is woken by a local start or every
``BUILDER_RUN_POLL_SECONDS``, and tells the runs started in this process but worked
elsewhere where they went. In the same round, one query gives the places in the queue
of all those still pending; the runs whose place changed are passed to ``on_position``
(which publishes their ``queued`` events). With nothing queued, no query is made. Its
heartbeat renews the leases of every run it works in
one statement every third of ``BUILDER_RUN_LEASE_SECONDS``; a run whose lease was taken
over is stopped at once, and a run someone asked to cancel (from any process, through
the database) is cancelled.

Modes:

* ``all`` — ``builder serve`` and ``builder worker``: any queued run, and runs whose
  worker died (taken over from their last checkpoint);
* ``own`` — the runs started in this process only (``builder run``, the library);
* ``none`` — ``builder serve --no-worker``: starts runs and follows them, works none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

from builder.log import get_logger
from builder.persistence.database import Database
from builder.runs.handle import RunHandle
from builder.runs.queue import ClaimedRun, QueueLimits, claim, heartbeat, queue_positions
from builder.settings import Settings

__all__ = ["RunWorker", "WorkerMode", "worker_id"]

WorkerMode = Literal["all", "own", "none"]

_log = get_logger("builder.runs.worker")
_GATHER_SECONDS = 0.01


def worker_id() -> str:
    """A new worker's id: host, process and a random part (unique across restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RunWorker:
    """Claims runs for a service and keeps their leases (see the module docstring).

    Args:
        db: The database holding the queue.
        settings: Lease, poll interval, caps.
        mode: Which runs it claims.
        concurrency: Most runs it works at once.
        adopt: Called with a run claimed that was not started in this process.
        shared_events: Runs' events reach every process (Redis): claim any queued run.
            Without, claim the runs started here first (see :func:`claim`'s ``own``).
        on_position: Called with the pending runs started here whose place in the
            queue (``handle.position``) is new or has changed.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        mode: WorkerMode,
        concurrency: int,
        adopt: Callable[[ClaimedRun], None],
        shared_events: bool = True,
        on_position: Callable[[list[RunHandle]], Awaitable[None]] | None = None,
    ) -> None:
        self.shared_events = shared_events
        # Claims and heartbeats on two connections of their own: runs busy with the
        # main pool must not delay a heartbeat past the lease.
        self.db = Database(
            db.url,
            settings=db.settings.model_copy(update={"db_pool_size": 2, "db_max_overflow": 0}),
        )
        self.mode: WorkerMode = mode
        self.concurrency = concurrency
        self.id = worker_id()
        self.limits = QueueLimits(
            lease_seconds=settings.run_lease_seconds,
            per_user=settings.runs_per_user,
            overall=settings.runs_global,
            max_attempts=settings.run_max_attempts,
            affinity_seconds=settings.run_affinity_seconds,
        )
        self.replica = settings.advertise_url
        self.poll_seconds = settings.run_poll_seconds
        self.waiting: dict[str, RunHandle] = {}
        """Runs started here and not yet placed (claimed here, or seen elsewhere)."""
        self.working: dict[str, RunHandle] = {}
        """Runs this worker works, by id."""
        self._adopt = adopt
        self._on_position = on_position
        self._wake = asyncio.Event()
        self._woken = False
        """Whether the round under way was started by :meth:`wake` (or a placement)."""
        self._tasks: list[asyncio.Task[None]] = []
        self.claiming = False

    def start(self) -> None:
        """Start the pump and the heartbeat."""
        self.claiming = self.mode != "none"
        self._tasks = [
            asyncio.create_task(self._forever(self._pump_once, self._wait), name="run-pump"),
            asyncio.create_task(
                self._forever(self._beat_once, self._beat_wait), name="run-heartbeat"
            ),
        ]

    def wait_for_placement(self, handle: RunHandle) -> None:
        """Place a run started in this process as soon as possible."""
        self.waiting[handle.run_id] = handle
        self._wake.set()

    def wake(self) -> None:
        """Look for work now (a run ended, or was queued)."""
        self._wake.set()

    def stop_claiming(self) -> None:
        """Claim nothing more (a shutdown has begun); leases are still renewed."""
        self.claiming = False

    async def close(self) -> None:
        """Stop the pump and the heartbeat."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.db.dispose()

    # --- internals ----------------------------------------------------------------------
    async def _forever(
        self, once: Callable[[], Awaitable[None]], wait: Callable[[], Awaitable[None]]
    ) -> None:
        while True:
            try:
                await once()
            except Exception:  # the database is away: the next round tries again
                _log.exception("worker.round_failed")
            await wait()

    async def _wait(self) -> None:
        self._woken = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_seconds):
                await self._wake.wait()
                self._woken = True
        if self._woken:
            # Starts come in bursts: one claim for those a moment apart.
            await asyncio.sleep(_GATHER_SECONDS)
        self._wake.clear()

    async def _beat_wait(self) -> None:
        await asyncio.sleep(self.limits.lease_seconds / 3)

    async def _pump_once(self) -> None:
        # Runs queued while this round claims wait for the next one (it comes at once):
        # one that is about to be claimed is not reported as queued.
        considered = list(self.waiting)
        free = self.concurrency - len(self.working)
        if self.claiming and free > 0 and (self.mode == "all" or self.waiting):
            only = None if self.mode == "all" else list(self.waiting)
            if self._woken and self.waiting:
                # Woken by runs started here: claim those, and leave the runs other
                # processes started to their own workers (woken the same way) until
                # the next poll. Otherwise the first worker to wake takes a whole burst
                # and its process's loop works every run while the others idle, and
                # each run's events cross Redis to the process that streams them.
                only = list(self.waiting)
            claimed = await claim(
                self.db,
                worker=self.id,
                limit=free,
                limits=self.limits,
                only=only,
                mine=list(self.working),
                own=None if self.shared_events else list(self.waiting),
                replica=self.replica,
            )
            for run in claimed:
                handle = self.waiting.pop(run.run_id, None)
                if handle is not None and not handle._placed.done():
                    self.working[run.run_id] = handle
                    handle._placed.set_result(run)
                else:
                    self._adopt(run)
        considered = [run_id for run_id in considered if run_id in self.waiting]
        if not considered:
            return
        moved: list[RunHandle] = []
        for run_id, (status, position, attempts) in (
            await queue_positions(self.db, run_ids=considered)
        ).items():
            handle = self.waiting.get(run_id)
            if handle is None:
                continue
            if status == "running" and attempts == handle._takeover_of:
                continue  # still its stopped worker's until the lease runs out
            if status == "pending":
                if not handle._missed_a_claim:
                    # Its first round: a claim can miss a run whose row its starter is
                    # still writing (the LangGraph API records the run's options right
                    # after queueing it); it is in line only if the next round misses
                    # it too, which comes at once.
                    handle._missed_a_claim = True
                    self._wake.set()
                    continue
                if position != handle.position:
                    handle.position = position
                    moved.append(handle)
                continue
            # Claimed by another worker, or ended (cancelled while queued).
            del self.waiting[run_id]
            if not handle._placed.done():
                handle._placed.set_result(status)
        if moved and self._on_position is not None:
            await self._on_position(moved)

    async def _beat_once(self) -> None:
        ids = list(self.working)
        if not ids:
            return
        held = await heartbeat(
            self.db, worker=self.id, run_ids=ids, lease_seconds=self.limits.lease_seconds
        )
        for run_id in ids:
            handle = self.working.get(run_id)
            if handle is None or handle.done or handle._finishing:
                continue
            if run_id not in held:
                _log.warning("worker.lease_lost", run_id=run_id)
                handle._lost = handle._handing_over = True
                handle._hard_cancel()
            elif held[run_id]:
                handle.cancel()
