"""The run queue on a real database: order, one run per project, caps, leases, cancel."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from builder.errors import RunInProgress
from builder.locks import advisory_key
from builder.persistence.database import Database
from builder.persistence.projects import create_project, record_replica
from builder.persistence.runs import ensure_thread, get_run, record_run_finished
from builder.persistence.users import get_or_create_user
from builder.runs.queue import (
    QueueLimits,
    cancel_queued,
    claim,
    enqueue,
    heartbeat,
    queue_positions,
    release,
    reset_abandoned,
    run_lock_key,
)

LIMITS = QueueLimits(lease_seconds=30)


async def _project(db: Database, user: str, name: str) -> tuple[uuid.UUID, uuid.UUID]:
    owner = await get_or_create_user(db, name=user)
    project = await create_project(db, user_id=owner.id, name=name)
    await ensure_thread(db, thread_id=str(project.id), user_id=owner.id, project_id=project.id)
    return owner.id, project.id


async def _queue(
    db: Database, owner: uuid.UUID, project: uuid.UUID, run_id: str, multitask: str = "enqueue"
) -> bool:
    return await enqueue(
        db,
        run_id=run_id,
        thread_id=str(project),
        project_id=project,
        user_id=owner,
        run_input={"prompt": run_id},
        multitask=multitask,
    )


async def _expire(db: Database, run_id: str) -> None:
    async def work(session: AsyncSession) -> None:
        await session.execute(
            text("UPDATE runs SET lease_expires_at = now() - interval '1 s' WHERE run_id = :r"),
            {"r": run_id},
        )

    await db.run(work)


async def _thread_statuses(db: Database, projects: list[uuid.UUID]) -> list[str]:
    async def work(session: AsyncSession) -> list[str]:
        rows = await session.execute(
            text("SELECT thread_id, status FROM threads WHERE thread_id = ANY(:ids)"),
            {"ids": [str(p) for p in projects]},
        )
        found: dict[str, str] = {row.thread_id: row.status for row in rows}
        return [found[str(p)] for p in projects]

    return await db.run(work)


async def test_one_run_per_project_oldest_first_and_reject(db: Database) -> None:
    alice, site = await _project(db, "alice", "site")
    _, blog = await _project(db, "alice", "blog")
    for run_id, project in (("a1", site), ("a2", site), ("b1", blog)):
        assert await _queue(db, alice, project, run_id)
    with pytest.raises(RunInProgress):
        await _queue(db, alice, site, "a3", multitask="reject")
    assert await queue_positions(db, run_ids=["a1", "a2", "b1"]) == {
        "a1": ("pending", 1, 0),
        "a2": ("pending", 2, 0),
        "b1": ("pending", 3, 0),
    }
    first = await claim(db, worker="w1", limit=10, limits=LIMITS)
    assert [(run.run_id, run.attempts, run.takeover) for run in first] == [
        ("a1", 1, False),
        ("b1", 1, False),
    ]
    assert await _thread_statuses(db, [site, blog]) == ["busy", "busy"]
    # a2 waits for a1 whichever worker asks.
    assert await claim(db, worker="w2", limit=10, limits=LIMITS) == []
    assert await queue_positions(db, run_ids=["a2"]) == {"a2": ("pending", 1, 0)}
    assert await record_run_finished(db, run_id="a1", result={"status": "success"}, worker="w1")
    (second,) = await claim(db, worker="w2", limit=10, limits=LIMITS)
    assert second.run_id == "a2"


async def test_caps_hold_per_user_and_overall(db: Database) -> None:
    alice, p1 = await _project(db, "alice", "one")
    _, p2 = await _project(db, "alice", "two")
    bob, p3 = await _project(db, "bob", "three")
    _, p4 = await _project(db, "bob", "four")
    for run_id, owner, project in (
        ("a1", alice, p1),
        ("a2", alice, p2),
        ("b1", bob, p3),
        ("b2", bob, p4),
    ):
        await _queue(db, owner, project, run_id)
    per_user = QueueLimits(lease_seconds=30, per_user=1)
    taken = await claim(db, worker="w1", limit=10, limits=per_user)
    assert [run.run_id for run in taken] == ["a1", "b1"]
    assert await claim(db, worker="w2", limit=10, limits=per_user) == []
    overall = QueueLimits(lease_seconds=30, overall=3)
    assert [run.run_id for run in await claim(db, worker="w2", limit=10, limits=overall)] == ["a2"]
    assert await claim(db, worker="w3", limit=10, limits=overall) == []


async def test_a_lost_lease_is_taken_over_and_the_old_worker_cannot_end_the_run(
    db: Database,
) -> None:
    alice, site = await _project(db, "alice", "site")
    await _queue(db, alice, site, "r1")
    await claim(db, worker="w1", limit=1, limits=LIMITS)
    assert await heartbeat(db, worker="w1", run_ids=["r1"], lease_seconds=30) == {"r1": False}
    assert await claim(db, worker="w2", limit=1, limits=LIMITS) == []  # the lease is live
    await _expire(db, "r1")
    (taken,) = await claim(db, worker="w2", limit=1, limits=LIMITS)
    assert (taken.run_id, taken.attempts, taken.takeover) == ("r1", 2, True)
    # w1 hears it has lost the run; its end is not recorded, w2's is.
    assert await heartbeat(db, worker="w1", run_ids=["r1"], lease_seconds=30) == {}
    assert not await record_run_finished(db, run_id="r1", result={"status": "success"}, worker="w1")
    assert await record_run_finished(db, run_id="r1", result={"status": "success"}, worker="w2")
    row = await get_run(db, run_id="r1")
    assert row is not None and row["status"] == "success"


async def test_a_project_s_next_run_waits_for_the_takeover_of_its_lost_one(
    db: Database, migrated_db_url: str
) -> None:
    """A run whose lease ran out is the project's until it is taken over and ends: the
    project's next run never starts beside it (two runs would edit one workspace)."""
    alice, site = await _project(db, "alice", "site")
    await _queue(db, alice, site, "r1")
    await claim(db, worker="w1", limit=1, limits=LIMITS)
    await _queue(db, alice, site, "r2")
    await _expire(db, "r1")
    # w1 still works r1 (its heartbeat is late), and asks for more work.
    assert await claim(db, worker="w1", limit=10, limits=LIMITS, mine=["r1"]) == []
    # Another worker finds r1's row locked for a moment (a heartbeat, a cancel).
    with psycopg.connect(migrated_db_url.replace("+psycopg", "")) as conn:
        conn.execute("SELECT 1 FROM runs WHERE run_id = 'r1' FOR UPDATE")
        assert await claim(db, worker="w2", limit=10, limits=LIMITS) == []
    (taken,) = await claim(db, worker="w2", limit=10, limits=LIMITS)
    assert (taken.run_id, taken.takeover) == ("r1", True)
    assert await record_run_finished(db, run_id="r1", result={"status": "success"}, worker="w2")
    (after,) = await claim(db, worker="w2", limit=10, limits=LIMITS)
    assert after.run_id == "r2"


async def test_a_project_being_edited_is_passed_over_and_the_round_takes_the_next(
    db: Database, migrated_db_url: str
) -> None:
    """A project whose run lock someone holds (an edit, a delete) is left queued, and the
    claim fills its place with the next project's run in the same round."""
    alice, edited = await _project(db, "alice", "edited")
    _, second = await _project(db, "alice", "second")
    _, third = await _project(db, "alice", "third")
    for run_id, project in (("e1", edited), ("s1", second), ("t1", third)):
        await _queue(db, alice, project, run_id)
    with psycopg.connect(migrated_db_url.replace("+psycopg", ""), autocommit=True) as editor:
        editor.execute("SELECT pg_advisory_lock(%s)", (advisory_key(run_lock_key(edited)),))
        taken = await claim(db, worker="w1", limit=2, limits=LIMITS)
        assert [run.run_id for run in taken] == ["s1", "t1"]
        assert await claim(db, worker="w2", limit=2, limits=LIMITS) == []
    (later,) = await claim(db, worker="w2", limit=2, limits=LIMITS)
    assert later.run_id == "e1"


async def test_a_project_s_runs_wait_for_the_replica_running_its_dev_server(
    db: Database,
) -> None:
    """Other replicas leave the run queued for a while (its edits must reach the sandbox
    the preview shows); the replica that runs the dev server takes it at once; after the
    wait, anyone does. Projects without a dev server are anyone's."""
    a, b = "http://10.0.0.1:8000", "http://10.0.0.2:8000"
    alice, site = await _project(db, "alice", "site")
    _, plain = await _project(db, "alice", "plain")
    await record_replica(db, project_id=str(site), replica=a)
    await _queue(db, alice, site, "s1")
    await _queue(db, alice, plain, "p1")
    waiting = QueueLimits(lease_seconds=30, affinity_seconds=60)
    taken = await claim(db, worker="wb", limit=10, limits=waiting, replica=b)
    assert [run.run_id for run in taken] == ["p1"]
    assert await claim(db, worker="wn", limit=10, limits=waiting) == []  # no replica named
    assert [
        run.run_id for run in await claim(db, worker="wa", limit=10, limits=waiting, replica=a)
    ] == ["s1"]

    await _queue(db, alice, plain, "p2")  # p1 still runs: p2 is queued behind it
    assert await record_run_finished(db, run_id="s1", result={"status": "success"}, worker="wa")
    await _queue(db, alice, site, "s2")
    impatient = QueueLimits(lease_seconds=30, affinity_seconds=0)
    assert [
        run.run_id for run in await claim(db, worker="wb", limit=10, limits=impatient, replica=b)
    ] == ["s2"]


async def test_a_released_run_is_taken_over_at_once_and_given_up_after_max_attempts(
    db: Database,
) -> None:
    alice, site = await _project(db, "alice", "site")
    await _queue(db, alice, site, "r1")
    limits = QueueLimits(lease_seconds=30, max_attempts=2)
    await claim(db, worker="w1", limit=1, limits=limits)
    await release(db, worker="w1", run_ids=["r1"])
    (again,) = await claim(db, worker="w2", limit=1, limits=limits)
    assert again.attempts == 2
    await release(db, worker="w2", run_ids=["r1"])
    assert await claim(db, worker="w3", limit=1, limits=limits) == []
    row = await get_run(db, run_id="r1")
    assert row is not None and row["status"] == "error"
    assert row["result"]["error_code"] == "run_abandoned"


async def test_cancel_from_anywhere(db: Database) -> None:
    alice, site = await _project(db, "alice", "site")
    _, blog = await _project(db, "alice", "blog")
    await _queue(db, alice, site, "running")
    await _queue(db, alice, blog, "queued")
    await claim(db, worker="w1", limit=1, limits=LIMITS)
    assert await cancel_queued(db, run_id="queued") == "dropped"
    assert await cancel_queued(db, run_id="running") == "requested"
    assert await heartbeat(db, worker="w1", run_ids=["running"], lease_seconds=30) == {
        "running": True
    }
    assert await cancel_queued(db, run_id="queued") is None
    row = await get_run(db, run_id="queued")
    assert row is not None and (row["status"], row["ended_at"] is not None) == ("cancelled", True)
    # w1 stops before it hears the cancel: the worker taking the run over is told.
    await release(db, worker="w1", run_ids=["running"])
    (taken,) = await claim(db, worker="w2", limit=1, limits=LIMITS)
    assert (taken.run_id, taken.cancel_requested) == ("running", True)


async def test_a_run_a_process_holds_is_never_reconciled(db: Database) -> None:
    """A run whose lease ran out is abandoned, unless the asking process holds it (it is
    about to take it over after ``resume``, or still works it)."""
    alice, site = await _project(db, "alice", "site")
    _, blog = await _project(db, "alice", "blog")
    await _queue(db, alice, site, "held")
    await _queue(db, alice, blog, "lost")
    await claim(db, worker="dead", limit=2, limits=LIMITS)
    await _expire(db, "held")
    await _expire(db, "lost")
    marked = await reset_abandoned(db, worker="cli", mine=["held"], error="gone")
    assert marked == ["lost"]
    held = await get_run(db, run_id="held")
    assert held is not None and held["status"] == "running"
