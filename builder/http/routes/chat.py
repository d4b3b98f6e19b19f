"""Chat: one turn of the agent on a project, streamed as server-sent events or awaited.

The run belongs to the server, not to the connection: a client that disconnects stops
receiving events, while the run goes on to its end and persists its messages and
files as usual. A second chat on a project while a run is in progress is 409
(``run_in_progress``), or waits its turn with ``"multitask": "enqueue"``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends
from sse_starlette import EventSourceResponse, ServerSentEvent

from builder.http.deps import CurrentUser, OwnedProject, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.ratelimit import rate_limited
from builder.http.schemas import ChatBody, ChatResult
from builder.http.services import Services
from builder.persistence.schemas import ProjectPublic, UserPublic
from builder.runs.service import RunHandle

router = APIRouter(
    prefix="/api/projects/{project_id}",
    tags=["chat"],
    dependencies=[Depends(rate_limited("chat"))],
    responses=ERROR_RESPONSES,
)

_PING_SECONDS = 15
_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The run's events: `event: <type>`, `id: <seq>`, `data: <JSON>`; "
        "the last is `run_finished`.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


async def _start(
    services: Services, user: UserPublic, project: ProjectPublic, body: ChatBody
) -> RunHandle:
    handle = await services.runs.start(
        user_id=user.id, project_id=project.id, prompt=body.prompt, multitask=body.multitask
    )
    services.observe(handle)
    return handle


async def _events(handle: RunHandle) -> AsyncIterator[ServerSentEvent]:
    async for event in handle.events():
        yield ServerSentEvent(
            data=json.dumps(event.as_dict(), default=str, separators=(",", ":")),
            event=event.type,
            id=str(event.seq),
        )


@router.post("/chat", response_class=EventSourceResponse, responses=_SSE_DOC)
async def chat(
    project: OwnedProject, body: ChatBody, user: CurrentUser, services: ServicesDep
) -> EventSourceResponse:
    """Run one turn and stream its events as they happen."""
    handle = await _start(services, user, project, body)
    return EventSourceResponse(
        _events(handle),
        ping=_PING_SECONDS,
        headers={"x-run-id": handle.run_id, "cache-control": "no-store"},
    )


@router.post("/chat/wait", response_model=ChatResult)
async def chat_wait(
    project: OwnedProject, body: ChatBody, user: CurrentUser, services: ServicesDep
) -> ChatResult:
    """Run one turn and answer with its result when it ends."""
    handle = await _start(services, user, project, body)
    result = await handle.wait()
    return ChatResult.model_validate(result.as_dict())
