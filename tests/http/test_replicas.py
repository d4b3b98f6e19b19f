"""Two real server processes on one database: any replica follows and cancels any run.

With Redis shared, a run started on replica A is streamed live by replica B (the chat
API and the LangGraph SDK's ``join_stream``) with the same events, and cancelled
through B. Without Redis, B says clearly that it cannot (409), as a single node
always has.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError

from tests.http.server import ServerProcess
from tests.http.sse import SseEvent, read_events
from tests.support.database import clone_database
from tests.support.scripts import call, write_script
from tests.support.services import delete_redis_prefix, drop_database

GRAPH = "web_builder"
SLOW_FILES = 6
MODES = ["values", "updates", "messages-tuple", "messages", "custom", "events", "tasks"]


@dataclass(frozen=True)
class Replicas:
    """Two servers sharing one database (and, when configured, one Redis prefix)."""

    a: ServerProcess
    b: ServerProcess
    key: str
    """An API key of the user alice, valid on both."""


def _script(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every conversation's first turn is slow (a file per delayed step); the next fast."""
    slow = [
        *(
            {
                "content": f"Writing file {i}.",
                "tool_calls": [call("write_file", path=f"f{i}.txt", content=f"{i}\n")],
                "delay_s": 0.4,
            }
            for i in range(SLOW_FILES)
        ),
        {"content": "All written."},
    ]
    fast = [
        {
            "content": "Writing the page.",
            "tool_calls": [call("write_file", path="index.html", content="<h1>Hi</h1>\n")],
        },
        {"content": "The page is ready."},
    ]
    return write_script(tmp_path_factory.mktemp("script"), [slow, fast], after_last_turn="cycle")


def _replicas(
    tmp_path_factory: pytest.TempPathFactory, template: str, *, with_redis: bool
) -> Iterator[Replicas]:
    url = clone_database(template)
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    env = {
        "BUILDER_ALLOW_ANONYMOUS": "false",
        "BUILDER_MODEL": _script(tmp_path_factory),
        "BUILDER_RATE_LIMIT_DEFAULT": "100000/minute",
        "BUILDER_RATE_LIMIT_CHAT": "100000/minute",
        # Near copies of keys outlive any test: only the broadcast can end them early.
        "BUILDER_CACHE_NEAR_SECONDS": "600",
        "BUILDER_RUN_LEASE_SECONDS": "3",  # heartbeats (and cancels through them) every 1 s
        "BUILDER_CHECK_ROUNDS": "0",  # the scripted pages are fragments, not what is tested
    }
    servers = []
    for name in ("a", "b"):
        server = ServerProcess(
            database_url=url,
            data_dir=tmp_path_factory.mktemp(f"replica-{name}") / "data",
            redis_prefix=prefix,
            env=env,
        )
        if not with_redis:
            del server.env["BUILDER_REDIS_URL"]
        servers.append(server)
    try:
        for server in servers:
            server.start()
        yield Replicas(servers[0], servers[1], servers[0].new_key("alice"))
    finally:
        for server in servers:
            server.stop()
        drop_database(url)
        delete_redis_prefix(prefix)


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: str
) -> Iterator[Replicas]:
    """Two replicas sharing PostgreSQL and Redis."""
    yield from _replicas(tmp_path_factory, migrated_template, with_redis=True)


@pytest.fixture(scope="module")
def lone_replicas(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: str
) -> Iterator[Replicas]:
    """Two replicas sharing PostgreSQL only."""
    yield from _replicas(tmp_path_factory, migrated_template, with_redis=False)


@pytest.fixture
async def sdk(replicas: Replicas) -> AsyncIterator[tuple[LangGraphClient, LangGraphClient]]:
    """The official client against A and against B."""
    async with (
        get_client(url=replicas.a.url, api_key=replicas.key) as on_a,
        get_client(url=replicas.b.url, api_key=replicas.key) as on_b,
    ):
        yield on_a, on_b


def _user_input(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def _status(http: httpx.Client, project_id: str, run_id: str) -> str:
    status: str = http.get(f"/threads/{project_id}/runs/{run_id}").json()["status"]
    return status


# --- API keys ---------------------------------------------------------------------------
def test_a_revoked_key_is_refused_by_every_replica_at_once(replicas: Replicas) -> None:
    """Both replicas answer the key from memory; revoking it elsewhere reaches both."""
    key = replicas.a.new_key("revoked-everywhere")
    with replicas.a.client(key) as on_a, replicas.b.client(key) as on_b:
        for client in (on_a, on_b, on_a, on_b):
            assert client.get("/api/projects").status_code == 200
        # Like `builder keys revoke`: another process, the same database and Redis.
        replicas.a.revoke_keys("revoked-everywhere")
        deadline = time.monotonic() + 2
        statuses = {}
        while time.monotonic() < deadline and set(statuses.values()) != {401}:
            statuses = {
                name: c.get("/api/projects").status_code for name, c in (("a", on_a), ("b", on_b))
            }
            time.sleep(0.02)
        assert statuses == {"a": 401, "b": 401}


# --- the chat API ---------------------------------------------------------------------------
def test_a_chat_run_is_followed_live_on_another_replica(replicas: Replicas) -> None:
    with replicas.a.client(replicas.key) as on_a, replicas.b.client(replicas.key) as on_b:
        pid = on_a.post("/api/projects", json={"name": "followed"}).json()["id"]
        with on_a.stream("POST", f"/api/projects/{pid}/chat", json={"prompt": "Slowly"}) as a:
            run_id = a.headers["x-run-id"]
            a_events = read_events(a)
            first_on_a = next(a_events)
            with on_b.stream("GET", f"/api/projects/{pid}/chat/{run_id}/stream") as b:
                assert b.headers["x-run-id"] == run_id
                b_events = read_events(b)
                first_on_b = next(b_events)
                # B is serving the run while A still runs it.
                assert _status(on_b, pid, run_id) == "running"
                followed = [first_on_b, *b_events]
            streamed = [first_on_a, *a_events]
        assert followed == streamed
        assert [e.id for e in followed] == [str(i) for i in range(len(followed))]
        assert [e.event for e in followed[:2]] == ["queued", "run_started"]
        assert followed[-1].event == "run_finished"
        assert followed[-1].data["status"] == "success"
        assert [e.data["tool"] for e in followed if e.event == "tool_end"] == ["write_file"] * 6
        # Reconnecting to B after the end: the rest of the run, from Redis.
        resumed = on_b.get(
            f"/api/projects/{pid}/chat/{run_id}/stream", headers={"last-event-id": "3"}
        )
        assert _parse(resumed.text) == streamed[4:]


def _parse(body: str) -> list[SseEvent]:
    response = httpx.Response(200, text=body)
    return list(read_events(response))


def test_a_chat_run_is_cancelled_through_another_replica(replicas: Replicas) -> None:
    with replicas.a.client(replicas.key) as on_a, replicas.b.client(replicas.key) as on_b:
        pid = on_a.post("/api/projects", json={"name": "cancelled"}).json()["id"]
        with on_a.stream("POST", f"/api/projects/{pid}/chat", json={"prompt": "Slowly"}) as a:
            run_id = a.headers["x-run-id"]
            a_events = read_events(a)
            assert [next(a_events).event, next(a_events).event] == ["queued", "run_started"]
            cancel = f"/api/projects/{pid}/chat/{run_id}/cancel"
            stopped = on_b.post(cancel, params={"wait": True})
            rest = list(a_events)
        assert stopped.status_code == 200
        assert stopped.json() == {
            "run_id": run_id,
            "project_id": pid,
            "status": "cancelled",
            "position": None,
        }
        finished = rest[-1]
        assert (finished.event, finished.data["status"]) == ("run_finished", "cancelled")
        assert len([e for e in rest if e.event == "tool_end"]) < SLOW_FILES
        # Idempotent: the run has ended, and says so again.
        assert on_b.post(cancel).json() == stopped.json()
        assert on_a.post(cancel, params={"wait": True}).json() == stopped.json()
        # The project goes on, on either replica.
        again = on_b.post(f"/api/projects/{pid}/chat/wait", json={"prompt": "Go on"}).json()
        assert (again["status"], again["reply"]) == ("success", "The page is ready.")


# --- the LangGraph API -----------------------------------------------------------------------
def _queue_note(part: Any) -> bool:
    """A LangGraph stream part saying where the run waits in the queue (in the ``custom``
    mode, or its twin in the ``events`` mode)."""
    if part.event == "custom":
        return bool(part.data.get("event") == "queued")
    return bool(part.event == "events" and part.data.get("name") == "queued")


async def test_the_sdk_joins_a_run_of_another_replica(
    replicas: Replicas, sdk: tuple[LangGraphClient, LangGraphClient]
) -> None:
    on_a, on_b = sdk
    tid = (await on_a.threads.create())["thread_id"]
    run = await on_a.runs.create(tid, GRAPH, input=_user_input("Slowly"), stream_mode=MODES)
    followed = []
    checked = False
    async for part in on_b.runs.join_stream(tid, run["run_id"], stream_mode=MODES):
        # After the join's own first parts (metadata, the graph's start) and any note of
        # the run's place in the queue, the run's first part: B is serving the run while
        # A runs it.
        if not checked and len(followed) >= 2 and not _queue_note(part):
            assert (await on_b.runs.get(tid, run["run_id"]))["status"] == "running"
            checked = True
        followed.append(part)
    assert checked
    replayed = [p async for p in on_a.runs.join_stream(tid, run["run_id"], stream_mode=MODES)]
    assert followed == replayed
    assert [p.id for p in followed] == [str(i) for i in range(len(followed))]
    assert followed[0].event == "metadata"
    assert followed[-1].event == "events" and followed[-1].data["event"] == "on_chain_end"
    assert {p.event for p in followed} == {
        "metadata",
        "values",
        "updates",
        "messages",
        "messages/metadata",
        "messages/partial",
        "messages/complete",
        "custom",
        "events",
        "tasks",
    }
    final = followed[-1].data["data"]["output"]
    assert sorted(final["files"]) == [f"f{i}.txt" for i in range(SLOW_FILES)]
    later = [
        p
        async for p in on_b.runs.join_stream(
            tid, run["run_id"], stream_mode=MODES, last_event_id="5"
        )
    ]
    assert later == replayed[6:]


async def test_a_run_is_cancelled_through_another_replica_and_the_thread_goes_on(
    replicas: Replicas, sdk: tuple[LangGraphClient, LangGraphClient]
) -> None:
    on_a, on_b = sdk
    tid = (await on_a.threads.create())["thread_id"]
    run = await on_a.runs.create(tid, GRAPH, input=_user_input("Slowly"))
    async for part in on_b.runs.join_stream(tid, run["run_id"], stream_mode="custom"):
        if part.event == "custom":  # the first tool call has started
            break
    cancelled = await on_b.runs.cancel(tid, run["run_id"], wait=True)
    assert (cancelled["status"], cancelled["cancel_reason"]) == ("interrupted", "cancelled")
    on_record = await on_a.runs.get(tid, run["run_id"])
    assert {**on_record, "updated_at": None} == {**cancelled, "updated_at": None}
    state = await on_a.threads.get_state(tid)
    assert state["next"] == []
    messages = [(m["type"], m["content"]) for m in state["values"]["messages"]]
    assert messages[0] == ("human", "Slowly")
    assert messages[-1] == ("ai", "(The previous run was cancelled by the user.)")
    assert len(state["values"]["files"]) < SLOW_FILES
    # A waited cancel of a run that has stopped answers the same; an unwaited one, 409.
    assert await on_b.runs.cancel(tid, run["run_id"], wait=True) == cancelled
    with pytest.raises(ConflictError):
        await on_b.runs.cancel(tid, run["run_id"])
    values = await on_b.runs.wait(tid, GRAPH, input=_user_input("Go on"))
    assert values["messages"][-1]["content"] == "The page is ready."
    assert (await on_a.threads.get(tid))["status"] == "idle"


# --- without Redis ---------------------------------------------------------------------------
def test_without_redis_another_replica_cannot_stream_a_run_but_cancels_it(
    lone_replicas: Replicas,
) -> None:
    key = lone_replicas.key
    with lone_replicas.a.client(key) as on_a, lone_replicas.b.client(key) as on_b:
        pid = on_a.post("/api/projects", json={"name": "alone"}).json()["id"]
        with on_a.stream("POST", f"/api/projects/{pid}/chat", json={"prompt": "Slowly"}) as a:
            run_id = a.headers["x-run-id"]
            a_events = read_events(a)
            assert [next(a_events).event, next(a_events).event] == ["queued", "run_started"]
            refusals = {
                "chat stream": on_b.get(f"/api/projects/{pid}/chat/{run_id}/stream"),
                "join stream": on_b.get(f"/threads/{pid}/runs/{run_id}/stream"),
            }
            # The cancel reaches A through the run's row, read by its next heartbeat.
            stopped = on_b.post(f"/api/projects/{pid}/chat/{run_id}/cancel", params={"wait": True})
            rest = list(a_events)
        assert {name: r.status_code for name, r in refusals.items()} == dict.fromkeys(refusals, 409)
        messages = {name: r.json()["error"]["message"] for name, r in refusals.items()}
        assert messages == {
            "chat stream": f"the events of run {run_id} are kept by the server process that "
            "runs it (set BUILDER_REDIS_URL so any process can stream them)",
            "join stream": f"run {run_id} is in progress on another server process "
            "(set BUILDER_REDIS_URL so any process can stream it)",
        }
        assert stopped.json() == {
            "run_id": run_id,
            "project_id": pid,
            "status": "cancelled",
            "position": None,
        }
        assert rest[-1].data["status"] == "cancelled"
