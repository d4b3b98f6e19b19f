"""``builder keys`` and ``builder serve``."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from builder.cli import app
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
