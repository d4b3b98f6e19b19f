"""``builder db upgrade`` and ``builder db current``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.persistence import head_revision


def test_upgrade_then_current(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDER_DATABASE_URL", pg_url.replace("postgresql+psycopg", "postgres"))
    runner = CliRunner()

    before = runner.invoke(app, ["db", "current"])
    upgraded = runner.invoke(app, ["db", "upgrade"])
    after = runner.invoke(app, ["db", "current"])

    assert before.exit_code == 0, before.output
    assert "revision none" in before.output and "behind" in before.output
    assert upgraded.exit_code == 0, upgraded.output
    assert f"is at revision {head_revision()}" in upgraded.output
    assert after.exit_code == 0
    assert f"revision {head_revision()} — up to date" in after.output
