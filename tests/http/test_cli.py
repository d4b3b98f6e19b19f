"""``builder keys`` and ``builder serve``."""

from __future__ import annotations

import asyncio
import gc
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.http.app import YOUNG_COLLECTION_ALLOCATIONS, create_app
from builder.persistence.database import Database
from builder.persistence.users import get_or_create_user, list_api_keys
from builder.settings import Settings

runner = CliRunner()


async def _key_ids(url: str, user: str) -> list[object]:
    db = Database(url, settings=Settings())
    try:
        owner = await get_or_create_user(db, name=user)
        return [key.id for key in await list_api_keys(db, user_id=owner.id)]
    finally:
        await db.dispose()


def test_keys_create_list_and_revoke(monkeypatch: pytest.MonkeyPatch, migrated_db_url: str) -> None:
    monkeypatch.setenv("BUILDER_DATABASE_URL", migrated_db_url)
    created = runner.invoke(app, ["keys", "create", "--user", "carol", "--name", "ci"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("bld_") and len(key) == 47
    listed = runner.invoke(app, ["keys", "list", "--user", "carol"])
    assert key[:12] in listed.stdout and key not in listed.stdout
    key_id = str(asyncio.run(_key_ids(migrated_db_url, "carol"))[0])
    revoked = runner.invoke(app, ["keys", "revoke", key_id, "--user", "carol"])
    assert revoked.exit_code == 0 and f"revoked {key_id}" in revoked.stdout
    unknown = runner.invoke(app, ["keys", "revoke", key_id, "--user", "dave"])
    assert unknown.exit_code != 0


def test_serve_refuses_unsafe_production_settings(tmp_path: object) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "BUILDER_ENVIRONMENT": "production",
        "BUILDER_ALLOW_ANONYMOUS": "true",
        "BUILDER_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "builder", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "BUILDER_ALLOW_ANONYMOUS is on" in result.stderr
    assert "BUILDER_ENCRYPTION_KEYS is not set" in result.stderr


@pytest.fixture
def default_collector() -> Iterator[None]:
    """Python's own collector settings before and after the test."""
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("default_collector")
async def test_a_served_app_tunes_the_collector_once_started(
    migrated_db_url: str, tmp_path: Path
) -> None:
    """``builder serve``'s app freezes what it loaded once started and collects young
    objects less often; an embedded one (the default) leaves the collector alone."""
    settings = Settings(database_url=migrated_db_url, model="scripted:demo", data_dir=tmp_path)
    threshold = gc.get_threshold()
    embedded = create_app(settings)
    async with embedded.router.lifespan_context(embedded):
        assert (gc.get_freeze_count(), gc.get_threshold()) == (0, threshold)
    served = create_app(settings, tune_collector=True)
    assert gc.get_freeze_count() == 0  # not before it starts
    async with served.router.lifespan_context(served):
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_COLLECTION_ALLOCATIONS, *threshold[1:])


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_builds_the_app_that_tunes_the_collector(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workers: int
) -> None:
    import uvicorn

    import builder.http.app

    monkeypatch.setenv("BUILDER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    built: list[dict[str, Any]] = []
    create = builder.http.app.create_app

    def recording(*args: Any, **kwargs: Any) -> Any:
        built.append(kwargs)
        return create(*args, **kwargs)

    def run(app: Any, **options: Any) -> None:
        if options.get("factory"):  # each worker process calls the factory
            module, name = app.split(":")
            getattr(importlib.import_module(module), name)()

    monkeypatch.setattr(builder.http.app, "create_app", recording)
    monkeypatch.setattr(uvicorn, "run", run)
    result = runner.invoke(app, ["serve", "--workers", str(workers)])
    assert result.exit_code == 0, result.output
    assert built == [{"tune_collector": True}]
