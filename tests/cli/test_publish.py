"""``builder publish`` as a user runs it: the password from standard input, a real push
to a loopback git server, the history, and a failure in one line."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

from builder.persistence import Database, create_project, get_or_create_user, save_snapshot
from tests.publish.test_git import clone, files_at
from tests.support.cli import user_env
from tests.support.git_server import GitServer

PASSWORD = "cli-remote-pass-2b9f"
FILES = {"index.html": b"<h1>cli</h1>\n"}


def _builder(
    *args: str, env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "builder", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_publish_pushes_remembers_the_password_and_fails_in_one_line(
    db: Database, migrated_db_url: str, tmp_path: Path
) -> None:
    user = await get_or_create_user(db, name="local")
    project = await create_project(db, user_id=user.id, name="bakery")
    await save_snapshot(db, project_id=project.id, changes=FILES, summary="Home")
    env = user_env(
        BUILDER_DATABASE_URL=migrated_db_url,
        BUILDER_DATA_DIR=str(tmp_path / "d"),
        BUILDER_ENCRYPTION_KEYS="k1:" + base64.b64encode(b"q" * 32).decode(),
    )
    (tmp_path / "srv").mkdir()
    with GitServer(tmp_path / "srv", "alice", PASSWORD) as git:
        _as_a_user(env, tmp_path, git.url("site.git"))


def _as_a_user(env: dict[str, str], tmp_path: Path, url: str) -> None:
    pushed = _builder(
        "publish",
        "bakery",
        "git",
        "-o",
        f"url={url}",
        "-o",
        "username=alice",
        "--secret-stdin",
        "password",
        env=env,
        cwd=tmp_path,
        stdin=PASSWORD + "\n",
    )
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert f"published version 1 with git: {url}" in pushed.stdout
    repo = clone(url.replace("http://", f"http://alice:{PASSWORD}@"), tmp_path / "c.git")
    assert files_at(repo, "main") == FILES
    again = _builder("publish", "bakery", "git", env=env, cwd=tmp_path)  # password remembered
    assert again.returncode == 0 and "(already up to date)" in again.stdout, again.stderr

    wrong = _builder(
        "publish",
        "bakery",
        "git",
        "--secret-stdin",
        "password",
        env=env,
        cwd=tmp_path,
        stdin="not-the-password\n",
    )
    assert wrong.returncode == 2
    lines = wrong.stderr.strip().splitlines()
    assert len(lines) == 1 and "publish_failed" in lines[0] and "ls-remote" in lines[0], lines
    history = _builder("publications", "bakery", env=env, cwd=tmp_path)
    assert history.returncode == 0
    assert history.stdout.count("ready") == 2 and "error" in history.stdout
    for output in (pushed, again, wrong, history):
        assert PASSWORD not in output.stdout + output.stderr
