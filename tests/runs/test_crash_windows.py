"""A turn that stops at the worst moment is finished, not refused or doubled.

The process is stopped in-process at the exact point (an exception that nothing in the
run catches, like a SIGKILL leaves nothing behind): between storing the user's message
and the graph's first checkpoint, and right after the turn's input checkpoint.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from builder.persistence.database import Database
from builder.persistence.messages import append_message, list_messages
from builder.persistence.projects import create_project
from builder.persistence.schemas import ProjectPublic, UserPublic
from builder.persistence.snapshots import list_snapshots
from builder.persistence.users import get_or_create_user
from builder.runs.service import RunService
from builder.settings import Settings


class Crash(BaseException):
    """Stands for the process dying: no handler of the run catches it."""


@pytest.fixture
async def user(db: Database) -> UserPublic:
    return await get_or_create_user(db, name="alice")


@pytest.fixture
async def project(db: Database, user: UserPublic) -> ProjectPublic:
    return await create_project(db, user_id=user.id, name="bakery")


@pytest.fixture
async def service(db: Database, settings: Settings) -> AsyncIterator[RunService]:
    async with RunService.open(settings, db=db, model="scripted:demo") as svc:
        yield svc


async def test_a_message_stored_before_the_crash_is_resumed_once(
    service: RunService, db: Database, user: UserPublic, project: ProjectPublic
) -> None:
    # The crashed process stored the message, then died before the graph took it in.
    await append_message(db, project_id=project.id, role="user", content="A bakery site")
    resumed = await service.start(user_id=user.id, project_id=project.id, prompt=None, resume=True)
    result = await resumed.wait()
    assert (result.status, result.error) == ("success", None)
    assert result.snapshot_version is not None
    # Sending the same prompt again after such a crash does not store it twice either.
    await append_message(db, project_id=project.id, role="user", content="Make it greener")
    again = await service.start(user_id=user.id, project_id=project.id, prompt="Make it greener")
    assert (await again.wait()).status == "success"
    stored = (await list_messages(db, project_id=project.id)).items
    assert [(m.role, m.content) for m in stored if m.role == "user"] == [
        ("user", "A bakery site"),
        ("user", "Make it greener"),
    ]
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]


async def test_a_turn_resumed_after_its_input_checkpoint_keeps_its_own_run_id(
    service: RunService, db: Database, user: UserPublic, project: ProjectPublic
) -> None:
    first = await (
        await service.start(user_id=user.id, project_id=project.id, prompt="A bakery site")
    ).wait()
    config: Any = {"configurable": {"thread_id": str(project.id)}}
    real = service.graph.astream

    async def crash_after_input(graph_input: Any, cfg: Any, **kwargs: Any) -> Any:
        kwargs["stream_mode"] = [*kwargs["stream_mode"], "checkpoints"]
        async for mode, chunk in real(graph_input, cfg, **kwargs):
            if mode == "checkpoints":
                for _ in range(200):  # until the input checkpoint is stored
                    state = await service.graph.aget_state(config)
                    if state.metadata and state.metadata.get("source") == "input":
                        raise Crash
                    await asyncio.sleep(0.01)
                raise AssertionError("the input checkpoint was never stored")
            yield mode, chunk

    service.graph.astream = crash_after_input  # type: ignore[method-assign]
    second_id = uuid.uuid4().hex
    crashed = await service.start(
        user_id=user.id, project_id=project.id, prompt="Make it greener", run_id=second_id
    )
    with pytest.raises(Crash):
        await crashed.wait()
    service.graph.astream = real  # type: ignore[method-assign]
    state = await service.graph.aget_state(config)
    assert state.next and state.values["run_id"] == first.run_id  # the window

    resumed = await (
        await service.start(user_id=user.id, project_id=project.id, prompt=None, resume=True)
    ).wait()
    assert resumed.status == "success" and resumed.run_id == second_id
    versions = (await list_snapshots(db, project_id=project.id)).items
    assert versions[0].run_id == second_id
    assert resumed.snapshot_version == versions[0].version > first.snapshot_version
    assert resumed.files_changed == ["styles.css"]
