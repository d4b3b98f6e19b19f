"""Assistants through the official SDK: the web-builder graph, read-only."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from langgraph_sdk.errors import AuthenticationError, NotFoundError

from tests.http.langgraph.conftest import ASSISTANT_ID, GRAPH, LangGraphServer


def _expected(created_at: str) -> dict[str, Any]:
    return {
        "assistant_id": ASSISTANT_ID,
        "graph_id": GRAPH,
        "config": {},
        "context": {},
        "created_at": created_at,
        "updated_at": created_at,
        "metadata": {"created_by": "system"},
        "version": 1,
        "name": GRAPH,
        "description": (
            "Builds and edits a web site in a sandbox: plans, writes files, runs commands "
            "and a dev server; every turn is saved as a version of the project."
        ),
    }


async def test_the_web_builder_graph_is_the_assistant_by_graph_id_and_by_uuid(
    alice: LangGraphClient,
) -> None:
    found = await alice.assistants.search()
    assert found == [_expected(found[0]["created_at"])]
    assert await alice.assistants.get(GRAPH) == found[0]
    assert await alice.assistants.get(ASSISTANT_ID) == found[0]
    assert await alice.assistants.search(graph_id="other") == []
    assert await alice.assistants.search(metadata={"created_by": "system"}) == found
    assert await alice.assistants.search(name="BUILDER") == found
    page = await alice.assistants.search(offset=1, response_format="object")
    assert page == {"assistants": [], "next": None}
    assert await alice.assistants.count() == 1
    assert await alice.assistants.count(graph_id="other") == 0
    with pytest.raises(NotFoundError) as caught:
        await alice.assistants.get("agent")
    assert caught.value.body == {
        "error": {
            "code": "not_found",
            "message": "assistant agent not found",
            "request_id": caught.value.request_id,
        }
    }


async def test_the_graph_and_its_schemas(alice: LangGraphClient) -> None:
    drawn = await alice.assistants.get_graph(GRAPH)
    assert [node["id"] for node in drawn["nodes"]] == [
        "__start__",
        "agent",
        "tools",
        "persist",
        "check",
        "__end__",
    ]
    edges = {(e["source"], e["target"]) for e in drawn["edges"]}
    assert edges == {
        ("__start__", "agent"),
        ("agent", "tools"),
        ("agent", "persist"),
        ("tools", "tools"),
        ("tools", "agent"),
        ("persist", "agent"),
        ("persist", "check"),
        ("persist", "__end__"),
        ("check", "agent"),
        ("check", "__end__"),
    }
    schemas = await alice.assistants.get_schemas(ASSISTANT_ID)
    assert schemas["graph_id"] == GRAPH
    assert schemas["input_schema"]["required"] == ["messages"]
    state = schemas["state_schema"]
    assert state == schemas["output_schema"]
    assert {"messages", "files", "plan", "dev_server", "snapshot_version"} <= set(
        state["properties"]
    )
    assert state["properties"]["files"] == {
        "additionalProperties": {"type": "string"},
        "title": "Files",
        "type": "object",
    }
    assert set(schemas["context_schema"]["properties"]) == {"max_steps", "token_budget"}
    assert await alice.assistants.get_subgraphs(GRAPH) == {}


def test_remote_graph_draws_the_graph(
    lg_server: LangGraphServer, alice_sync: SyncLangGraphClient
) -> None:
    remote = RemoteGraph(GRAPH, sync_client=alice_sync)
    drawn = remote.get_graph()
    assert sorted(drawn.nodes) == ["__end__", "__start__", "agent", "check", "persist", "tools"]
    assert len(drawn.edges) == 10


async def test_a_key_is_needed(lg_server: LangGraphServer) -> None:
    async with get_client(url=lg_server.url, api_key=None) as anonymous:
        with pytest.raises(AuthenticationError):
            await anonymous.assistants.search()
    async with get_client(url=lg_server.url, api_key="bld_wrong") as wrong:
        with pytest.raises(AuthenticationError) as caught:
            await wrong.threads.create()
    assert caught.value.body["error"]["code"] == "unauthorized"
