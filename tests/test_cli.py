"""The ``builder`` console script."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.settings import settings_table

runner = CliRunner()


def test_console_script_help_runs_in_a_fresh_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "builder", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "builder" in result.stdout and "config" in result.stdout


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("builder ")


def test_config_reference_prints_the_settings_table() -> None:
    result = runner.invoke(app, ["config", "reference"])
    assert result.exit_code == 0
    assert result.stdout.strip() == settings_table()


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    key = base64.b64encode(b"s" * 32).decode()
    monkeypatch.setenv("BUILDER_ENCRYPTION_KEYS", f"k1:{key}")
    monkeypatch.setenv("BUILDER_DATABASE_URL", "postgresql://app:pw123456@db/x")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["encryption_keys"] == "***"
    assert data["database_url"] == "postgresql+psycopg://app:***@db/x"
    assert key not in result.stdout


def test_config_check_refuses_unsafe_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDER_ENVIRONMENT", "production")
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code != 0
    assert "BUILDER_ENCRYPTION_KEYS" in str(result.exception)


def test_secrets_generate_key_gives_a_usable_key() -> None:
    result = runner.invoke(app, ["secrets", "generate-key", "--id", "k7"])
    key_id, _, encoded = result.stdout.strip().partition(":")
    assert key_id == "k7" and len(base64.b64decode(encoded)) == 32
