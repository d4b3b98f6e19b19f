"""Chat: one turn of the agent on a project, streamed as server-sent events or awaited.

The run belongs to the server, not to the connection: a client that disconnects stops
receiving events, while the run goes on to its end and persists its messages and
files as usual. A second chat on a project while a run is in progress is 409
(``run_in_progress``), or waits its turn with ``"multitask": "enqueue"``.

A run (its id is in the ``x-run-id`` header) can be followed again and cancelled
through any server process: the one running it serves it from memory, the others
through Redis (:class:`~builder.runs.fanout.RunFanout`). Without Redis only the
process running it can (409 elsewhere).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from builder.errors import Conflict, NotFound
from builder.http.deps import CurrentUser, OwnedProject, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.langgraph.lifecycle import cancel_anywhere, outcome_anywhere, run_over
from builder.http.ratelimit import rate_limited
from builder.http.schemas import ChatBody, ChatResult
from builder.http.services import Services
from builder.persistence.runs import get_run
from builder.persistence.schemas import ProjectPublic, UserPublic
from builder.runs.events import RunEvent, RunStream
from builder.runs.service import RunHandle

router = APIRouter(
    prefix="/api/projects/{project_id}",
    tags=["chat"],
    responses=ERROR_RESPONSES,
)

_CHAT_TIER = [Depends(rate_limited("chat"))]
_DEFAULT_TIER = [Depends(rate_limited("default"))]
_PING_SECONDS = 15
_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The run's events: `event: <type>`, `id: <seq>`, `data: <JSON>`; "
        "the last is `run_finished`.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


class ChatRun(BaseModel):
    """A run and where it stands."""

    run_id: str
    project_id: uuid.UUID
    status: str
    """``pending``, ``running``, or how it ended (``success``, ``error``, ``cancelled``)."""
    position: int | None = None
    """While ``pending``: its place in the run queue (1 = next)."""


async def _start(
    services: Services, user: UserPublic, project: ProjectPublic, body: ChatBody
) -> RunHandle:
    handle = await services.runs.start(
        user_id=user.id,
        project_id=project.id,
        prompt=body.prompt,
        multitask=body.multitask,
        images=body.decoded_images(limit=services.settings.max_image_bytes),
        project=project,
    )
    services.observe(handle)
    return handle


def _encoded(event: RunEvent) -> bytes:
    return ServerSentEvent(
        data=json.dumps(event.as_dict(), default=str, separators=(",", ":")),
        event=event.type,
        id=str(event.seq),
    ).encode()


async def _events(
    events: RunStream | AsyncIterable[RunEvent], *, after: int = -1
) -> AsyncIterator[bytes]:
    """The events as server-sent events; those of a run in this process's memory in
    batches of what has come since the last write (one write, not one per event)."""
    if isinstance(events, RunStream):
        while batch := await events.next_events(after=after):
            after = batch[-1].seq
            yield b"".join(_encoded(event) for event in batch)
        return
    async for event in events:
        yield _encoded(event)


@router.post(
    "/chat", response_class=EventSourceResponse, responses=_SSE_DOC, dependencies=_CHAT_TIER
)
async def chat(
    project: OwnedProject, body: ChatBody, user: CurrentUser, services: ServicesDep
) -> EventSourceResponse:
    """Run one turn and stream its events as they happen."""
    handle = await _start(services, user, project, body)
    return EventSourceResponse(
        _events(handle.stream),
        ping=_PING_SECONDS,
        headers={"x-run-id": handle.run_id, "cache-control": "no-store"},
    )


@router.post("/chat/wait", response_model=ChatResult, dependencies=_CHAT_TIER)
async def chat_wait(
    project: OwnedProject, body: ChatBody, user: CurrentUser, services: ServicesDep
) -> ChatResult:
    """Run one turn and answer with its result when it ends."""
    handle = await _start(services, user, project, body)
    result = await handle.wait()
    return ChatResult.model_validate(result.as_dict())


async def _project_run(services: Services, project: ProjectPublic, run_id: str) -> ChatRun:
    """The project's run, from this process's memory or the runs table."""
    try:
        uuid.UUID(run_id)  # run ids are UUIDs (in either spelling)
    except ValueError:
        raise NotFound("run", run_id) from None
    handle = services.runs.get(run_id)
    if handle is not None and handle.project_id == project.id:
        status = handle.status
    else:
        run = await get_run(services.db, run_id=run_id)
        if run is None or run["project_id"] != project.id:
            raise NotFound("run", run_id)
        status = run["status"]
    position = await services.runs.position(run_id) if status == "pending" else None
    return ChatRun(run_id=run_id, project_id=project.id, status=status, position=position)


@router.get("/chat/{run_id}", response_model=ChatRun, dependencies=_DEFAULT_TIER)
async def chat_status(project: OwnedProject, run_id: str, services: ServicesDep) -> ChatRun:
    """Where a run stands: pending (with its place in the queue), running, or ended."""
    return await _project_run(services, project, run_id)


@router.get(
    "/chat/{run_id}/stream",
    response_class=EventSourceResponse,
    responses=_SSE_DOC,
    dependencies=_DEFAULT_TIER,
)
async def follow_chat(
    project: OwnedProject,
    run_id: str,
    services: ServicesDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """A run's events from the start (or after ``Last-Event-ID``) until it ends."""
    await _project_run(services, project, run_id)
    wanted = last_event_id or ""
    after = int(wanted) if wanted.isascii() and wanted.isdigit() else -1
    handle = services.runs.get(run_id)
    fanout = services.runs.fanout
    events: RunStream | AsyncIterable[RunEvent]
    if handle is not None:
        events = handle.stream
    elif fanout is not None:
        events = await fanout.follow(
            run_id, after=after, ended=functools.partial(run_over, services, run_id)
        )
    else:
        raise Conflict(
            f"the events of run {run_id} are kept by the server process that runs it "
            "(set BUILDER_REDIS_URL so any process can stream them)"
        )
    return EventSourceResponse(
        _events(events, after=after),
        ping=_PING_SECONDS,
        headers={"x-run-id": run_id, "cache-control": "no-store"},
    )


@router.post("/chat/{run_id}/cancel", response_model=ChatRun, dependencies=_DEFAULT_TIER)
async def cancel_chat(
    project: OwnedProject,
    run_id: str,
    services: ServicesDep,
    wait: Annotated[bool, Query(description="Answer once the run has stopped.")] = False,
) -> ChatRun:
    """Stop a run at its next step boundary; a run that has ended is left as it is."""
    run = await _project_run(services, project, run_id)
    if services.runs.get(run_id) is None and await run_over(services, run_id):
        return run
    await cancel_anywhere(services, run_id)
    if wait:
        await outcome_anywhere(services, run_id)
    return await _project_run(services, project, run_id)
