"""A run's life through the LangGraph API: started, followed to its end, awaited.

:func:`start_run` starts a turn of the runs service for a request and records the
run's metadata; a follower task settles the records when the run ends (a run cancelled
while queued never started, so nothing else marks it) and deletes a stateless run's
thread. :func:`outcome_anywhere` waits for a run's end, in this process or another
(by watching its record); :func:`cancel_anywhere` cancels a run in this process or,
through Redis, in the one running it; :func:`waiting` answers a JSON body once a wait
is over, sending a newline every few seconds meanwhile so proxies do not close an idle
connection (JSON allows the leading whitespace).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import StreamingResponse

from builder.errors import AlreadyExists, InvalidInput, NotFound
from builder.http.langgraph.assistants import Assistant, resolve_assistant
from builder.http.langgraph.contexts import config_for, current_values
from builder.http.langgraph.inputs import (
    RunOptions,
    check_checkpoint,
    check_run_options,
    graph_stream_modes,
    images_of,
    prompt_of,
    requested_checkpoint,
    run_options,
)
from builder.http.langgraph.schemas import RunCreateBody
from builder.http.langgraph.serialize import dumps, to_jsonable
from builder.http.langgraph.threads import create_owned_thread, delete_owned_thread, owned_thread
from builder.http.services import Services
from builder.log import get_logger
from builder.persistence.runs import (
    get_run,
    record_run_created,
    record_run_dropped,
    update_thread,
)
from builder.persistence.schemas import UserPublic
from builder.runs.service import RunHandle, stopped_midway

__all__ = [
    "ENDED",
    "Outcome",
    "StartedRun",
    "cancel_anywhere",
    "final_json",
    "outcome_anywhere",
    "run_over",
    "start_run",
    "thread_for_run",
    "waiting",
]

ENDED = frozenset({"success", "error", "cancelled", "interrupted", "timeout"})
"""Run statuses after which nothing changes."""

_HEARTBEAT_SECONDS = 10.0
_POLL_SECONDS = 1.0
_KWARGS = {"input", "command", "stream_mode", "config", "context", "on_disconnect"}
_log = get_logger("builder.http.langgraph")
_followers: set[asyncio.Task[Any]] = set()


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended, with the thread's values when it was read before deletion."""

    status: str
    error_code: str | None = None
    error: str | None = None
    values: Any = None


@dataclass(frozen=True, slots=True)
class StartedRun:
    """A run just started (or queued) through this API."""

    handle: RunHandle
    thread_id: str
    assistant: Assistant
    options: RunOptions
    follower: asyncio.Task[Outcome]

    @property
    def path(self) -> str:
        """The run's URL path."""
        return f"/threads/{self.thread_id}/runs/{self.handle.run_id}"


async def thread_for_run(
    services: Services, user: UserPublic, thread_id: str, body: RunCreateBody
) -> dict[str, Any]:
    """The caller's thread to run on, created when asked to (``if_not_exists``).

    Raises:
        NotFound: No such thread for the caller (and not asked to create it, or the id
            is someone else's).
    """
    try:
        return await owned_thread(services.db, user, thread_id)
    except NotFound:
        if body.if_not_exists != "create":
            raise
    try:
        return await create_owned_thread(services.db, user, thread_id=thread_id)
    except AlreadyExists:  # someone else's
        raise NotFound("thread", thread_id) from None


async def start_run(
    services: Services,
    user: UserPublic,
    thread: dict[str, Any],
    body: RunCreateBody,
    *,
    delete_after: bool = False,
) -> StartedRun:
    """Start (or queue) a turn for a run request and record the run.

    Input left out resumes the thread's interrupted turn, under that turn's run id.

    Args:
        services: The server's services.
        user: The caller.
        thread: The thread, as :func:`thread_for_run` returns it.
        body: The request.
        delete_after: Delete the thread once the run ends (a stateless run).

    Raises:
        NotFound: No such assistant.
        InvalidInput: The request asks for what builder does not offer, or carries
            no user message and there is nothing to resume.
        RunInProgress: ``reject`` and a run is in progress on the thread.
    """
    assistant = resolve_assistant(body.assistant_id)
    check_run_options(body)
    options = run_options(body)
    thread_id = thread["thread_id"]
    prompt = prompt_of(body.input)
    images = images_of(body.input, limit=services.settings.max_image_bytes)
    run_id, resume = str(uuid.uuid4()), False
    requested = requested_checkpoint(body)
    state = None
    if requested is not None or prompt is None:
        state = await services.runs.thread_state(config_for(thread_id))
        latest = (state.config or {}).get("configurable", {}).get("checkpoint_id")
        check_checkpoint(requested, latest)
    if prompt is None:
        if state is None or not stopped_midway(state):
            raise InvalidInput(
                'the input needs a user message ({"messages": [{"role": "user", '
                '"content": "..."}]}); input may only be left out to resume an '
                "interrupted run, and this thread has none"
            )
        run_id, resume = str(state.values.get("run_id") or run_id), True
    handle = await services.runs.start(
        user_id=user.id,
        project_id=thread["project_id"],
        prompt=prompt,
        multitask=options.multitask,
        resume=resume,
        run_id=run_id,
        max_steps=options.max_steps,
        token_budget=options.token_budget,
        graph_stream=graph_stream_modes(options.stream_modes),
        images=images,
    )
    services.observe(handle)
    try:
        # The thread row first: the run's row refers to it.
        await update_thread(
            services.db,
            user_id=user.id,
            thread_id=thread["project_id"],
            metadata={"graph_id": assistant.graph_id, "assistant_id": assistant.assistant_id},
        )
        await record_run_created(
            services.db,
            run_id=handle.run_id,
            thread_id=thread_id,
            project_id=thread["project_id"],
            assistant_id=assistant.assistant_id,
            multitask_strategy=options.multitask,
            metadata=body.metadata or {},
            kwargs=to_jsonable(body.model_dump(include=_KWARGS, exclude_none=True)),
        )
    finally:
        # Only now: a stateless run's thread must outlive the records above.
        follower = _follow(services, user, handle, thread, delete_after=delete_after)
    return StartedRun(handle, thread_id, assistant, options, follower)


async def _ended(handle: RunHandle) -> Outcome:
    try:
        result = await handle.wait()
    except asyncio.CancelledError:
        if not handle.done:
            raise
        return Outcome("cancelled")  # stopped by a shutdown
    return Outcome(result.status, result.error_code, result.error)


def _follow(
    services: Services,
    user: UserPublic,
    handle: RunHandle,
    thread: dict[str, Any],
    *,
    delete_after: bool,
) -> asyncio.Task[Outcome]:
    """Settle the run's records when it ends (and delete a stateless run's thread)."""

    async def settle() -> Outcome:
        outcome = await _ended(handle)
        values = None
        try:
            if outcome.status == "cancelled":
                await record_run_dropped(services.db, run_id=handle.run_id)
            if delete_after:
                values = await current_values(services, thread["thread_id"])
                await delete_owned_thread(services, user, thread["project_id"])
        except Exception:
            _log.exception("langgraph.run_settle_failed", run_id=handle.run_id)
        return Outcome(outcome.status, outcome.error_code, outcome.error, values)

    task = asyncio.create_task(settle(), name=f"settle-{handle.run_id}")
    _followers.add(task)
    task.add_done_callback(_followers.discard)
    return task


def final_json(outcome: Outcome, values: Any) -> Any:
    """A wait's answer: the thread's values, or the run's error."""
    if outcome.status == "error":
        return {"__error__": {"error": outcome.error_code or "error", "message": outcome.error}}
    return to_jsonable(values if values is not None else {})


async def _heartbeats(work: Awaitable[Any]) -> AsyncIterator[bytes]:
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=_HEARTBEAT_SECONDS)
            if done:
                break
            yield b"\n"
        yield dumps(task.result()).encode()
    finally:
        task.cancel()


def waiting(work: Awaitable[Any], headers: dict[str, str]) -> StreamingResponse:
    """A JSON answer of what ``work`` returns, kept alive by newlines until then."""
    return StreamingResponse(_heartbeats(work), media_type="application/json", headers=headers)


async def thread_outcome(services: Services, started: StartedRun) -> Any:
    """The answer of a threaded run's wait, once the run has ended."""
    outcome = await asyncio.shield(started.follower)
    return final_json(outcome, await current_values(services, started.thread_id))


async def outcome_anywhere(services: Services, run_id: str) -> Outcome:
    """How a run ended: from this process's handle, or by watching its record."""
    handle = services.runs.get(run_id)
    if handle is not None:
        outcome = await _ended(handle)
        if outcome.status == "cancelled":
            with contextlib.suppress(Exception):
                await record_run_dropped(services.db, run_id=run_id)
        return outcome
    while True:
        run = await get_run(services.db, run_id=run_id)
        if run is None:
            return Outcome("error", "not_found", "the run was deleted")
        if run["status"] in ENDED:
            result = run["result"] or {}
            return Outcome(run["status"], result.get("error_code"), run["error"])
        await asyncio.sleep(_POLL_SECONDS)


async def run_over(services: Services, run_id: str) -> bool:
    """Whether a run has ended (or its record is gone), whichever process ran it."""
    run = await get_run(services.db, run_id=run_id)
    return run is None or run["ended_at"] is not None


async def cancel_anywhere(services: Services, run_id: str) -> None:
    """Cancel a run at its next step boundary, wherever it is queued or worked.

    The request returns before the run has stopped (:func:`outcome_anywhere` waits for
    that). Cancelling a run that has ended does nothing.
    """
    await services.runs.cancel(run_id)
