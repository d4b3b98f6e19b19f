"""Streamed runs through the official SDK: every stream mode, as the SDK parses it."""

from __future__ import annotations

from typing import Any

from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from langgraph_sdk.schema import StreamPart

from tests.http.langgraph.conftest import (
    ASSISTANT_ID,
    GRAPH,
    PAGE,
    PAGE_SHA,
    earlier_turns,
    user_input,
)

NODES = ["agent", "tools", "agent", "persist"]


async def _stream(
    client: LangGraphClient, modes: str | list[str], **kwargs: Any
) -> tuple[str, list[StreamPart]]:
    tid = (await client.threads.create())["thread_id"]
    parts = [
        part
        async for part in client.runs.stream(
            tid, GRAPH, input=user_input("A page"), stream_mode=modes, **kwargs
        )
    ]
    return tid, parts


def _of(parts: list[StreamPart], event: str) -> list[Any]:
    return [part.data for part in parts if part.event == event]


async def test_the_stream_opens_with_the_run_metadata(alice: LangGraphClient) -> None:
    created: list[Any] = []
    tid, parts = await _stream(alice, "values", on_run_created=created.append)
    [run] = await alice.runs.list(tid)
    assert parts[0] == StreamPart("metadata", {"run_id": run["run_id"], "thread_id": tid}, "0")
    assert created == [{"run_id": run["run_id"], "thread_id": tid}]
    assert [part.id for part in parts] == [str(n) for n in range(len(parts))]


async def test_values_are_the_whole_state_after_each_step(alice: LangGraphClient) -> None:
    _, parts = await _stream(alice, "values")
    assert [p.event for p in parts] == ["metadata"] + ["values"] * (len(NODES) + 1)
    values = _of(parts, "values")
    assert [m["content"] for m in values[0]["messages"]] == ["A page"]
    last = values[-1]
    assert [m["type"] for m in last["messages"]] == ["human", "ai", "tool", "ai"]
    assert last["files"] == {"index.html": PAGE_SHA}
    assert (last["snapshot_version"], last["build_status"]) == (1, "done")


async def test_updates_name_the_nodes(alice: LangGraphClient) -> None:
    _, parts = await _stream(alice, "updates")
    updates = _of(parts, "updates")
    assert [next(iter(u)) for u in updates] == NODES
    assert updates[1]["tools"]["files"] == {"index.html": PAGE_SHA}
    assert updates[1]["tools"]["snapshot_version"] == 1


async def test_messages_tuple_streams_the_model_tokens_with_metadata(
    alice: LangGraphClient,
) -> None:
    tid, parts = await _stream(alice, "messages-tuple")
    pairs = _of(parts, "messages")
    chunks = [(m, meta) for m, meta in pairs if m["type"] == "AIMessageChunk"]
    first_id = chunks[0][0]["id"]
    text = "".join(m["content"] for m, _ in chunks if m["id"] == first_id)
    assert text == "I'll write the page."
    assert len([m for m, _ in chunks if m["id"] == first_id and m["content"]]) > 1
    meta = chunks[0][1]
    assert (meta["langgraph_node"], meta["thread_id"], meta["graph_id"]) == ("agent", tid, GRAPH)
    assert meta["assistant_id"] == ASSISTANT_ID
    tools = [m for m, _ in pairs if m["type"] == "tool"]
    assert [t["content"] for t in tools] == ["Created index.html (15 bytes, 1 line)."]


async def test_messages_streams_partial_then_complete_messages(alice: LangGraphClient) -> None:
    _, parts = await _stream(alice, "messages")
    kinds = {p.event for p in parts}
    assert kinds == {"metadata", "messages/metadata", "messages/partial", "messages/complete"}
    partial = [p.data[0]["content"] for p in parts if p.event == "messages/partial"]
    assert partial[:2] == ["I'll ", "I'll write "]
    complete = [(m["type"], m["content"]) for m in _of(parts, "messages/complete") for m in m]
    assert complete == [
        ("ai", "I'll write the page."),
        ("tool", "Created index.html (15 bytes, 1 line)."),
        ("ai", "The page is ready."),
    ]
    described = [next(iter(d)) for d in _of(parts, "messages/metadata")]
    assert len(described) == len(set(described)) == 3


async def test_custom_events_are_the_tool_events(alice: LangGraphClient) -> None:
    _, parts = await _stream(alice, "custom")
    custom = _of(parts, "custom")
    for event in custom:
        event.pop("duration_ms", None)
    assert custom == [
        {
            "event": "tool_start",
            "tool": "write_file",
            "call_id": "call_0_0_0",
            "step": 1,
            "args": {"path": "index.html", "content": PAGE},
        },
        {
            "event": "tool_end",
            "tool": "write_file",
            "call_id": "call_0_0_0",
            "step": 1,
            "ok": True,
            "result": "Created index.html (15 bytes, 1 line).",
        },
        {"event": "file_changed", "path": "index.html", "sha256": PAGE_SHA, "deleted": False},
        {"event": "snapshot", "version": 1, "paths": ["index.html"]},
    ]


async def test_events_are_the_documented_subset(alice: LangGraphClient) -> None:
    tid, parts = await _stream(alice, "events")
    events = _of(parts, "events")
    summary = [(e["event"], e["name"]) for e in events if e["event"] != "on_chat_model_stream"]
    assert summary == [
        ("on_chain_start", "LangGraph"),
        ("on_chain_start", "agent"),
        ("on_chain_end", "agent"),
        ("on_chain_start", "tools"),
        ("on_tool_start", "write_file"),
        ("on_tool_end", "write_file"),
        ("on_custom_event", "file_changed"),
        ("on_custom_event", "snapshot"),
        ("on_chain_end", "tools"),
        ("on_chain_start", "agent"),
        ("on_chain_end", "agent"),
        ("on_chain_start", "persist"),
        ("on_chain_end", "persist"),
        ("on_chain_end", "LangGraph"),
    ]
    streamed = [e for e in events if e["event"] == "on_chat_model_stream"]
    assert "".join(e["data"]["chunk"]["content"] for e in streamed).startswith(
        "I'll write the page."
    )
    [run] = await alice.runs.list(tid)
    assert events[0]["run_id"] == events[-1]["run_id"] == run["run_id"]
    assert events[0]["data"] == {"input": user_input("A page")}
    assert events[-1]["data"]["output"]["files"] == {"index.html": PAGE_SHA}
    [tool_start] = [e for e in events if e["event"] == "on_tool_start"]
    assert tool_start["data"] == {"input": {"path": "index.html", "content": PAGE}}
    assert tool_start["run_id"] == "call_0_0_0"


async def test_langgraph_s_own_modes_pass_through(alice: LangGraphClient) -> None:
    _, parts = await _stream(alice, ["checkpoints", "tasks", "debug"])
    checkpoints = _of(parts, "checkpoints")
    assert checkpoints[-1]["values"]["files"] == {"index.html": PAGE_SHA}
    assert checkpoints[-1]["next"] == []
    tasks = _of(parts, "tasks")
    assert [t["name"] for t in tasks if "triggers" in t] == NODES
    assert {d["type"] for d in _of(parts, "debug")} == {"checkpoint", "task", "task_result"}


async def test_several_modes_at_once(alice: LangGraphClient) -> None:
    _, parts = await _stream(alice, ["updates", "custom", "messages-tuple"])
    assert {p.event for p in parts} == {"metadata", "updates", "custom", "messages"}


async def test_a_failed_run_ends_with_an_error_event(alice: LangGraphClient) -> None:
    tid = (await alice.threads.create())["thread_id"]
    await alice.threads.update_state(tid, earlier_turns(), as_node="persist")
    parts = [
        p
        async for p in alice.runs.stream(
            tid, GRAPH, input=user_input("Fail"), stream_mode="updates"
        )
    ]
    assert parts[-1].event == "error"
    assert parts[-1].data == {"error": "provider_error", "message": "scripted refusal"}


async def test_a_finished_run_s_stream_is_joined_again_from_any_event(
    alice: LangGraphClient,
) -> None:
    tid, parts = await _stream(alice, "updates")
    [run] = await alice.runs.list(tid)
    again = [p async for p in alice.runs.join_stream(tid, run["run_id"])]
    assert again == parts
    rest = [p async for p in alice.runs.join_stream(tid, run["run_id"], last_event_id="2")]
    assert rest == parts[3:]
    values = [p async for p in alice.runs.join_stream(tid, run["run_id"], stream_mode=["values"])]
    assert [p.event for p in values] == ["metadata"] + ["values"] * (len(NODES) + 1)


async def test_a_run_is_joined_while_it_streams(alice: LangGraphClient) -> None:
    tid = (await alice.threads.create())["thread_id"]
    await alice.runs.wait(tid, GRAPH, input=user_input("A page"))
    run = await alice.runs.create(tid, GRAPH, input=user_input("Slowly"), stream_mode="custom")
    joined = [p async for p in alice.runs.join_stream(tid, run["run_id"])]
    starts = [
        p.data["tool"] for p in joined if p.event == "custom" and p.data["event"] == "tool_start"
    ]
    assert starts == ["write_file"] * 8


async def test_disconnecting_cancels_only_when_asked(alice: LangGraphClient) -> None:
    for on_disconnect, status in (("cancel", "interrupted"), (None, "success")):
        tid = (await alice.threads.create())["thread_id"]
        await alice.runs.wait(tid, GRAPH, input=user_input("A page"))
        stream = alice.runs.stream(
            tid,
            GRAPH,
            input=user_input("Slowly"),
            stream_mode="custom",
            on_disconnect=on_disconnect,  # type: ignore[arg-type]
        )
        first = await anext(stream)
        await stream.aclose()  # the client goes away
        await alice.runs.join(tid, first.data["run_id"])
        assert (await alice.runs.get(tid, first.data["run_id"]))["status"] == status


def test_the_sync_client_streams(alice_sync: SyncLangGraphClient) -> None:
    tid = alice_sync.threads.create()["thread_id"]
    parts = list(
        alice_sync.runs.stream(tid, GRAPH, input=user_input("A page"), stream_mode="updates")
    )
    assert [p.event for p in parts] == ["metadata"] + ["updates"] * len(NODES)
    assert [next(iter(p.data)) for p in parts[1:]] == NODES
