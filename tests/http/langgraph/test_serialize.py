"""JSON for the LangGraph API: messages, state snapshots, runs."""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from datetime import UTC, datetime
from typing import Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage, messages_from_dict
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import interrupt

from builder.http.langgraph.serialize import (
    dumps,
    empty_state,
    run_json,
    thread_state,
    to_jsonable,
)


class _Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class _Point:
    x: int
    when: datetime


def test_to_jsonable_makes_plain_json() -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    ident = uuid.UUID(int=1)
    value = {
        "message": AIMessage("Hi", id="m1", tool_calls=[{"name": "t", "args": {}, "id": "c"}]),
        "tuple": (1, "a"),
        "set": {2},
        "when": when,
        "id": ident,
        "color": _Color.RED,
        "bytes": b"\x00\x01",
        "point": _Point(1, when),
        "other": object,
        3: None,
    }
    plain = to_jsonable(value)
    assert json.loads(dumps(value)) == plain
    message = plain["message"]
    assert (message["type"], message["content"], message["id"]) == ("ai", "Hi", "m1")
    assert messages_from_dict([{"type": "ai", "data": message}])[0] == value["message"]
    assert {k: v for k, v in plain.items() if k != "message"} == {
        "tuple": [1, "a"],
        "set": [2],
        "when": "2025-01-02T03:04:05+00:00",
        "id": "00000000-0000-0000-0000-000000000001",
        "color": "red",
        "bytes": "AAE=",
        "point": {"x": 1, "when": "2025-01-02T03:04:05+00:00"},
        "other": "<class 'object'>",
        "3": None,
    }


class _State(TypedDict):
    messages: list[Any]
    answer: str


def test_thread_state_of_an_interrupted_graph() -> None:
    def ask(state: _State) -> dict[str, Any]:
        return {"answer": interrupt({"question": "Color?"})}

    builder = StateGraph(_State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    graph = builder.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t1"}}
    graph.invoke({"messages": [HumanMessage("Hi", id="h1")], "answer": ""}, config)
    snapshot = graph.get_state(config)
    state = thread_state(snapshot)
    [task] = snapshot.tasks
    [pending] = snapshot.interrupts
    assert state == {
        "values": {
            "messages": [HumanMessage("Hi", id="h1").model_dump()],
            "answer": "",
        },
        "next": ["ask"],
        "tasks": [
            {
                "id": task.id,
                "name": "ask",
                "error": None,
                "interrupts": [{"value": {"question": "Color?"}, "id": pending.id}],
                "checkpoint": None,
                "state": None,
                "result": None,
            }
        ],
        "checkpoint": {
            "thread_id": "t1",
            "checkpoint_ns": "",
            "checkpoint_id": snapshot.config["configurable"]["checkpoint_id"],
            "checkpoint_map": None,
        },
        "metadata": to_jsonable(snapshot.metadata),
        "created_at": snapshot.created_at,
        "parent_checkpoint": {
            "thread_id": "t1",
            "checkpoint_ns": "",
            "checkpoint_id": snapshot.parent_config["configurable"]["checkpoint_id"],  # type: ignore[index]
            "checkpoint_map": None,
        },
        "interrupts": [{"value": {"question": "Color?"}, "id": pending.id}],
    }
    assert state["metadata"]["source"] == "loop"
    json.dumps(state)


def test_empty_state_and_run_json() -> None:
    assert empty_state("t", {})["checkpoint"] == {
        "thread_id": "t",
        "checkpoint_ns": "",
        "checkpoint_id": None,
        "checkpoint_map": None,
    }
    when = datetime(2025, 1, 2, tzinfo=UTC)
    row = {
        "run_id": "r",
        "thread_id": "t",
        "assistant_id": "a",
        "created_at": when,
        "updated_at": when,
        "status": "cancelled",
        "metadata": {"k": 1},
        "multitask_strategy": None,
        "kwargs": {},
    }
    assert run_json(row) == {
        "run_id": "r",
        "thread_id": "t",
        "assistant_id": "a",
        "created_at": "2025-01-02T00:00:00+00:00",
        "updated_at": "2025-01-02T00:00:00+00:00",
        "status": "interrupted",
        "metadata": {"k": 1},
        "multitask_strategy": "reject",
        "kwargs": {},
        "cancel_reason": "cancelled",
    }
    assert run_json({**row, "status": "success"})["cancel_reason"] is None
