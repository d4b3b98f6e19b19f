"""A TTL-bounded LangGraph checkpointer on PostgreSQL.

The agent's working context — a LangGraph thread's checkpoints — is disposable: the
durable project (messages and file snapshots) is kept elsewhere and a context can be
rebuilt from it. So contexts are bounded in time and number:

* every access (read, write, list) refreshes the thread's expiry (``ttl_seconds``,
  30 minutes by default, or the thread's own ``ttl_seconds``);
* :meth:`TTLCheckpointer.sweep` removes expired contexts and then evicts the least
  recently used idle contexts above ``max_live`` — in batches, each row locked with
  ``FOR UPDATE SKIP LOCKED`` so several processes can sweep at once without doing the
  same work twice (eviction, which counts before it picks, is done by one sweeper at a
  time so that two cannot both evict the same excess);
* a thread whose run holds a live lease in the run queue (``runs.lease_expires_at``)
  is passed over by the sweeper: a running context is never swept, and a crashed
  run's lease runs out. No connection is held for a run: any number of runs in
  progress share the pool their checkpoints go through. (:meth:`hold_context` keeps a
  thread with no run, for tools outside a run, by holding ``FOR KEY SHARE`` on its row
  on a connection of its own.) Sweeps use a connection of their own too;
* a live thread keeps only its latest checkpoint between runs: a run that ends
  (done, or stopped by a limit) prunes the checkpoints it went through
  (:meth:`TTLCheckpointer.prune_history`), so a thread's storage is its current state
  — not every step's copy of the conversation — however many turns it lives. A run
  that fails or is cut short keeps them all, for resuming.

It is :class:`~langgraph.checkpoint.postgres.aio.AsyncPostgresSaver` underneath (and
passes ``langgraph-checkpoint-conformance``); the thread table is ``threads``, created
by builder's migrations.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from builder.graphs.serializer import MessageListSerializer
from builder.locks import advisory_key, holding_transaction
from builder.log import get_logger
from builder.retry import db_retry, db_retry_after_first
from builder.settings import Settings

__all__ = ["SweepResult", "TTLCheckpointer"]

Strategy = Literal["delete", "keep_latest"]
T = TypeVar("T")

_log = get_logger("builder.checkpointer")

TOUCH_SQL = """
INSERT INTO threads (thread_id, last_activity_at, expires_at)
VALUES (%(thread_id)s, now(), now() + make_interval(secs => %(ttl)s))
ON CONFLICT (thread_id) DO UPDATE
SET last_activity_at = now(),
    expires_at = now() + make_interval(secs => coalesce(threads.ttl_seconds, %(ttl)s))
"""

# TOUCH_SQL for a thread that has checkpoints: a read of an unknown thread adds no row.
TOUCH_STORED_SQL = """
INSERT INTO threads (thread_id, last_activity_at, expires_at)
SELECT %(thread_id)s, now(), now() + make_interval(secs => %(ttl)s)
WHERE EXISTS (SELECT 1 FROM checkpoints WHERE thread_id = %(thread_id)s)
ON CONFLICT (thread_id) DO UPDATE
SET last_activity_at = now(),
    expires_at = now() + make_interval(secs => coalesce(threads.ttl_seconds, %(ttl)s))
"""

# One checkpoint (the latest of a thread and namespace, or the one named) with its
# values and its pending writes, a row each, in one statement and so from one snapshot.
# The parent's query nests every value in arrays (array[...] inside array_agg), which
# the server copies and the client takes apart again: for a 180 KB conversation that
# costs more than reading it. Part 0 is the checkpoint, 1 its values, 2 its writes.
READ_CHECKPOINT_SQL = """
WITH c AS MATERIALIZED (
    SELECT checkpoint, checkpoint_id, parent_checkpoint_id, metadata
    FROM checkpoints
    WHERE thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
      AND (%(checkpoint_id)s::text IS NULL OR checkpoint_id = %(checkpoint_id)s)
    ORDER BY checkpoint_id DESC
    LIMIT 1
)
SELECT 0 AS part, checkpoint, checkpoint_id, parent_checkpoint_id, metadata,
       NULL::text AS task_id, NULL::text AS task_path, NULL::int AS idx,
       NULL::text AS channel, NULL::text AS type, NULL::bytea AS blob
FROM c
UNION ALL
SELECT 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, bl.channel, bl.type, bl.blob
FROM c
CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
JOIN checkpoint_blobs bl
  ON bl.thread_id = %(thread_id)s AND bl.checkpoint_ns = %(checkpoint_ns)s
 AND bl.channel = v.key AND bl.version = v.value
UNION ALL
SELECT 2, NULL, NULL, NULL, NULL, cw.task_id, cw.task_path, cw.idx, cw.channel, cw.type, cw.blob
FROM c
JOIN checkpoint_writes cw
  ON cw.thread_id = %(thread_id)s AND cw.checkpoint_ns = %(checkpoint_ns)s
 AND cw.checkpoint_id = c.checkpoint_id
"""

# A thread whose run holds a live lease (see builder.runs.queue) is never swept: the
# lease row, not a connection held for the whole run, keeps its context.
SELECT_EXPIRED_SQL = """
SELECT thread_id FROM threads
WHERE expires_at IS NOT NULL AND expires_at <= now()
  AND NOT EXISTS (
      SELECT 1 FROM runs WHERE runs.thread_id = threads.thread_id
        AND runs.status = 'running' AND runs.lease_expires_at > now())
ORDER BY expires_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""

EVICTION_LOCK_SQL = "SELECT pg_try_advisory_xact_lock(%(key)s) AS locked"

# Eviction counts and picks unexpired contexts only: expired ones are the other phase's
# work (maybe another sweeper's, not yet committed), and counting them would evict
# live contexts in their place.
COUNT_LIVE_SQL = "SELECT count(*) AS n FROM threads WHERE expires_at > now()"

SELECT_LEAST_RECENT_SQL = """
SELECT thread_id FROM threads
WHERE expires_at > now()
  AND NOT EXISTS (
      SELECT 1 FROM runs WHERE runs.thread_id = threads.thread_id
        AND runs.status = 'running' AND runs.lease_expires_at > now())
ORDER BY last_activity_at, thread_id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""

MARK_SWEPT_SQL = """
UPDATE threads SET expires_at = NULL, swept_at = now()
WHERE thread_id = ANY(%(ids)s)
"""

HOLD_SQL = "SELECT thread_id FROM threads WHERE thread_id = %(thread_id)s FOR KEY SHARE"

_EVICTION_LOCK = advisory_key("builder:contexts:evict")

# The thread whose checkpoint write is under way in this task, for its cursor to refresh.
_TOUCHING: ContextVar[str | None] = ContextVar("builder_checkpoint_touching", default=None)

Settle = Callable[[Mapping[str, Any] | None, BaseException | None], Awaitable[BaseException | None]]
"""What a carried statement's owner does once its transaction ended: called with the
statement's row after the commit, or with the error that rolled it back (and then
returns the error to raise instead, or None to raise that one)."""


@dataclass(eq=False)
class _Carried:
    """A statement that commits with a task's writes (:meth:`TTLCheckpointer.carry`)."""

    statement: str
    params: dict[str, Any]
    settle: Settle
    after: Callable[[], Awaitable[None]] | None = None
    row: Mapping[str, Any] | None = None


@dataclass
class _Riding:
    """A task's writes (and their carried statement, if any) waiting for the thread's
    next checkpoint (under a lease, :meth:`TTLCheckpointer.aput_writes`)."""

    write: tuple[RunnableConfig, Sequence[tuple[str, Any]], str, str]
    """``aput_writes``'s arguments: config, writes, task id, task path."""
    carried: _Carried | None


async def _after_riding(riding: Sequence[_Riding]) -> None:
    """Once riding writes committed: their carried statements' ``after``."""
    for item in riding:
        if item.carried is not None and item.carried.after is not None:
            await item.carried.after()


# The carried statements of the checkpoint write under way in this task.
_CARRYING: ContextVar[list[_Carried] | None] = ContextVar(
    "builder_checkpoint_carrying", default=None
)

CONTEXT_STATE_SQL = """
SELECT expires_at, swept_at, expires_at IS NOT NULL AND expires_at > now() AS live
FROM threads WHERE thread_id = %(thread_id)s
"""


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep removed."""

    expired: list[str] = field(default_factory=list)
    """Threads whose context had expired."""
    evicted: list[str] = field(default_factory=list)
    """Idle threads evicted, least recently used first, to respect ``max_live``."""
    strategy: Strategy = "delete"

    @property
    def total(self) -> int:
        """How many contexts were removed."""
        return len(self.expired) + len(self.evicted)


class TTLCheckpointer(AsyncPostgresSaver):
    """An :class:`AsyncPostgresSaver` whose threads expire and are bounded in number.

    Args:
        conn: A psycopg ``AsyncConnectionPool`` (recommended: operations run
            concurrently) or a single ``AsyncConnection`` (autocommit, dict rows).
        ttl_seconds: Idle seconds before a context expires (per-thread override in
            ``threads.ttl_seconds``).
        max_live: Most unexpired contexts kept; the sweeper evicts the least recently
            used idle ones above it.
        strategy: ``"delete"`` removes every checkpoint of an expired thread;
            ``"keep_latest"`` keeps only its latest checkpoint.
        serde: LangGraph serializer, as for ``AsyncPostgresSaver``; by default its own
            serializer that encodes each message of the conversation once
            (:class:`~builder.graphs.serializer.MessageListSerializer`).
        keep_history: Keep every checkpoint of a live thread; by default a run that
            ends well (:meth:`prune_history`) prunes all but the thread's latest.
    """

    def __init__(
        self,
        conn: AsyncConnectionPool[AsyncConnection[DictRow]] | AsyncConnection[DictRow],
        *,
        ttl_seconds: float = 1800,
        max_live: int = 100,
        strategy: Strategy = "delete",
        serde: SerializerProtocol | None = None,
        keep_history: bool = False,
    ) -> None:
        super().__init__(conn, serde=serde or MessageListSerializer())
        self.keep_history = keep_history
        self.ttl_seconds = ttl_seconds
        self.max_live = max_live
        self.strategy: Strategy = strategy
        # Threads this process holds (hold_context), with how many holders each: their
        # rows cannot be swept while held, so refreshing them on every checkpoint write
        # would be wasted work; they are refreshed when the hold starts and ends.
        self._held: dict[str, int] = {}
        # Statements to commit with a task's writes (carry), by thread and task; and,
        # by thread, those under way, which the thread's next checkpoint waits for.
        self._carried: dict[tuple[str, str], _Carried] = {}
        self._carrying: dict[str, set[asyncio.Future[None]]] = {}
        # Threads whose run works under a lease here (under_lease), and the writes with
        # a carried statement that wait there for the thread's next checkpoint.
        self._leased: dict[str, int] = {}
        self._riding: dict[str, list[_Riding]] = {}

    @classmethod
    @asynccontextmanager
    async def from_settings(
        cls, dsn: str, settings: Settings, *, pool_max: int = 10
    ) -> AsyncIterator[TTLCheckpointer]:
        """A checkpointer on its own connection pool, configured from settings.

        Args:
            dsn: A ``postgresql://`` DSN (the SQLAlchemy ``+psycopg`` form is accepted).
            settings: Supplies TTL, ``max_live_contexts`` and the sweep strategy.
            pool_max: Most connections in the pool.
        """
        dsn = dsn.replace("postgresql+psycopg://", "postgresql://", 1)
        async with AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_max,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False,
            timeout=settings.timeout_db,
        ) as pool:
            yield cls(
                pool,  # type: ignore[arg-type]
                ttl_seconds=settings.context_ttl_seconds,
                max_live=settings.max_live_contexts,
                strategy=settings.context_sweep_strategy,
            )

    # --- access refreshes the TTL --------------------------------------------------
    @db_retry()
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Like the parent; also refreshes the thread's expiry when it has a context.

        The checkpoint, its values and its writes come as rows of one statement
        (:data:`READ_CHECKPOINT_SQL`), sent with the expiry's refresh in one round trip,
        and are decoded in this task (the parent decodes the writes in a worker thread).
        """
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        params = {
            "thread_id": thread_id,
            "checkpoint_ns": configurable.get("checkpoint_ns", ""),
            "checkpoint_id": get_checkpoint_id(config),
        }
        touch = thread_id not in self._held
        if isinstance(self.conn, AsyncConnectionPool) and self.pipe is None:
            async with (
                self._pooled() as conn,
                conn.pipeline(),
                conn.cursor(binary=True, row_factory=dict_row) as cur,
                conn.cursor() as side,
            ):
                await cur.execute(READ_CHECKPOINT_SQL, params)
                if touch:
                    await side.execute(
                        TOUCH_STORED_SQL, {"thread_id": thread_id, "ttl": self.ttl_seconds}
                    )
                rows = await cur.fetchall()
        else:
            async with self._cursor() as cur:
                await cur.execute(READ_CHECKPOINT_SQL, params)
                rows = await cur.fetchall()
            if rows and touch:
                await self.touch(thread_id)
        if not rows:
            return None
        head = rows[0]
        checkpoint = head["checkpoint"]
        if checkpoint["v"] < 4 and head["parent_checkpoint_id"]:
            # Sends stored the pre-v4 way are moved into the checkpoint by the parent.
            return await super().aget_tuple(config)
        return self._checkpoint_tuple(params, head, rows)

    def _checkpoint_tuple(
        self, params: dict[str, Any], head: DictRow, rows: list[DictRow]
    ) -> CheckpointTuple:
        """The tuple of :data:`READ_CHECKPOINT_SQL`'s rows, as the parent builds it."""
        loads = self.serde.loads_typed
        values = dict(head["checkpoint"].get("channel_values") or {})
        writes = []
        for row in rows:
            if row["part"] == 1 and row["type"] != "empty":
                values[row["channel"]] = loads((row["type"], row["blob"]))
            elif row["part"] == 2:
                writes.append(row)
        writes.sort(key=lambda w: writes_sort_key(w["task_path"], w["task_id"], w["idx"]))
        thread = {"thread_id": params["thread_id"], "checkpoint_ns": params["checkpoint_ns"]}
        parent_id = head["parent_checkpoint_id"]
        checkpoint = cast(Checkpoint, {**head["checkpoint"], "channel_values": values})
        return CheckpointTuple(
            {"configurable": {**thread, "checkpoint_id": head["checkpoint_id"]}},
            checkpoint,
            head["metadata"],
            {"configurable": {**thread, "checkpoint_id": parent_id}} if parent_id else None,
            [(w["task_id"], w["channel"], loads((w["type"], w["blob"]))) for w in writes],
        )

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Like the parent; listing one thread also refreshes its expiry when it has a context."""
        thread_id = (config or {}).get("configurable", {}).get("thread_id")
        if thread_id is not None and str(thread_id) not in self._held:
            # Before listing, not during: with a single connection the parent holds its
            # lock while it yields, and a refresh from inside the loop would wait on it.
            async with self._cursor() as cur:
                await cur.execute(
                    TOUCH_STORED_SQL, {"thread_id": str(thread_id), "ttl": self.ttl_seconds}
                )
        async for item in super().alist(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Like the parent; also refreshes the thread's expiry, in the same round trip.

        A checkpoint is written only once the statements carried with the writes of the
        tasks before it (:meth:`carry`) are committed; when one failed, so does this.
        Under a lease (:meth:`under_lease`) those writes and statements are committed
        with it, in its transaction.
        """
        thread_id = str(config["configurable"]["thread_id"])
        for under_way in list(self._carrying.get(thread_id, ())):
            await under_way
        # Statements whose task's writes were never stored go with the checkpoint.
        left = [key for key in self._carried if key[0] == thread_id]
        carried = [self._carried.pop(key) for key in left]
        riding = self._riding.pop(thread_id, [])
        carried += [item.carried for item in riding if item.carried is not None]
        stored = await self._settled(
            carried, self._aput(config, checkpoint, metadata, new_versions, riding)
        )
        await _after_riding(riding)
        return stored

    async def _flush_riding(self, thread_id: str, riding: list[_Riding]) -> None:
        """Store writes that were waiting for a checkpoint, in one transaction."""
        carried = [item.carried for item in riding if item.carried is not None]
        await self._settled(carried, self._aput_riding(thread_id, riding))
        await _after_riding(riding)

    async def _aput_riding_once(self, thread_id: str, riding: Sequence[_Riding]) -> None:
        writes = [s for item in riding for s in self._writes_statements(*item.write)]
        await self._send_writes(thread_id, writes)

    async def _send_writes(self, thread_id: str, statements: list[tuple[str, list[Any]]]) -> None:
        """Send writes' statements in one transaction, with the expiry refresh."""
        token = _TOUCHING.set(thread_id)
        try:
            async with self._cursor(pipeline=True, statements=len(statements)) as cur:
                for statement in statements:
                    await cur.execute(*statement)
        finally:
            _TOUCHING.reset(token)

    async def _aput_once(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        riding: Sequence[_Riding] = (),
    ) -> RunnableConfig:
        """The parent's checkpoint write, with the channel values encoded in this task
        (and the writes that ride with it, :meth:`aput_writes`).

        The parent encodes them on a worker thread. The encoder holds the interpreter
        lock all the same, so the event loop gains nothing from it, while the hop costs
        a step more than encoding what the step changed (messages are encoded once, see
        :class:`~builder.graphs.serializer.MessageListSerializer`). Stored as the
        parent stores them: primitive values in the checkpoint row, others as blobs
        under their new versions (a delta channel's snapshot marked ``True`` in the row).
        """
        configurable = config["configurable"]
        thread_id = configurable["thread_id"]
        checkpoint_ns = configurable["checkpoint_ns"]
        inline: dict[str, Any] = {}
        blobs: dict[str, Any] = {}
        for channel, value in checkpoint["channel_values"].items():
            if isinstance(value, _DeltaSnapshot):
                blobs[channel] = value
                inline[channel] = True
            elif value is None or isinstance(value, (str, int, float, bool)):
                inline[channel] = value
            else:
                blobs[channel] = value
        versions = {k: v for k, v in new_versions.items() if k in blobs}
        rows = self._dump_blobs(thread_id, checkpoint_ns, blobs, versions)
        stored = {**checkpoint, "channel_values": inline}
        params: list[Any] = [thread_id, checkpoint_ns] if rows else []
        for row in rows:
            params += row[2:]  # channel, version, type, blob
        params += (
            thread_id,
            checkpoint_ns,
            checkpoint["id"],
            configurable.get("checkpoint_id"),
            Jsonb(stored),
            Jsonb(get_serializable_checkpoint_metadata(config, metadata)),
        )
        statement = _checkpoint_statement(len(rows))
        writes = [self._writes_statements(*item.write) for item in riding]
        token = _TOUCHING.set(str(thread_id))
        try:
            count = 1 + sum(len(each) for each in writes)
            async with self._cursor(pipeline=True, statements=count) as cur:
                for each in writes:
                    for write in each:
                        await cur.execute(*write)
                await cur.execute(statement, params)
        finally:
            _TOUCHING.reset(token)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Like the parent; also refreshes the thread's expiry, in the same round trip,
        and runs the statement carried with the task's writes (:meth:`carry`) in the
        same transaction.

        Under a lease (:meth:`under_lease`) a task's writes to the graph's channels
        wait for the thread's next checkpoint and are committed in its transaction:
        LangGraph writes that checkpoint as soon as the step's tasks are done, and
        would wait for the writes to commit first. Writes of LangGraph's own channels
        (an error, an interrupt, a resume value) are for a step that stops there: they
        are stored at once, with the writes waiting before them.
        """
        thread_id = str(config["configurable"]["thread_id"])
        carried = self._carried.pop((thread_id, task_id), None)
        if thread_id in self._leased and self.carries_statements:
            ride = _Riding((config, writes, task_id, task_path), carried)
            if carried is not None or not any(ch in WRITES_IDX_MAP for ch, _ in writes):
                # Until the checkpoint neither is stored: a run that stops first runs
                # the task again when resumed, as after a crash.
                self._riding.setdefault(thread_id, []).append(ride)
                return
            before = self._riding.pop(thread_id, [])
            if before:
                await self._flush_riding(thread_id, [*before, ride])
                return
        if carried is None:
            await self._aput_writes(config, writes, task_id, task_path)
            return
        under_way: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Retrieved: the failure is raised by this call and by the next checkpoint's.
        under_way.add_done_callback(lambda done: done.cancelled() or done.exception())
        waiting = self._carrying.setdefault(thread_id, set())
        waiting.add(under_way)
        try:
            await self._settled([carried], self._aput_writes(config, writes, task_id, task_path))
        except BaseException as exc:
            under_way.set_exception(exc)
            raise
        else:
            under_way.set_result(None)
        finally:
            waiting.discard(under_way)
            if not waiting:
                self._carrying.pop(thread_id, None)
        if carried.after is not None:
            await carried.after()  # the next checkpoint need not wait for it

    async def _aput_writes_once(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """The parent's write of a task's writes, encoded in this task (see
        :meth:`_aput_once`): special channels' writes replace the ones stored under
        their index, the others are kept if stored already."""
        statements = self._writes_statements(config, writes, task_id, task_path)
        await self._send_writes(str(config["configurable"]["thread_id"]), statements)

    def _writes_statements(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> list[tuple[str, list[Any]]]:
        """A task's writes as statements and their parameters: one statement, or one
        per :data:`_MAX_ROWS` writes."""
        configurable = config["configurable"]
        replace = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        rows = self._dump_writes(
            configurable["thread_id"],
            configurable["checkpoint_ns"],
            configurable["checkpoint_id"],
            task_id,
            task_path,
            writes,
        )
        if replace:
            rows = _last_per_key(rows)
        statements = []
        for start in range(0, len(rows), _MAX_ROWS):
            chunk = rows[start : start + _MAX_ROWS]
            params: list[Any] = list(chunk[0][:5])  # thread … task path
            for row in chunk:
                params += row[5:]  # index, channel, type, blob
            statements.append((_writes_statement(len(chunk), replace=replace), params))
        return statements

    # Idempotent, so tried again after a lost connection: the parent upserts a
    # checkpoint by its id and writes by (task, index); a carried statement is
    # idempotent too (see carry).
    _aput = db_retry_after_first()(_aput_once)
    _aput_writes = db_retry_after_first()(_aput_writes_once)
    _aput_riding = db_retry_after_first()(_aput_riding_once)

    @property
    def carries_statements(self) -> bool:
        """Whether :meth:`carry` is available: a pool whose connections pipeline."""
        return isinstance(self.conn, AsyncConnectionPool) and self.supports_pipeline

    def carry(
        self,
        thread_id: str,
        task_id: str,
        statement: str,
        params: dict[str, Any],
        settle: Settle,
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Commit ``statement`` with the writes of task ``task_id`` of thread
        ``thread_id``, in the same round trip and transaction.

        For a node whose effect must be stored exactly when its result is: the writes
        and the statement are both committed or neither is, so a task re-run after a
        crash is one whose statement did not commit. The thread's next checkpoint is
        written only after them; if they fail, it fails with their error, which stops
        a run with ``durability="sync"`` before its next step. ``settle`` is awaited
        once the transaction ended (with the statement's row, or the error); ``after``,
        once it committed and settled, while the thread's next checkpoint is written
        (the run waits for it before it ends). Call it from the task itself, at its
        end, in a run whose writes are stored as each task ends (``durability``
        ``"sync"`` or ``"async"``); a statement whose task's writes are never stored is
        committed with the thread's next checkpoint.

        The statement may run twice (a write is tried again after a lost connection):
        it must be idempotent.

        Raises:
            TypeError: The checkpointer cannot (see :attr:`carries_statements`).
        """
        if not self.carries_statements:
            raise TypeError("carrying statements needs a connection pool with pipelines")
        self._carried[(str(thread_id), task_id)] = _Carried(statement, params, settle, after)

    async def _settled(self, carried: list[_Carried], write: Awaitable[T]) -> T:
        """Run ``write`` with ``carried`` in its transaction, then settle them."""
        if not carried:
            return await write
        token = _CARRYING.set(carried)
        try:
            result = await write
        except BaseException as exc:
            for item in carried:
                instead = await item.settle(None, exc)
                if instead is not None:
                    raise instead from exc
            raise
        finally:
            _CARRYING.reset(token)
        for item in carried:
            await item.settle(item.row, None)
        return result

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete a thread's checkpoints; its row stays, with no live context."""
        await super().adelete_thread(thread_id)
        async with self._cursor() as cur:
            await cur.execute(MARK_SWEPT_SQL, {"ids": [str(thread_id)]})

    async def touch(self, thread_id: str, *, ttl_seconds: float | None = None) -> None:
        """Refresh a thread's expiry (creating its row if needed).

        Skipped while this process holds the thread (:meth:`hold_context`): a held
        thread cannot expire, and the hold refreshes it when it ends.
        """
        if str(thread_id) in self._held:
            return
        async with self._cursor() as cur:
            await cur.execute(
                TOUCH_SQL, {"thread_id": str(thread_id), "ttl": ttl_seconds or self.ttl_seconds}
            )

    async def context_is_live(self, thread_id: str) -> bool:
        """Whether a thread has an unexpired context (False when unknown or swept)."""
        async with self._cursor() as cur:
            await cur.execute(CONTEXT_STATE_SQL, {"thread_id": str(thread_id)})
            row = await cur.fetchone()
        return bool(row and row["live"])

    # --- runs ------------------------------------------------------------------------
    @asynccontextmanager
    async def hold_context(self, thread_id: str) -> AsyncIterator[None]:
        """Keep a thread's context from being swept while the block runs.

        Holds ``FOR KEY SHARE`` on the thread's row in a transaction on a connection of
        its own (not one of the pool's); the sweeper's ``FOR UPDATE SKIP LOCKED``
        passes over it. Writes to the row (TTL refreshes) are not blocked by it. The
        expiry is refreshed when the hold starts and when it ends, not on every
        checkpoint in between. When the block ends without an error, the thread's
        checkpoints but the latest are pruned (unless ``keep_history``); after an
        error they are all kept, so the run can be resumed.
        """
        key = str(thread_id)
        await self.touch(key)
        async with (
            await self._dedicated_connection() as conn,
            holding_transaction(conn),
        ):
            await conn.execute(HOLD_SQL, {"thread_id": key})
            with self._refreshed_at_end(key):
                yield
                await self.prune_history(key)
        await self._touch_after(key)

    @asynccontextmanager
    async def under_lease(self, thread_id: str) -> AsyncIterator[None]:
        """Refresh a thread's expiry when the block ends, not on every checkpoint write
        in it, for a run whose lease keeps the thread from being swept or evicted
        meanwhile (the runs of :mod:`builder.runs.queue`): around the graph's run, once
        it has read the thread's state, which refreshed the expiry.

        Unlike :meth:`hold_context` it takes no connection and no row lock: the lease
        row is what the sweeper checks. Nothing is pruned here. As with
        :meth:`hold_context`, the end refreshes the expiry only when the block ends
        without an error (the database may be what failed).
        """
        key = str(thread_id)
        self._leased[key] = self._leased.get(key, 0) + 1
        try:
            with self._refreshed_at_end(key):
                yield
        finally:
            remaining = self._leased.pop(key) - 1
            if remaining:
                self._leased[key] = remaining
            else:
                # Writes no checkpoint took (the run stopped first) are not stored.
                self._riding.pop(key, None)
        await self._touch_after(key)

    @contextmanager
    def _refreshed_at_end(self, key: str) -> Iterator[None]:
        """Mark the thread held by this process (no refresh per write) while inside."""
        self._held[key] = self._held.get(key, 0) + 1
        try:
            yield
        finally:
            remaining = self._held.pop(key) - 1
            if remaining:
                self._held[key] = remaining

    async def _touch_after(self, key: str) -> None:
        try:
            await self.touch(key)
        except psycopg.Error as exc:
            # The server is gone (a hold went with it): the sweeper's TTL still holds.
            _log.warning("checkpointer.touch_failed", thread_id=key, error=str(exc))

    async def rewind(self, thread_id: str, checkpoint_id: str) -> int:
        """Make ``checkpoint_id`` the thread's latest checkpoint, with nothing pending.

        Drops the checkpoints written after it and the writes of the tasks run from
        it, so the graph runs those tasks again from it and the history stays one
        line. For a run taken over on another machine whose latest steps' effects
        (files in a sandbox that went away) must be made again.

        Returns:
            How many checkpoints were dropped.
        """
        key = {"thread_id": str(thread_id), "checkpoint_id": checkpoint_id}
        async with self._cursor(pipeline=True) as cur:
            await cur.execute(
                "DELETE FROM checkpoint_writes WHERE thread_id = %(thread_id)s "
                "AND checkpoint_ns = '' AND checkpoint_id >= %(checkpoint_id)s",
                key,
            )
            await cur.execute(
                "DELETE FROM checkpoints WHERE thread_id = %(thread_id)s "
                "AND checkpoint_ns = '' AND checkpoint_id > %(checkpoint_id)s",
                key,
            )
            return cur.rowcount

    async def prune_history(self, thread_id: str) -> None:
        """Keep only the thread's latest checkpoint (unless ``keep_history``).

        Called when a run ends well; a failure here costs only storage, so it is
        logged, and the next run that ends prunes again.
        """
        if self.keep_history:
            return
        try:
            await self.aprune([str(thread_id)], strategy="keep_latest")
        except psycopg.Error as exc:
            _log.warning("checkpointer.prune_failed", thread_id=thread_id, error=str(exc))

    # --- sweeping --------------------------------------------------------------------
    async def sweep(
        self, *, strategy: Strategy | None = None, batch_size: int = 100
    ) -> SweepResult:
        """Remove expired contexts, then evict idle ones above ``max_live``.

        Each batch is one transaction whose rows are locked ``FOR UPDATE SKIP LOCKED``:
        concurrent sweepers split the work, and threads with a run in progress (see
        :meth:`hold_context`) are skipped. Eviction batches also take a transaction-level
        advisory lock; a sweeper that finds another one evicting leaves the eviction to it.

        Returns:
            The thread ids removed, by reason.
        """
        strategy = strategy or self.strategy
        expired: list[str] = []
        evicted: list[str] = []
        async with await self._dedicated_connection() as conn:
            while True:
                batch = await self._sweep_batch(conn, SELECT_EXPIRED_SQL, batch_size, strategy)
                expired.extend(batch)
                if len(batch) < batch_size:
                    break
            while True:
                batch = await self._evict_batch(conn, batch_size, strategy)
                evicted.extend(batch)
                if not batch:  # within the cap, or the rest are running or being evicted
                    break
        result = SweepResult(expired=expired, evicted=evicted, strategy=strategy)
        if result.total:
            _log.info(
                "contexts.swept",
                expired=len(expired),
                evicted=len(evicted),
                strategy=strategy,
            )
        return result

    async def _sweep_batch(
        self, conn: AsyncConnection[DictRow], select_sql: str, limit: int, strategy: Strategy
    ) -> list[str]:
        async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            return await self._remove(cur, select_sql, limit, strategy)

    async def _evict_batch(
        self, conn: AsyncConnection[DictRow], batch_size: int, strategy: Strategy
    ) -> list[str]:
        async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            # Counting and picking must not interleave with another sweeper's: both
            # would see the same excess and, skipping each other's rows, evict it twice.
            await cur.execute(EVICTION_LOCK_SQL, {"key": _EVICTION_LOCK})
            row = await cur.fetchone()
            if not (row and row["locked"]):
                return []
            await cur.execute(COUNT_LIVE_SQL)
            row = await cur.fetchone()
            excess = (row["n"] if row else 0) - self.max_live
            if excess <= 0:
                return []
            return await self._remove(
                cur, SELECT_LEAST_RECENT_SQL, min(excess, batch_size), strategy
            )

    async def _remove(
        self, cur: AsyncCursor[DictRow], select_sql: str, limit: int, strategy: Strategy
    ) -> list[str]:
        await cur.execute(select_sql, {"limit": limit})
        ids = [row["thread_id"] for row in await cur.fetchall()]
        if not ids:
            return []
        # The checkpoint rows are pruned by the parent's tested statements on other
        # connections while this transaction holds the thread rows; if the process dies
        # in between, the rows stay expired and the next sweep prunes them again
        # (pruning is idempotent).
        await self.aprune(ids, strategy=strategy)
        await cur.execute(MARK_SWEPT_SQL, {"ids": ids})
        return ids

    # --- connections -----------------------------------------------------------------
    async def _dedicated_connection(self) -> AsyncConnection[DictRow]:
        """A new connection configured like the pool's, for the caller to close."""
        if not isinstance(self.conn, AsyncConnectionPool):
            raise TypeError("hold_context and sweep need a connection pool, not one connection")
        conninfo = await _resolved(self.conn.conninfo)
        kwargs = {
            "connect_timeout": max(1, round(self.conn.timeout)),  # as the pool connects
            **(await _resolved(self.conn.kwargs) or {}),
            "autocommit": True,
            "row_factory": dict_row,
        }
        return await AsyncConnection.connect(conninfo, **kwargs)

    @asynccontextmanager
    async def _pooled(self) -> AsyncIterator[AsyncConnection[DictRow]]:
        """A connection of the pool; when one fails with a lost connection, the pool's
        other idle connections are checked too, so that after a database restart the
        retry (``db_retry`` on the public methods) does not meet another dead one."""
        assert isinstance(self.conn, AsyncConnectionPool)
        try:
            async with self.conn.connection() as conn:
                yield conn
        except psycopg.OperationalError:
            await self.conn.check()
            raise

    @asynccontextmanager
    async def _cursor(
        self, *, pipeline: bool = False, statements: int = 0
    ) -> AsyncIterator[AsyncCursor[DictRow]]:
        """A cursor; with ``pipeline``, the block's statements (and the thread's expiry
        refresh and the carried statements) are sent together and committed together.

        A block of one statement (``statements=1``) with nothing to send beside it
        runs outside a pipeline: on its own it is one transaction, and one message to
        the server where a pipeline sends three.
        """
        # The parent serialises every operation through one asyncio.Lock because a
        # single connection cannot be shared. With a pool each operation has its own
        # connection, so concurrent runs in one process need not queue behind each other.
        if not isinstance(self.conn, AsyncConnectionPool) or self.pipe is not None:
            async with super()._cursor(pipeline=pipeline) as cur:
                await self._refresh_in(cur)
                yield cur
            return
        touching = _TOUCHING.get()
        if (
            pipeline
            and statements == 1
            and not _CARRYING.get()
            and (touching is None or touching in self._held)
        ):
            pipeline = False
        async with self._pooled() as conn:
            if pipeline and self.supports_pipeline:
                carried = _CARRYING.get() or []
                sides = [conn.cursor(binary=True, row_factory=dict_row) for _ in carried]
                try:
                    async with (
                        conn.pipeline(),
                        conn.cursor(binary=True, row_factory=dict_row) as cur,
                    ):
                        # Sent with the write, in one round trip and one transaction.
                        await self._refresh_in(cur)
                        for item, side in zip(carried, sides, strict=True):
                            await side.execute(item.statement, item.params)
                        yield cur
                    for item, side in zip(carried, sides, strict=True):
                        item.row = await side.fetchone()
                finally:
                    for side in sides:
                        await side.close()
            elif pipeline:
                async with (
                    conn.transaction(),
                    conn.cursor(binary=True, row_factory=dict_row) as cur,
                ):
                    await self._refresh_in(cur)
                    yield cur
            else:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    await self._refresh_in(cur)
                    yield cur

    async def _refresh_in(self, cur: AsyncCursor[DictRow]) -> None:
        """Refresh the expiry of the thread a checkpoint write is for (:meth:`aput`,
        :meth:`aput_writes`), with the write's own statements; once per write."""
        thread_id = _TOUCHING.get()
        if thread_id is None:
            return
        _TOUCHING.set(None)
        if thread_id not in self._held:
            await cur.execute(TOUCH_SQL, {"thread_id": thread_id, "ttl": self.ttl_seconds})


# A statement's parameters are at most 65,535 (a write's rows take four each).
_MAX_ROWS = 5_000

# A task's writes, one statement for them all: the values they share are sent once, a
# row's own four in a VALUES list (psycopg keeps a statement's parsed form while it has
# at most 50 parameters: up to eleven writes). Special channels' writes replace the
# ones stored under their index; the others are kept if stored already.
_WRITES_SQL = """
INSERT INTO checkpoint_writes
  (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob)
SELECT %s::text, %s::text, %s::text, %s::text, %s::text, w.idx, w.channel, w.type, w.blob
FROM (VALUES {rows}) AS w(idx, channel, type, blob)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO {conflict}
"""
_WRITE_ROW = "(%s::integer, %s::text, %s::text, %s::bytea)"
_REPLACE = "UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob"

# A checkpoint with its new channel values (blobs), one statement.
_CHECKPOINT_SQL = """
INSERT INTO checkpoints
  (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata)
VALUES (%s::text, %s::text, %s::text, %s::text, %s::jsonb, %s::jsonb)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata
"""
_BLOBS_SQL = """
WITH blobs AS (
  INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
  SELECT %s::text, %s::text, b.channel, b.version, b.type, b.blob
  FROM (VALUES {rows}) AS b(channel, version, type, blob)
  ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
)"""
_BLOB_ROW = "(%s::text, %s::text, %s::text, %s::bytea)"


@functools.lru_cache(maxsize=128)
def _writes_statement(rows: int, *, replace: bool) -> str:
    """:data:`_WRITES_SQL` for ``rows`` writes."""
    return _WRITES_SQL.format(
        rows=", ".join([_WRITE_ROW] * rows), conflict=_REPLACE if replace else "NOTHING"
    )


@functools.lru_cache(maxsize=64)
def _checkpoint_statement(blobs: int) -> str:
    """:data:`_CHECKPOINT_SQL` with ``blobs`` new channel values."""
    if not blobs:
        return _CHECKPOINT_SQL
    return _BLOBS_SQL.format(rows=", ".join([_BLOB_ROW] * blobs)) + _CHECKPOINT_SQL


def _last_per_key(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Writes whose (task, index) repeats, the last kept: as an upsert of one row after
    another leaves them (one statement may not update a row twice)."""
    keyed = {(row[3], row[5]): row for row in rows}
    return rows if len(keyed) == len(rows) else list(keyed.values())


async def _resolved(value: Any) -> Any:
    """A pool's ``conninfo`` or ``kwargs``: given as is, or by a (sync or async) callable."""
    if callable(value):
        value = value()
        if inspect.isawaitable(value):
            value = await value
    return value
