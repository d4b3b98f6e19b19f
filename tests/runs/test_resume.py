"""A run killed with SIGKILL resumes from its last completed step.

The build runs in a real ``builder run`` process that is killed after a few steps;
``builder run --resume`` finishes it. Every step appends its name to ``steps.log`` in
the workspace, so a step executed twice would show twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.support.scripts import call, write_script

STEPS = 6
pytestmark = pytest.mark.slow


def _script(tmp_path: Path) -> str:
    responses = []
    for i in range(STEPS):
        responses.append(
            {
                "tool_calls": [call("run_command", command=f"echo step-{i} >> steps.log")],
                "delay_s": 0.4,
            }
        )
        responses.append(
            {
                "tool_calls": [call("write_file", path=f"page-{i}.html", content=f"<p>{i}</p>\n")],
                "delay_s": 0.6,
            }
        )
    responses.append({"content": "Built every page."})
    return write_script(tmp_path, [responses])


def _env(db_url: str, data_dir: Path, model: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")}
    env.update(
        BUILDER_DATABASE_URL=db_url,
        BUILDER_DATA_DIR=str(data_dir),
        # A killed run is resumed or reconciled once its lease has run out.
        BUILDER_RUN_LEASE_SECONDS="2",
        BUILDER_MODEL=model,
        # The pages have no <title>: the end-of-turn check is not what this test is about.
        BUILDER_CHECK_ROUNDS="0",
        COLUMNS="200",
    )
    return env


def _builder(*args: str) -> list[str]:
    return [sys.executable, "-m", "builder", *args]


def _files(workspace: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(workspace.iterdir()) if p.is_file()}


def _workspace(data_dir: Path) -> Path:
    (workspace,) = (data_dir / "workspaces").iterdir()
    return workspace


def test_a_killed_run_resumes_without_repeating_completed_steps(
    migrated_db_url: str, tmp_path: Path
) -> None:
    model = _script(tmp_path)

    # The reference: the same build, uninterrupted.
    reference_dir = tmp_path / "reference"
    done = subprocess.run(
        _builder("run", "build the pages", "--project", "reference"),
        env=_env(migrated_db_url, reference_dir, model),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    reference = _files(_workspace(reference_dir))
    assert reference["steps.log"] == "".join(f"step-{i}\n" for i in range(STEPS)).encode()

    # The same build, killed once three commands have completed: a step is complete
    # when its checkpoint is written, a moment after the tools node saved its version
    # ("saved version"); the kill lands while the model takes its time over the next
    # step. (A step killed between its tool returning and that write is in flight and
    # runs again on resume.)
    data_dir = tmp_path / "killed"
    env = _env(migrated_db_url, data_dir, model)
    process = subprocess.Popen(
        _builder("run", "build the pages", "--project", "killed"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    completed = 0
    deadline = time.monotonic() + 120
    for line in process.stdout:
        if "✓ run_command" in line:
            completed += 1
        elif completed == 3 and "saved version" in line:
            time.sleep(0.3)
            process.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "the run never reached its third command"
    process.wait(timeout=30)
    process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    partial = (_workspace(data_dir) / "steps.log").read_text()
    assert partial == "step-0\nstep-1\nstep-2\n"

    resumed = subprocess.run(
        _builder("run", "--resume", "--project", "killed"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming" in resumed.stdout
    # Identical files, and no completed step ran twice.
    assert _files(_workspace(data_dir)) == reference
    with psycopg.connect(migrated_db_url.replace("+psycopg", "")) as conn:
        rows = conn.execute(
            "SELECT r.status, count(u.id), count(DISTINCT u.step) FROM runs r "
            "JOIN projects p ON p.id = r.project_id "
            "LEFT JOIN token_usage u ON u.run_id = r.run_id "
            "WHERE p.name = 'killed' GROUP BY r.run_id, r.status"
        ).fetchall()
    assert len(rows) == 1
    status, usage_rows, distinct_steps = rows[0]
    assert status == "success"
    assert usage_rows == distinct_steps == 2 * STEPS + 1


def test_a_killed_runs_row_and_thread_are_reconciled_by_another_process(
    migrated_db_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "killed"
    env = _env(migrated_db_url, data_dir, _script(tmp_path))
    process = subprocess.Popen(
        _builder("run", "build the pages", "--project", "orphaned"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "✓ run_command" in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=30)
    process.stdout.close()
    query = (
        "SELECT r.status, t.status FROM runs r JOIN threads t ON t.thread_id = r.thread_id "
        "JOIN projects p ON p.id = r.project_id WHERE p.name = 'orphaned'"
    )
    with psycopg.connect(migrated_db_url.replace("+psycopg", "")) as conn:
        assert conn.execute(query).fetchall() == [("running", "busy")]

    # Any other process reconciles it: here a second `builder run` on another project.
    other = subprocess.run(
        _builder("run", "build the pages", "--project", "another"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert other.returncode == 0, other.stdout + other.stderr
    with psycopg.connect(migrated_db_url.replace("+psycopg", "")) as conn:
        assert conn.execute(query).fetchall() == [("interrupted", "interrupted")]
    resumed = subprocess.run(
        _builder("run", "--resume", "--project", "orphaned"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with psycopg.connect(migrated_db_url.replace("+psycopg", "")) as conn:
        assert conn.execute(query).fetchall() == [("success", "idle")]
