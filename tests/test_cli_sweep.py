"""``builder sweep``: what it removes and how it says so."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.graphs.checkpointer import TTLCheckpointer
from builder.settings import Settings
from tests.graphs.test_checkpointer import config_of, put_context

runner = CliRunner()


def _prepare(url: str, settings: Settings) -> None:
    """Two expired contexts and three live ones, least recently used first."""

    async def work() -> None:
        async with TTLCheckpointer.from_settings(url, settings) as saver:
            for thread_id in ("old-a", "old-b", "live-1", "live-2", "live-3"):
                await put_context(saver, thread_id)
        dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            for age, thread_id in enumerate(["live-3", "live-2", "live-1", "old-b", "old-a"]):
                expiry = "interval '1 hour'" if thread_id.startswith("live") else "interval '0'"
                await conn.execute(
                    "UPDATE threads SET last_activity_at = now() - make_interval(mins => %s),"
                    f" expires_at = now() + {expiry} - make_interval(mins => %s)"
                    " WHERE thread_id = %s",
                    (age, age, thread_id),
                )

    asyncio.run(work())


def _latest_checkpoints(url: str, settings: Settings) -> dict[str, bool]:
    async def work() -> dict[str, bool]:
        async with TTLCheckpointer.from_settings(url, settings) as saver:
            threads = ("old-a", "old-b", "live-1", "live-2", "live-3")
            return {t: await saver.aget_tuple(config_of(t)) is not None for t in threads}

    return asyncio.run(work())


@pytest.fixture
def database(migrated_db_url: str, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> str:
    monkeypatch.setenv("BUILDER_DATABASE_URL", migrated_db_url)
    monkeypatch.setenv("BUILDER_MAX_LIVE_CONTEXTS", "2")
    _prepare(migrated_db_url, settings)
    return migrated_db_url


def test_sweep_prints_what_it_removed(database: str, settings: Settings) -> None:
    result = runner.invoke(app, ["sweep"])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "swept 3 context(s) (delete): 2 expired, 1 evicted over the cap",
        "  expired  old-a",
        "  expired  old-b",
        "  evicted  live-1",
    ]
    assert _latest_checkpoints(database, settings) == {
        "old-a": False,
        "old-b": False,
        "live-1": False,
        "live-2": True,
        "live-3": True,
    }
    again = runner.invoke(app, ["sweep"])
    assert again.stdout.splitlines() == [
        "swept 0 context(s) (delete): 0 expired, 0 evicted over the cap"
    ]


def test_sweep_json_with_keep_latest(database: str, settings: Settings) -> None:
    result = runner.invoke(
        app, ["sweep", "--json", "--strategy", "keep_latest", "--batch-size", "1"]
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "strategy": "keep_latest",
        "expired": ["old-a", "old-b"],
        "evicted": ["live-1"],
    }
    # keep_latest leaves each swept thread its latest checkpoint.
    assert all(_latest_checkpoints(database, settings).values())


def test_sweep_rejects_an_unknown_strategy(database: str) -> None:
    result = runner.invoke(app, ["sweep", "--strategy", "everything"])

    assert result.exit_code == 2
    assert "strategy must be `delete` or `keep_latest`" in result.output


def test_sweep_refuses_a_database_that_is_not_migrated(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUILDER_DATABASE_URL", pg_url)
    result = CliRunner().invoke(app, ["sweep"])
    assert result.exit_code != 0
    assert "builder db upgrade" in str(result.exception)
