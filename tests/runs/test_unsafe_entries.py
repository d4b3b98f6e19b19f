"""Symbolic links and FIFOs the agent creates in its workspace never break the project.

A real command makes them (``ln -s``, ``mkfifo``, ``python -m venv``); every later turn
still succeeds, listings name them with a note, snapshots leave them out (never a
link target's content), and restoring a version replaces a link in its way instead
of writing through it.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from builder.persistence.database import Database
from builder.persistence.files import restore_snapshot
from builder.persistence.messages import list_messages
from builder.persistence.projects import create_project
from builder.persistence.schemas import ProjectPublic, UserPublic
from builder.persistence.snapshots import tree
from builder.persistence.users import get_or_create_user
from builder.runs.service import RunService
from builder.settings import Settings
from tests.support.scripts import call, write_script

COMMAND = (
    f"ln -s /etc/passwd passwd && ln -s /etc etc && mkfifo pipe && "
    f"{sys.executable} -m venv --without-pip venv && echo made"
)


@pytest.fixture
async def user(db: Database) -> UserPublic:
    return await get_or_create_user(db, name="alice")


@pytest.fixture
async def project(db: Database, user: UserPublic) -> ProjectPublic:
    return await create_project(db, user_id=user.id, name="links")


@pytest.fixture
async def service(db: Database, settings: Settings, tmp_path: Path) -> AsyncIterator[RunService]:
    turns = [
        [
            {"tool_calls": [call("write_file", path="index.html", content="<h1>A</h1>\n")]},
            {"tool_calls": [call("run_command", command=COMMAND)]},
            {"tool_calls": [call("list_files", path=".")]},
            {"tool_calls": [call("get_project_structure")]},
            {"content": "Made links."},
        ],
        [
            {"tool_calls": [call("write_file", path="about.html", content="<h1>B</h1>\n")]},
            {"tool_calls": [call("search_files", pattern="root")]},
            {"content": "Next page."},
        ],
    ]
    model = write_script(tmp_path, turns, after_last_turn="repeat_last")
    async with RunService.open(settings, db=db, model=model) as svc:
        yield svc


async def test_links_and_fifos_are_skipped_never_fatal(
    service: RunService, db: Database, user: UserPublic, project: ProjectPublic
) -> None:
    for prompt in ("Make links", "Another page", "And another"):
        handle = await service.start(user_id=user.id, project_id=project.id, prompt=prompt)
        result = await handle.wait()
        assert (result.status, result.error) == ("success", None), prompt
    saved = await tree(db, project_id=project.id)
    assert "index.html" in saved and "about.html" in saved
    assert not {"passwd", "pipe", "etc"} & set(saved)
    assert not any(path.startswith(("etc/", "venv/bin/python")) for path in saved)
    stored = (await list_messages(db, project_id=project.id)).items
    outputs = [
        str(part.get("result", ""))
        for message in stored
        for part in message.parts
        if part.get("type") == "tool-call"
    ]
    listing = next(o for o in outputs if "passwd (" in o)
    assert "passwd (symlink: not read, not saved)" in listing
    assert "pipe (fifo: not read, not saved)" in listing
    assert not any("root:x:0:0" in output for output in outputs)

    # Restoring a version never writes through a link standing where a file goes.
    async with service.pool.lease(str(project.id)) as sandbox:
        workspace = Path(sandbox.root)  # type: ignore[attr-defined]
        target = workspace.parent / f"outside-{uuid.uuid4().hex}"
        target.write_text("untouched\n")
        (workspace / "index.html").unlink()
        (workspace / "index.html").symlink_to(target)
        await restore_snapshot(db, project_id=project.id, sandbox=sandbox)
        assert target.read_text() == "untouched\n"
        assert not (workspace / "index.html").is_symlink()
        assert (workspace / "index.html").read_text() == "<h1>A</h1>\n"
