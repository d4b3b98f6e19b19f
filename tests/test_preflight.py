"""``builder config check`` and ``builder serve`` run the same checks at start."""

from __future__ import annotations

import asyncio
import base64

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.errors import ConfigurationError
from builder.http.metrics import Metrics
from builder.http.services import Services
from builder.settings import Settings

runner = CliRunner()
KEY = base64.b64encode(b"k" * 32).decode()
SAFE_PRODUCTION = {
    "BUILDER_ENVIRONMENT": "production",
    "BUILDER_ENCRYPTION_KEYS": f"k1:{KEY}",
    "BUILDER_CORS_ORIGINS": "https://app.example.com",
    "BUILDER_MODEL": "scripted:demo",
}


def _check(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[int, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["config", "check"])
    message = str(result.exception) if result.exception else ""
    return result.exit_code, result.output + message


async def _serve_refuses(**env: str) -> str:
    settings = Settings(**{k.removeprefix("BUILDER_").lower(): v for k, v in env.items()})
    with pytest.raises(ConfigurationError) as refused:
        async with Services.open(settings, metrics=Metrics()):
            pass
    return refused.value.message


def test_no_model_is_refused_by_both(monkeypatch: pytest.MonkeyPatch, migrated_db_url: str) -> None:
    code, output = _check(monkeypatch, BUILDER_DATABASE_URL=migrated_db_url)
    assert code != 0
    assert "no chat model configured: set BUILDER_MODEL" in output
    served = asyncio.run(_serve_refuses(BUILDER_DATABASE_URL=migrated_db_url))
    assert "no chat model configured: set BUILDER_MODEL" in served


def test_an_unmigrated_production_database_is_refused_by_both(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    env = SAFE_PRODUCTION | {"BUILDER_DATABASE_URL": pg_url}
    code, output = _check(monkeypatch, **env)
    assert code != 0
    assert "run `builder db upgrade` before starting the server" in output
    assert "run `builder db upgrade`" in asyncio.run(_serve_refuses(**env))


def test_production_risks_are_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = _check(monkeypatch, **SAFE_PRODUCTION)
    assert code == 0, output
    assert "BUILDER_DATABASE_URL is not set: the embedded PostgreSQL" in output
    assert "BUILDER_REDIS_URL is not set" in output
    assert "BUILDER_SANDBOX_NETWORK" not in output  # isolated works on this host
    assert "settings are valid for production (2 warning(s))" in output


def test_the_host_network_is_a_production_risk(monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = _check(monkeypatch, **SAFE_PRODUCTION, BUILDER_SANDBOX_NETWORK="host")
    assert code == 0, output
    assert "BUILDER_SANDBOX_NETWORK is host: confined commands can still reach" in output
    assert "settings are valid for production (3 warning(s))" in output
