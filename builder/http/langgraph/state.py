"""A thread's state: read it (now, at a checkpoint, its history) and update it.

Updates go through the graph (``aupdate_state``), so the channels' reducers apply:
``messages`` are appended or replaced by id. Only the channels a person may edit can
be updated: ``messages``, ``plan`` and ``build_status``. The others mirror the
sandbox and the database (the files manifest, snapshot version, dev server, run
bookkeeping) and are maintained by builder alone. An update waits for no run: while
one is in progress on the thread it is refused (409), never interleaved.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ToolMessage,
    convert_to_messages,
    messages_from_dict,
)

from builder.errors import InvalidInput, RunInProgress
from builder.http.deps import CurrentUser, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.langgraph.contexts import config_for, has_context, rebuilt_values, state_json
from builder.http.langgraph.schemas import HistoryBody, StateCheckpointBody, StateUpdateBody
from builder.http.langgraph.serialize import checkpoint_of, thread_state
from builder.http.langgraph.threads import owned_thread
from builder.http.ratelimit import rate_limited
from builder.http.services import Services

__all__ = ["EDITABLE_CHANNELS", "router"]

EDITABLE_CHANNELS = ("messages", "plan", "build_status")
"""State channels ``POST /threads/{id}/state`` may change."""

_MESSAGE_TYPES = frozenset(
    {"human", "ai", "tool", "system", "function", "chat", "remove", "AIMessageChunk"}
)

router = APIRouter(
    prefix="/threads/{thread_id}",
    tags=["langgraph: thread state"],
    dependencies=[Depends(rate_limited("default"))],
    responses=ERROR_RESPONSES,
)


def _messages(raw: Any) -> list[BaseMessage]:
    items = raw if isinstance(raw, list) else [raw]
    messages: list[BaseMessage] = []
    for item in items:
        if isinstance(item, dict) and item.get("type") in _MESSAGE_TYPES and "role" not in item:
            # The dict form of a message (model_dump): rebuilt field for field.
            messages.extend(messages_from_dict([{"type": item["type"], "data": item}]))
        else:
            try:
                messages.extend(convert_to_messages([item]))
            except (ValueError, NotImplementedError) as exc:
                raise InvalidInput(f"not a message: {exc}") from None
    return messages


def _checked_update(services: Services, body: StateUpdateBody) -> dict[str, Any]:
    if isinstance(body.values, list):
        raise InvalidInput("updates are one object of channel values, not a list")
    if body.checkpoint_id or (body.checkpoint or {}).get("checkpoint_id"):
        raise InvalidInput(
            "updating a past checkpoint is not supported: a thread's state moves forward only"
        )
    values = dict(body.values or {})
    refused = sorted(set(values) - set(EDITABLE_CHANNELS))
    if refused:
        raise InvalidInput(
            f"channel(s) {', '.join(refused)} cannot be updated: they mirror the sandbox and "
            f"the database; editable: {', '.join(EDITABLE_CHANNELS)}"
        )
    nodes = services.runs.graph_nodes()
    if body.as_node is not None and body.as_node not in nodes:
        raise InvalidInput(f"as_node must be one of {', '.join(nodes)}")
    if "messages" in values:
        values["messages"] = _messages(values["messages"])
        for message in values["messages"]:
            if isinstance(message, ToolMessage) or (
                isinstance(message, AIMessage)
                and (message.tool_calls or message.invalid_tool_calls)
            ):
                raise InvalidInput(
                    "messages with tool calls or tool results cannot be written into a "
                    "thread: tools run only when the model asks for them during a run"
                )
    return values


@router.get("/state")
async def get_state(
    thread_id: str,
    user: CurrentUser,
    services: ServicesDep,
    subgraphs: Annotated[bool, Query(description="Accepted; there are no subgraphs.")] = False,
) -> dict[str, Any]:
    """The thread's current state."""
    row = await owned_thread(services.db, user, thread_id)
    return await state_json(services, row["thread_id"])


@router.get("/state/{checkpoint_id}")
async def get_state_at(
    thread_id: str,
    checkpoint_id: str,
    user: CurrentUser,
    services: ServicesDep,
    subgraphs: Annotated[bool, Query(description="Accepted; there are no subgraphs.")] = False,
) -> dict[str, Any]:
    """The thread's state at one of its checkpoints."""
    row = await owned_thread(services.db, user, thread_id)
    return await state_json(services, row["thread_id"], {"checkpoint_id": checkpoint_id})


@router.post("/state/checkpoint")
async def post_state_at(
    thread_id: str, body: StateCheckpointBody, user: CurrentUser, services: ServicesDep
) -> dict[str, Any]:
    """The thread's state at a checkpoint (``checkpoint_id`` and ``checkpoint_ns``)."""
    row = await owned_thread(services.db, user, thread_id)
    return await state_json(services, row["thread_id"], body.checkpoint)


@router.post("/state")
async def update_state(
    thread_id: str, body: StateUpdateBody, user: CurrentUser, services: ServicesDep
) -> dict[str, Any]:
    """Update editable channels, as if ``as_node`` had just run; answers the new checkpoint.

    A run that has not ended makes the thread busy, queued or working: a queued run, or
    one waiting to be taken over, would start from the edited state it was not created
    against (and a run answers ``runs.create`` before a worker has claimed it).
    """
    row = await owned_thread(services.db, user, thread_id)
    values = _checked_update(services, body)
    tid = row["thread_id"]
    runs = services.runs
    async with services.runs.project_idle(row["project_id"], queued_too=True) as held:
        if not held:
            raise RunInProgress(row["project_id"])
        if not await has_context(services, tid):
            base = await rebuilt_values(services, tid)
            if base is not None:  # keep the conversation an expired context had
                await runs.update_thread(config_for(tid), base, as_node="persist")
        config = await runs.update_thread(config_for(tid), values, as_node=body.as_node)
    return {"checkpoint": checkpoint_of(config, tid)}


async def _history(
    services: Services,
    thread_id: str,
    *,
    limit: int,
    before: dict[str, Any] | str | None,
    metadata: dict[str, Any] | None,
    checkpoint: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    if isinstance(before, str):
        before = {"checkpoint_id": before}
    history = services.runs.thread_history(
        config_for(thread_id, checkpoint),
        filter=metadata or None,
        before=config_for(thread_id, before) if before else None,
        limit=limit,
    )
    return [thread_state(snapshot) async for snapshot in history]


@router.post("/history")
async def post_history(
    thread_id: str, body: HistoryBody, user: CurrentUser, services: ServicesDep
) -> list[dict[str, Any]]:
    """The thread's states, newest first (its live context's checkpoints)."""
    row = await owned_thread(services.db, user, thread_id)
    return await _history(
        services,
        row["thread_id"],
        limit=body.limit,
        before=body.before,
        metadata=body.metadata,
        checkpoint=body.checkpoint,
    )


@router.get("/history")
async def get_history(
    thread_id: str,
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: Annotated[str | None, Query(description="A checkpoint id.")] = None,
) -> list[dict[str, Any]]:
    """The thread's states, newest first."""
    row = await owned_thread(services.db, user, thread_id)
    return await _history(
        services, row["thread_id"], limit=limit, before=before, metadata=None, checkpoint=None
    )
