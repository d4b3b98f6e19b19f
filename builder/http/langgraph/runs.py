"""Runs: a turn of the web-builder agent on a thread, in the background, streamed or awaited.

A run is a turn of the runs service (:meth:`builder.runs.service.RunService.start`):
it takes the project's run lock, persists the user message, runs the graph and saves
the files. One run per thread at a time: ``multitask_strategy`` ``reject`` (the
default) answers 409 while one is in progress, ``enqueue`` queues the new run behind
it. A stateless run (``/runs…``) works on a new thread, deleted once the run ends
unless ``on_completion`` is ``keep``.

The run belongs to the server, not to the connection: a client that goes away stops
receiving events while the run goes on (unless it asked for ``on_disconnect: cancel``).
``…/wait`` and ``…/join`` answer the thread's values once the run ends (see
:mod:`~builder.http.langgraph.lifecycle`); a failed run answers
``{"__error__": {"error": …, "message": …}}``. ``…/stream`` (join) and ``…/cancel``
work on any server process: the one running the run serves it from memory, the others
through Redis (:class:`~builder.runs.fanout.RunFanout`), or answer 409 without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from builder.errors import Conflict, InvalidInput, NotFound, RunInProgress
from builder.http.deps import CurrentUser, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.langgraph.assistants import resolve_assistant
from builder.http.langgraph.contexts import current_values
from builder.http.langgraph.inputs import STREAM_MODES, check_run_options, images_of, prompt_of
from builder.http.langgraph.lifecycle import (
    ENDED,
    StartedRun,
    cancel_anywhere,
    final_json,
    outcome_anywhere,
    run_over,
    start_run,
    thread_for_run,
    thread_outcome,
    waiting,
)
from builder.http.langgraph.schemas import RunCreateBody
from builder.http.langgraph.serialize import dumps, run_json
from builder.http.langgraph.sse import StreamTranslator, part_events, run_events
from builder.http.langgraph.threads import create_owned_thread, delete_owned_thread, owned_thread
from builder.http.ratelimit import rate_limited
from builder.http.services import Services
from builder.persistence.runs import get_run, list_runs
from builder.persistence.schemas import UserPublic
from builder.runs.service import RunResult, RunStatus

__all__ = ["create_router", "router"]

_PING_SECONDS = 15
_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`event: <mode>`, `id: <n>`, `data: <JSON>`; see docs/api.md.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}

create_router = APIRouter(
    tags=["langgraph: runs"],
    dependencies=[Depends(rate_limited("chat"))],
    responses=ERROR_RESPONSES,
)
"""Routes that start runs (the chat rate limit)."""
router = APIRouter(
    prefix="/threads/{thread_id}/runs",
    tags=["langgraph: runs"],
    dependencies=[Depends(rate_limited("default"))],
    responses=ERROR_RESPONSES,
)
"""Routes that read, join or cancel runs."""


def _stream(
    started: StartedRun, body: RunCreateBody, headers: dict[str, str]
) -> EventSourceResponse:
    translator = StreamTranslator(
        started.options.stream_modes,
        run_id=started.handle.run_id,
        thread_id=started.thread_id,
        assistant_id=started.assistant.assistant_id,
        graph_id=started.assistant.graph_id,
        graph_input=body.input,
    )
    events = run_events(
        started.handle, translator, cancel_on_disconnect=body.on_disconnect == "cancel"
    )
    return EventSourceResponse(
        events,
        ping=_PING_SECONDS,
        headers={**headers, "cache-control": "no-store", "x-run-id": started.handle.run_id},
    )


# --- threaded runs ----------------------------------------------------------------------------
@create_router.post("/threads/{thread_id}/runs")
async def create_run(
    thread_id: str, body: RunCreateBody, user: CurrentUser, services: ServicesDep
) -> Response:
    """Start a run in the background; answers the run."""
    thread = await thread_for_run(services, user, thread_id, body)
    started = await start_run(services, user, thread, body)
    run = await get_run(services.db, run_id=started.handle.run_id)
    assert run is not None
    return JSONResponse(run_json(run), headers={"content-location": started.path})


@create_router.post(
    "/threads/{thread_id}/runs/stream", response_class=EventSourceResponse, responses=_SSE_DOC
)
async def stream_run(
    thread_id: str, body: RunCreateBody, user: CurrentUser, services: ServicesDep
) -> EventSourceResponse:
    """Start a run and stream its events."""
    thread = await thread_for_run(services, user, thread_id, body)
    started = await start_run(services, user, thread, body)
    headers = {"content-location": started.path, "location": f"{started.path}/stream"}
    return _stream(started, body, headers)


@create_router.post("/threads/{thread_id}/runs/wait")
async def wait_run(
    thread_id: str, body: RunCreateBody, user: CurrentUser, services: ServicesDep
) -> StreamingResponse:
    """Start a run and answer the thread's values when it ends."""
    thread = await thread_for_run(services, user, thread_id, body)
    started = await start_run(services, user, thread, body)
    headers = {"content-location": started.path, "location": f"{started.path}/join"}
    return waiting(thread_outcome(services, started), headers)


# --- stateless runs ---------------------------------------------------------------------------
async def _start_stateless(
    services: Services, user: UserPublic, body: RunCreateBody
) -> tuple[StartedRun, bool]:
    resolve_assistant(body.assistant_id)
    check_run_options(body)
    prompt_of(body.input)  # refuse bad input before making a thread for it
    images_of(body.input, limit=services.settings.max_image_bytes)
    keep = body.on_completion == "keep"
    thread = await create_owned_thread(
        services.db, user, metadata={"name": "Stateless run", "stateless": True}
    )
    try:
        return await start_run(services, user, thread, body, delete_after=not keep), keep
    except BaseException:
        with contextlib.suppress(RunInProgress):  # started: deleted once it ends
            await delete_owned_thread(services, user, thread["project_id"])
        raise


@create_router.post("/runs")
async def create_stateless(
    body: RunCreateBody, user: CurrentUser, services: ServicesDep
) -> dict[str, Any]:
    """Start a run on a new thread in the background."""
    started, _ = await _start_stateless(services, user, body)
    run = await get_run(services.db, run_id=started.handle.run_id)
    assert run is not None
    return run_json(run)


@create_router.post("/runs/stream", response_class=EventSourceResponse, responses=_SSE_DOC)
async def stream_stateless(
    body: RunCreateBody, user: CurrentUser, services: ServicesDep
) -> EventSourceResponse:
    """Run on a new thread and stream the events."""
    started, keep = await _start_stateless(services, user, body)
    location = started.path if keep else f"/runs/{started.handle.run_id}"
    return _stream(started, body, {"content-location": location})


@create_router.post("/runs/wait")
async def wait_stateless(
    body: RunCreateBody, user: CurrentUser, services: ServicesDep
) -> StreamingResponse:
    """Run on a new thread and answer its final values."""
    started, keep = await _start_stateless(services, user, body)

    async def outcome() -> Any:
        ended = await asyncio.shield(started.follower)
        if keep:
            return final_json(ended, await current_values(services, started.thread_id))
        return final_json(ended, ended.values)

    location = started.path if keep else f"/runs/{started.handle.run_id}"
    return waiting(outcome(), {"content-location": location})


# --- reading, joining, cancelling -----------------------------------------------------------
async def _owned_run(
    services: Services, user: UserPublic, thread_id: str, run_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    thread = await owned_thread(services.db, user, thread_id)
    try:
        uuid.UUID(run_id)  # run ids are UUIDs (in either spelling)
    except ValueError:
        raise NotFound("run", run_id) from None
    run = await get_run(services.db, run_id=run_id)
    if run is None or run["thread_id"] != thread["thread_id"]:
        raise NotFound("run", run_id)
    return thread, run


@router.get("")
async def list_thread_runs(
    thread_id: str,
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    status: Annotated[str | None, Query(description="A run status.")] = None,
    select: Annotated[list[str] | None, Query(description="Fields to return.")] = None,
) -> list[dict[str, Any]]:
    """The thread's runs, newest first."""
    thread = await owned_thread(services.db, user, thread_id)
    statuses = ["cancelled", "interrupted"] if status == "interrupted" else status
    rows = await list_runs(
        services.db, thread_id=thread["thread_id"], limit=limit, offset=offset, status=statuses
    )
    found = [run_json(row) for row in rows]
    if select:
        found = [{key: run[key] for key in select if key in run} for run in found]
    return found


@router.get("/{run_id}")
async def get_thread_run(
    thread_id: str, run_id: str, user: CurrentUser, services: ServicesDep
) -> dict[str, Any]:
    """One run."""
    _, run = await _owned_run(services, user, thread_id, run_id)
    return run_json(run)


@router.post("/{run_id}/cancel", status_code=202, response_model=None)
async def cancel_run(
    thread_id: str,
    run_id: str,
    user: CurrentUser,
    services: ServicesDep,
    wait: Annotated[bool, Query(description="Answer once the run has stopped.")] = False,
    action: Annotated[Literal["interrupt", "rollback"], Query()] = "interrupt",
) -> Response:
    """Cancel a pending or running run at its next step boundary.

    Answers 202 at once, or (``wait``) 200 with the run once it has stopped.
    """
    _, run = await _owned_run(services, user, thread_id, run_id)
    if action == "rollback":
        raise InvalidInput(
            "cancel action 'rollback' is not supported: files a run wrote are kept as a "
            "version of the project; use action 'interrupt'"
        )
    if run["status"] in ENDED:
        if wait:  # it has stopped: the answer a first waited cancel gave
            return JSONResponse(run_json(run))
        raise Conflict(f"run {run_id} has already ended ({run['status']})")
    await cancel_anywhere(services, run_id)
    if not wait:
        return Response(status_code=202)
    await outcome_anywhere(services, run_id)
    ended = await get_run(services.db, run_id=run_id)
    assert ended is not None
    return JSONResponse(run_json(ended))


@router.get("/{run_id}/join")
async def join_run(
    thread_id: str, run_id: str, user: CurrentUser, services: ServicesDep
) -> StreamingResponse:
    """Wait for the run to end; answers the thread's values."""
    thread, _ = await _owned_run(services, user, thread_id, run_id)

    async def outcome() -> Any:
        ended = await outcome_anywhere(services, run_id)
        return final_json(ended, await current_values(services, thread["thread_id"]))

    return waiting(outcome(), {})


@router.get("/{run_id}/stream", response_class=EventSourceResponse, responses=_SSE_DOC)
async def join_run_stream(
    thread_id: str,
    run_id: str,
    user: CurrentUser,
    services: ServicesDep,
    stream_mode: Annotated[list[str] | None, Query()] = None,
    cancel_on_disconnect: Annotated[bool, Query()] = False,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """The run's events from the start (or after ``Last-Event-ID``) until it ends."""
    thread, run = await _owned_run(services, user, thread_id, run_id)
    handle = services.runs.get(run_id)
    fanout = services.runs.fanout
    if handle is None and fanout is None and run["status"] not in ENDED:
        raise Conflict(
            f"run {run_id} is in progress on another server process "
            "(set BUILDER_REDIS_URL so any process can stream it)"
        )
    modes = [mode for mode in stream_mode or [] if mode]
    if not modes:
        stored = (run["kwargs"] or {}).get("stream_mode") or ["values"]
        modes = [stored] if isinstance(stored, str) else list(stored)
    unknown = [mode for mode in modes if mode not in STREAM_MODES]
    if unknown:
        raise InvalidInput(f"unsupported stream mode(s): {', '.join(unknown)}")
    assistant = resolve_assistant(run["assistant_id"])
    translator = StreamTranslator(
        modes,
        run_id=run_id,
        thread_id=thread["thread_id"],
        assistant_id=assistant.assistant_id,
        graph_id=assistant.graph_id,
        graph_input=(run["kwargs"] or {}).get("input"),
    )
    wanted = last_event_id or ""  # a negative id, like none, means from the start
    after = int(wanted) if wanted.isascii() and wanted.isdigit() else -1
    events: AsyncIterator[ServerSentEvent]
    if handle is not None:
        events = run_events(
            handle, translator, after=after, cancel_on_disconnect=cancel_on_disconnect
        )
    elif fanout is not None:
        parts = await fanout.follow(
            run_id, channel="graph", ended=functools.partial(run_over, services, run_id)
        )

        async def abandoned() -> None:
            if cancel_on_disconnect and not await run_over(services, run_id):
                await cancel_anywhere(services, run_id)

        events = part_events(
            parts,
            translator,
            functools.partial(_recorded_result, services, run_id),
            after=after,
            on_abandon=abandoned,
        )
    else:
        events = _ended_run_events(translator, after)
    return EventSourceResponse(events, ping=_PING_SECONDS, headers={"cache-control": "no-store"})


async def _recorded_result(services: Services, run_id: str) -> RunResult | None:
    """How a run of another process ended, from its record (None: not ended)."""
    run = await get_run(services.db, run_id=run_id)
    if run is None or run["status"] not in ENDED:
        return None
    return RunResult(
        run_id=run_id,
        project_id=run["project_id"],
        status=cast(RunStatus, run["status"]),
        error=run["error"],
        error_code=(run["result"] or {}).get("error_code"),
    )


async def _ended_run_events(
    translator: StreamTranslator, after: int
) -> AsyncIterator[ServerSentEvent]:
    """A run that ended in another process, without Redis: only its opening is known here."""
    for number, (name, data) in enumerate(translator.start()):
        if number > after:
            yield ServerSentEvent(data=dumps(data), event=name, id=str(number))
