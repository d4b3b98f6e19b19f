"""Runs through the official SDK: background, wait, join, cancel, one run per thread."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.http.langgraph.conftest import (
    ASSISTANT_ID,
    CHAT_LIMIT,
    DEFAULT_LIMIT,
    GRAPH,
    PAGE_SHA,
    SLOW_FILES,
    LangGraphServer,
    earlier_turns,
    user_input,
)
from tests.http.sse import read_events


def _contents(values: Any) -> list[tuple[str, str]]:
    return [(m["type"], m["content"]) for m in values["messages"]]


async def _after_one_turn(client: LangGraphClient) -> str:
    """A thread whose next turn is the script's slow one."""
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], GRAPH, input=user_input("A page"))
    return str(thread["thread_id"])


def _stored_messages(server: LangGraphServer, thread_id: str) -> list[tuple[str, str]]:
    with server.process.client(server.alice) as http:
        items = http.get(f"/api/projects/{thread_id}/messages").json()["items"]
    return [(m["role"], m["content"]) for m in items]


async def test_wait_answers_the_final_values(alice: LangGraphClient) -> None:
    thread = await alice.threads.create()
    tid = thread["thread_id"]
    values = await alice.runs.wait(tid, GRAPH, input=user_input("A page"))
    assert _contents(values) == [
        ("human", "A page"),
        ("ai", "I'll write the page."),
        ("tool", "Created index.html (15 bytes, 1 line)."),
        ("ai", "The page is ready."),
    ]
    assert values["files"] == {"index.html": PAGE_SHA}
    runs = await alice.runs.list(tid)
    assert [(r["status"], r["assistant_id"], r["multitask_strategy"]) for r in runs] == [
        ("success", ASSISTANT_ID, "reject")
    ]
    assert runs[0]["kwargs"] == {"input": user_input("A page")}
    assert (await alice.threads.get(tid))["metadata"] == {
        "graph_id": GRAPH,
        "assistant_id": ASSISTANT_ID,
    }


async def test_a_background_run_is_joined(alice: LangGraphClient) -> None:
    tid = (await alice.threads.create())["thread_id"]
    created: list[Any] = []
    run = await alice.runs.create(
        tid,
        ASSISTANT_ID,
        input=user_input("A page"),
        metadata={"origin": "test"},
        on_run_created=created.append,
    )
    assert run["status"] in ("pending", "running")
    assert (run["thread_id"], run["assistant_id"], run["metadata"]) == (
        tid,
        ASSISTANT_ID,
        {"origin": "test"},
    )
    assert created == [{"run_id": run["run_id"], "thread_id": tid}]
    values = await alice.runs.join(tid, run["run_id"])
    assert values["files"] == {"index.html": PAGE_SHA}
    done = await alice.runs.get(tid, run["run_id"])
    assert {**done, "updated_at": None} == {**run, "status": "success", "updated_at": None}
    assert [r["run_id"] for r in await alice.runs.list(tid, status="success")] == [run["run_id"]]
    assert await alice.runs.list(tid, status="interrupted") == []
    assert await alice.runs.list(tid, select=["run_id", "status"]) == [
        {"run_id": run["run_id"], "status": "success"}
    ]


async def test_a_second_run_is_rejected_while_one_is_in_progress(
    alice: LangGraphClient, lg_server: LangGraphServer
) -> None:
    tid = await _after_one_turn(alice)
    first = await alice.runs.create(tid, GRAPH, input=user_input("Slowly"))
    with pytest.raises(ConflictError) as caught:
        await alice.runs.create(tid, GRAPH, input=user_input("Again"))
    assert caught.value.body == {
        "error": {
            "code": "run_in_progress",
            "message": f"a run is already in progress for {tid}; retry when it ends or enqueue",
            "request_id": caught.value.request_id,
        }
    }
    # wait reads its answer as a stream: the SDK raises httpx's error, with the same body.
    with pytest.raises(httpx.HTTPStatusError) as waited:
        await alice.runs.wait(tid, GRAPH, input=user_input("Again"), multitask_strategy="reject")
    assert waited.value.response.status_code == 409
    values = await alice.runs.join(tid, first["run_id"])
    assert [c for t, c in _contents(values) if t == "human"] == ["A page", "Slowly"]
    assert len(values["files"]) == 1 + SLOW_FILES


async def test_enqueued_runs_run_one_after_the_other(
    alice: LangGraphClient, lg_server: LangGraphServer
) -> None:
    tid = await _after_one_turn(alice)
    first = await alice.runs.create(tid, GRAPH, input=user_input("Slowly"))
    queued = await alice.runs.create(
        tid, GRAPH, input=user_input("Then this"), multitask_strategy="enqueue"
    )
    assert queued["status"] == "pending" and queued["multitask_strategy"] == "enqueue"
    assert (await alice.runs.get(tid, queued["run_id"]))["status"] == "pending"
    values = await alice.runs.join(tid, queued["run_id"])
    assert (await alice.runs.get(tid, first["run_id"]))["status"] == "success"
    assert (await alice.runs.get(tid, queued["run_id"]))["status"] == "success"
    assert [c for t, c in _contents(values) if t == "human"] == ["A page", "Slowly", "Then this"]
    # The queued turn began only after the first had answered.
    assert _stored_messages(lg_server, tid) == [
        ("user", "A page"),
        ("assistant", "The page is ready."),
        ("user", "Slowly"),
        ("assistant", "All written."),
        ("user", "Then this"),
        ("assistant", "The page is ready."),
    ]


async def test_a_queued_run_streams_its_place_then_runs(
    alice: LangGraphClient, lg_server: LangGraphServer
) -> None:
    tid = await _after_one_turn(alice)
    first = await alice.runs.create(tid, GRAPH, input=user_input("Slowly"))
    parts = [
        (part.event, part.data)
        async for part in alice.runs.stream(
            tid,
            GRAPH,
            input=user_input("Then this"),
            stream_mode=["custom", "updates"],
            multitask_strategy="enqueue",
        )
    ]
    # Behind the slow run, next in line: a custom event says so, then the run's own.
    assert parts[0][0] == "metadata"
    assert parts[1] == ("custom", {"event": "queued", "position": 1})
    assert ("custom", {"event": "queued", "position": 1}) not in parts[2:]
    assert any(event == "updates" for event, _ in parts[2:])
    assert (await alice.runs.get(tid, first["run_id"]))["status"] == "success"
    # The chat API's stream of the same run: `queued` (recorded, then position 1), then
    # the run.
    run_id = parts[0][1]["run_id"]
    path = f"/api/projects/{tid}/chat/{run_id}/stream"
    with (
        lg_server.process.client(lg_server.alice) as client,
        client.stream("GET", path) as response,
    ):
        events = list(read_events(response))
    assert [(e.event, e.id, e.data.get("position")) for e in events[:3]] == [
        ("queued", "0", None),
        ("queued", "1", 1),
        ("run_started", "2", None),
    ]
    assert events[-1].event == "run_finished" and events[-1].data["status"] == "success"


async def test_cancel_stops_the_run_and_leaves_the_thread_usable(
    alice: LangGraphClient, lg_server: LangGraphServer
) -> None:
    tid = await _after_one_turn(alice)
    run = await alice.runs.create(tid, GRAPH, input=user_input("Slowly"))
    await asyncio.sleep(0.5)
    cancelled = await alice.runs.cancel(tid, run["run_id"], wait=True)
    assert (cancelled["status"], cancelled["cancel_reason"]) == ("interrupted", "cancelled")
    assert (await alice.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    assert [r["run_id"] for r in await alice.runs.list(tid, status="interrupted")] == [
        run["run_id"]
    ]
    state = await alice.threads.get_state(tid)
    assert state["next"] == []
    assert _contents(state["values"])[-1] == ("ai", "(The previous run was cancelled by the user.)")
    assert len(state["values"]["files"]) < 1 + SLOW_FILES
    assert (await alice.threads.get(tid))["status"] == "idle"
    values = await alice.runs.wait(tid, GRAPH, input=user_input("Once more"))
    assert _contents(values)[-1] == ("ai", "The page is ready.")
    with pytest.raises(ConflictError):
        await alice.runs.cancel(tid, run["run_id"])
    with pytest.raises(UnprocessableEntityError):
        await alice.runs.cancel(tid, run["run_id"], action="rollback")


async def test_cancelling_a_queued_run_drops_it(
    alice: LangGraphClient, lg_server: LangGraphServer
) -> None:
    tid = await _after_one_turn(alice)
    first = await alice.runs.create(tid, GRAPH, input=user_input("Slowly"))
    queued = await alice.runs.create(
        tid, GRAPH, input=user_input("Never"), multitask_strategy="enqueue"
    )
    await alice.runs.cancel(tid, queued["run_id"])
    await alice.runs.join(tid, queued["run_id"])
    assert (await alice.runs.get(tid, queued["run_id"]))["status"] == "interrupted"
    await alice.runs.join(tid, first["run_id"])
    assert (await alice.runs.get(tid, first["run_id"]))["status"] == "success"
    assert ("user", "Never") not in _stored_messages(lg_server, tid)


async def test_a_failed_run_answers_its_error(alice: LangGraphClient) -> None:
    tid = (await alice.threads.create())["thread_id"]
    await alice.threads.update_state(tid, earlier_turns(), as_node="persist")
    # The SDK raises what the server answered: {"__error__": {"error", "message"}}.
    with pytest.raises(Exception, match=r"^provider_error: scripted refusal$"):
        await alice.runs.wait(tid, GRAPH, input=user_input("Fail"))
    runs = await alice.runs.list(tid)
    assert [r["status"] for r in runs] == ["error"]
    assert (await alice.threads.get(tid))["status"] == "error"


async def test_stateless_runs_use_a_thread_deleted_afterwards(alice: LangGraphClient) -> None:
    before = {t["thread_id"] for t in await alice.threads.search(limit=1000)}
    values = await alice.runs.wait(None, GRAPH, input=user_input("A page"))
    assert values["files"] == {"index.html": PAGE_SHA}
    assert {t["thread_id"] for t in await alice.threads.search(limit=1000)} == before
    kept = await alice.runs.wait(None, GRAPH, input=user_input("A page"), on_completion="keep")
    [thread] = await alice.threads.search(ids=[kept["project_id"]])
    assert thread["metadata"]["stateless"] is True
    parts = [
        p.event
        async for p in alice.runs.stream(None, GRAPH, input=user_input("A"), stream_mode="updates")
    ]
    assert parts[0] == "metadata" and parts.count("updates") == 4
    run = await alice.runs.create(None, GRAPH, input=user_input("A page"))
    assert run["status"] in ("pending", "running")


async def test_input_must_be_a_user_message(alice: LangGraphClient) -> None:
    tid = (await alice.threads.create())["thread_id"]
    refusals = {
        "no input": {"input": None},
        "assistant message": {"input": {"messages": [{"role": "assistant", "content": "Hi"}]}},
        "other channels": {"input": {"messages": [], "files": {}}},
        "empty": {"input": {"messages": [{"role": "user", "content": "  "}]}},
        "breakpoints": {"input": user_input("A"), "interrupt_before": ["tools"]},
        "interrupt strategy": {"input": user_input("A"), "multitask_strategy": "interrupt"},
        "stream mode": {"input": user_input("A"), "stream_mode": "tools"},
        "webhook": {"input": user_input("A"), "webhook": "https://example.com/hook"},
        "limits": {"input": user_input("A"), "context": {"max_steps": 0}},
    }
    messages = {}
    for name, kwargs in refusals.items():
        with pytest.raises(UnprocessableEntityError) as caught:
            await alice.runs.create(tid, GRAPH, **kwargs)
        messages[name] = caught.value.body["error"]["message"]
    assert messages["no input"].startswith("the input needs a user message")
    assert messages["assistant message"] == (
        "only user messages can be sent, not 'assistant': the web-builder graph writes the "
        "assistant's and the tools' messages itself"
    )
    assert messages["interrupt strategy"] == (
        "multitask_strategy 'interrupt' is not supported: a busy thread can only reject a "
        "new run or queue it; use one of reject, enqueue"
    )
    assert messages["stream mode"].startswith("unsupported stream mode(s) 'tools'; supported:")
    assert await alice.runs.list(tid) == []
    with pytest.raises(NotFoundError):
        await alice.runs.create(tid, "agent", input=user_input("A"))


async def test_an_interrupted_turn_is_resumed_without_input(alice: LangGraphClient) -> None:
    tid = await _after_one_turn(alice)
    # As if a crash had stopped the turn after the agent's answer, before saving it.
    await alice.threads.update_state(tid, {"build_status": "working"}, as_node="agent")
    assert (await alice.threads.get_state(tid))["next"] == ["persist"]
    values = await alice.runs.wait(tid, GRAPH, input=None)
    assert (values["build_status"], values["stop_reason"]) == ("done", "done")
    assert (await alice.threads.get_state(tid))["next"] == []


async def test_runs_if_not_exists_create(alice: LangGraphClient) -> None:
    chosen = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await alice.runs.create(chosen, GRAPH, input=user_input("A page"))
    values = await alice.runs.wait(
        chosen, GRAPH, input=user_input("A page"), if_not_exists="create"
    )
    assert values["project_id"] == chosen


def test_the_sync_client_runs_and_cancels(alice_sync: SyncLangGraphClient) -> None:
    tid = alice_sync.threads.create()["thread_id"]
    assert alice_sync.runs.wait(tid, GRAPH, input=user_input("A page"))["files"] == {
        "index.html": PAGE_SHA
    }
    run = alice_sync.runs.create(tid, GRAPH, input=user_input("Slowly"))
    alice_sync.runs.cancel(tid, run["run_id"], wait=True)
    assert alice_sync.runs.get(tid, run["run_id"])["status"] == "interrupted"


def test_runs_are_created_in_the_chat_rate_limit_tier(lg_server: LangGraphServer) -> None:
    headers = {"x-api-key": lg_server.alice}
    with httpx.Client(base_url=lg_server.url, headers=headers, timeout=60) as http:
        tid = http.post("/threads", json={}).json()["thread_id"]
        read = http.get(f"/threads/{tid}")
        created = http.post(
            f"/threads/{tid}/runs/wait", json={"assistant_id": GRAPH, "input": user_input("A")}
        )
        metrics = http.get("/metrics").text
    assert read.headers["x-ratelimit-limit"] == str(DEFAULT_LIMIT)
    assert created.headers["x-ratelimit-limit"] == str(CHAT_LIMIT)
    assert created.headers["content-location"].startswith(f"/threads/{tid}/runs/")
    assert created.headers["x-request-id"]
    assert (
        'builder_http_requests_total{method="POST",route="/threads/{thread_id}/runs/wait",'
        'status="200"}' in metrics
    )


async def test_a_run_input_over_the_message_limit_is_refused(alice: LangGraphClient) -> None:
    tid = (await alice.threads.create())["thread_id"]
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await alice.runs.wait(tid, GRAPH, input=user_input("x" * (5 << 20)))
    assert refused.value.response.status_code == 422
    assert "the limit is 20,000" in refused.value.response.text
    assert await alice.runs.list(tid) == []


async def test_a_run_may_start_from_the_latest_checkpoint_only(alice: LangGraphClient) -> None:
    # agent-chat-ui sends the head checkpoint it shows along with every next message.
    thread = await alice.threads.create()
    tid = thread["thread_id"]
    await alice.runs.wait(tid, GRAPH, input=user_input("A page"))
    await alice.threads.update_state(tid, {"build_status": "idle"}, as_node="persist")
    history = await alice.threads.get_history(tid, limit=100)
    older = history[-1]["checkpoint"]["checkpoint_id"]
    with pytest.raises(UnprocessableEntityError) as refused:
        await alice.runs.create(tid, GRAPH, input=user_input("Again"), checkpoint_id=older)
    assert refused.value.body["error"]["message"].startswith(
        "running from an earlier checkpoint is not supported: a run always continues the "
        f"latest state, and {older} is not the thread's latest checkpoint ("
    )
    await alice.threads.update_state(tid, earlier_turns(1))  # next: the fast turn again
    head = (await alice.threads.get_state(tid))["checkpoint"]
    values = await alice.runs.wait(
        tid, GRAPH, input=user_input("Once more"), checkpoint={**head, "thread_id": None}
    )
    assert isinstance(values, dict)
    assert values["messages"][-1]["content"] == "The page is ready."
