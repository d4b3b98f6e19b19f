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
from langchain_core.messages import AIMessage, ToolMessage

from builder.persistence.database import Database
from builder.persistence.messages import append_message, list_messages
from builder.persistence.projects import create_project
from builder.persistence.runs import get_run
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


def _die_before_checkpoint(
    service: RunService,
    thread_id: str,
    step: int,
    *,
    last_run: bool = False,
    writes_stored: bool = True,
) -> asyncio.Event:
    """Make the next turn on ``thread_id`` stop as a dying process would: after the
    writes of the tasks before checkpoint ``step`` are handed to the checkpointer,
    before that checkpoint.

    Args:
        last_run: The service takes no run after this one (nobody takes it over).
        writes_stored: The writes are stored before the process dies, as a process
            stores them that writes a context outside a run's lease. Under the lease
            (``False``) they wait for the checkpoint and are lost with it.

    Returns:
        Set once the turn has stopped there.
    """
    checkpointer = service.checkpointer
    real_put, real_writes, real_stream = (
        checkpointer.aput,
        checkpointer.aput_writes,
        service.graph.astream,
    )
    written: set[str] = set()  # checkpoints whose tasks' writes are stored
    stopped = asyncio.Event()

    async def aput_writes(config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        await real_writes(config, writes, task_id, task_path)
        written.add(config["configurable"]["checkpoint_id"])

    async def aput(config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        if config["configurable"]["thread_id"] == thread_id and metadata.get("step") == step:
            parent = config["configurable"].get("checkpoint_id")
            for _ in range(500):
                if parent in written:
                    break
                await asyncio.sleep(0.01)
            if writes_stored:
                riding = checkpointer._riding.pop(thread_id, [])
                if riding:
                    await checkpointer._flush_riding(thread_id, riding)
            if last_run:
                service.worker.stop_claiming()
            stopped.set()
            await asyncio.Event().wait()  # the process is gone: this checkpoint never lands
        return await real_put(config, checkpoint, metadata, versions)

    async def astream(graph_input: Any, cfg: Any, **kwargs: Any) -> Any:
        chunks = real_stream(graph_input, cfg, **kwargs)
        while True:
            following = asyncio.ensure_future(anext(chunks))
            dead = asyncio.ensure_future(stopped.wait())
            await asyncio.wait({following, dead}, return_when=asyncio.FIRST_COMPLETED)
            dead.cancel()
            if stopped.is_set():
                following.cancel()
                checkpointer.aput, checkpointer.aput_writes = real_put, real_writes  # type: ignore[method-assign]
                service.graph.astream = real_stream  # type: ignore[method-assign]
                raise Crash
            try:
                yield following.result()
            except StopAsyncIteration:
                return

    checkpointer.aput, checkpointer.aput_writes = aput, aput_writes  # type: ignore[method-assign]
    service.graph.astream = astream  # type: ignore[method-assign]
    return stopped


@pytest.mark.parametrize("writes_stored", [True, False], ids=["writes-stored", "under-the-lease"])
@pytest.mark.parametrize(
    ("step", "source"),
    [(0, "input"), (1, "loop")],
    ids=["after-the-input", "after-the-model-step"],
)
async def test_a_turn_stopped_between_a_step_s_writes_and_its_checkpoint_is_taken_over(
    service: RunService,
    db: Database,
    settings: Settings,
    user: UserPublic,
    project: ProjectPublic,
    step: int,
    source: str,
    writes_stored: bool,
) -> None:
    """With its tasks' writes stored, LangGraph reports such a checkpoint with nothing
    to run next; the turn still has its steps to run, it is not a finished turn with an
    empty reply. Under the run's lease the writes go with the checkpoint: the step that
    made them runs again."""
    stopped = _die_before_checkpoint(service, str(project.id), step, writes_stored=writes_stored)
    crashed = await service.start(user_id=user.id, project_id=project.id, prompt="A bakery site")
    with pytest.raises(Crash):
        await crashed.wait()
    assert stopped.is_set()
    state = await service.graph.aget_state({"configurable": {"thread_id": str(project.id)}})
    if writes_stored:
        assert state.metadata["source"] == source and not state.next  # the window
    else:
        assert state.next and state.tasks[0].result is None  # the step is to run again

    # Another worker takes the released run over and runs the rest of the turn.
    async with RunService.open(settings, db=db, model="scripted:demo", worker="all"):
        for _ in range(600):  # until it has ended
            row = await get_run(db, run_id=crashed.run_id)
            if row is not None and row["ended_at"] is not None:
                break
            await asyncio.sleep(0.1)
    assert row is not None
    assert row["status"] == "success", row
    assert row["result"]["steps"] > 1 and row["result"]["reply"]
    versions = (await list_snapshots(db, project_id=project.id)).items
    assert versions and versions[0].run_id == crashed.run_id
    stored = (await list_messages(db, project_id=project.id)).items
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].content == row["result"]["reply"]


async def test_a_new_turn_after_a_step_stopped_before_its_checkpoint_keeps_a_valid_context(
    service: RunService, db: Database, settings: Settings, user: UserPublic, project: ProjectPublic
) -> None:
    """The next ``builder run`` without ``--resume`` closes the stopped turn: the model's
    tool calls of the step are kept in the context and answered as not run, so no tool
    answer is left without its call (which a provider would refuse)."""
    stopped = _die_before_checkpoint(service, str(project.id), 1, last_run=True)
    crashed = await service.start(user_id=user.id, project_id=project.id, prompt="A bakery site")
    with pytest.raises(Crash):
        await crashed.wait()
    assert stopped.is_set()

    # A new process: it marks the stopped run interrupted, then runs the new prompt.
    async with RunService.open(settings, db=db, model="scripted:demo") as later:
        row = await get_run(db, run_id=crashed.run_id)
        assert row is not None and row["status"] == "interrupted"
        handle = await later.start(user_id=user.id, project_id=project.id, prompt="Greener")
        assert (await handle.wait()).status == "success"
        state = await later.graph.aget_state({"configurable": {"thread_id": str(project.id)}})
    messages = state.values["messages"]
    called: set[str] = set()
    for message in messages:
        if isinstance(message, AIMessage):
            called.update(call["id"] for call in message.tool_calls)
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in called, message
    stopped_calls = next(m for m in messages if isinstance(m, AIMessage) and m.tool_calls)
    answer = next(
        m
        for m in messages
        if isinstance(m, ToolMessage) and m.tool_call_id == stopped_calls.tool_calls[0]["id"]
    )
    assert answer.status == "error" and "Not run" in str(answer.content)
