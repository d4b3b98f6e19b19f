"""A user sees only their own threads and runs: anyone else's answer 404, as if missing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from tests.http.langgraph.conftest import GRAPH, user_input


async def _drain(stream: Any) -> list[Any]:
    return [part async for part in stream]


async def test_another_user_s_thread_and_runs_are_not_found(
    alice: LangGraphClient, bob: LangGraphClient
) -> None:
    thread = await alice.threads.create(metadata={"owner": "alice"})
    tid = thread["thread_id"]
    await alice.runs.wait(tid, GRAPH, input=user_input("A page"))
    run = await alice.runs.create(tid, GRAPH, input=user_input("Slowly"))
    rid = run["run_id"]
    checkpoint = (await alice.threads.get_state(tid))["checkpoint"]

    attempts: dict[str, Callable[[], Awaitable[Any]]] = {
        "get thread": lambda: bob.threads.get(tid),
        "update thread": lambda: bob.threads.update(tid, metadata={"owner": "bob"}),
        "delete thread": lambda: bob.threads.delete(tid),
        "get state": lambda: bob.threads.get_state(tid),
        "state at checkpoint": lambda: bob.threads.get_state(tid, checkpoint=checkpoint),
        "update state": lambda: bob.threads.update_state(tid, {"plan": None}),
        "history": lambda: bob.threads.get_history(tid),
        "list runs": lambda: bob.runs.list(tid),
        "get run": lambda: bob.runs.get(tid, rid),
        "cancel run": lambda: bob.runs.cancel(tid, rid),
        "create run": lambda: bob.runs.create(tid, GRAPH, input=user_input("Mine now")),
        "create run, creating the thread": lambda: bob.runs.create(
            tid, GRAPH, input=user_input("Mine now"), if_not_exists="create"
        ),
        "stream run": lambda: _drain(bob.runs.stream(tid, GRAPH, input=user_input("Mine"))),
        "join stream": lambda: _drain(bob.runs.join_stream(tid, rid)),
    }
    answers = {}
    for name, attempt in attempts.items():
        with pytest.raises(NotFoundError) as caught:
            await attempt()
        answers[name] = caught.value.body["error"]["code"]
    assert answers == dict.fromkeys(attempts, "not_found")

    assert await bob.threads.search(metadata={"owner": "alice"}) == []
    assert await bob.threads.search(ids=[tid]) == []
    assert await bob.threads.count(metadata={"owner": "alice"}) == 0
    # The id is taken, so bob cannot have a thread of that id either.
    with pytest.raises(ConflictError):
        await bob.threads.create(thread_id=tid)

    # Alice's run went on untouched, and her thread is as she left it.
    await alice.runs.join(tid, rid)
    assert (await alice.runs.get(tid, rid))["status"] == "success"
    assert (await alice.threads.get(tid))["metadata"]["owner"] == "alice"


async def test_a_remote_graph_with_another_key_cannot_read_the_thread(
    alice: LangGraphClient, bob: LangGraphClient
) -> None:
    tid = (await alice.threads.create())["thread_id"]
    await alice.runs.wait(tid, GRAPH, input=user_input("A page"))
    remote = RemoteGraph(GRAPH, client=bob)
    with pytest.raises(NotFoundError):
        await remote.aget_state({"configurable": {"thread_id": tid}})
    with pytest.raises(NotFoundError):
        await remote.ainvoke(user_input("Mine"), {"configurable": {"thread_id": tid}})
