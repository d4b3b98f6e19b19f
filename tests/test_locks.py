"""LockManager: in-process and Postgres advisory locks, timeouts, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest

from builder.errors import LockTimeout
from builder.locks import LockManager, advisory_key


def plain(url: str) -> str:
    return url.replace("+psycopg", "", 1)


async def advisory_locks(url: str) -> dict[str, int]:
    """Granted and waiting advisory locks in the test database, as seen by Postgres."""
    async with await psycopg.AsyncConnection.connect(plain(url), autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT granted, count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND d.datname = current_database() GROUP BY granted"
        )
        rows = await cur.fetchall()
    counts = {"granted": 0, "waiting": 0}
    for granted, count in rows:
        counts["granted" if granted else "waiting"] = count
    return counts


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll until ``check`` is true (bounded so a broken test fails instead of hanging)."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


def pool_stats(manager: LockManager) -> dict[str, int]:
    pool = manager._pool
    assert pool is not None
    stats = pool.get_stats()
    return {"size": stats["pool_size"], "available": stats["pool_available"]}


@pytest.fixture
async def managers(pg_url: str) -> AsyncIterator[tuple[LockManager, LockManager]]:
    """Two managers on one database: they behave like two processes."""
    first = LockManager(pg_url, timeout=5)
    second = LockManager(pg_url, timeout=5)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def test_advisory_key_is_a_stable_signed_bigint() -> None:
    assert advisory_key("file:s:a.txt") == advisory_key("file:s:a.txt")
    assert advisory_key("file:s:a.txt") != advisory_key("file:s:b.txt")
    assert all(-(2**63) <= advisory_key(k) < 2**63 for k in ("a", "b", "run:p1"))


async def test_tasks_of_one_process_take_turns() -> None:
    locks = LockManager(None, timeout=5)
    events: list[str] = []
    inside = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold("k"):
            events.append("first in")
            inside.set()
            await release.wait()
            events.append("first out")

    async def second() -> None:
        await inside.wait()
        async with locks.hold("k"):
            events.append("second in")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await inside.wait()
    await asyncio.sleep(0.05)  # let the second task queue on the lock
    release.set()
    await asyncio.gather(*tasks)
    assert events == ["first in", "first out", "second in"]
    assert locks.local_keys == 0


async def test_in_process_timeout_names_key_and_seconds() -> None:
    locks = LockManager(None, timeout=5)
    async with locks.hold("busy"):
        with pytest.raises(LockTimeout) as caught:
            async with locks.hold("busy", timeout=0.05):
                pass
    assert (caught.value.key, caught.value.seconds) == ("busy", 0.05)
    assert locks.local_keys == 0


async def test_entries_are_removed_when_unused() -> None:
    locks = LockManager(None, timeout=5)
    for n in range(100):
        async with locks.hold(f"file:s:{n}"):
            assert locks.local_keys == 1
    assert locks.local_keys == 0


async def test_advisory_lock_excludes_another_process(
    managers: tuple[LockManager, LockManager], pg_url: str
) -> None:
    first, second = managers
    async with first.hold("file:s:index.html"):
        assert await advisory_locks(pg_url) == {"granted": 1, "waiting": 0}
        with pytest.raises(LockTimeout) as caught:
            async with second.hold("file:s:index.html", timeout=0.2):
                pass
        assert caught.value.key == "file:s:index.html"
        async with second.hold("file:s:other.html", timeout=0.2):
            pass
    async with second.hold("file:s:index.html", timeout=1):
        pass
    assert await advisory_locks(pg_url) == {"granted": 0, "waiting": 0}


async def test_without_a_database_two_managers_do_not_exclude_each_other() -> None:
    # The guard above is the advisory lock: managers without a DSN share nothing.
    first, second = LockManager(None, timeout=5), LockManager(None, timeout=5)
    async with first.hold("file:s:index.html"), second.hold("file:s:index.html", timeout=0.2):
        pass


async def test_sqlalchemy_dsn_form_is_accepted(pg_url: str) -> None:
    assert pg_url.startswith("postgresql+psycopg://")
    locks = LockManager(pg_url, timeout=5)
    try:
        assert locks.distributed
        async with locks.hold("k"):
            assert await advisory_locks(pg_url) == {"granted": 1, "waiting": 0}
    finally:
        await locks.close()


async def test_cancelled_holder_releases_everywhere(
    managers: tuple[LockManager, LockManager], pg_url: str
) -> None:
    first, second = managers
    held = asyncio.Event()

    async def holder() -> None:
        async with first.hold("k"):
            held.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(holder())
    await held.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with second.hold("k", timeout=2):
        pass
    assert await advisory_locks(pg_url) == {"granted": 0, "waiting": 0}
    assert first.local_keys == 0
    stats = pool_stats(first)
    assert stats["available"] == stats["size"]


async def test_cancelled_waiters_leave_nothing_behind(
    managers: tuple[LockManager, LockManager], pg_url: str
) -> None:
    first, second = managers
    async with first.hold("k"):
        # One waiter blocked in Postgres, another queued behind it in-process.
        in_db = asyncio.create_task(second.hold("k", timeout=30).__aenter__())
        await until(lambda: _waiting(pg_url, 1))
        in_process = asyncio.create_task(second.hold("k", timeout=30).__aenter__())
        await asyncio.sleep(0.05)
        assert second.local_keys == 1
        for task in (in_db, in_process):
            task.cancel()
        results = await asyncio.gather(in_db, in_process, return_exceptions=True)
        assert [type(r) for r in results] == [asyncio.CancelledError] * 2
        assert await advisory_locks(pg_url) == {"granted": 1, "waiting": 0}
        assert second.local_keys == 0
    async with second.hold("k", timeout=2):
        pass
    stats = pool_stats(second)
    assert stats["available"] == stats["size"]
    assert await advisory_locks(pg_url) == {"granted": 0, "waiting": 0}


async def _waiting(url: str, count: int) -> bool:
    return (await advisory_locks(url))["waiting"] == count


async def test_database_timeout_releases_the_connection(
    managers: tuple[LockManager, LockManager], pg_url: str
) -> None:
    first, second = managers
    async with first.hold("k"):
        for _ in range(3):
            with pytest.raises(LockTimeout):
                async with second.hold("k", timeout=0.1):
                    pass
    stats = pool_stats(second)
    assert stats["available"] == stats["size"]
    assert await advisory_locks(pg_url) == {"granted": 0, "waiting": 0}


async def test_hold_many_in_any_order_does_not_deadlock(
    managers: tuple[LockManager, LockManager],
) -> None:
    first, second = managers
    done: list[str] = []

    async def worker(manager: LockManager, keys: list[str], name: str) -> None:
        for _ in range(20):
            async with manager.hold_many(keys, timeout=5):
                await asyncio.sleep(0)
        done.append(name)

    await asyncio.gather(
        worker(first, ["a", "b"], "ab-1"),
        worker(second, ["b", "a"], "ba-2"),
        worker(first, ["b", "a", "a"], "ba-1"),
        worker(second, ["a", "b"], "ab-2"),
    )
    assert sorted(done) == ["ab-1", "ab-2", "ba-1", "ba-2"]


async def test_try_hold(managers: tuple[LockManager, LockManager], pg_url: str) -> None:
    first, second = managers
    async with first.try_hold("run:p1") as got:
        assert got is True
        async with second.try_hold("run:p1") as other:
            assert other is False
            # A refused try_hold holds nothing while its body runs.
            assert await advisory_locks(pg_url) == {"granted": 1, "waiting": 0}
        async with first.try_hold("run:p1") as again:
            assert again is False
    async with second.try_hold("run:p1") as later:
        assert later is True
    assert (first.local_keys, second.local_keys) == (0, 0)
    assert await advisory_locks(pg_url) == {"granted": 0, "waiting": 0}


async def test_try_hold_in_process() -> None:
    locks = LockManager(None, timeout=5)
    async with locks.hold("run:p1"), locks.try_hold("run:p1") as got:
        assert got is False
    async with locks.try_hold("run:p1") as got:
        assert got is True
    assert locks.local_keys == 0


@pytest.mark.parametrize("long_lived", [True, False])
async def test_long_lived_locks_do_not_starve_short_ones_of_connections(
    pg_url: str, long_lived: bool
) -> None:
    manager = LockManager(pg_url, timeout=0.5, pool_max=1)
    try:
        async with manager.try_hold("run:project", long_lived=long_lived) as held:
            assert held
            if long_lived:
                async with manager.hold("file:a.txt"):
                    pass  # the pool's only connection is free for file locks
                assert await advisory_locks(pg_url) == {"granted": 1, "waiting": 0}
            else:
                # The guard matters: a run lock from the pool takes its only connection.
                with pytest.raises(LockTimeout):
                    async with manager.hold("file:a.txt"):
                        pass
        async with manager.try_hold("run:project", long_lived=True) as again:
            assert again  # released, also on its own connection
    finally:
        await manager.close()


async def test_under_a_held_run_lock_file_locks_stay_in_process(
    managers: tuple[LockManager, LockManager],
) -> None:
    mine, _ = managers
    assert not mine.held_here("run:p")
    async with mine.hold("run:p", long_lived=True):
        assert mine.held_here("run:p") and not mine.held_here("run:q")
        local = mine.in_process()
        order: list[str] = []

        async def full_manager_writer() -> None:
            async with mine.hold("file:x"):
                order.append("full")

        async with local.hold("file:x"):
            assert mine._pool is None  # no pooled connection taken for the file lock
            task = asyncio.create_task(full_manager_writer())
            await asyncio.sleep(0.05)
            order.append("local")  # the full manager's task waits for the view's hold
        await task
        assert order == ["local", "full"]
    assert not mine.held_here("run:p")


async def test_the_in_process_view_alone_does_not_exclude_another_process(
    managers: tuple[LockManager, LockManager],
) -> None:
    # Why it is only used under a run lock: by itself it orders this process's tasks,
    # not another process's.
    mine, theirs = managers
    async with theirs.hold("file:x"), mine.in_process().hold("file:x", timeout=0.2):
        pass
    with pytest.raises(LockTimeout):
        async with theirs.hold("file:x"), mine.hold("file:x", timeout=0.2):
            pass
