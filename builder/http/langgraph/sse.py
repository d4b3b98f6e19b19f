"""A run's LangGraph stream parts as the server-sent events the SDK parses.

The runs service publishes LangGraph's own parts (``values``, ``updates``, ``messages``,
``custom``, ``tasks``, …) to the run's ``graph_stream``; :class:`StreamTranslator`
turns each into the events of the modes a client asked for:

============== =====================================================================
mode           events (``event:`` name → ``data:``)
============== =====================================================================
values         ``values`` → the whole state after each step
updates        ``updates`` → ``{node: update}``
messages-tuple ``messages`` → ``[message chunk, metadata]``
messages       ``messages/metadata`` → ``{id: {"metadata": …}}`` once per message,
               ``messages/partial`` → ``[message so far]``, ``messages/complete``
custom         ``custom`` → what a node wrote (``tool_start``, ``tool_end``, …)
events         ``events`` → ``on_chain_start``/``on_chain_end`` (graph and nodes),
               ``on_chat_model_stream``, ``on_tool_start``/``on_tool_end``,
               ``on_custom_event``
tasks, checkpoints, debug  ``tasks``, ``checkpoints``, ``debug`` → LangGraph's parts
============== =====================================================================

Every stream starts with ``metadata`` (``run_id``, ``thread_id``) and a failed run
ends with ``error`` (``error``, ``message``). Events are numbered (``id:``) from 0; the
numbering is deterministic, so a client reconnecting with ``Last-Event-ID`` is sent
the rest of the stream (the run's parts are replayed through a new translator) — from
this process's buffer, or from Redis for a run of another process (the same parts, so
the same events and numbers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, BaseMessageChunk
from sse_starlette import ServerSentEvent

from builder.http.langgraph.serialize import dumps, to_jsonable
from builder.runs.events import RunEvent
from builder.runs.service import RunHandle, RunResult

__all__ = ["Event", "StreamTranslator", "part_events", "run_events"]

Event = tuple[str, Any]
"""An event name and its data."""

_GRAPH_NAME = "LangGraph"


class StreamTranslator:
    """Turns one run's LangGraph parts into the events of the requested modes.

    Args:
        modes: The API stream modes asked for.
        run_id: The run.
        thread_id: Its thread.
        assistant_id: The assistant it runs.
        graph_id: The assistant's graph.
        graph_input: The run's input as sent (for the ``events`` mode's first event).
    """

    def __init__(
        self,
        modes: Iterable[str],
        *,
        run_id: str,
        thread_id: str,
        assistant_id: str,
        graph_id: str,
        graph_input: Any = None,
    ) -> None:
        self.modes = frozenset(modes)
        self.run_id = run_id
        self.metadata = {
            "graph_id": graph_id,
            "assistant_id": assistant_id,
            "thread_id": thread_id,
            "run_id": run_id,
        }
        self.graph_input = graph_input
        self._described: set[str] = set()
        self._partial: dict[str, BaseMessageChunk] = {}
        self._values: Any = None

    # --- the stream's ends ----------------------------------------------------------------
    def start(self) -> list[Event]:
        """The events before the run's first part."""
        events: list[Event] = [
            ("metadata", {"run_id": self.run_id, "thread_id": self.metadata["thread_id"]})
        ]
        if "events" in self.modes:
            events.append(
                self._event(
                    "on_chain_start", _GRAPH_NAME, self.run_id, {"input": self.graph_input}, []
                )
            )
        return events

    def finish(self, result: RunResult | None) -> list[Event]:
        """The events after the run's last part."""
        events: list[Event] = []
        if "events" in self.modes:
            events.append(
                self._event("on_chain_end", _GRAPH_NAME, self.run_id, {"output": self._values}, [])
            )
        if result is not None and result.status == "error":
            message = result.error or "the run failed"
            events.append(("error", {"error": result.error_code or "error", "message": message}))
        return events

    # --- one part ---------------------------------------------------------------------------
    def translate(self, mode: str, chunk: Any) -> list[Event]:
        """The events one LangGraph part makes."""
        if mode == "values":
            self._values = to_jsonable(chunk)
            return [("values", self._values)] if "values" in self.modes else []
        if mode == "updates":
            return self._updates(chunk)
        if mode == "messages":
            return self._messages(*chunk)
        if mode == "custom":
            return self._custom(chunk)
        if mode == "tasks":
            return self._tasks(chunk)
        if mode in self.modes:  # checkpoints, debug: LangGraph's parts as they are
            return [(mode, to_jsonable(chunk))]
        return []

    def _updates(self, chunk: Any) -> list[Event]:
        events: list[Event] = []
        if "updates" in self.modes:
            events.append(("updates", to_jsonable(chunk)))
        if "messages" in self.modes and isinstance(chunk, dict):
            for update in chunk.values():
                for message in (
                    (update or {}).get("messages", []) if isinstance(update, dict) else []
                ):
                    if isinstance(message, AIMessage) and str(message.id) in self._partial:
                        del self._partial[str(message.id)]
                        events.append(("messages/complete", [to_jsonable(message)]))
        return events

    def _messages(self, message: BaseMessage, metadata: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        meta = {**to_jsonable(metadata), **self.metadata}
        if "messages-tuple" in self.modes:
            events.append(("messages", [to_jsonable(message), meta]))
        if "messages" in self.modes:
            key = str(message.id)
            if key not in self._described:
                self._described.add(key)
                events.append(("messages/metadata", {key: {"metadata": meta}}))
            if isinstance(message, BaseMessageChunk):
                previous = self._partial.get(key)
                so_far = message if previous is None else previous + message
                self._partial[key] = so_far
                events.append(("messages/partial", [to_jsonable(so_far)]))
            else:
                events.append(("messages/complete", [to_jsonable(message)]))
        if "events" in self.modes and isinstance(message, AIMessageChunk):
            name = str(metadata.get("ls_model_name") or "chat_model")
            parents = [self.run_id]
            events.append(
                self._event(
                    "on_chat_model_stream",
                    name,
                    str(message.id),
                    {"chunk": to_jsonable(message)},
                    parents,
                    meta,
                )
            )
        return events

    def _custom(self, chunk: Any) -> list[Event]:
        events: list[Event] = []
        if "custom" in self.modes:
            events.append(("custom", to_jsonable(chunk)))
        if "events" in self.modes and isinstance(chunk, dict):
            kind = str(chunk.get("event", "custom"))
            call_id = str(chunk.get("call_id") or self.run_id)
            if kind == "tool_start":
                data = {"input": to_jsonable(chunk.get("args", {}))}
                events.append(self._event("on_tool_start", chunk["tool"], call_id, data))
            elif kind == "tool_end":
                data = {"output": chunk.get("result"), "ok": chunk.get("ok")}
                events.append(self._event("on_tool_end", chunk["tool"], call_id, data))
            else:
                data = to_jsonable(chunk)
                events.append(self._event("on_custom_event", kind, self.run_id, data))
        return events

    def _tasks(self, chunk: Any) -> list[Event]:
        events: list[Event] = []
        if "tasks" in self.modes:
            events.append(("tasks", to_jsonable(chunk)))
        if "events" in self.modes and isinstance(chunk, dict):
            name, task_id = str(chunk.get("name")), str(chunk.get("id"))
            if "result" in chunk or "error" in chunk:
                output = to_jsonable(chunk.get("result"))
                events.append(self._event("on_chain_end", name, task_id, {"output": output}))
            else:
                events.append(self._event("on_chain_start", name, task_id, {}))
        return events

    def _event(
        self,
        event: str,
        name: str,
        run_id: str,
        data: Any,
        parent_ids: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Event:
        return (
            "events",
            {
                "event": event,
                "name": name,
                "run_id": run_id,
                "tags": [],
                "metadata": metadata or self.metadata,
                "parent_ids": [self.run_id] if parent_ids is None else parent_ids,
                "data": to_jsonable(data),
            },
        )


async def _outcome(handle: RunHandle) -> RunResult | None:
    try:
        return await handle.wait()
    except asyncio.CancelledError:
        if handle.done:
            return None  # the run was cancelled at shutdown, not this request
        raise


async def _no_parts() -> AsyncIterator[RunEvent]:
    return
    yield  # an async generator with nothing in it


def run_events(
    handle: RunHandle,
    translator: StreamTranslator,
    *,
    after: int = -1,
    cancel_on_disconnect: bool = False,
) -> AsyncIterator[ServerSentEvent]:
    """A run of this process's events as SSE, numbered from 0, skipping those up to ``after``.

    Args:
        handle: The run (of this process).
        translator: A new translator for the modes asked for.
        after: The last event id the client has (``Last-Event-ID``), or -1.
        cancel_on_disconnect: Cancel the run if the client goes away before it ends.
    """

    async def abandoned() -> None:
        if cancel_on_disconnect and not handle.done:
            handle.cancel()

    parts = handle.graph_stream.subscribe() if handle.graph_stream is not None else _no_parts()
    return part_events(
        parts, translator, lambda: _outcome(handle), after=after, on_abandon=abandoned
    )


async def part_events(
    parts: AsyncIterable[RunEvent],
    translator: StreamTranslator,
    outcome: Callable[[], Awaitable[RunResult | None]],
    *,
    after: int = -1,
    on_abandon: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """A run's LangGraph parts as SSE, numbered from 0, skipping those up to ``after``.

    Args:
        parts: The run's parts (event type = stream mode, data ``{"chunk": part}``), from
            this process or from Redis.
        translator: A new translator for the modes asked for.
        outcome: How the run ended, asked once its parts are over (None: unknown).
        after: The last event id the client has (``Last-Event-ID``), or -1.
        on_abandon: Called when the client goes away before the run's end.
    """
    number = -1
    ended = False

    def numbered(events: list[Event]) -> list[ServerSentEvent]:
        nonlocal number
        out: list[ServerSentEvent] = []
        for name, data in events:
            number += 1
            if number > after:
                out.append(ServerSentEvent(data=dumps(data), event=name, id=str(number)))
        return out

    try:
        for sse in numbered(translator.start()):
            yield sse
        async for part in parts:
            for sse in numbered(translator.translate(part.type, part.data["chunk"])):
                yield sse
        result = await outcome()
        ended = True
        for sse in numbered(translator.finish(result)):
            yield sse
    finally:
        if not ended and on_abandon is not None:
            await on_abandon()
