"""Liveness and readiness, including a PostgreSQL that goes away."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from builder._version import __version__
from tests.http.proxy import TcpProxy
from tests.http.server import ServerProcess
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
