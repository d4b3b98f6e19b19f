"""Pushing versions to a real git server on loopback and cloning what arrived."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from builder.errors import InvalidInput, PublishFailed
from builder.persistence import Database, create_project, get_or_create_user, save_snapshot
from builder.publish.git import GitCredentials, PushResult, push_files
from builder.publish.source import VersionFiles
from tests.support.git_server import GitServer

TOKEN = "canary-git-token-5f1d"


def clone(url: str, target: Path) -> Path:
    """Clone ``url`` bare (credentials in the URL: test-side only)."""
    subprocess.run(["git", "clone", "--quiet", "--bare", url, str(target)], check=True)
    return target


def files_at(repo: Path, rev: str) -> dict[str, bytes]:
    """Every file of a commit, as git stored its bytes (no checkout filter)."""

    def git(*args: str) -> bytes:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, check=True
        ).stdout

    listing = git("ls-tree", "-r", "-z", rev).split(b"\0")
    found = {}
    for line in filter(None, listing):
        meta, path = line.split(b"\t", 1)
        mode, _, sha = meta.split()
        assert mode == b"100644"
        found[path.decode()] = git("cat-file", "blob", sha.decode())
    return found


def log(repo: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "log", "--format=%an <%ae>|%s", "main"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.splitlines()


async def test_two_versions_become_two_commits_byte_for_byte(db: Database, tmp_path: Path) -> None:
    user = await get_or_create_user(db, name="alice")
    project = await create_project(db, user_id=user.id, name="Bakery", description="")
    first = {
        "index.html": b"<h1>1</h1>\r\n",  # CRLF kept as it is
        ".gitattributes": b"* text=auto eol=lf\n",  # no filter applies to pushed bytes
        ".gitignore": b"*.bin\n",  # ignored names are pushed all the same
        "img/x.bin": bytes(range(256)) * 40,
        'odd "name" with space.txt': b"odd\n",
        "caf\u00e9/menu.html": b"menu",
    }
    await save_snapshot(db, project_id=project.id, changes=first)
    await save_snapshot(db, project_id=project.id, changes={"index.html": b"2", "img/x.bin": None})
    with GitServer(tmp_path / "srv", "alice", TOKEN) as server:
        (tmp_path / "srv").mkdir(exist_ok=True)
        url = server.url("site.git")
        creds = GitCredentials("alice", TOKEN)

        async def push(version: int, message: str) -> PushResult:
            return await push_files(
                VersionFiles(db, project_id=project.id, version=version),
                url=url,
                branch="main",
                credentials=creds,
                author_name="Alice Baker",
                author_email="alice@example.com",
                message=message,
                timestamp=1_700_000_000 + version,
            )

        one = await push(1, "Bakery home page")
        two = await push(2, "Shorter home page")
        again = await push(2, "Shorter home page")
        assert (one.pushed, two.pushed, again.pushed) == (True, True, False)
        assert again.commit == two.commit

        authed = url.replace("http://", f"http://alice:{TOKEN}@")
        repo = clone(authed, tmp_path / "clone.git")
        assert files_at(repo, "main") == {k: v for k, v in first.items() if k != "img/x.bin"} | {
            "index.html": b"2"
        }
        assert files_at(repo, "main~1") == first
        assert log(repo) == [
            "Alice Baker <alice@example.com>|Shorter home page",
            "Alice Baker <alice@example.com>|Bakery home page",
        ]

        with pytest.raises(PublishFailed, match="git ls-remote failed") as refused:
            await push_files(
                VersionFiles(db, project_id=project.id, version=1),
                url=url,
                branch="main",
                credentials=GitCredentials("alice", TOKEN + "-wrong"),
                author_name="a",
                author_email="a@b",
                message="m",
                timestamp=1,
            )
        assert TOKEN not in str(refused.value)
        with pytest.raises(InvalidInput, match="not in its URL"):
            await push_files(
                VersionFiles(db, project_id=project.id, version=1),
                url=authed,
                branch="main",
                credentials=None,
                author_name="a",
                author_email="a@b",
                message="m",
                timestamp=1,
            )
