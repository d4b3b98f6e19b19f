"""The runs service: turns, events, one run per project, cancel, rebuild after expiry."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from builder.errors import InvalidInput, NotFound, RunInProgress
from builder.persistence.database import Database
from builder.persistence.messages import list_messages
from builder.persistence.projects import create_project, project_replica
from builder.persistence.runs import get_run
from builder.persistence.schemas import ProjectPublic, UserPublic
from builder.persistence.users import get_or_create_user
from builder.runs.queue import QueueLimits, claim
from builder.runs.service import RunService
from builder.settings import Settings
from tests.support.scripts import call, write_script

DEMO_FILES = ["about.html", "contact.html", "index.html", "logo.svg", "script.js", "styles.css"]


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


def _slow_script(tmp_path: Path, steps: int = 6, delay: float = 0.3) -> str:
    return write_script(
        tmp_path,
        [
            [
                *(
                    {
                        "tool_calls": [call("write_file", path=f"f{i}.txt", content=f"{i}")],
                        "delay_s": delay,
                    }
                    for i in range(steps)
                ),
                {"content": "All written."},
            ]
        ],
        after_last_turn="repeat_last",
    )


async def test_a_turn_builds_the_site_and_records_everything(
    service: RunService, db: Database, user: UserPublic, project: ProjectPublic
) -> None:
    handle = await service.start(user_id=user.id, project_id=project.id, prompt="A bakery site")
    events = [event async for event in handle.events()]
    result = await handle.wait()

    assert [e.type for e in events[:2]] == ["queued", "run_started"]
    assert events[-1].type == "run_finished"
    assert [e.seq for e in events] == list(range(len(events)))
    kinds = {e.type for e in events}
    assert {"token", "message", "tool_start", "tool_end", "file_changed", "snapshot"} <= kinds
    assert result.status == "success" and result.stop_reason == "done"
    assert result.files_created == DEMO_FILES and result.files_changed == []
    assert result.preview_url and result.preview_url.startswith("http://127.0.0.1:")
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert result.snapshot_version == 4
    assert "Harbor Lane Bakery" in result.reply

    stored = (await list_messages(db, project_id=project.id)).items
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[0].content == "A bakery site"
    assert stored[1].content == result.reply
    tool_parts = [p for p in stored[1].parts if p["type"] == "tool-call"]
    assert len(tool_parts) == 13 and all(p["ok"] for p in tool_parts)
    run = await get_run(db, run_id=handle.run_id)
    assert run is not None and run["status"] == "success"
    assert run["result"]["files_created"] == DEMO_FILES


async def test_a_second_turn_continues_the_conversation(
    service: RunService, user: UserPublic, project: ProjectPublic
) -> None:
    first = await service.start(user_id=user.id, project_id=project.id, prompt="A bakery site")
    await first.wait()
    second = await service.start(user_id=user.id, project_id=project.id, prompt="Make it greener")
    result = await second.wait()
    assert result.status == "success"
    assert result.files_changed == ["styles.css"] and result.files_created == []
    state = await service.graph.aget_state({"configurable": {"thread_id": str(project.id)}})
    humans = [m.content for m in state.values["messages"] if m.type == "human"]
    assert humans == ["A bakery site", "Make it greener"]


async def test_a_second_run_on_the_project_is_rejected(
    db: Database, settings: Settings, user: UserPublic, project: ProjectPublic, tmp_path: Path
) -> None:
    spec = _slow_script(tmp_path)
    async with (
        RunService.open(settings, db=db, model=spec) as one,
        RunService.open(settings, db=db, model=spec) as other,
    ):
        first = await one.start(user_id=user.id, project_id=project.id, prompt="write")
        with pytest.raises(RunInProgress):
            await one.start(user_id=user.id, project_id=project.id, prompt="again")
        # Another process (another service with its own lock manager) is refused too.
        with pytest.raises(RunInProgress):
            await other.start(user_id=user.id, project_id=project.id, prompt="again")
        assert (await first.wait()).status == "success"
        messages = (await list_messages(db, project_id=project.id)).items
        assert [m.content for m in messages if m.role == "user"] == ["write"]


async def test_enqueued_runs_wait_their_turn(
    db: Database, settings: Settings, user: UserPublic, project: ProjectPublic, tmp_path: Path
) -> None:
    spec = _slow_script(tmp_path, steps=3, delay=0.2)
    async with RunService.open(settings, db=db, model=spec) as svc:
        first = await svc.start(user_id=user.id, project_id=project.id, prompt="first")
        second = await svc.start(
            user_id=user.id, project_id=project.id, prompt="second", multitask="enqueue"
        )
        while first.status == "pending":  # noqa: ASYNC110 - the handle offers no event
            await asyncio.sleep(0.01)
        # Queued behind the first, next in line.
        assert (second.status, await svc.position(second.run_id)) == ("pending", 1)
        results = await asyncio.gather(first.wait(), second.wait())
    assert [r.status for r in results] == ["success", "success"]
    first_run = await get_run(db, run_id=first.run_id)
    second_run = await get_run(db, run_id=second.run_id)
    assert first_run is not None and second_run is not None
    # The second run was queued while the first worked, and worked only after it ended
    # (its message comes after the first's reply).
    assert second_run["created_at"] < first_run["ended_at"] < second_run["ended_at"]
    messages = (await list_messages(db, project_id=project.id)).items
    assert [(m.role, m.content) for m in messages if m.role == "user"] == [
        ("user", "first"),
        ("user", "second"),
    ]
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]


async def test_cancel_stops_at_a_step_boundary_and_leaves_a_usable_context(
    db: Database, settings: Settings, user: UserPublic, project: ProjectPublic, tmp_path: Path
) -> None:
    spec = _slow_script(tmp_path, steps=8, delay=0.2)
    async with RunService.open(settings, db=db, model=spec) as svc:
        handle = await svc.start(user_id=user.id, project_id=project.id, prompt="write")
        async for event in handle.events():
            if event.type == "tool_end":
                handle.cancel()
                break
        result = await handle.wait()
        assert result.status == "cancelled" and result.stop_reason == "cancelled"
        config = {"configurable": {"thread_id": str(project.id)}}
        state = await svc.graph.aget_state(config)
        assert state.next == ()
        written = len(state.values["files"])
        assert 1 <= written < 8
        # The next turn runs normally on the same context.
        again = await svc.start(user_id=user.id, project_id=project.id, prompt="continue")
        assert (await again.wait()).status == "success"


async def test_an_expired_context_is_rebuilt_from_the_durable_project(
    service: RunService, db: Database, user: UserPublic, project: ProjectPublic
) -> None:
    first = await service.start(user_id=user.id, project_id=project.id, prompt="A bakery site")
    await first.wait()
    async with db.transaction() as session:
        await session.execute(text("UPDATE threads SET expires_at = now() - interval '1 minute'"))
    swept = await service.checkpointer.sweep()
    assert swept.expired == [str(project.id)]
    config = {"configurable": {"thread_id": str(project.id)}}
    assert (await service.graph.aget_state(config)).values == {}

    second = await service.start(user_id=user.id, project_id=project.id, prompt="Make it greener")
    events = [e async for e in second.events()]
    result = await second.wait()
    assert events[1].type == "run_started" and events[1].data["rebuilt"] is True
    assert result.status == "success" and result.files_changed == ["styles.css"]
    state = (await service.graph.aget_state(config)).values
    humans = [m.content for m in state["messages"] if m.type == "human"]
    assert humans == ["A bakery site", "Make it greener"]
    assert sorted(state["files"]) == DEMO_FILES


async def test_a_lost_sandbox_is_recreated_from_the_latest_snapshot(
    service: RunService, settings: Settings, user: UserPublic, project: ProjectPublic
) -> None:
    await (
        await service.start(user_id=user.id, project_id=project.id, prompt="A bakery site")
    ).wait()
    await service.pool.close()
    shutil.rmtree(settings.data_dir / "workspaces" / str(project.id))
    result = await (
        await service.start(user_id=user.id, project_id=project.id, prompt="Make it greener")
    ).wait()
    assert result.status == "success"
    workspace = settings.data_dir / "workspaces" / str(project.id)
    assert sorted(p.name for p in workspace.iterdir() if p.is_file()) == DEMO_FILES


async def test_a_dev_server_started_again_by_another_replica_takes_its_previews(
    db: Database, settings: Settings, user: UserPublic, project: ProjectPublic
) -> None:
    """The replica that ran the dev server is gone; the next run, on another replica,
    starts it again from the context and records itself where previews are forwarded."""
    first, second = "http://10.0.0.1:8000", "http://10.0.0.2:8000"
    for replica, prompt in ((first, "A bakery site"), (second, "Make it greener")):
        on_replica = settings.model_copy(update={"advertise_url": replica})
        async with RunService.open(on_replica, db=db, model="scripted:demo") as svc:
            handle = await svc.start(user_id=user.id, project_id=project.id, prompt=prompt)
            assert (await handle.wait()).status == "success"
            assert await project_replica(db, project_id=project.id) == replica


async def test_other_users_projects_and_empty_prompts_are_refused(
    service: RunService, db: Database, project: ProjectPublic
) -> None:
    mallory = await get_or_create_user(db, name="mallory")
    with pytest.raises(NotFound):
        await service.start(user_id=mallory.id, project_id=project.id, prompt="steal")
    with pytest.raises(NotFound):
        await service.start(user_id=mallory.id, project_id=uuid.uuid4(), prompt="x")
    with pytest.raises(NotFound):  # a project read for someone else is checked again
        await service.start(
            user_id=mallory.id, project_id=project.id, prompt="steal", project=project
        )
    own = await create_project(db, user_id=mallory.id, name="mine")
    with pytest.raises(NotFound):  # and one that is not the project asked for
        await service.start(user_id=mallory.id, project_id=project.id, prompt="x", project=own)
    with pytest.raises(InvalidInput):
        await service.start(user_id=project.user_id, project_id=project.id, prompt="  ")
    with pytest.raises(InvalidInput):
        await service.start(user_id=project.user_id, project_id=project.id, prompt=None)


async def test_a_running_service_sweeps_expired_contexts_on_its_own(
    db: Database, settings: Settings, user: UserPublic, project: ProjectPublic
) -> None:
    settings = settings.model_copy(update={"maintenance_seconds": 0.05})
    async with RunService.open(settings, db=db, model="scripted:demo") as svc:
        await (await svc.start(user_id=user.id, project_id=project.id, prompt="A site")).wait()
        assert await svc.checkpointer.context_is_live(str(project.id))
        async with db.transaction() as session:
            await session.execute(
                text("UPDATE threads SET expires_at = now() - interval '1 minute'")
            )
        # Watch the checkpoint table directly: reading the state would refresh the TTL.
        for _ in range(600):
            async with db.transaction() as session:
                left = (
                    await session.execute(text("SELECT count(*) FROM checkpoints"))
                ).scalar_one()
            if left == 0:
                break
            await asyncio.sleep(0.05)
        assert left == 0
        assert not await svc.checkpointer.context_is_live(str(project.id))


async def test_a_run_cancelled_before_its_first_step_keeps_the_users_message_in_context(
    db: Database, settings: Settings, user: UserPublic, project: ProjectPublic, tmp_path: Path
) -> None:
    spec = _slow_script(tmp_path, steps=2, delay=0.5)
    async with RunService.open(settings, db=db, model=spec) as svc:
        handle = await svc.start(user_id=user.id, project_id=project.id, prompt="first words")
        while handle.status == "pending":  # noqa: ASYNC110 - claimed: a queued run leaves no trace
            await asyncio.sleep(0.01)
        handle.cancel()
        assert (await handle.wait()).status == "cancelled"
        config = {"configurable": {"thread_id": str(project.id)}}
        state = (await svc.graph.aget_state(config)).values
        assert [m.content for m in state["messages"] if m.type == "human"] == ["first words"]
        assert state["messages"][-1].type == "ai"
        again = await svc.start(user_id=user.id, project_id=project.id, prompt="second words")
        assert (await again.wait()).status == "success"
        state = (await svc.graph.aget_state(config)).values
        humans = [m.content for m in state["messages"] if m.type == "human"]
        assert humans == ["first words", "second words"]


async def test_a_queued_run_keeps_its_project_from_being_deleted(
    db: Database, settings: Settings
) -> None:
    """A run waiting for a worker is in progress for a delete (it would be left with no
    project), not for a hand edit (it starts from the edited files)."""
    async with RunService.open(settings, db=db, model="scripted:demo", worker="none") as svc:
        user = await get_or_create_user(db, name="alice")
        project = await create_project(db, user_id=user.id, name="queued")
        handle = await svc.start(user_id=user.id, project_id=project.id, prompt="A page")
        async with svc.project_idle(project.id, queued_too=True) as held:
            assert not held
        async with svc.project_idle(project.id) as held:
            assert held
        assert await svc.cancel(handle.run_id)
        async with svc.project_idle(project.id, queued_too=True) as held:
            assert held


async def test_a_run_cancelled_as_its_worker_claims_it_is_cancelled(
    db: Database,
    settings: Settings,
    user: UserPublic,
    project: ProjectPublic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between the claim and the run's first step the run is neither queued (the queue
    cannot drop it) nor executing (its handle cannot drain it): the cancel waits for it."""
    spec = _slow_script(tmp_path, steps=2, delay=0.2)
    async with RunService.open(settings, db=db, model=spec) as svc:
        claimed, go_on = asyncio.Event(), asyncio.Event()
        execute = svc._execute

        async def held(*args: object) -> object:
            claimed.set()
            await go_on.wait()
            return await execute(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(svc, "_execute", held)
        handle = await svc.start(user_id=user.id, project_id=project.id, prompt="write")
        await asyncio.wait_for(claimed.wait(), 10)
        assert await svc.cancel(handle.run_id)
        go_on.set()
        result = await handle.wait()
        assert result.status == "cancelled" and result.files_changed == []
        row = await get_run(db, run_id=handle.run_id)
        assert row is not None and row["status"] == "cancelled"


async def test_a_run_resumed_before_its_lease_runs_out_is_taken_over_when_it_does(
    db: Database, settings: Settings, user: UserPublic, project: ProjectPublic
) -> None:
    """``builder run --resume`` right after a crash: the run still looks worked (its dead
    worker's lease is live), yet it is this process's to take over, not to follow."""
    async with RunService.open(settings, db=db, model="scripted:demo", worker="none") as gone:
        started = await gone.start(user_id=user.id, project_id=project.id, prompt="A page")
        (claimed,) = await claim(db, worker="gone", limit=1, limits=QueueLimits(lease_seconds=1.5))
        assert claimed.run_id == started.run_id
    async with RunService.open(settings, db=db, model="scripted:demo", worker="own") as svc:
        resumed = await svc.start(user_id=user.id, project_id=project.id, prompt=None, resume=True)
        assert resumed.run_id == started.run_id
        result = await asyncio.wait_for(resumed.wait(), 60)
        assert result.status == "success" and result.steps > 0
        row = await get_run(db, run_id=started.run_id)
        assert row is not None and row["status"] == "success"
        assert (await svc.position(started.run_id)) is None
