"""Two real server processes on one database, each with its own data directory, taking
turns on one project: no run's edit may be lost.

Each replica keeps its own copy of the project's files. A copy records the version it
holds; before a turn a copy that another replica has moved past is refreshed from the
latest version, and a save on top of a version that is not the latest is refused. The
twin test turns the check off (the copy's recorded version is deleted and rewritten as
the latest before every turn, as if it were current) and shows the edits that are lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http.server import ServerProcess
from tests.support.database import clone_database
from tests.support.scripts import call, write_script
from tests.support.services import drop_database

MARKER = "<!-- end -->"
TURNS = 8


def _script(directory: Path) -> str:
    first = [
        {
            "content": "Writing the page.",
            "tool_calls": [call("write_file", path="index.html", content=f"<ul>\n{MARKER}\n")],
        },
        {"content": "Written."},
    ]
    edit = [
        {
            "content": "Adding an item.",
            "tool_calls": [
                call("edit_file", path="index.html", search=MARKER, replace=f"<li>\n{MARKER}")
            ],
        },
        {"content": "Edited."},
    ]
    return write_script(directory, [first, edit], after_last_turn="repeat_last")


@pytest.fixture
def pair(tmp_path: Path, migrated_template: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    url = clone_database(migrated_template)
    env = {
        "BUILDER_ALLOW_ANONYMOUS": "false",
        "BUILDER_MODEL": _script(tmp_path),
        "BUILDER_RATE_LIMIT_DEFAULT": "100000/minute",
        "BUILDER_RATE_LIMIT_CHAT": "100000/minute",
    }
    servers = [
        ServerProcess(
            database_url=url,
            data_dir=_mkdir(tmp_path / f"replica-{name}") / "data",
            redis_prefix=f"test:{uuid.uuid4().hex[:12]}:",
            env=env,
        )
        for name in ("a", "b")
    ]
    for server in servers:
        del server.env["BUILDER_REDIS_URL"]
    try:
        for server in servers:
            server.start()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()
        drop_database(url)


def _take_turns(
    a: ServerProcess, b: ServerProcess, *, pretend_current: bool
) -> tuple[list[str], int]:
    """Alternate turns between the replicas; the runs' statuses and the items kept."""
    key = a.new_key("alice")
    statuses = []
    with a.client(key) as on_a, b.client(key) as on_b:
        pid = on_a.post("/api/projects", json={"name": "shared"}).json()["id"]
        for turn in range(TURNS + 1):
            server, http = (a, on_a) if turn % 2 == 0 else (b, on_b)
            if pretend_current:
                _pretend_current(server, pid, http)
            reply = http.post(f"/api/projects/{pid}/chat/wait", json={"prompt": f"Turn {turn}"})
            assert reply.status_code == 200, reply.text
            statuses.append(reply.json()["status"])
        page = on_a.get(f"/api/projects/{pid}/files/index.html")
        assert page.status_code == 200, page.text
    return statuses, page.json()["content"].count("<li>")


def _pretend_current(server: ServerProcess, pid: str, http: httpx.Client) -> None:
    """Mark this replica's copy as holding the latest version, whatever it holds."""
    versions = http.get(f"/api/projects/{pid}/snapshots").json()["items"]
    marker = server.data_dir / "workspaces" / pid / ".builder" / "version"
    if marker.parent.is_dir():
        marker.write_text(f"{versions[0]['version'] if versions else 0}\n")


@pytest.mark.slow
def test_turns_on_two_replicas_keep_every_edit(pair: tuple[ServerProcess, ServerProcess]) -> None:
    statuses, items = _take_turns(*pair, pretend_current=False)
    print(f"\nreplicas: {items} of {TURNS} edits kept")
    assert statuses == ["success"] * (TURNS + 1)
    assert items == TURNS


@pytest.mark.slow
def test_a_stale_copy_taken_for_current_loses_edits(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    statuses, items = _take_turns(*pair, pretend_current=True)
    assert statuses == ["success"] * (TURNS + 1)  # every run says it succeeded
    print(f"\nstale copies: {items} of {TURNS} edits kept")
    assert items < TURNS


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path
