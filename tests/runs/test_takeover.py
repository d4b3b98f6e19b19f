"""A worker process SIGKILLed in the middle of a run: another worker takes the run over.

Two real ``builder worker`` processes share one PostgreSQL and one Redis. The run is
started by a third party that works no runs (``worker="none"``, as ``builder serve
--no-worker`` does) and follows it. The worker that claimed it is killed while it waits
on the model; the other takes it over once the lease has run out, resumes it from its
last checkpoint, and the run ends exactly once, its events going on under the same run
id, numbered on from where the killed worker's stopped.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from builder.persistence.database import Database
from builder.persistence.projects import create_project
from builder.persistence.snapshots import tree
from builder.persistence.users import get_or_create_user
from builder.runs.events import RunEvent
from builder.runs.service import RunService
from builder.settings import Settings
from tests.support.cli import user_env
from tests.support.scripts import call, write_script

pytestmark = pytest.mark.slow

PAGES = 5
LEASE = 2.0


def _script(tmp_path: Path) -> str:
    return write_script(
        tmp_path,
        [
            [
                *(
                    {
                        "tool_calls": [
                            call("write_file", path=f"p{i}.html", content=f"<p>{i}</p>\n")
                        ],
                        "delay_s": 0.4,
                    }
                    for i in range(PAGES)
                ),
                {"content": "Five pages.", "delay_s": 0.4},
            ]
        ],
    )


class Workers:
    """``builder worker`` processes of the test, killed or stopped at the end."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, name: str) -> subprocess.Popen[bytes]:
        self.logs.append(self.cwd / f"{name}.log")
        with self.logs[-1].open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "builder", "worker", "--concurrency", "4"],
                env={**self.env, "BUILDER_DATA_DIR": str(self.cwd / name)},
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def wait_ready(self) -> None:
        """Until every worker has started claiming."""
        deadline = time.monotonic() + 60
        while not all("worker.started" in log.read_text() for log in self.logs):
            assert time.monotonic() < deadline, [log.read_text() for log in self.logs]
            time.sleep(0.1)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


@pytest.fixture
def lease() -> float:
    """The workers' lease."""
    return LEASE


@pytest.fixture
def workers(
    migrated_db_url: str, redis_url: str, redis_prefix: str, tmp_path: Path, lease: float
) -> Iterator[Workers]:
    env = user_env(
        BUILDER_DATABASE_URL=migrated_db_url,
        BUILDER_REDIS_URL=redis_url,
        BUILDER_REDIS_KEY_PREFIX=redis_prefix,
        BUILDER_MODEL=_script(tmp_path),
        BUILDER_RUN_LEASE_SECONDS=str(lease),
        BUILDER_RUN_POLL_SECONDS="0.2",
        BUILDER_SHUTDOWN_GRACE_SECONDS="30",
    )
    started = Workers(env, tmp_path)
    try:
        yield started
    finally:
        started.close()


def _worker_of(db_url: str, run_id: str) -> tuple[str, str | None, int]:
    with psycopg.connect(db_url.replace("+psycopg", "")) as conn:
        row = conn.execute(
            "SELECT status, worker_id, attempts FROM runs WHERE run_id = %s", (run_id,)
        ).fetchone()
    assert row is not None
    return str(row[0]), row[1], int(row[2])


def _forks(db_url: str, thread_id: str) -> list[tuple[str, int]]:
    """Checkpoints with more than one child: a forked history."""
    with psycopg.connect(db_url.replace("+psycopg", "")) as conn:
        return [
            (str(parent), int(n))
            for parent, n in conn.execute(
                "SELECT parent_checkpoint_id, count(*) FROM checkpoints "
                "WHERE thread_id = %s AND checkpoint_ns = '' "
                "AND parent_checkpoint_id IS NOT NULL "
                "GROUP BY parent_checkpoint_id HAVING count(*) > 1",
                (thread_id,),
            ).fetchall()
        ]


async def test_a_run_whose_worker_is_killed_is_taken_over_and_ends_once(
    workers: Workers, migrated_db_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=migrated_db_url,
        redis_url=redis_url,
        redis_key_prefix=redis_prefix,
        data_dir=tmp_path / "api",
        run_poll_seconds=0.2,
        run_lease_seconds=LEASE,
    )
    db = Database(migrated_db_url, settings=settings)
    both = [workers.start("one"), workers.start("two")]
    workers.wait_ready()
    try:
        model = workers.env["BUILDER_MODEL"]
        async with RunService.open(settings, db=db, model=model, worker="none") as api:
            user = await get_or_create_user(db, name="alice")
            project = await create_project(db, user_id=user.id, name="pages")
            handle = await api.start(user_id=user.id, project_id=project.id, prompt="Pages")
            events: list[RunEvent] = []
            killed_at = took_over = 0.0
            first = second = both[0]
            async with asyncio.timeout(120):
                async for event in handle.events():
                    events.append(event)
                    tools_done = sum(e.type == "tool_end" for e in events)
                    if tools_done == 2 and not killed_at:
                        status, owner, attempts = _worker_of(migrated_db_url, handle.run_id)
                        assert (status, attempts) == ("running", 1)
                        first, second = both if f":{both[0].pid}:" in str(owner) else both[::-1]
                        assert f":{first.pid}:" in str(owner)
                        first.send_signal(signal.SIGKILL)  # while it waits on the model
                        killed_at = time.monotonic()
                    if event.type == "run_started" and killed_at:
                        took_over = time.monotonic() - killed_at
            result = await handle.wait()
    finally:
        await db.dispose()
    assert first.wait(timeout=10) == -signal.SIGKILL
    assert second.poll() is None

    assert result.status == "success", result.error
    status, owner, attempts = _worker_of(migrated_db_url, handle.run_id)
    assert (status, attempts) == ("success", 2)
    assert owner is not None and f":{second.pid}:" in owner
    # One stream under one run id: numbered on without repeats, started twice (the
    # second time resumed), ended once.
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs))
    starts = [e.data for e in events if e.type == "run_started"]
    assert [(s["run_id"], s["resumed"]) for s in starts] == [
        (handle.run_id, False),
        (handle.run_id, True),
    ]
    assert [e.type for e in events].count("run_finished") == 1
    assert events[-1].type == "run_finished"
    # Completed steps were not run again: every page written, the history one line.
    db = Database(migrated_db_url, settings=settings)
    try:
        files = await tree(db, project_id=project.id)
    finally:
        await db.dispose()
    assert sorted(files) == [f"p{i}.html" for i in range(PAGES)]
    assert _forks(migrated_db_url, str(project.id)) == []
    written = [e.data["path"] for e in events if e.type == "file_changed"]
    assert len(written) <= PAGES + 1  # at most the step in flight twice
    print(f"taken over {took_over:.2f} s after the kill (lease {LEASE} s)")


@pytest.mark.parametrize("lease", [120.0])
async def test_a_worker_stopped_with_sigterm_hands_its_run_over_at_once(
    workers: Workers, migrated_db_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """SIGTERM: the current step finishes, the lease is released, another worker goes on
    at once — long before the two-minute lease would have run out."""
    settings = Settings(
        database_url=migrated_db_url,
        redis_url=redis_url,
        redis_key_prefix=redis_prefix,
        data_dir=tmp_path / "api",
        run_poll_seconds=0.2,
    )
    db = Database(migrated_db_url, settings=settings)
    both = [workers.start("one"), workers.start("two")]
    workers.wait_ready()
    try:
        model = workers.env["BUILDER_MODEL"]
        async with RunService.open(settings, db=db, model=model, worker="none") as api:
            user = await get_or_create_user(db, name="alice")
            project = await create_project(db, user_id=user.id, name="pages")
            handle = await api.start(user_id=user.id, project_id=project.id, prompt="Pages")
            events: list[RunEvent] = []
            stopped = None
            async with asyncio.timeout(60):
                async for event in handle.events():
                    events.append(event)
                    if event.type == "tool_end" and stopped is None:
                        _, owner, _ = _worker_of(migrated_db_url, handle.run_id)
                        stopped = both[0] if f":{both[0].pid}:" in str(owner) else both[1]
                        stopped.send_signal(signal.SIGTERM)
            result = await handle.wait()
    finally:
        await db.dispose()
    assert stopped is not None and stopped.wait(timeout=60) == 0
    assert result.status == "success", result.error
    status, owner, attempts = _worker_of(migrated_db_url, handle.run_id)
    assert (status, attempts) == ("success", 2)
    assert f":{stopped.pid}:" not in str(owner)
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs))
    assert [e.type for e in events].count("run_finished") == 1
    db = Database(migrated_db_url, settings=settings)
    try:
        assert sorted(await tree(db, project_id=project.id)) == [f"p{i}.html" for i in range(PAGES)]
    finally:
        await db.dispose()
    assert _forks(migrated_db_url, str(project.id)) == []
