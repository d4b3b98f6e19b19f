"""Threads through the official SDK: a thread is a project, with metadata and a TTL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.http.langgraph.conftest import GRAPH, LangGraphServer, sql, user_input


async def _context_row(server: LangGraphServer, thread_id: str) -> dict[str, Any]:
    rows = await sql(
        server,
        "SELECT ttl_seconds, extract(epoch FROM expires_at - last_activity_at) AS lifetime, "
        "(SELECT count(*) FROM checkpoints c WHERE c.thread_id = :t) AS checkpoints "
        "FROM threads WHERE thread_id = :t",
        t=thread_id,
    )
    return rows[0] if rows else {}


def _project(server: LangGraphServer, key: str, project_id: str) -> int | str:
    with server.process.client(key) as http:
        response = http.get(f"/api/projects/{project_id}")
    return response.json()["name"] if response.status_code == 200 else response.status_code


async def test_creating_a_thread_creates_a_project(
    alice: LangGraphClient, lg_server: LangGraphServer
) -> None:
    thread = await alice.threads.create(metadata={"name": "Bakery", "topic": "bread"}, ttl=45)
    tid = thread["thread_id"]
    assert uuid.UUID(tid)
    assert thread == {
        "thread_id": tid,
        "created_at": thread["created_at"],
        "updated_at": thread["updated_at"],
        "metadata": {"name": "Bakery", "topic": "bread"},
        "status": "idle",
        "config": {},
        "values": None,
        "interrupts": {},
    }
    assert thread["created_at"].startswith("20")
    assert _project(lg_server, lg_server.alice, tid) == "Bakery"
    assert await _context_row(lg_server, tid) == {
        "ttl_seconds": 2700,
        "lifetime": None,
        "checkpoints": 0,
    }
    assert await alice.threads.get(tid) == thread


async def test_a_client_chosen_id_must_be_a_uuid_and_free(alice: LangGraphClient) -> None:
    chosen = str(uuid.uuid4())
    thread = await alice.threads.create(thread_id=chosen)
    assert thread["thread_id"] == chosen and thread["metadata"] == {}
    with pytest.raises(ConflictError) as caught:
        await alice.threads.create(thread_id=chosen)
    assert caught.value.body["error"]["message"] == f"thread {chosen} already exists"
    again = await alice.threads.create(thread_id=chosen, if_exists="do_nothing")
    assert again == thread
    with pytest.raises(UnprocessableEntityError) as refused:
        await alice.threads.create(thread_id="my-thread")
    assert refused.value.body["error"]["message"] == (
        "thread_id must be a UUID: it becomes the project's id"
    )


async def test_the_ttl_is_the_context_lifetime(
    alice: LangGraphClient, lg_server: LangGraphServer
) -> None:
    thread = await alice.threads.create(ttl={"ttl": 2, "strategy": "delete"})
    tid = thread["thread_id"]
    await alice.runs.wait(tid, GRAPH, input=user_input("A page"))
    # The checkpointer keeps the context for the thread's TTL, not the server's 30 minutes.
    assert (await _context_row(lg_server, tid))["lifetime"] == 120
    await alice.threads.update(tid, metadata={}, ttl=5)
    row = await _context_row(lg_server, tid)
    assert (row["ttl_seconds"], row["lifetime"]) == (300, 300)
    with pytest.raises(UnprocessableEntityError):
        await alice.threads.update(tid, metadata={}, ttl={"ttl": 5, "strategy": "forever"})


async def test_update_merges_metadata_and_search_filters_by_it(alice: LangGraphClient) -> None:
    tag = uuid.uuid4().hex
    first = await alice.threads.create(metadata={"tag": tag, "n": 1})
    second = await alice.threads.create(metadata={"tag": tag, "n": 2})
    updated = await alice.threads.update(first["thread_id"], metadata={"color": "red"})
    assert updated["metadata"] == {"tag": tag, "n": 1, "color": "red"}
    assert updated["updated_at"] >= first["updated_at"]

    found = await alice.threads.search(metadata={"tag": tag})
    assert [t["thread_id"] for t in found] == [second["thread_id"], first["thread_id"]]
    oldest_first = await alice.threads.search(
        metadata={"tag": tag}, sort_by="created_at", sort_order="asc"
    )
    assert [t["thread_id"] for t in oldest_first] == [first["thread_id"], second["thread_id"]]
    assert await alice.threads.search(metadata={"tag": tag, "color": "red"}) == [
        {**updated, "updated_at": found[1]["updated_at"]}
    ]
    page = await alice.threads.search(metadata={"tag": tag}, limit=1, offset=1)
    assert [t["thread_id"] for t in page] == [first["thread_id"]]
    by_id = await alice.threads.search(ids=[first["thread_id"], "not-a-uuid"])
    assert [t["thread_id"] for t in by_id] == [first["thread_id"]]
    assert await alice.threads.search(metadata={"tag": tag}, status="busy") == []
    picked = await alice.threads.search(metadata={"tag": tag, "n": 2}, select=["thread_id"])
    assert picked == [{"thread_id": second["thread_id"]}]
    assert await alice.threads.count(metadata={"tag": tag}) == 2
    assert await alice.threads.count(metadata={"tag": tag}, status="idle") == 2
    with pytest.raises(UnprocessableEntityError):
        await alice.threads.search(values={"build_status": "done"})


async def test_search_returns_each_threads_values_unless_select_leaves_them_out(
    alice: LangGraphClient,
) -> None:
    # agent-chat-ui names its history entries by the first message of each thread's values.
    tag = uuid.uuid4().hex
    thread = await alice.threads.create(metadata={"tag": tag})
    prompt = f"A page {tag}"
    await alice.runs.wait(thread["thread_id"], GRAPH, input=user_input(prompt))
    (found,) = await alice.threads.search(metadata={"tag": tag})
    assert found["values"]["messages"][0]["content"] == prompt
    assert found["values"] == (await alice.threads.get(thread["thread_id"]))["values"]
    (picked,) = await alice.threads.search(metadata={"tag": tag}, select=["thread_id", "metadata"])
    assert picked == {"thread_id": thread["thread_id"], "metadata": found["metadata"]}


async def test_a_project_made_through_the_rest_api_is_a_thread(
    alice: LangGraphClient, lg_server: LangGraphServer
) -> None:
    with lg_server.process.client(lg_server.alice) as http:
        project = http.post("/api/projects", json={"name": "From REST"}).json()
    thread = await alice.threads.get(project["id"])
    assert (thread["thread_id"], thread["metadata"], thread["status"]) == (
        project["id"],
        {},
        "idle",
    )
    await alice.threads.update(project["id"], metadata={"source": "rest"})
    assert [t["thread_id"] for t in await alice.threads.search(metadata={"source": "rest"})] == [
        project["id"]
    ]


async def test_deleting_a_thread_deletes_the_project_and_the_context(
    alice: LangGraphClient, lg_server: LangGraphServer
) -> None:
    thread = await alice.threads.create(metadata={"name": "Doomed"})
    tid = thread["thread_id"]
    await alice.runs.wait(tid, GRAPH, input=user_input("A page"))
    assert (await _context_row(lg_server, tid))["checkpoints"] > 0
    await alice.threads.delete(tid)
    with pytest.raises(NotFoundError):
        await alice.threads.get(tid)
    assert _project(lg_server, lg_server.alice, tid) == 404
    assert await _context_row(lg_server, tid) == {}
    left = await sql(lg_server, "SELECT count(*) AS n FROM checkpoints WHERE thread_id = :t", t=tid)
    assert left == [{"n": 0}]
    with pytest.raises(NotFoundError):
        await alice.threads.delete(tid)


async def test_a_thread_is_not_deleted_under_a_run(alice: LangGraphClient) -> None:
    tid = (await alice.threads.create())["thread_id"]
    await alice.runs.wait(tid, GRAPH, input=user_input("A page"))
    run = await alice.runs.create(tid, GRAPH, input=user_input("Slowly"))
    with pytest.raises(ConflictError) as caught:
        await alice.threads.delete(tid)
    assert caught.value.body["error"]["code"] == "run_in_progress"
    await alice.runs.cancel(tid, run["run_id"], wait=True)
    await alice.threads.delete(tid)


async def test_what_threads_cannot_do_is_refused_with_the_reason(alice: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError) as caught:
        await alice.threads.create(
            supersteps=[{"updates": [{"values": {"plan": None}, "as_node": "agent"}]}]
        )
    assert caught.value.body["error"]["message"].startswith("supersteps are not supported")
    with pytest.raises(NotFoundError):
        await alice.threads.get("not-a-uuid")
    # PostgreSQL cannot store a NUL character: refused before it gets there.
    with pytest.raises(UnprocessableEntityError) as nul:
        await alice.threads.create(metadata={"name": "a\x00b"})
    assert nul.value.body["error"]["code"] == "validation_error"


def test_the_sync_client_manages_threads(alice_sync: SyncLangGraphClient) -> None:
    thread = alice_sync.threads.create(metadata={"name": "Sync"})
    tid = thread["thread_id"]
    assert alice_sync.threads.get(tid)["metadata"] == {"name": "Sync"}
    assert alice_sync.threads.update(tid, metadata={"x": 1})["metadata"] == {"name": "Sync", "x": 1}
    assert [t["thread_id"] for t in alice_sync.threads.search(metadata={"name": "Sync"})] == [tid]
    alice_sync.threads.delete(tid)
    assert alice_sync.threads.search(metadata={"name": "Sync"}) == []
