"""The embedded PostgreSQL: started when no URL is set, reused, safe to start twice at once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from builder.errors import DependencyUnavailable
from builder.persistence import Database, get_or_create_user, upgrade_database
from builder.persistence.embedded import start_embedded, stop_embedded
from builder.settings import Settings


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "data"
    try:
        yield directory
    finally:
        stop_embedded(directory / "postgres")


@pytest.mark.slow
async def test_no_url_means_an_embedded_server_that_keeps_its_data(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir)
    db = Database.from_settings(settings)
    with capture_logs() as logs:
        await upgrade_database(db)
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == []  # no lz4 there
    alice = await get_or_create_user(db, name="alice")
    await db.dispose()

    again = Database.from_settings(settings)
    try:
        assert again.url == db.url
        assert "host=" in again.url and (data_dir / "postgres" / "PG_VERSION").exists()
        assert await get_or_create_user(again, name="alice") == alice
    finally:
        await again.dispose()
    assert stop_embedded(data_dir / "postgres") is True
    assert stop_embedded(data_dir / "postgres") is False


@pytest.mark.slow
def test_two_processes_starting_at_once_share_one_server(data_dir: Path) -> None:
    script = (
        "import sys, psycopg\n"
        "from pathlib import Path\n"
        "from builder.persistence.embedded import start_embedded\n"
        "from builder.persistence.database import plain_dsn\n"
        "url = start_embedded(Path(sys.argv[1]))\n"
        "with psycopg.connect(plain_dsn(url)) as conn:\n"
        "    print(conn.execute('SELECT pg_postmaster_start_time()').fetchone()[0])\n"
    )
    target = str(data_dir / "postgres")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, target],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=120) for child in children]

    assert [child.returncode for child in children] == [0, 0], outputs
    started = {out.strip() for out, _ in outputs}
    assert len(started) == 1, outputs


def test_a_server_that_cannot_start_is_a_dependency_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(DependencyUnavailable) as caught:
        start_embedded(blocker / "postgres")

    assert caught.value.dependency == "postgresql"
    assert "BUILDER_DATABASE_URL" in caught.value.message
