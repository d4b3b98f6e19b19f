"""Migrations: they build the schema the models describe, once, however many run them."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, create_engine
from structlog.testing import capture_logs

from builder.persistence import current_revision, head_revision, upgrade_database
from builder.persistence.migrations import CHECKPOINT_TABLES, include_object
from builder.persistence.models import metadata

BUILDER_TABLES = {
    "users",
    "api_keys",
    "projects",
    "messages",
    "blobs",
    "snapshots",
    "snapshot_entries",
    "token_usage",
    "integrations",
}


def _tables(url: str) -> set[str]:
    dsn = url.replace("+psycopg", "")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in rows}


def _diff(url: str, target: MetaData) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_object": include_object,
                    "compare_server_default": True,
                    "compare_type": True,
                },
            )
            return list(compare_metadata(context, target))
    finally:
        engine.dispose()


async def test_upgrade_builds_every_table_on_an_empty_database(pg_url: str) -> None:
    assert await current_revision(pg_url) is None

    await upgrade_database(pg_url)

    assert BUILDER_TABLES.issubset(metadata.tables)
    assert _tables(pg_url) == set(metadata.tables) | CHECKPOINT_TABLES | {"alembic_version"}
    assert await current_revision(pg_url) == head_revision()


async def test_upgrade_twice_changes_nothing(pg_url: str) -> None:
    await upgrade_database(pg_url)
    await upgrade_database(pg_url)

    assert await current_revision(pg_url) == head_revision()


async def test_concurrent_upgrades_of_one_database_both_succeed(pg_url: str) -> None:
    # Without the advisory lock both would race to create the same tables and one
    # would fail on a duplicate table or checkpoint migration row.
    await asyncio.gather(upgrade_database(pg_url), upgrade_database(pg_url))

    assert await current_revision(pg_url) == head_revision()


def test_models_and_migrations_agree(migrated_db_url: str) -> None:
    assert _diff(migrated_db_url, metadata) == []


def test_the_comparison_sees_a_drift(migrated_db_url: str) -> None:
    drifted = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["projects"].append_column(Column("extra", Integer))

    diff = _diff(migrated_db_url, drifted)

    assert [(d[0], d[3].name) for d in diff if isinstance(d, tuple)] == [("add_column", "extra")]


def test_every_check_constraint_of_the_models_exists(migrated_db_url: str) -> None:
    # Alembic cannot compare CHECK constraints; their names at least must match.
    expected = {
        constraint.name
        for table in metadata.sorted_tables
        for constraint in table.constraints
        if type(constraint).__name__ == "CheckConstraint"
    }
    with psycopg.connect(migrated_db_url.replace("+psycopg", "")) as conn:
        rows = conn.execute(
            "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = 'public' AND contype = 'c'"
        )
        present = {row[0] for row in rows}

    assert "ck_snapshot_entries_tombstone_has_no_size" in expected
    assert expected == present


async def test_unreachable_server_is_a_dependency_error() -> None:
    from builder.errors import DependencyUnavailable

    with pytest.raises(DependencyUnavailable) as caught:
        await upgrade_database("postgresql://postgres@127.0.0.1:1/none")

    assert caught.value.dependency == "postgresql"


def _compression(dsn: str) -> dict[str, str]:
    """The compression of each checkpoint value column: l = lz4, p or empty = pglz."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT attrelid::regclass::text, attcompression FROM pg_attribute "
            "WHERE attrelid IN ('checkpoint_blobs'::regclass, 'checkpoint_writes'::regclass) "
            "AND attname = 'blob'"
        )
        return {table: str(method) for table, method in rows}


async def test_checkpoint_values_are_stored_with_lz4(migrated_db_url: str) -> None:
    dsn = migrated_db_url.replace("+psycopg", "")
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, "
            "blob) VALUES ('t', '', 'messages', '1', 'msgpack', %s)",
            (b"a conversation " * 10_000,),
        )
        stored = conn.execute("SELECT pg_column_compression(blob) FROM checkpoint_blobs").fetchone()

    assert _compression(dsn) == {"checkpoint_blobs": "l", "checkpoint_writes": "l"}
    assert stored == ("lz4",)


async def test_an_upgrade_leaves_a_busy_checkpoint_table_as_it_is(migrated_db_url: str) -> None:
    dsn = migrated_db_url.replace("+psycopg", "")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("checkpoint_blobs", "checkpoint_writes"):
            conn.execute(f"ALTER TABLE {table} ALTER COLUMN blob SET COMPRESSION pglz")
    with psycopg.connect(dsn) as reader, capture_logs() as logs:
        reader.execute("SELECT count(*) FROM checkpoint_blobs")  # a replica's open transaction

        await asyncio.wait_for(upgrade_database(migrated_db_url), timeout=60)

        assert _compression(dsn) == {"checkpoint_blobs": "p", "checkpoint_writes": "p"}
        [unchanged] = [e for e in logs if e["event"] == "db.checkpoint_compression_unchanged"]
        assert unchanged["table"] == "checkpoint_blobs"
        assert "lock timeout" in unchanged["reason"]

    await upgrade_database(migrated_db_url)  # the reader is gone: the next upgrade does it
    assert _compression(dsn) == {"checkpoint_blobs": "l", "checkpoint_writes": "l"}
