"""TTLCheckpointer on a real PostgreSQL: expiry on access, sweeping, the cap, held runs.

No test waits for a TTL to pass: expiry and recency are set by UPDATE statements, and
"before/after" is compared on row values (``expires_at - last_activity_at`` is exactly
the TTL because both are computed from one ``now()``).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from structlog.testing import capture_logs

from builder.graphs import checkpointer as checkpointer_module
from builder.graphs.checkpointer import SweepResult, TTLCheckpointer
from builder.settings import Settings

TTL = 600
Conn = psycopg.AsyncConnection[DictRow]


# --- fixtures and helpers ----------------------------------------------------------------
@pytest.fixture
def dsn(migrated_db_url: str) -> str:
    """The per-test migrated database as a plain psycopg DSN."""
    return migrated_db_url.replace("postgresql+psycopg://", "postgresql://", 1)


@asynccontextmanager
async def open_saver(
    dsn: str, settings: Settings, **overrides: Any
) -> AsyncIterator[TTLCheckpointer]:
    """A checkpointer on its own pool, built the way the service builds it."""
    options = {"context_ttl_seconds": TTL, "max_live_contexts": 1000, **overrides}
    pool_max = options.pop("pool_max", 10)
    configured = settings.model_copy(update=options)
    async with TTLCheckpointer.from_settings(dsn, configured, pool_max=pool_max) as saver:
        yield saver


@pytest.fixture
async def saver(dsn: str, settings: Settings) -> AsyncIterator[TTLCheckpointer]:
    async with open_saver(dsn, settings) as opened:
        yield opened


@pytest.fixture
async def pg(dsn: str) -> AsyncIterator[Conn]:
    """A separate autocommit connection for setting up and inspecting rows."""
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row)
    try:
        yield conn
    finally:
        await conn.close()


def config_of(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def checkpoint_at(step: int, version: str) -> Checkpoint:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid6(clock_seq=step))
    checkpoint["channel_values"] = {"files": {"index.html": f"sha-{step}"}}
    checkpoint["channel_versions"] = {"files": version}
    return checkpoint


async def put_context(saver: AsyncPostgresSaver, thread_id: str, *, steps: int = 3) -> list[str]:
    """Write ``steps`` checkpoints (each with a blob) and pending writes; returns the ids."""
    config = config_of(thread_id)
    version: str | None = None
    ids: list[str] = []
    for step in range(steps):
        version = saver.get_next_version(version, None)
        checkpoint = checkpoint_at(step, version)
        config = await saver.aput(
            config, checkpoint, {"source": "loop", "step": step}, {"files": version}
        )
        ids.append(checkpoint["id"])
    await saver.aput_writes(config, [("messages", f"hello {thread_id}")], task_id="task-1")
    return ids


async def fetch(pg: Conn, sql: str, *params: Any) -> list[dict[str, Any]]:
    cursor = await pg.execute(sql, params)
    return await cursor.fetchall()


async def thread_row(pg: Conn, thread_id: str) -> dict[str, Any] | None:
    rows = await fetch(
        pg,
        "SELECT last_activity_at, expires_at, swept_at, ttl_seconds"
        " FROM threads WHERE thread_id = %s",
        thread_id,
    )
    return rows[0] if rows else None


async def stored(pg: Conn, thread_id: str) -> dict[str, int]:
    """How many rows of each checkpoint table belong to a thread."""
    counts = {}
    for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
        rows = await fetch(pg, f"SELECT count(*) AS n FROM {table} WHERE thread_id = %s", thread_id)
        counts[table] = rows[0]["n"]
    return counts


async def expire(pg: Conn, *thread_ids: str) -> None:
    await pg.execute(
        "UPDATE threads SET expires_at = now() - interval '1 minute',"
        " last_activity_at = now() - interval '11 minutes' WHERE thread_id = ANY(%s)",
        (list(thread_ids),),
    )


async def set_last_activity(pg: Conn, order: list[str]) -> None:
    """Make ``order`` the recency order, least recent first, all still unexpired."""
    for age, thread_id in enumerate(reversed(order), 1):
        await pg.execute(
            "UPDATE threads SET last_activity_at = now() - make_interval(mins => %s),"
            " expires_at = now() + interval '1 hour' WHERE thread_id = %s",
            (age, thread_id),
        )


async def live_threads(pg: Conn) -> set[str]:
    rows = await fetch(pg, "SELECT thread_id FROM threads WHERE expires_at IS NOT NULL")
    return {row["thread_id"] for row in rows}


async def wait_for_lock_waiters(pg: Conn, count: int) -> None:
    """Return once ``count`` backends of this database wait on a lock (hang guard: 30 s)."""
    async with asyncio.timeout(30):
        while True:
            rows = await fetch(
                pg,
                "SELECT count(*) AS n FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            if rows[0]["n"] >= count:
                return
            await asyncio.sleep(0.02)


@asynccontextmanager
async def blocked_prune(dsn: str, thread_id: str) -> AsyncIterator[None]:
    """Hold a lock on a thread's checkpoint rows so a sweep pruning it waits inside its batch."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await conn.execute(
            "SELECT 1 FROM checkpoints WHERE thread_id = %s FOR UPDATE", (thread_id,)
        )
        yield
        await conn.rollback()


# --- expiry is refreshed on access -------------------------------------------------------
Access = Callable[[TTLCheckpointer, str], Awaitable[object]]


async def _aput(saver: TTLCheckpointer, thread_id: str) -> object:
    latest = await AsyncPostgresSaver.aget_tuple(saver, config_of(thread_id))
    assert latest is not None
    version = saver.get_next_version(latest.checkpoint["channel_versions"]["files"], None)
    return await saver.aput(
        latest.config, checkpoint_at(9, version), {"source": "loop", "step": 9}, {"files": version}
    )


async def _aput_writes(saver: TTLCheckpointer, thread_id: str) -> object:
    latest = await AsyncPostgresSaver.aget_tuple(saver, config_of(thread_id))
    assert latest is not None
    return await saver.aput_writes(latest.config, [("messages", "more")], task_id="task-2")


async def _aget_tuple(saver: TTLCheckpointer, thread_id: str) -> object:
    return await saver.aget_tuple(config_of(thread_id))


async def _alist(saver: TTLCheckpointer, thread_id: str) -> object:
    return [item async for item in saver.alist(config_of(thread_id))]


async def _untouched_by_every_access(saver: TTLCheckpointer, pg: Conn) -> dict[str, Any]:
    """Expire the thread, access it every way, and check its row did not change."""
    await expire(pg, "t1")
    during = await thread_row(pg, "t1")
    assert during is not None
    for access in (_aput, _aput_writes, _aget_tuple, _alist):
        await access(saver, "t1")
    assert await thread_row(pg, "t1") == during  # no refresh
    return during


async def _refreshed_since(saver: TTLCheckpointer, pg: Conn, before: Any) -> dict[str, Any]:
    """Check the thread's expiry was refreshed after ``before`` (its row then)."""
    after = await thread_row(pg, "t1")
    assert before is not None and after is not None
    assert after["last_activity_at"] > before["last_activity_at"]
    assert after["expires_at"] - after["last_activity_at"] == timedelta(seconds=TTL)
    assert await saver.context_is_live("t1")
    return after


@pytest.mark.parametrize(
    "access", [_aput, _aput_writes, _aget_tuple, _alist], ids=lambda f: f.__name__[1:]
)
async def test_every_access_refreshes_the_expiry(
    saver: TTLCheckpointer, pg: Conn, access: Access
) -> None:
    await put_context(saver, "t1")
    await expire(pg, "t1")
    before = await thread_row(pg, "t1")

    await access(saver, "t1")

    await _refreshed_since(saver, pg, before)


async def test_a_held_context_is_refreshed_when_the_hold_ends_not_on_every_write(
    saver: TTLCheckpointer, pg: Conn
) -> None:
    await put_context(saver, "t1")
    async with saver.hold_context("t1"):
        during = await _untouched_by_every_access(saver, pg)
        assert (await saver.sweep()).expired == []  # and no sweep either
    await _refreshed_since(saver, pg, during)


async def test_a_leased_run_refreshes_the_expiry_when_it_ends_not_on_every_write(
    saver: TTLCheckpointer, pg: Conn
) -> None:
    await put_context(saver, "t1")
    async with saver.under_lease("t1"):
        during = await _untouched_by_every_access(saver, pg)
    after = await _refreshed_since(saver, pg, during)
    await _aput_writes(saver, "t1")  # and refreshed per write again after it
    await _refreshed_since(saver, pg, after)


async def test_a_run_that_ends_keeps_only_the_latest_checkpoint(
    saver: TTLCheckpointer, pg: Conn
) -> None:
    await put_context(saver, "t1")
    async with saver.hold_context("t1"):
        ids = await put_context(saver, "t1", steps=3)
        latest_before = await AsyncPostgresSaver.aget_tuple(saver, config_of("t1"))
    assert await stored(pg, "t1") == {
        "checkpoints": 1,
        "checkpoint_blobs": 1,
        "checkpoint_writes": 1,
    }
    latest = await saver.aget_tuple(config_of("t1"))
    assert latest is not None and latest_before is not None
    assert latest.config["configurable"]["checkpoint_id"] == ids[-1]
    assert (latest.checkpoint, latest.pending_writes) == (
        latest_before.checkpoint,
        latest_before.pending_writes,
    )


async def test_a_run_that_fails_or_keeps_history_prunes_nothing(
    saver: TTLCheckpointer, pg: Conn
) -> None:
    async def failed_run() -> None:
        async with saver.hold_context("t1"):
            await put_context(saver, "t1", steps=3)
            raise RuntimeError("the run failed: it may be resumed")

    with pytest.raises(RuntimeError):
        await failed_run()
    assert (await stored(pg, "t1"))["checkpoints"] == 3
    saver.keep_history = True
    async with saver.hold_context("t1"):
        await put_context(saver, "t1", steps=2)
    assert (await stored(pg, "t1"))["checkpoints"] == 5


async def test_reading_an_unknown_thread_creates_no_row(saver: TTLCheckpointer, pg: Conn) -> None:
    assert await saver.aget_tuple(config_of("nobody")) is None
    assert [item async for item in saver.alist(config_of("nobody"))] == []
    assert await fetch(pg, "SELECT thread_id FROM threads") == []
    assert not await saver.context_is_live("nobody")


async def test_a_threads_own_ttl_overrides_the_default(saver: TTLCheckpointer, pg: Conn) -> None:
    await put_context(saver, "short")
    await put_context(saver, "default")
    await pg.execute("UPDATE threads SET ttl_seconds = 5 WHERE thread_id = 'short'")

    await saver.aget_tuple(config_of("short"))
    await saver.aget_tuple(config_of("default"))

    rows = {t: await thread_row(pg, t) for t in ("short", "default")}
    spans = {t: row["expires_at"] - row["last_activity_at"] for t, row in rows.items() if row}
    assert spans == {"short": timedelta(seconds=5), "default": timedelta(seconds=TTL)}


# --- sweeping expired contexts -------------------------------------------------------------
async def test_sweep_delete_removes_expired_contexts_and_nothing_else(
    saver: TTLCheckpointer, pg: Conn
) -> None:
    for thread_id in ("old-1", "old-2", "old-3", "fresh-1", "fresh-2"):
        await put_context(saver, thread_id)
    await expire(pg, "old-1", "old-2", "old-3")
    fresh_before = {
        t: (await thread_row(pg, t), await stored(pg, t)) for t in ("fresh-1", "fresh-2")
    }

    result = await saver.sweep(strategy="delete")

    assert sorted(result.expired) == ["old-1", "old-2", "old-3"]
    assert (result.evicted, result.strategy, result.total) == ([], "delete", 3)
    for thread_id in ("old-1", "old-2", "old-3"):
        assert await stored(pg, thread_id) == {
            "checkpoints": 0,
            "checkpoint_blobs": 0,
            "checkpoint_writes": 0,
        }
        row = await thread_row(pg, thread_id)
        assert row is not None and row["expires_at"] is None and row["swept_at"] is not None
        assert await saver.aget_tuple(config_of(thread_id)) is None
    fresh_after = {
        t: (await thread_row(pg, t), await stored(pg, t)) for t in ("fresh-1", "fresh-2")
    }
    assert fresh_after == fresh_before
    assert fresh_after["fresh-1"][1] == {
        "checkpoints": 3,
        "checkpoint_blobs": 3,
        "checkpoint_writes": 1,
    }
    assert await saver.sweep() == SweepResult(expired=[], evicted=[], strategy="delete")


async def test_sweep_keep_latest_leaves_the_latest_checkpoint_loadable(
    saver: TTLCheckpointer, pg: Conn
) -> None:
    ids = await put_context(saver, "old")
    latest_before = await AsyncPostgresSaver.aget_tuple(saver, config_of("old"))
    await expire(pg, "old")

    result = await saver.sweep(strategy="keep_latest")

    assert (result.expired, result.strategy) == (["old"], "keep_latest")
    assert await stored(pg, "old") == {
        "checkpoints": 1,
        "checkpoint_blobs": 1,
        "checkpoint_writes": 1,
    }
    row = await thread_row(pg, "old")
    assert row is not None and row["expires_at"] is None and row["swept_at"] is not None
    latest = await saver.aget_tuple(config_of("old"))
    assert latest is not None and latest_before is not None
    assert latest.config["configurable"]["checkpoint_id"] == ids[-1]
    assert latest.checkpoint == latest_before.checkpoint
    assert latest.pending_writes == latest_before.pending_writes
    assert latest.parent_config is None  # its parent was pruned
    # Reading the kept checkpoint is an access: the context is live again.
    assert await saver.context_is_live("old")


async def test_sweep_works_through_more_expired_threads_than_one_batch(
    saver: TTLCheckpointer, pg: Conn
) -> None:
    threads = [f"t{n:02}" for n in range(23)]
    await asyncio.gather(*(put_context(saver, t, steps=1) for t in threads))
    await put_context(saver, "fresh", steps=1)
    await expire(pg, *threads)

    result = await saver.sweep(batch_size=4)

    assert sorted(result.expired) == threads
    assert await live_threads(pg) == {"fresh"}
    rows = await fetch(pg, "SELECT count(*) AS n FROM checkpoints WHERE thread_id <> 'fresh'")
    assert rows[0]["n"] == 0


# --- several sweepers at once --------------------------------------------------------------
@pytest.mark.slow
async def test_sweepers_in_separate_processes_split_the_work(
    saver: TTLCheckpointer,
    pg: Conn,
    dsn: str,
    migrated_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads = [f"t{n:03}" for n in range(240)]
    await asyncio.gather(*(put_context(saver, t, steps=1) for t in threads))
    await put_context(saver, "fresh", steps=1)
    await expire(pg, *threads)
    monkeypatch.setenv("BUILDER_DATABASE_URL", migrated_db_url)

    async with await psycopg.AsyncConnection.connect(dsn) as gate:
        # Every sweeper's first batch waits on this lock, so all four start together.
        await gate.execute("LOCK TABLE threads IN EXCLUSIVE MODE")
        sweepers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "builder",
                "sweep",
                "--json",
                "--batch-size",
                "3",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(4)
        ]
        await wait_for_lock_waiters(pg, 4)
        await gate.rollback()
    outputs = await asyncio.gather(*(process.communicate() for process in sweepers))

    assert [p.returncode for p in sweepers] == [0] * 4, [err for _, err in outputs]
    reports = [SweepResult(**json.loads(out)) for out, _ in outputs]
    swept = [t for report in reports for t in report.expired]
    assert sorted(swept) == threads  # everything, and nothing twice
    assert all(report.evicted == [] for report in reports)
    assert await live_threads(pg) == {"fresh"}
    print(f"\nwork split between 4 sweeper processes: {[len(r.expired) for r in reports]}")


@pytest.mark.parametrize("guarded", [True, False], ids=["skip-locked", "guard-removed"])
async def test_a_second_sweeper_skips_the_threads_the_first_is_sweeping(
    dsn: str, settings: Settings, pg: Conn, monkeypatch: pytest.MonkeyPatch, guarded: bool
) -> None:
    if not guarded:
        monkeypatch.setattr(
            checkpointer_module,
            "SELECT_EXPIRED_SQL",
            checkpointer_module.SELECT_EXPIRED_SQL.replace("FOR UPDATE SKIP LOCKED", ""),
        )
    threads = [f"t{n}" for n in range(6)]
    async with open_saver(dsn, settings) as first, open_saver(dsn, settings) as second:
        for thread_id in threads:
            await put_context(first, thread_id, steps=1)
        await expire(pg, *threads)
        # t0 expired first, so it is in the first sweeper's first batch.
        await pg.execute(
            "UPDATE threads SET expires_at = expires_at - interval '1 minute'"
            " WHERE thread_id = 't0'"
        )
        async with blocked_prune(dsn, "t0"):
            # The first sweeper locks a batch that includes t0 and waits inside it.
            sweeping = asyncio.create_task(first.sweep(batch_size=3))
            await wait_for_lock_waiters(pg, 1)
            second_sweep = asyncio.create_task(second.sweep(batch_size=3))
            if guarded:
                second_result = await second_sweep
            else:
                await wait_for_lock_waiters(pg, 2)
        first_result = await sweeping
        if not guarded:
            second_result = await second_sweep

    swept = first_result.expired + second_result.expired
    if guarded:
        assert sorted(swept) == threads
        assert set(first_result.expired).isdisjoint(second_result.expired)
    else:
        assert sorted(set(swept)) == threads
        assert len(swept) > len(threads)  # the same contexts swept twice


# --- the cap on live contexts --------------------------------------------------------------
async def test_the_cap_evicts_the_least_recently_used_first(
    dsn: str, settings: Settings, pg: Conn
) -> None:
    order = ["e", "b", "g", "a", "f", "c", "d", "h"]  # least recently used first
    async with open_saver(dsn, settings, max_live_contexts=3) as saver:
        for thread_id in sorted(order):
            await put_context(saver, thread_id, steps=1)
        await set_last_activity(pg, order)

        result = await saver.sweep(batch_size=2)

        assert result == SweepResult(expired=[], evicted=order[:5], strategy="delete")
        assert await live_threads(pg) == set(order[5:])
        for thread_id in order[:5]:
            assert await stored(pg, thread_id) == {
                "checkpoints": 0,
                "checkpoint_blobs": 0,
                "checkpoint_writes": 0,
            }
        assert (await saver.sweep()).total == 0


async def test_concurrent_sweepers_never_evict_below_the_cap(
    dsn: str, settings: Settings, pg: Conn
) -> None:
    order = [f"t{n}" for n in range(10)]
    async with (
        open_saver(dsn, settings, max_live_contexts=4) as first,
        open_saver(dsn, settings, max_live_contexts=4) as second,
    ):
        for thread_id in order:
            await put_context(first, thread_id, steps=1)
        await set_last_activity(pg, order)
        async with blocked_prune(dsn, order[0]):
            # The first sweeper locks the six least recent and waits inside its batch.
            evicting = asyncio.create_task(first.sweep(batch_size=10))
            await wait_for_lock_waiters(pg, 1)
            second_result = await second.sweep(batch_size=10)
        first_result = await evicting

    assert sorted(first_result.evicted + second_result.evicted) == sorted(order[:6])
    assert await live_threads(pg) == set(order[6:])


# --- a context in use is never swept -------------------------------------------------------
@pytest.mark.parametrize("held", [True, False], ids=["held", "guard-removed"])
async def test_a_context_whose_run_is_in_progress_is_not_swept(
    dsn: str, settings: Settings, pg: Conn, held: bool
) -> None:
    async with open_saver(dsn, settings, max_live_contexts=1) as saver:
        await put_context(saver, "running")
        await put_context(saver, "idle")

        async def during_the_run() -> tuple[SweepResult, SweepResult]:
            # Expired, then the least recently used of two over a cap of one.
            await expire(pg, "running")
            expired = await saver.sweep()
            await saver.touch("running")
            await set_last_activity(pg, ["running", "idle"])
            over_cap = await saver.sweep()
            return expired, over_cap

        if held:
            async with saver.hold_context("running"):
                expired, over_cap = await during_the_run()
                # The run itself keeps writing checkpoints while it holds the row.
                await asyncio.wait_for(_aput(saver, "running"), timeout=30)
                assert await stored(pg, "running") == {
                    "checkpoints": 4,
                    "checkpoint_blobs": 4,
                    "checkpoint_writes": 1,
                }
            assert (expired.expired, over_cap.evicted) == ([], ["idle"])
            # Once the run is over, the next sweep may take it.
            await expire(pg, "running")
            assert (await saver.sweep()).expired == ["running"]
        else:
            expired, over_cap = await during_the_run()
            assert (expired.expired, over_cap.evicted) == (["running"], ["running"])
        assert await stored(pg, "running") == {
            "checkpoints": 0,
            "checkpoint_blobs": 0,
            "checkpoint_writes": 0,
        }


async def test_a_crashed_run_releases_its_context(
    saver: TTLCheckpointer, pg: Conn, dsn: str
) -> None:
    await put_context(saver, "crashed")
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        dsn,
        "crashed",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        async with asyncio.timeout(60):
            assert await holder.stdout.readline() == b"held\n"
        await expire(pg, "crashed")
        assert (await saver.sweep()).expired == []
    finally:
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
    await _wait_for_no_open_transactions(pg)

    assert (await saver.sweep()).expired == ["crashed"]
    assert await stored(pg, "crashed") == {
        "checkpoints": 0,
        "checkpoint_blobs": 0,
        "checkpoint_writes": 0,
    }


_HOLDER = """
import asyncio, sys
from builder.graphs.checkpointer import TTLCheckpointer
from builder.settings import Settings

async def main():
    async with TTLCheckpointer.from_settings(sys.argv[1], Settings()) as saver:
        async with saver.hold_context(sys.argv[2]):
            print("held", flush=True)
            await asyncio.sleep(3600)

asyncio.run(main())
"""


async def _wait_for_no_open_transactions(pg: Conn) -> None:
    async with asyncio.timeout(30):
        while True:
            rows = await fetch(
                pg,
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
                " AND state LIKE 'idle in transaction%%'",
            )
            if rows[0]["n"] == 0:
                return
            await asyncio.sleep(0.05)


async def test_a_terminated_holder_connection_releases_its_context(
    saver: TTLCheckpointer, pg: Conn
) -> None:
    await put_context(saver, "cut")
    hold = saver.hold_context("cut")
    await hold.__aenter__()
    await pg.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND state = 'idle in transaction'"
    )
    await expire(pg, "cut")
    assert (await saver.sweep()).expired == ["cut"]
    # The server released the hold with the connection: ending it is not an error (a
    # run cut off by a database crash ends with its own error, not this one), and the
    # loss is logged.
    with capture_logs() as logs:
        await hold.__aexit__(None, None, None)
    assert "locks.connection_lost" in [log["event"] for log in logs]


async def test_held_contexts_do_not_take_connections_from_the_pool(
    dsn: str, settings: Settings
) -> None:
    threads = [f"run-{n}" for n in range(3)]
    async with open_saver(dsn, settings, pool_max=2, timeout_db=2) as saver:
        for thread_id in threads:
            await put_context(saver, thread_id, steps=1)
        async with (
            saver.hold_context(threads[0]),
            saver.hold_context(threads[1]),
            saver.hold_context(threads[2]),
        ):
            # Each run still checkpoints while all three are held.
            for thread_id in threads:
                await _aput(saver, thread_id)
            assert (await saver.sweep()).total == 0


# --- concurrency on one pool-backed instance -----------------------------------------------
async def test_operations_do_not_wait_for_the_single_connection_lock(
    saver: TTLCheckpointer,
) -> None:
    threads = [f"t{n:02}" for n in range(50)]
    # The parent class serialises every operation on ``lock``; a plain saver on the same
    # pool shows what holding it does.
    plain = AsyncPostgresSaver(saver.conn)
    async with asyncio.timeout(60), saver.lock, plain.lock:  # fails rather than hangs
        waiting = asyncio.create_task(plain.aget_tuple(config_of("t00")))
        ids = await asyncio.gather(*(put_context(saver, t, steps=2) for t in threads))
        latest = await asyncio.gather(*(saver.aget_tuple(config_of(t)) for t in threads))
        assert not waiting.done()
    assert await waiting == latest[0]

    assert [t.config["configurable"]["checkpoint_id"] for t in latest if t] == [i[-1] for i in ids]
    assert [t.checkpoint["channel_values"] for t in latest if t] == [
        {"files": {"index.html": "sha-1"}}
    ] * 50
    assert [t.pending_writes for t in latest if t] == [
        [("task-1", "messages", f"hello {t}")] for t in threads
    ]


async def test_a_blocked_operation_does_not_stall_the_others(
    saver: TTLCheckpointer, dsn: str, pg: Conn
) -> None:
    await put_context(saver, "stuck", steps=1)
    async with await psycopg.AsyncConnection.connect(dsn) as locker:
        await locker.execute("SELECT 1 FROM threads WHERE thread_id = 'stuck' FOR UPDATE")
        stuck = asyncio.create_task(_aput(saver, "stuck"))
        await wait_for_lock_waiters(pg, 1)
        async with asyncio.timeout(60):  # fails rather than hangs
            others = await asyncio.gather(
                *(put_context(saver, f"t{n:02}", steps=1) for n in range(50))
            )
        assert not stuck.done()
        await locker.rollback()
    await stuck
    assert len(others) == 50
    assert len(await live_threads(pg)) == 51


async def test_a_single_connection_works_but_cannot_sweep(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, row_factory=dict_row
    ) as conn:
        saver = TTLCheckpointer(conn, ttl_seconds=TTL)
        ids = await put_context(saver, "single")
        latest = await saver.aget_tuple(config_of("single"))
        assert latest is not None and latest.config["configurable"]["checkpoint_id"] == ids[-1]
        assert await saver.context_is_live("single")
        with pytest.raises(TypeError, match="connection pool"):
            await saver.sweep()


# --- how checkpoints are stored ------------------------------------------------------------
ROWS_SQL = {
    "checkpoints": "SELECT checkpoint_id, parent_checkpoint_id, checkpoint, metadata "
    "FROM checkpoints WHERE thread_id = %(t)s ORDER BY checkpoint_id",
    "checkpoint_blobs": "SELECT channel, version, type, blob FROM checkpoint_blobs "
    "WHERE thread_id = %(t)s ORDER BY channel, version",
    "checkpoint_writes": "SELECT checkpoint_id, task_id, task_path, idx, channel, type, blob "
    "FROM checkpoint_writes WHERE thread_id = %(t)s ORDER BY checkpoint_id, task_id, idx",
}


async def stored_rows(pg: Conn, thread_id: str) -> dict[str, list[dict[str, Any]]]:
    rows = {}
    for table, sql in ROWS_SQL.items():
        cursor = await pg.execute(sql, {"t": thread_id})
        rows[table] = await cursor.fetchall()
    return rows


def extend(state: list[str], batches: Sequence[list[str]]) -> list[str]:
    """A batching-invariant reducer, as a delta channel needs."""
    return [*state, *(item for batch in batches for item in batch)]


class DeltaState(TypedDict, total=False):
    log: Annotated[list[str], DeltaChannel(extend, snapshot_frequency=2)]
    count: int
    notes: dict[str, str]


def delta_graph(checkpointer: Any) -> Any:
    """A graph with a delta channel, plain channels and an interrupt (special writes)."""

    def step(state: DeltaState) -> dict[str, Any]:
        n = state.get("count", 0) + 1
        if n == 3:
            interrupt("asked")
        return {"log": [f"step {n}"], "count": n, "notes": {"last": f"step {n}"}}

    def again(state: DeltaState) -> str:
        return END if state.get("count", 0) >= 4 else "step"

    builder = StateGraph(DeltaState)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", again)
    return builder.compile(checkpointer=checkpointer)


async def test_checkpoints_are_stored_as_the_parent_stores_them_without_a_thread_hop(
    saver: TTLCheckpointer, dsn: str, pg: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpointer encodes on the event loop (the parent hops to a worker thread)
    and stores the same rows as AsyncPostgresSaver: inline values, blobs by version, a
    delta channel's snapshots, writes by index, an interrupt's special writes."""

    async def run(checkpointer: Any, thread_id: str) -> Any:
        graph = delta_graph(checkpointer)
        config: Any = {"configurable": {"thread_id": thread_id}}
        await graph.ainvoke({"log": []}, config, durability="sync")
        await graph.ainvoke(Command(resume="yes"), config, durability="sync")
        return graph, config

    async with AsyncConnectionPool(
        dsn, kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    ) as pool:
        parent_graph, parent_config = await run(AsyncPostgresSaver(pool), "parent")  # type: ignore[arg-type]
        parent_state = (await parent_graph.aget_state(parent_config)).values
        parent_history = [
            s.values.get("log") async for s in parent_graph.aget_state_history(parent_config)
        ]

    hops: list[Any] = []

    async def no_hop(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return func(*args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", no_hop)
    graph, config = await run(saver, "ours")
    assert [f.__name__ for f in hops] == []  # neither writing nor reading hops

    ours, parents = await stored_rows(pg, "ours"), await stored_rows(pg, "parent")

    def blobs(rows: dict[str, list[dict[str, Any]]]) -> list[tuple[Any, ...]]:
        return sorted(
            (r["channel"], r["version"].split(".")[0], r["type"], r["blob"])
            for r in rows["checkpoint_blobs"]
        )

    def writes(rows: dict[str, list[dict[str, Any]]]) -> list[tuple[Any, ...]]:
        # An interrupt's id is derived from its task's id, which differs between threads.
        return [
            (r["task_path"], r["idx"], r["channel"], r["type"])
            + ((r["blob"],) if r["channel"] != "__interrupt__" else ())
            for r in rows["checkpoint_writes"]
        ]

    def checkpoints(rows: dict[str, list[dict[str, Any]]]) -> list[tuple[Any, ...]]:
        return [
            (r["checkpoint"]["channel_values"], r["metadata"]["step"], r["metadata"]["source"])
            for r in rows["checkpoints"]
        ]

    assert blobs(ours) == blobs(parents)
    assert writes(ours) == writes(parents)
    assert checkpoints(ours) == checkpoints(parents)
    assert any(r["channel"] == "__interrupt__" for r in ours["checkpoint_writes"])
    # The delta channel's snapshots are marked in the checkpoint row, stored as blobs.
    assert any(values.get("log") is True for values, _, _ in checkpoints(ours))
    assert [r for r in ours["checkpoint_blobs"] if r["channel"] == "log"]
    state = await graph.aget_state(config)
    assert state.values == parent_state
    assert state.values["log"] == ["step 1", "step 2", "step 3", "step 4"]
    history = [s.values.get("log") async for s in graph.aget_state_history(config)]
    assert history == parent_history

    # Each checkpoint, the latest and every one by id, reads back as the parent reads
    # it: values, metadata, parent and the pending writes in their order.
    async with AsyncConnectionPool(
        dsn, kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    ) as pool:
        parent = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        monkeypatch.undo()
        wanted = [config, *[t.config async for t in saver.alist(config)]]
        assert len(wanted) > 5
        for each in wanted:
            mine, theirs = await saver.aget_tuple(each), await parent.aget_tuple(each)
            assert mine is not None and theirs is not None
            assert mine == theirs
        assert any([t.pending_writes async for t in saver.alist(config)])
        assert await saver.aget_tuple({"configurable": {"thread_id": "none"}}) is None


async def test_a_tasks_writes_are_stored_in_one_statement_as_the_parent_stores_them(
    saver: TTLCheckpointer, dsn: str, pg: Conn
) -> None:
    """Writes go in one statement (a share of rows each past 5,000): the same rows as
    the parent's one statement per write, also when a special channel's write repeats
    in a call (the parent's upserts leave the last) or repeats an earlier call's."""
    checkpoint = empty_checkpoint()
    calls: list[tuple[str, list[tuple[str, Any]]]] = [
        ("task-1", [(f"channel{i}", {"n": i, "text": "x" * i}) for i in range(12)]),
        ("task-2", [("__error__", "first")]),
        ("task-2", [("__error__", "second"), ("__error__", "third")]),
        ("task-3", [("messages", i) for i in range(5_001)]),
        ("task-1", [("channel0", "not stored again")]),
    ]

    async def store(checkpointer: Any, thread_id: str) -> None:
        config = await checkpointer.aput(config_of(thread_id), checkpoint, {}, {})
        for task_id, writes in calls:
            await checkpointer.aput_writes(config, writes, task_id=task_id)

    async with AsyncConnectionPool(
        dsn, kwargs={"autocommit": True, "row_factory": dict_row}
    ) as pool:
        await store(AsyncPostgresSaver(pool), "parent")  # type: ignore[arg-type]
    await store(saver, "ours")

    def writes(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(r["task_id"], r["idx"], r["channel"], r["type"], r["blob"]) for r in rows]

    ours, parents = await stored_rows(pg, "ours"), await stored_rows(pg, "parent")
    assert writes(ours["checkpoint_writes"]) == writes(parents["checkpoint_writes"])
    assert len(ours["checkpoint_writes"]) == 12 + 1 + 5_001
    tuple_ = await saver.aget_tuple(config_of("ours"))
    assert tuple_ is not None
    pending = tuple_.pending_writes or []
    assert ("task-2", "__error__", "third") in pending
    assert ("task-1", "channel0", {"n": 0, "text": ""}) in pending


async def test_under_a_lease_carried_writes_commit_with_the_next_checkpoint(
    saver: TTLCheckpointer, pg: Conn
) -> None:
    """Writes with a carried statement wait for the thread's next checkpoint and commit
    in its transaction; those no checkpoint took when the lease ends are not stored."""
    settled: list[Any] = []

    async def settle(row: Any, error: BaseException | None) -> None:
        settled.append(dict(row) if row is not None else error)

    async def count(table: str, thread_id: str) -> int:
        cursor = await pg.execute(
            f"SELECT count(*) AS n FROM {table} WHERE thread_id = %s",
            (thread_id,),
        )
        row = await cursor.fetchone()
        return int(row["n"]) if row else 0

    for thread_id in ("taken", "left"):
        async with saver.under_lease(thread_id):
            config = await saver.aput(config_of(thread_id), empty_checkpoint(), {}, {})
            saver.carry(thread_id, "task-1", "SELECT 7 AS seven", {}, settle)
            await saver.aput_writes(config, [("messages", "hi")], task_id="task-1")
            assert await count("checkpoint_writes", thread_id) == 0  # waiting
            if thread_id == "taken":
                await saver.aput(config, empty_checkpoint(), {}, {})
                assert await count("checkpoint_writes", thread_id) == 1
        assert await count("checkpoints", thread_id) == (2 if thread_id == "taken" else 1)
    assert settled == [{"seven": 7}]
    assert await count("checkpoint_writes", "left") == 0
    assert not saver._riding


async def test_under_a_lease_a_tasks_writes_wait_for_the_checkpoint_unless_they_stop_the_step(
    saver: TTLCheckpointer, pg: Conn
) -> None:
    """Writes to the graph's channels commit with the next checkpoint; an interrupt or
    an error (a step that stops there, with no checkpoint after it) is stored at once,
    with the writes that were waiting before it, in one transaction."""

    async def stored(thread_id: str) -> list[tuple[str, str]]:
        cursor = await pg.execute(
            "SELECT task_id, channel FROM checkpoint_writes WHERE thread_id = %s "
            "ORDER BY task_id, idx",
            (thread_id,),
        )
        return [(row["task_id"], row["channel"]) for row in await cursor.fetchall()]

    async with saver.under_lease("plain"):
        config = await saver.aput(config_of("plain"), empty_checkpoint(), {}, {})
        await saver.aput_writes(config, [("messages", "hi")], task_id="task-1")
        assert await stored("plain") == []  # waiting for the checkpoint
        await saver.aput(config, empty_checkpoint(), {}, {})
        assert await stored("plain") == [("task-1", "messages")]

    async with saver.under_lease("stopped"):
        config = await saver.aput(config_of("stopped"), empty_checkpoint(), {}, {})
        await saver.aput_writes(config, [("messages", "done")], task_id="task-1")
        await saver.aput_writes(config, [("__interrupt__", "ask")], task_id="task-2")
        assert await stored("stopped") == [("task-1", "messages"), ("task-2", "__interrupt__")]
    tuple_ = await saver.aget_tuple(config_of("stopped"))
    assert tuple_ is not None
    assert ("task-1", "messages", "done") in (tuple_.pending_writes or [])
    assert not saver._riding
