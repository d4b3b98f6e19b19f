"""A queued run's stream says where it stands in the queue, across processes.

Runs started by a service that works none (``worker="none"``, as ``builder serve
--no-worker``) are worked by another service's worker; both share one PostgreSQL and
one Redis. Each queued run's stream has a ``queued`` event with its position when it is
queued and again whenever that changes, then the run's own events numbered on after
them, the same in the starting process and for a reader following through Redis.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from builder.persistence.database import Database
from builder.persistence.projects import create_project
from builder.persistence.users import get_or_create_user
from builder.runs.events import RunEvent
from builder.runs.fanout import RemoteStream, RunFanout
from builder.runs.handle import RunHandle
from builder.runs.service import RunService
from builder.settings import Settings
from tests.support.scripts import call, write_script


def _script(tmp_path: Path) -> str:
    turn = [
        *(
            {"tool_calls": [call("write_file", path=f"f{i}.txt", content="x")], "delay_s": 0.3}
            for i in range(2)
        ),
        {"content": "Done."},
    ]
    return write_script(tmp_path, [turn], after_last_turn="repeat_last")


def _positions(events: list[RunEvent]) -> list[int]:
    return [e.data["position"] for e in events if e.type == "queued" and "position" in e.data]


async def _events(handle: RunHandle) -> list[RunEvent]:
    return [event async for event in handle.events()]


async def test_queued_runs_stream_their_place_then_start(
    migrated_db_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    common = {
        "database_url": migrated_db_url,
        "redis_url": redis_url,
        "redis_key_prefix": redis_prefix,
        "run_poll_seconds": 0.1,
    }
    api_settings = Settings(data_dir=tmp_path / "api", **common)
    worker_settings = Settings(data_dir=tmp_path / "worker", **common)
    db = Database(migrated_db_url, settings=api_settings)
    model = _script(tmp_path)
    try:
        async with (
            RunService.open(api_settings, db=db, model=model, worker="none") as api,
            RunService.open(worker_settings, db=db, model=model, worker="all") as worker,
        ):
            user = await get_or_create_user(db, name="alice")
            project = await create_project(db, user_id=user.id, name="queue")
            first = await api.start(user_id=user.id, project_id=project.id, prompt="one")
            # The second and third wait behind it, in the order they came.
            async with asyncio.timeout(30):
                async for event in first.events():
                    if event.type == "run_started":
                        break
            second, third = [
                await api.start(
                    user_id=user.id, project_id=project.id, prompt=text, multitask="enqueue"
                )
                for text in ("two", "three")
            ]
            fanout = RunFanout.from_settings(api_settings)
            assert fanout is not None
            try:
                remote = await fanout.follow(third.run_id)
                async with asyncio.timeout(120):
                    streams = await asyncio.gather(
                        _events(first),
                        _events(second),
                        _events(third),
                        _collect(remote),
                    )
            finally:
                await fanout.aclose()
            results = [await h.wait() for h in (first, second, third)]
            assert not worker._active  # every run was worked there and has ended
    finally:
        await db.dispose()

    assert [r.status for r in results] == ["success"] * 3
    firsts, seconds, thirds, followed = streams
    for events in (firsts, seconds, thirds):
        assert [e.seq for e in events] == list(range(len(events)))
        types = [e.type for e in events]
        started = types.index("run_started")
        assert set(types[:started]) <= {"queued"} and "queued" not in types[started:]
        assert types[-1] == "run_finished" and types.count("run_finished") == 1
    # Third in line behind a running run: 2, then 1 once the second starts, then it runs.
    assert _positions(seconds) == [1]
    assert _positions(thirds) == [2, 1]
    # A reader in another process (through Redis) sees the same stream.
    assert [(e.seq, e.type) for e in followed] == [(e.seq, e.type) for e in thirds]
    assert _positions(followed) == [2, 1]


async def _collect(stream: RemoteStream) -> list[RunEvent]:
    return [event async for event in stream]


async def test_each_process_works_the_runs_it_started(
    migrated_db_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """Two servers whose workers take any run, each sent a burst of chats at once: each
    works its own burst (its loop, its in-memory events), not whichever woke first."""
    common = {
        "database_url": migrated_db_url,
        "redis_url": redis_url,
        "redis_key_prefix": redis_prefix,
        "run_poll_seconds": 5,  # only a wake, not a poll, claims within the test
    }
    db = Database(migrated_db_url, settings=Settings(data_dir=tmp_path / "db", **common))
    model = _script(tmp_path)
    try:
        async with (
            RunService.open(
                Settings(data_dir=tmp_path / "a", **common), db=db, model=model, worker="all"
            ) as one,
            RunService.open(
                Settings(data_dir=tmp_path / "b", **common), db=db, model=model, worker="all"
            ) as two,
        ):
            user = await get_or_create_user(db, name="alice")
            projects = [await create_project(db, user_id=user.id, name=f"p{n}") for n in range(6)]
            handles = await asyncio.gather(
                *(
                    service.start(user_id=user.id, project_id=project.id, prompt="go")
                    for service, project in zip([one, two] * 3, projects, strict=True)
                )
            )
            async with asyncio.timeout(120):
                results = [await handle.wait() for handle in handles]
            ids = [handle.run_id for handle in handles]

            async def worked_by(session: AsyncSession) -> dict[str, str]:
                found = await session.execute(
                    text("SELECT run_id, worker_id FROM runs WHERE run_id = ANY(:ids)"),
                    {"ids": ids},
                )
                return {row.run_id: row.worker_id for row in found}

            claimed = await db.run(worked_by)
            workers = [one.worker.id, two.worker.id] * 3
    finally:
        await db.dispose()

    assert [r.status for r in results] == ["success"] * 6
    assert [claimed[run_id] for run_id in ids] == workers
