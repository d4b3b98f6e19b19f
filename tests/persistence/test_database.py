"""The Database handle: engine settings, transactions, and errors in builder's terms."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from builder.errors import (
    AlreadyExists,
    DependencyUnavailable,
    InvalidInput,
    NotFound,
    OperationTimeout,
)
from builder.persistence import Database
from builder.persistence.database import plain_dsn
from builder.settings import Settings


def test_the_engine_is_configured_from_settings(pg_url: str, tmp_path: object) -> None:
    settings = Settings(
        database_url=None, db_pool_size=3, db_max_overflow=2, db_pool_recycle=60, timeout_db=2.5
    )
    db = Database(pg_url.replace("postgresql+psycopg://", "postgres://"), settings=settings)

    pool = db.engine.pool
    assert (pool.size(), pool._max_overflow, pool._recycle, pool._pre_ping) == (3, 2, 60, False)  # type: ignore[attr-defined]
    assert db.url == pg_url
    assert db.psycopg_url == db.sync_url == pg_url.replace("postgresql+psycopg://", "postgresql://")


def test_plain_dsn_keeps_the_socket_directory_of_an_embedded_server() -> None:
    url = "postgresql+psycopg://postgres:@/postgres?host=/tmp/data/postgres"
    parsed = conninfo_to_dict(plain_dsn(url))
    assert (parsed["host"], parsed["dbname"], parsed["user"]) == (
        "/tmp/data/postgres",
        "postgres",
        "postgres",
    )


async def test_a_transaction_commits_or_rolls_back_as_one(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO users (name) VALUES ('kept')"))

    async def insert_then_fail() -> None:
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO users (name) VALUES ('dropped')"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await insert_then_fail()

    async with db.transaction() as session:
        names = (await session.execute(text("SELECT name FROM users ORDER BY name"))).scalars()
        assert list(names) == ["kept"]


async def test_driver_errors_become_builder_errors(db: Database) -> None:
    async def insert(session: AsyncSession, sql: str) -> None:
        await session.execute(text(sql))

    await db.run(lambda s: insert(s, "INSERT INTO users (name) VALUES ('bob')"))

    with pytest.raises(AlreadyExists) as taken:
        await db.run(lambda s: insert(s, "INSERT INTO users (name) VALUES ('bob')"))
    with pytest.raises(NotFound) as missing:
        await db.run(
            lambda s: insert(
                s,
                "INSERT INTO projects (user_id, name) "
                "VALUES ('00000000-0000-0000-0000-000000000001', 'x')",
            )
        )
    with pytest.raises(InvalidInput) as invalid:
        await db.run(lambda s: insert(s, "INSERT INTO users (name) VALUES ('')"))

    assert taken.value.context["constraint"] == "uq_users_name"
    assert (missing.value.resource, missing.value.identifier) == (
        "user",
        "00000000-0000-0000-0000-000000000001",
    )
    assert invalid.value.context["constraint"] == "ck_users_name_not_empty"


async def test_the_statement_timeout_is_enforced_by_the_server(migrated_db_url: str) -> None:
    db = Database(migrated_db_url, settings=Settings(timeout_db=0.2))
    try:
        with pytest.raises(OperationTimeout) as caught:
            await db.run(lambda s: s.execute(text("SELECT pg_sleep(2)")))
        assert (caught.value.operation, caught.value.seconds) == ("db", 0.2)
    finally:
        await db.dispose()


async def test_an_unreachable_server_is_a_dependency_error() -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/nothing", settings=Settings(timeout_db=1))
    try:
        with pytest.raises(DependencyUnavailable) as caught:
            await db.ping()
        assert caught.value.dependency == "postgresql"
        assert "127.0.0.1:1" in caught.value.message
    finally:
        await db.dispose()


async def test_from_settings_uses_the_configured_url_and_a_cache(migrated_db_url: str) -> None:
    db = Database.from_settings(Settings(database_url=migrated_db_url))
    try:
        await db.ping()
        assert db.url == migrated_db_url
        assert db.cache is not None and db.cache.backend == "memory"
    finally:
        await db.dispose()


async def test_work_survives_pooled_connections_the_server_dropped(db: Database) -> None:
    # No pre-ping: the first statement on a dead pooled connection fails, and run()
    # retries on a fresh one.
    async def backend(session: AsyncSession) -> int:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())

    first = await db.run(backend)
    with psycopg.connect(db.psycopg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))

    assert await db.run(backend) != first
