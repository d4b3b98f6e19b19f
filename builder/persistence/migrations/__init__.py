"""Schema migrations: Alembic (shipped in this package) plus LangGraph's checkpoint tables.

:func:`upgrade_database` brings a database to the newest schema: builder's tables
through the Alembic revisions in ``versions/`` and the LangGraph checkpointer's tables
through its own ``setup()``. Both run under one PostgreSQL advisory lock, so replicas
starting together upgrade once and the others wait, then find nothing to do.

Alembic is configured from code (:func:`alembic_config`); no ``alembic.ini`` is needed.
To write a new revision against a database at head::

    python -c "from builder.persistence.migrations import revision; revision('add x')"
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import psycopg
import tenacity
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from builder.errors import DependencyUnavailable, LockTimeout
from builder.log import get_logger
from builder.settings import Settings, get_settings, normalize_database_url

if TYPE_CHECKING:
    from builder.persistence.database import Database

__all__ = [
    "CHECKPOINT_TABLES",
    "alembic_config",
    "current_revision",
    "head_revision",
    "include_object",
    "revision",
    "upgrade_database",
]

CHECKPOINT_TABLES = frozenset(
    {"checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"}
)
"""Tables owned by langgraph-checkpoint-postgres; Alembic leaves them alone."""

# pg_advisory_lock key for schema changes: "builder" as bytes, read as an integer.
_UPGRADE_LOCK = int.from_bytes(b"builder", "big")
_UPGRADE_WAIT_SECONDS = 600.0
CHECKPOINT_COMPRESSION_LOCK_TIMEOUT = 2.0
"""Seconds the upgrade waits for a checkpoint table to itself to change its compression."""
_COMPRESSED_CHECKPOINT_COLUMNS = (("checkpoint_blobs", "blob"), ("checkpoint_writes", "blob"))
_log = get_logger("builder.persistence.migrations")


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic filter: everything except LangGraph's checkpoint tables and their indexes."""
    if type_ == "table":
        return name not in CHECKPOINT_TABLES
    table = getattr(obj, "table", None)
    return getattr(table, "name", None) not in CHECKPOINT_TABLES


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic configuration for builder's migrations, without an ini file.

    Args:
        url: Database URL, used by offline (``--sql``) mode.
        connection: An open connection the migrations run on.
    """
    config = Config()
    config.set_main_option("script_location", "builder.persistence:migrations")
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", normalize_database_url(url).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _target_url(target: Database | str) -> str:
    return normalize_database_url(target if isinstance(target, str) else target.url)


def _settings(target: Database | str, settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    return get_settings() if isinstance(target, str) else target.settings


def _run_alembic(url: str, settings: Settings, revision: str) -> None:
    from builder.persistence.database import connect_args, translate_errors

    # No statement timeout here: building an index on a large table may take longer.
    engine = create_engine(
        url, poolclass=NullPool, connect_args=connect_args(settings, statement_timeout=False)
    )
    try:
        with translate_errors(), engine.begin() as connection:
            command.upgrade(alembic_config(connection=connection), revision)
    finally:
        engine.dispose()


async def _setup_checkpointer(dsn: str) -> None:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    # from_conn_string opens an autocommit connection, which the checkpointer's
    # CREATE INDEX CONCURRENTLY migrations require.
    async with AsyncPostgresSaver.from_conn_string(dsn) as saver:
        await saver.setup()


async def _compress_checkpoints_with_lz4(conn: psycopg.AsyncConnection[Any]) -> None:
    """Store new checkpoint values with lz4 rather than PostgreSQL's default pglz.

    A checkpoint stores a thread's whole conversation again at every step; above 2 KB
    PostgreSQL compresses it, and pglz costs the server about three times lz4's CPU
    for the same bytes (1.35 against 0.45 ms for a 180 KB conversation), at every
    step of every run. Values already stored keep their compression. A server built
    without lz4 (the embedded one) keeps pglz. Changing it is brief but needs the table
    to itself: when a table is busy for longer than
    :data:`CHECKPOINT_COMPRESSION_LOCK_TIMEOUT` (replicas running through an upgrade),
    it is left as it is and the next upgrade tries again.
    """
    cursor = await conn.execute(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    )
    supported = await cursor.fetchone()
    if not (supported and supported[0]):
        return
    for table, column in _COMPRESSED_CHECKPOINT_COLUMNS:
        cursor = await conn.execute(
            "SELECT attcompression FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attname = %s",
            (table, column),
        )
        row = await cursor.fetchone()
        if row is None or row[0] == "l":
            continue
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT set_config('lock_timeout', %s, true)",
                    (f"{CHECKPOINT_COMPRESSION_LOCK_TIMEOUT * 1000:.0f}ms",),
                )
                await conn.execute(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET COMPRESSION lz4").format(
                        sql.Identifier(table), sql.Identifier(column)
                    )
                )
        except psycopg.errors.LockNotAvailable as exc:
            _log.warning(
                "db.checkpoint_compression_unchanged",
                table=table,
                reason=str(exc).strip().splitlines()[0],
            )
            return


async def upgrade_database(
    target: Database | str, *, revision: str = "head", settings: Settings | None = None
) -> None:
    """Apply every migration: builder's tables and LangGraph's checkpoint tables.

    Safe to run from several processes at once (an advisory lock serialises them) and
    on an up-to-date database (nothing happens).

    Args:
        target: A :class:`~builder.persistence.database.Database` or a PostgreSQL URL.
        revision: The Alembic revision to reach; ``"head"`` is the newest.
        settings: Connect timeout; defaults to the database's or :func:`get_settings`.

    Raises:
        DependencyUnavailable: The server cannot be reached.
        LockTimeout: Another process held the upgrade lock for 10 minutes.
    """
    from builder.persistence.database import plain_dsn, translate_errors

    url = _target_url(target)
    settings = _settings(target, settings)
    dsn = plain_dsn(url)
    with translate_errors():
        try:
            lock = await psycopg.AsyncConnection.connect(
                dsn, autocommit=True, connect_timeout=max(1, round(settings.timeout_db))
            )
        except psycopg.OperationalError as exc:
            raise DependencyUnavailable("postgresql", f"cannot reach PostgreSQL: {exc}") from exc
    async with lock:
        await _take_upgrade_lock(lock)
        try:
            await asyncio.to_thread(_run_alembic, url, settings, revision)
            await _setup_checkpointer(dsn)
            await _compress_checkpoints_with_lz4(lock)
        finally:
            await lock.execute("SELECT pg_advisory_unlock(%s)", (_UPGRADE_LOCK,))
    _log.info("db.upgraded", revision=await current_revision(url, settings=settings))


async def _take_upgrade_lock(conn: psycopg.AsyncConnection[Any]) -> None:
    """Take the upgrade lock, polling with try-lock.

    A blocking ``pg_advisory_lock`` would deadlock: the waiting statement holds a
    snapshot, and the holder's ``CREATE INDEX CONCURRENTLY`` (LangGraph's migrations)
    waits for every older snapshot to end.
    """

    @tenacity.retry(
        retry=tenacity.retry_if_result(lambda locked: not locked),
        wait=tenacity.wait_random_exponential(multiplier=0.05, max=1.0),
        stop=tenacity.stop_after_delay(_UPGRADE_WAIT_SECONDS),
    )
    async def try_lock() -> bool:
        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_UPGRADE_LOCK,))
        row = await cursor.fetchone()
        return bool(row and row[0])

    try:
        await try_lock()
    except tenacity.RetryError:
        raise LockTimeout("schema upgrade", _UPGRADE_WAIT_SECONDS) from None


def _current(url: str, settings: Settings) -> str | None:
    from builder.persistence.database import connect_args, translate_errors

    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args(settings))
    try:
        with translate_errors(), engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


async def current_revision(
    target: Database | str, *, settings: Settings | None = None
) -> str | None:
    """The Alembic revision the database is at; None when it has never been migrated.

    Raises:
        DependencyUnavailable: The server cannot be reached.
    """
    return await asyncio.to_thread(_current, _target_url(target), _settings(target, settings))


def head_revision() -> str:
    """The newest revision shipped with this version of builder."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "builder ships at least one migration"
    return head


def revision(message: str, *, url: str, autogenerate: bool = True) -> None:
    """Write a new revision file comparing the models with the database at ``url``.

    For maintainers: run against a database upgraded to head.
    """
    engine = create_engine(normalize_database_url(url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            command.revision(
                alembic_config(connection=connection), message=message, autogenerate=autogenerate
            )
    finally:
        engine.dispose()
