"""JSON for the LangGraph API: state values, checkpoints, thread states, threads and runs.

The shapes are those of ``langgraph_sdk.schema`` (``Thread``, ``ThreadState``, ``Run``,
``Checkpoint``): what the official SDK and ``RemoteGraph`` read. LangChain messages
become their dict form (``message.model_dump()``, with ``type``), which
``langchain_core.messages.convert_to_messages`` and the JavaScript SDK both read back.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Interrupt, PregelTask, StateSnapshot
from pydantic import BaseModel

__all__ = [
    "checkpoint_of",
    "dumps",
    "empty_state",
    "run_json",
    "run_status",
    "thread_json",
    "thread_state",
    "to_jsonable",
]

_RUN_STATUS = {"cancelled": "interrupted"}
"""builder's run statuses the protocol spells differently (a cancelled run is
``interrupted`` there)."""


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: messages as dicts, dates as ISO strings.

    Anything without a JSON form becomes its ``str``; nothing raises.
    """
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, BaseMessage):
        return to_jsonable(value.model_dump())
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def dumps(value: Any) -> str:
    """Compact JSON text of :func:`to_jsonable` of ``value``."""
    return json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False)


def checkpoint_of(config: RunnableConfig | None, thread_id: str = "") -> dict[str, Any]:
    """The ``Checkpoint`` a config points at (thread, namespace, checkpoint id)."""
    configurable = (config or {}).get("configurable", {})
    return {
        "thread_id": str(configurable.get("thread_id", thread_id)),
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "checkpoint_id": configurable.get("checkpoint_id"),
        "checkpoint_map": to_jsonable(configurable.get("checkpoint_map")),
    }


def _interrupt(interrupt: Interrupt) -> dict[str, Any]:
    return {"value": to_jsonable(interrupt.value), "id": interrupt.id}


def _task(task: PregelTask) -> dict[str, Any]:
    state = task.state
    return {
        "id": task.id,
        "name": task.name,
        "error": f"{type(task.error).__name__}: {task.error}" if task.error else None,
        "interrupts": [_interrupt(i) for i in task.interrupts],
        "checkpoint": checkpoint_of(state) if isinstance(state, dict) else None,
        "state": None,
        "result": to_jsonable(task.result),
    }


def thread_state(snapshot: StateSnapshot) -> dict[str, Any]:
    """A LangGraph state snapshot as the protocol's ``ThreadState``."""
    return {
        "values": to_jsonable(snapshot.values),
        "next": list(snapshot.next),
        "tasks": [_task(task) for task in snapshot.tasks],
        "checkpoint": checkpoint_of(snapshot.config),
        "metadata": to_jsonable(snapshot.metadata or {}),
        "created_at": snapshot.created_at,
        "parent_checkpoint": (
            checkpoint_of(snapshot.parent_config) if snapshot.parent_config else None
        ),
        "interrupts": [_interrupt(i) for i in snapshot.interrupts],
    }


def empty_state(thread_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """The ``ThreadState`` of a thread with no live context (no checkpoint)."""
    return {
        "values": to_jsonable(values),
        "next": [],
        "tasks": [],
        "checkpoint": checkpoint_of(None, thread_id),
        "metadata": {},
        "created_at": None,
        "parent_checkpoint": None,
        "interrupts": [],
    }


def thread_json(row: Mapping[str, Any], *, values: Any = None) -> dict[str, Any]:
    """A thread row (see :func:`builder.persistence.runs.get_thread`) as a ``Thread``."""
    return {
        "thread_id": row["thread_id"],
        "created_at": to_jsonable(row["created_at"]),
        "updated_at": to_jsonable(row["updated_at"]),
        "metadata": to_jsonable(row["metadata"]),
        "status": row["status"],
        "config": {},
        "values": to_jsonable(values),
        "interrupts": {},
    }


def run_status(status: str) -> str:
    """A run status in the protocol's words."""
    return _RUN_STATUS.get(status, status)


def run_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A run row (see :func:`builder.persistence.runs.get_run`) as a ``Run``."""
    return {
        "run_id": row["run_id"],
        "thread_id": row["thread_id"],
        "assistant_id": row["assistant_id"],
        "created_at": to_jsonable(row["created_at"]),
        "updated_at": to_jsonable(row["updated_at"]),
        "status": run_status(row["status"]),
        "metadata": to_jsonable(row["metadata"]),
        "multitask_strategy": row["multitask_strategy"] or "reject",
        "kwargs": to_jsonable(row["kwargs"]),
        "cancel_reason": "cancelled" if row["status"] == "cancelled" else None,
    }
