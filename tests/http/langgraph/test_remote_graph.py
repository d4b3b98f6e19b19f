"""``RemoteGraph`` against builder: the web-builder graph used like a local graph."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.pregel.remote import RemoteException, RemoteGraph
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient

from tests.http.langgraph.conftest import GRAPH, PAGE_SHA, earlier_turns, user_input


@pytest.fixture
def remote(alice_sync: SyncLangGraphClient) -> RemoteGraph:
    return RemoteGraph(GRAPH, sync_client=alice_sync)


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def test_invoke_answers_the_final_state(
    remote: RemoteGraph, alice_sync: SyncLangGraphClient
) -> None:
    tid = alice_sync.threads.create()["thread_id"]
    values = remote.invoke({"messages": [HumanMessage("A page")]}, _config(tid))
    assert [m["type"] for m in values["messages"]] == ["human", "ai", "tool", "ai"]
    assert values["files"] == {"index.html": PAGE_SHA}
    again = remote.invoke(user_input("Slowly"), _config(tid))
    assert [m["content"] for m in again["messages"] if m["type"] == "human"] == [
        "A page",
        "Slowly",
    ]


def test_stream_yields_what_was_asked_for(remote: RemoteGraph) -> None:
    updates = list(remote.stream(user_input("A page")))
    assert [next(iter(u)) for u in updates] == ["agent", "tools", "agent", "persist"]
    # Several modes: the SDK's stream parts, ``messages`` as (message, metadata) pairs.
    parts = list(remote.stream(user_input("A page"), stream_mode=["custom", "messages"]))
    assert {part.event for part in parts} == {"custom", "messages"}
    message, metadata = next(part.data for part in parts if part.event == "messages")
    assert (message["type"], metadata["langgraph_node"]) == ("AIMessageChunk", "agent")
    v2 = list(remote.stream(user_input("A page"), stream_mode="values", version="v2"))
    assert v2[-1]["type"] == "values" and v2[-1]["interrupts"] == ()
    assert v2[-1]["data"]["files"] == {"index.html": PAGE_SHA}


def test_state_history_and_updates(remote: RemoteGraph, alice_sync: SyncLangGraphClient) -> None:
    tid = alice_sync.threads.create()["thread_id"]
    remote.invoke(user_input("A page"), _config(tid))
    snapshot = remote.get_state(_config(tid))
    assert snapshot.next == ()
    assert snapshot.values["files"] == {"index.html": PAGE_SHA}
    assert snapshot.config["configurable"]["thread_id"] == tid
    assert snapshot.config["configurable"]["checkpoint_id"]
    assert snapshot.metadata is not None and snapshot.metadata["source"] == "loop"
    # A run that ends keeps only the thread's latest checkpoint.
    history = list(remote.get_state_history(_config(tid)))
    assert [h.config for h in history] == [snapshot.config]
    at = remote.get_state(history[0].config)
    assert at.values == history[0].values
    updated = remote.update_state(_config(tid), {"build_status": "idle"}, as_node="persist")
    assert (
        updated["configurable"]["checkpoint_id"] != snapshot.config["configurable"]["checkpoint_id"]
    )
    assert remote.get_state(_config(tid)).values["build_status"] == "idle"


def test_a_failed_run_raises_a_remote_exception(
    remote: RemoteGraph, alice_sync: SyncLangGraphClient
) -> None:
    tid = alice_sync.threads.create()["thread_id"]
    alice_sync.threads.update_state(tid, earlier_turns(), as_node="persist")
    with pytest.raises(RemoteException) as caught:
        remote.invoke(user_input("Fail"), _config(tid))
    assert caught.value.args[0] == {"error": "provider_error", "message": "scripted refusal"}


async def test_the_async_methods(alice: LangGraphClient) -> None:
    remote = RemoteGraph(GRAPH, client=alice)
    tid = (await alice.threads.create())["thread_id"]
    values = await remote.ainvoke(user_input("A page"), _config(tid))
    assert values["files"] == {"index.html": PAGE_SHA}
    snapshot = await remote.aget_state(_config(tid))
    assert snapshot.values == values
    parts = [
        p async for p in remote.astream(user_input("Again"), _config(tid), stream_mode="values")
    ]
    assert [m["content"] for m in parts[-1]["messages"] if m["type"] == "human"] == [
        "A page",
        "Again",
    ]
