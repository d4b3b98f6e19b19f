"""PostgreSQL killed with SIGKILL in the middle of a run: nothing stays ``running``.

A private PostgreSQL (its own data directory and port, started as the ``postgres``
user) is killed — the postmaster and every backend, as a crash or an OOM kill of the
server does — while a run writes, then started again (crash recovery). The run ends
with an error, and recording its end fails, since the server was gone: the row still
says ``running`` and the thread ``busy``. Reconciling, which every server process does
periodically, finds the run's lock released with its connection and marks both
interrupted; the run then resumes.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from builder.errors import DependencyUnavailable
from builder.persistence.database import Database
from builder.persistence.projects import create_project
from builder.persistence.users import get_or_create_user
from builder.runs.service import RunService
from builder.settings import Settings
from tests.http.server import free_port
from tests.support.scripts import call, write_script

pytestmark = pytest.mark.slow


class PrivatePostgres:
    """A PostgreSQL server of the test's own, which the test may kill."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if not found:
            pytest.fail("PostgreSQL's server binaries are not installed")
        self.bin = Path(found[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="builder-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        subprocess.run(
            [str(self.bin / "initdb"), "-A", "trust", "-U", "postgres",
             "-D", str(self.dir / "data")],
            check=True, capture_output=True, cwd=self.dir, **self._as_postgres(),
        )  # fmt: skip
        self.server: subprocess.Popen[bytes] | None = None

    def _as_postgres(self) -> dict[str, Any]:
        """Popen arguments that start a program as the postgres user when the test is root.

        The server is started directly (no ``runuser`` in between), so that it is the test's
        own child: killed, it is reaped by the test, not left as a zombie whose pid keeps
        ``postmaster.pid`` looking alive to the restarted server.
        """
        return (
            {"user": "postgres", "group": "postgres", "extra_groups": []}
            if os.getuid() == 0
            else {}
        )

    def start(self) -> None:
        with (self.dir / "server.log").open("ab") as log:  # the child keeps its own copy
            self.server = subprocess.Popen(
                [
                    str(self.bin / "postgres"), "-D", str(self.dir / "data"),
                    "-p", str(self.port), "-k", str(self.dir),
                    "-c", "listen_addresses=127.0.0.1",
                ],
                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True, cwd=self.dir,
                **self._as_postgres(),
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(self.url.replace("+psycopg", ""), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                tail = (self.dir / "server.log").read_text(errors="replace")[-2000:]
                assert time.monotonic() < deadline, f"the private PostgreSQL never started: {tail}"
                time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL to the postmaster and every backend at once."""
        assert self.server is not None
        os.killpg(self.server.pid, signal.SIGKILL)
        self.server.wait()

    def close(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")}
        subprocess.run(
            [sys.executable, "-m", "builder", "db", "upgrade"],
            env={**env, "BUILDER_DATABASE_URL": pg.url},
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        yield pg
    finally:
        pg.close()


def _statuses(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        return [
            (str(run), str(thread))
            for run, thread in conn.execute(
                "SELECT r.status, t.status FROM runs r JOIN threads t USING (thread_id)"
            ).fetchall()
        ]


async def test_a_run_cut_off_by_a_database_crash_is_reconciled_and_resumes(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    responses = [
        {"tool_calls": [call("write_file", path=f"page-{i}.html", content=f"<p>{i}</p>\n")]}
        for i in range(6)
    ]
    model = write_script(tmp_path, [[*responses, {"content": "Done."}]])
    settings = Settings(
        database_url=private_pg.url, data_dir=tmp_path / "data", timeout_db=3.0, model=model
    )
    db = Database(private_pg.url, settings=settings)
    try:
        async with RunService.open(settings, db=db, model=model) as service:
            user = await get_or_create_user(db, name="alice")
            project = await create_project(db, user_id=user.id, name="bakery")
            handle = await service.start(user_id=user.id, project_id=project.id, prompt="A site")
            async for event in handle.events():
                if event.type == "tool_end":
                    private_pg.kill()  # while the run goes on writing
                    break
            result = await handle.wait()
            assert result.status == "error"
            private_pg.start()
            # Its end could not be recorded: without reconciling it would stay so.
            assert _statuses(private_pg.url) == [("running", "busy")]

            # The first lock taken on a connection from before the crash finds it dead
            # and clears the pool of such connections; the periodic round after works.
            with contextlib.suppress(DependencyUnavailable):
                await service.reconcile()
            if _statuses(private_pg.url) != [("interrupted", "interrupted")]:
                assert await service.reconcile() == [result.run_id]
            assert _statuses(private_pg.url) == [("interrupted", "interrupted")]

            resumed = await service.start(
                user_id=user.id, project_id=project.id, prompt=None, resume=True
            )
            outcome = await resumed.wait()
            assert outcome.status == "success", outcome.error
            assert _statuses(private_pg.url) == [("success", "idle")]
            workspace = next((tmp_path / "data" / "workspaces").iterdir())
            assert sorted(p.name for p in workspace.glob("page-*.html")) == [
                f"page-{i}.html" for i in range(6)
            ]
    finally:
        await db.dispose()
