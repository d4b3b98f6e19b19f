"""A ``builder run`` killed at the worst moments resumes to exactly the files and
conversation of a run that was never interrupted, and leaves no server running.

The process is killed with SIGKILL from inside, at an exact point (see
``killpoint/sitecustomize.py``): right after a tool returned and before its checkpoint,
in the middle of a snapshot's transaction, and after the graph finished but before the
reply was stored. ``builder run --resume`` then finishes the turn.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from builder.persistence.database import Database
from builder.persistence.messages import list_messages
from builder.persistence.snapshots import tree
from tests.http.server import free_port
from tests.support.cli import run_builder, user_env
from tests.support.scripts import call, write_script

pytestmark = pytest.mark.slow
KILL_POINTS = Path(__file__).parent / "killpoint"


def _script(tmp_path: Path) -> str:
    return write_script(
        tmp_path,
        [
            [
                {"tool_calls": [call("write_file", path="index.html", content="<h1>Home</h1>\n")]},
                {"tool_calls": [call("write_file", path="about.html", content="<p>About</p>\n")]},
                {
                    "tool_calls": [
                        call("edit_file", path="index.html", search="Home", replace="Bakery")
                    ]
                },
                {"tool_calls": [call("write_file", path="css/site.css", content="h1{}\n")]},
                {"content": "The bakery site is ready."},
            ]
        ],
    )


EXPECTED = {
    "about.html": b"<p>About</p>\n",
    "css/site.css": b"h1{}\n",
    "index.html": b"<h1>Bakery</h1>\n",
}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".builder" not in p.relative_to(root).parts
    }


def _project(db_url: str, name: str) -> uuid.UUID:
    with psycopg.connect(db_url.replace("+psycopg", "")) as conn:
        row = conn.execute("SELECT id FROM projects WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _runs(db_url: str, project_id: uuid.UUID) -> list[tuple[str, int, int]]:
    with psycopg.connect(db_url.replace("+psycopg", "")) as conn:
        return [
            (str(status), int(rows), int(steps))
            for status, rows, steps in conn.execute(
                "SELECT r.status, count(u.id), count(DISTINCT u.step) FROM runs r "
                "LEFT JOIN token_usage u ON u.run_id = r.run_id "
                "WHERE r.project_id = %s GROUP BY r.run_id, r.status",
                (project_id,),
            ).fetchall()
        ]


@pytest.mark.parametrize("point", ["tool:3", "snapshot:2", "reply"])
async def test_a_run_killed_at_the_worst_moment_resumes_to_identical_files(
    point: str, migrated_db_url: str, db: Database, tmp_path: Path
) -> None:
    model = _script(tmp_path)
    # The pages have no <title>: the end-of-turn check is not what this test is about.
    # The killed run's lease must run out before `--resume` takes it over: keep it short.
    env = user_env(
        BUILDER_DATABASE_URL=migrated_db_url,
        BUILDER_MODEL=model,
        BUILDER_CHECK_ROUNDS="0",
        BUILDER_RUN_LEASE_SECONDS="2",
    )
    data_dir = tmp_path / "killed"
    killed_env = {
        **env,
        "BUILDER_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(KILL_POINTS),
        "KILL_AT": point,
    }
    killed = run_builder(
        "run", "A bakery site", "--project", "bakery", env=killed_env, cwd=tmp_path
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    resumed = run_builder(
        "run", "--resume", "--project", "bakery",
        env={**env, "BUILDER_DATA_DIR": str(data_dir)}, cwd=tmp_path,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    project_id = _project(migrated_db_url, "bakery")

    # The files of an uninterrupted run, in the workspace and in the latest version.
    (workspace,) = (data_dir / "workspaces").iterdir()
    assert _files(workspace) == EXPECTED
    assert {p: e.sha256 for p, e in (await tree(db, project_id=project_id)).items()} == {
        p: hashlib.sha256(data).hexdigest() for p, data in EXPECTED.items()
    }
    # The conversation once: the user's message and the reply, nothing doubled.
    page = await list_messages(db, project_id=project_id, limit=10)
    assert [(m.role, m.content) for m in page.items] == [
        ("user", "A bakery site"),
        ("assistant", "The bakery site is ready."),
    ]
    # One run, finished, each model step's tokens recorded once.
    ((status, usage_rows, steps),) = _runs(migrated_db_url, project_id)
    assert status == "success"
    assert usage_rows == steps == 5


def _serving(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("backend", ["local", "local-unconfined"])
def test_a_dev_server_left_by_a_killed_run_is_stopped(
    backend: str, migrated_db_url: str, tmp_path: Path
) -> None:
    port = free_port()
    model = write_script(
        tmp_path,
        [
            [
                {"tool_calls": [call("write_file", path="index.html", content="<h1>Hi</h1>\n")]},
                {
                    "tool_calls": [
                        call("start_dev_server", command="python3 -m http.server {port}", port=port)
                    ]
                },
                {"tool_calls": [call("write_file", path="about.html", content="<p>About</p>\n")]},
                {"content": "Done."},
            ]
        ],
    )
    env = user_env(
        BUILDER_DATABASE_URL=migrated_db_url,
        BUILDER_MODEL=model,
        BUILDER_DATA_DIR=str(tmp_path / "data"),
        BUILDER_SANDBOX_BACKEND=backend,
        BUILDER_RUN_LEASE_SECONDS="2",
    )
    killed = run_builder(
        "run", "A site", "--project", "site", cwd=tmp_path,
        env={**env, "PYTHONPATH": str(KILL_POINTS), "KILL_AT": "tool:3"},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    # A confined server dies with its sandbox (bubblewrap's --die-with-parent); an
    # unconfined one, in its own session, outlives the process that started it...
    if backend == "local":
        deadline = time.monotonic() + 10
        while _serving(port) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert _serving(port) == (backend == "local-unconfined")

    # ...until the project's sandbox is opened again, here by the resumed run, which
    # starts the server its context says runs, on its port (free only once the old
    # one is gone), and stops it when the command ends.
    resumed = run_builder("-v", "run", "--resume", "--project", "site", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    log = (tmp_path / "data" / "logs" / "builder.log").read_text()
    assert ("sandbox.leftovers_stopped" in log) == (backend == "local-unconfined")
    assert "run.dev_server_restarted" in log and "outcome=answering" in log
    assert not _serving(port)
