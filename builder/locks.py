"""Named locks that hold within one process and across every process sharing Postgres.

:class:`LockManager` is the one lock facility of builder: file tools lock
``file:{sandbox_id}:{path}`` around read-modify-write, the runs service locks a
project so only one run works on it at a time.

Each key is guarded twice:

* an :class:`asyncio.Lock` per key inside the process, so tasks of one process queue
  without each taking a database connection; entries are reference-counted and removed
  when nobody holds or waits for them, so the table never grows without bound;
* when a database is configured, a transaction-scoped Postgres advisory lock
  (``pg_advisory_xact_lock``) on a pooled connection, so replicas agree. Postgres
  releases it when the transaction ends — on commit, rollback, or when the
  connection is lost — so a crashed holder never leaves a key locked.

Waiting is bounded (``lock_timeout`` → :class:`~builder.errors.LockTimeout`), and a
lock is released however its holder ends, cancellation included.

A manager belongs to the event loop it is first used on (its connection pool does).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from builder.errors import DependencyUnavailable, LockTimeout
from builder.log import get_logger
from builder.settings import Settings

__all__ = ["LockManager", "advisory_key", "holding_transaction"]

log = get_logger(__name__)

_SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %s, true)"
_LOCK = "SELECT pg_advisory_xact_lock(%s)"
_TRY_LOCK = "SELECT pg_try_advisory_xact_lock(%s)"


def advisory_key(key: str) -> int:
    """The signed 64-bit advisory-lock id of a lock name (first 8 bytes of its sha256)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    """Tasks holding or waiting for the lock; the entry is dropped at zero."""


@asynccontextmanager
async def holding_transaction(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    """A transaction that only holds locks, on a connection used for nothing else.

    The server releases its locks when the connection is lost (a crash or restart of
    the server): ending it then is not an error, and must not replace however the
    body ended.
    """
    transaction = conn.transaction()
    try:
        await transaction.__aenter__()
    except psycopg.OperationalError as exc:
        if not conn.broken:
            raise
        # A pooled connection that died with the server (crash, restart, failover).
        raise DependencyUnavailable("database", f"the connection was lost: {exc}") from exc
    try:
        yield
    finally:
        try:
            await transaction.__aexit__(None, None, None)
        except psycopg.OperationalError as exc:
            if not conn.broken:
                raise
            log.warning("locks.connection_lost", error=str(exc))


class LockManager:
    """Named locks: in-process always, cross-process when a database DSN is given.

    Args:
        dsn: PostgreSQL URL (``postgresql://`` or SQLAlchemy's
            ``postgresql+psycopg://``); None keeps locks within this process.
        timeout: Default seconds to wait for a lock.
        pool_max: Most database connections held at once (one per held key set).
    """

    def __init__(self, dsn: str | None, *, timeout: float, pool_max: int = 10) -> None:
        self._dsn = dsn.replace("+psycopg", "", 1) if dsn else None
        self.timeout = timeout
        self._pool_max = pool_max
        self._pool: AsyncConnectionPool | None = None
        self._opening: asyncio.Future[AsyncConnectionPool] | None = None
        self._entries: dict[str, _Entry] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, dsn: str | None = None) -> LockManager:
        """A manager using ``settings.lock_timeout`` and ``dsn`` or ``settings.database_url``."""
        return cls(dsn or settings.database_url, timeout=settings.lock_timeout)

    @property
    def distributed(self) -> bool:
        """True when locks also hold across processes (a database is configured)."""
        return self._dsn is not None

    @property
    def local_keys(self) -> int:
        """Keys currently held or awaited in this process."""
        return len(self._entries)

    def hold(
        self, key: str, *, timeout: float | None = None, long_lived: bool = False
    ) -> AbstractAsyncContextManager[None]:
        """Hold the lock ``key`` for the body of an ``async with`` block.

        Args:
            key: Any string; equal strings are the same lock everywhere.
            timeout: Seconds to wait; defaults to the manager's timeout.
            long_lived: The body runs for long (a whole run): hold the advisory lock
                on a connection of its own instead of one from the pool, so long holds
                cannot starve the short ones (file edits) of pooled connections.

        Raises:
            LockTimeout: The lock was not acquired in time.
        """
        return self.hold_many([key], timeout=timeout, long_lived=long_lived)

    @asynccontextmanager
    async def hold_many(
        self, keys: Iterable[str], *, timeout: float | None = None, long_lived: bool = False
    ) -> AsyncIterator[None]:
        """Hold several locks at once, taken in sorted order so holders cannot deadlock.

        Args:
            keys: Lock names; duplicates are ignored.
            timeout: Seconds to wait for all of them; defaults to the manager's timeout.

        Raises:
            LockTimeout: A lock was not acquired in time; none is held afterwards.
        """
        ordered = sorted(set(keys))
        seconds = self.timeout if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + seconds
        async with AsyncExitStack() as stack:
            for key in ordered:
                await stack.enter_async_context(self._local(key, deadline, seconds))
            if self._dsn is not None and ordered:
                await stack.enter_async_context(
                    self._advisory(ordered, deadline, seconds, dedicated=long_lived)
                )
            yield

    @asynccontextmanager
    async def try_hold(self, key: str, *, long_lived: bool = False) -> AsyncIterator[bool]:
        """Take the lock ``key`` only if it is free right now, without waiting.

        Yields True when the lock is held for the body. Yields False when another
        task or process holds or awaits it; nothing is held during the body then.
        ``long_lived`` is as for :meth:`hold`.
        """
        if key in self._entries:
            yield False
            return
        async with AsyncExitStack() as stack:
            # A fresh entry has no other users, so acquiring it never waits.
            await stack.enter_async_context(self._local(key, None, 0))
            if self._dsn is not None:
                conn = await stack.enter_async_context(
                    self._connection(key, self.timeout, dedicated=long_lived)
                )
                await stack.enter_async_context(holding_transaction(conn))
                cur = await conn.execute(_TRY_LOCK, (advisory_key(key),))
                row = await cur.fetchone()
                if not (row and row[0]):
                    await stack.aclose()
                    yield False
                    return
            yield True

    def held_here(self, key: str) -> bool:
        """Whether a task of this process holds ``key`` (so no other process does)."""
        entry = self._entries.get(key)
        return entry is not None and entry.lock.locked()

    def in_process(self) -> LockManager:
        """A view of these locks that leaves out the cross-process half.

        For work that already excludes other processes by a lock this process holds
        (a run holds its project's lock): tasks of this process still take turns per
        key with every user of this manager, without a database round trip.
        """
        view = LockManager(None, timeout=self.timeout, pool_max=self._pool_max)
        view._entries = self._entries
        return view

    async def close(self) -> None:
        """Close the connection pool; advisory locks held through it are released."""
        pool, self._pool = self._pool, None
        self._opening = None
        if pool is not None:
            await pool.close()

    # --- internals -------------------------------------------------------------------

    @asynccontextmanager
    async def _local(self, key: str, deadline: float | None, seconds: float) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await entry.lock.acquire()
            except TimeoutError:
                raise LockTimeout(key, seconds) from None
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]

    @asynccontextmanager
    async def _advisory(
        self, keys: list[str], deadline: float, seconds: float, *, dedicated: bool = False
    ) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        wait = max(deadline - loop.time(), 0.001)
        async with (
            self._connection(keys[0], wait, seconds, dedicated=dedicated) as conn,
            holding_transaction(conn),
        ):
            for key in keys:
                # Postgres reads lock_timeout 0 as "wait forever": keep at least 1 ms.
                millis = max(int((deadline - loop.time()) * 1000), 1)
                await conn.execute(_SET_LOCK_TIMEOUT, (f"{millis}ms",))
                try:
                    await conn.execute(_LOCK, (advisory_key(key),))
                except pg_errors.LockNotAvailable:
                    raise LockTimeout(key, seconds) from None
            yield

    @asynccontextmanager
    async def _connection(
        self, key: str, wait: float, seconds: float | None = None, *, dedicated: bool = False
    ) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
        if dedicated:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._dsn or "", autocommit=True, connect_timeout=max(1, round(wait))
                )
            except psycopg.OperationalError as exc:
                raise DependencyUnavailable("database", f"cannot take lock {key!r}: {exc}") from exc
            try:
                yield conn
            finally:
                await asyncio.shield(conn.close())
            return
        pool = await self._get_pool()
        try:
            conn = await pool.getconn(timeout=wait)
        except PoolTimeout:
            # Every pooled connection is busy holding other keys: that is contention.
            raise LockTimeout(key, wait if seconds is None else seconds) from None
        except psycopg.OperationalError as exc:
            raise DependencyUnavailable("database", f"cannot take lock {key!r}: {exc}") from exc
        try:
            yield conn
        finally:
            # Shielded so a second cancellation cannot strand the connection outside
            # the pool; the pool rolls back whatever transaction is still open.
            await asyncio.shield(pool.putconn(conn))
            if conn.broken:
                # The server went away: the other idle connections are as dead as this
                # one. Drop them now rather than failing one caller for each.
                await asyncio.shield(pool.check())

    async def _get_pool(self) -> AsyncConnectionPool:
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open_pool())
        return await asyncio.shield(self._opening)

    async def _open_pool(self) -> AsyncConnectionPool:
        pool: AsyncConnectionPool = AsyncConnectionPool(
            self._dsn or "",
            min_size=0,
            max_size=self._pool_max,
            open=False,
            kwargs={"autocommit": True},
            name="builder-locks",
        )
        try:
            await pool.open()
        except BaseException:
            self._opening = None
            raise
        self._pool = pool
        return pool
