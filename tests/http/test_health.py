"""Liveness and readiness, including a PostgreSQL that goes away."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from builder._version import __version__
from tests.http.proxy import TcpProxy
from tests.http.server import ServerProcess
from tests.models.openai_server import OpenAIServer, completion, error
from tests.sandbox.e2b_api import E2BApiServer
from tests.support.database import clone_database
from tests.support.services import PG_ADMIN_URL, drop_database


def test_liveness(dev_server: ServerProcess) -> None:
    with dev_server.client() as client:
        body = client.get("/api/health").json()
    assert (body["status"], body["version"]) == ("ok", __version__)
    assert body["uptime_seconds"] > 0


def test_readiness_checks_every_dependency(dev_server: ServerProcess) -> None:
    with dev_server.client() as client:
        answer = client.get("/api/health/ready")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ready",
        "checks": {
            "database": {"ok": True, "detail": "reachable"},
            "redis": {"ok": True, "detail": "reachable"},
            "sandbox": {"ok": True, "detail": "local"},
            "model": {"ok": True, "detail": "scripted:demo"},
        },
    }


@pytest.fixture
def server_behind_a_proxy(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: str
) -> Iterator[tuple[ServerProcess, TcpProxy]]:
    """A server whose PostgreSQL connections go through a proxy the test can cut."""
    url = clone_database(migrated_template)
    admin = urlsplit(PG_ADMIN_URL)
    proxy = TcpProxy((admin.hostname or "127.0.0.1", admin.port or 5432))
    proxied = url.replace(f"{admin.hostname}:{admin.port or 5432}", f"127.0.0.1:{proxy.port}")
    server = ServerProcess(
        database_url=proxied,
        data_dir=tmp_path_factory.mktemp("proxied") / "data",
        redis_prefix=f"test:{uuid.uuid4().hex[:12]}:",
        env={"BUILDER_TIMEOUT_DB": "2"},
    )
    try:
        yield server.start(), proxy
    finally:
        server.stop()
        proxy.cut()
        drop_database(url)


def test_readiness_is_503_naming_the_database_when_postgres_is_gone(
    server_behind_a_proxy: tuple[ServerProcess, TcpProxy],
) -> None:
    server, proxy = server_behind_a_proxy
    with server.client() as client:
        assert client.get("/api/health/ready").status_code == 200
        proxy.cut()
        answer = client.get("/api/health/ready")
        alive = client.get("/api/health")
        listing = client.get("/api/projects")
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert answer.json()["status"] == "unavailable"
    assert checks["database"]["ok"] is False
    assert checks["database"]["detail"].startswith("unavailable (")
    assert {name: check["ok"] for name, check in checks.items() if name != "database"} == {
        "redis": True,
        "sandbox": True,
        "model": True,
    }
    assert alive.status_code == 200  # liveness does not depend on PostgreSQL
    assert listing.status_code == 503
    assert listing.json()["error"]["message"] == "postgresql is unavailable; retry later"


def _server(tmp: Path, database_url: str, env: dict[str, str]) -> ServerProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    return ServerProcess(
        database_url=database_url,
        data_dir=tmp / "data",
        redis_prefix=f"test:{uuid.uuid4().hex[:12]}:",
        env=env,
    )


@pytest.mark.slow
def test_readiness_asks_the_model_when_told_to(tmp_path: Path, migrated_db_url: str) -> None:
    replies = [completion("OK"), completion("OK"), error(401, "Incorrect API key provided")]
    with OpenAIServer(*replies) as provider:
        server = _server(
            tmp_path,
            migrated_db_url,
            {
                "BUILDER_MODEL": "openai:gpt-test",
                "BUILDER_MODEL_BASE_URL": provider.base_url,
                "BUILDER_MODEL_API_KEY": "sk-test",
                "BUILDER_READY_MODEL_CALL": "true",
            },
        ).start()
        try:
            with server.client() as client:
                before = [client.get("/api/health/ready") for _ in range(2)]
                after = client.get("/api/health/ready")
        finally:
            server.stop()
        asked = list(provider.requests)
    assert [a.status_code for a in before] == [200, 200]
    assert before[0].json()["checks"]["model"] == {"ok": True, "detail": "openai:gpt-test"}
    assert after.status_code == 503
    assert after.json()["checks"]["model"]["ok"] is False
    # One token asked for, under whichever name this SDK version sends it.
    limits = [body.get("max_completion_tokens", body.get("max_tokens")) for body in asked]
    assert limits == [1, 1, 1]


@pytest.mark.slow
def test_readiness_checks_that_e2b_accepts_the_key(tmp_path: Path, migrated_db_url: str) -> None:
    with E2BApiServer(accepted_key="e2b-good") as e2b:
        results = {}
        for key in ("e2b-good", "e2b-revoked"):
            server = _server(
                tmp_path / key,
                migrated_db_url,
                {
                    "BUILDER_SANDBOX_BACKEND": "e2b",
                    "BUILDER_E2B_API_KEY": key,
                    "E2B_API_URL": e2b.url,
                },
            ).start()
            try:
                with server.client() as client:
                    results[key] = client.get("/api/health/ready")
            finally:
                server.stop()
        calls = list(e2b.requests)
    assert results["e2b-good"].status_code == 200
    assert results["e2b-good"].json()["checks"]["sandbox"] == {"ok": True, "detail": "e2b"}
    assert results["e2b-revoked"].status_code == 503
    assert results["e2b-revoked"].json()["checks"]["sandbox"]["ok"] is False
    assert [(path.split("?")[0], key) for path, key in calls] == [
        ("/v2/sandboxes", "e2b-good"),
        ("/v2/sandboxes", "e2b-revoked"),
    ]
