"""A thread's state: its live context's checkpoints, or what the next turn starts from.

A thread's context (its LangGraph checkpoints) expires after ``ttl`` idle minutes; the
project does not. So a thread without a live context still has values: the ones its
next turn will be rebuilt from (the project's recent messages and its latest files
manifest), reported with no checkpoint id.
"""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot

from builder.errors import NotFound
from builder.http.langgraph.serialize import empty_state, thread_state
from builder.http.services import Services
from builder.runs.conversation import rebuild_context

__all__ = [
    "config_for",
    "current_values",
    "has_context",
    "rebuilt_values",
    "state_json",
]


def config_for(thread_id: str, checkpoint: dict[str, Any] | None = None) -> RunnableConfig:
    """The LangGraph config of a thread, at a checkpoint when one is given.

    Raises:
        NotFound: The checkpoint id is not a checkpoint id (a UUID), or the checkpoint
            names a subgraph namespace (the web-builder graph has none).
    """
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if checkpoint:
        checkpoint_id = checkpoint.get("checkpoint_id")
        if checkpoint_id:
            try:
                uuid.UUID(str(checkpoint_id))
            except ValueError:
                raise NotFound("checkpoint", checkpoint_id) from None
            configurable["checkpoint_id"] = str(checkpoint_id)
        if checkpoint.get("checkpoint_ns"):
            raise NotFound("checkpoint namespace", checkpoint["checkpoint_ns"])
    return {"configurable": configurable}


async def _snapshot(
    services: Services, thread_id: str, checkpoint: dict[str, Any] | None = None
) -> StateSnapshot | None:
    snapshot = await services.runs.thread_state(config_for(thread_id, checkpoint))
    if snapshot.metadata is None:  # nothing saved at (or up to) that checkpoint
        if checkpoint and checkpoint.get("checkpoint_id"):
            raise NotFound("checkpoint", checkpoint["checkpoint_id"])
        return None
    return snapshot


async def has_context(services: Services, thread_id: str) -> bool:
    """Whether the thread has a live context (at least one checkpoint)."""
    return await _snapshot(services, thread_id) is not None


async def rebuilt_values(services: Services, thread_id: str) -> dict[str, Any] | None:
    """What a new context would start from; None when the project has nothing yet."""
    values = await rebuild_context(services.db, project_id=uuid.UUID(thread_id))
    if not values["messages"] and not values["files"]:
        return None
    return values


async def current_values(services: Services, thread_id: str) -> dict[str, Any] | None:
    """The thread's values: its live context's, or the ones its next turn starts from."""
    snapshot = await _snapshot(services, thread_id)
    if snapshot is not None:
        return dict(snapshot.values)
    return await rebuilt_values(services, thread_id)


async def state_json(
    services: Services, thread_id: str, checkpoint: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The thread's ``ThreadState`` (at ``checkpoint`` when given).

    Raises:
        NotFound: The checkpoint is not one of the thread's.
    """
    snapshot = await _snapshot(services, thread_id, checkpoint)
    if snapshot is not None:
        return thread_state(snapshot)
    return empty_state(thread_id, await rebuilt_values(services, thread_id) or {})
