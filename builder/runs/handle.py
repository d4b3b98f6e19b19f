"""A run as its callers see it: its result, its handle, and the kinds they are made of."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph.runtime import RunControl

from builder.runs.events import RunEvent, RunStream

__all__ = [
    "MAX_PROMPT_CHARS",
    "STREAM_MODES",
    "GraphStreamMode",
    "MultitaskStrategy",
    "RunHandle",
    "RunResult",
    "RunStatus",
    "close_streams",
]

MAX_PROMPT_CHARS = 20_000
"""Longest user message of a turn, whichever API sends it."""

MultitaskStrategy = Literal["reject", "enqueue"]
RunStatus = Literal["pending", "running", "success", "error", "cancelled", "interrupted"]
GraphStreamMode = Literal[
    "values", "updates", "messages", "custom", "tasks", "checkpoints", "debug"
]

STREAM_MODES: tuple[GraphStreamMode, ...] = ("messages", "updates", "custom")


@dataclass
class RunResult:
    """How a run ended, and what it did."""

    run_id: str
    project_id: uuid.UUID
    status: RunStatus
    stop_reason: str | None = None
    reply: str = ""
    files_created: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    steps: int = 0
    preview_url: str | None = None
    snapshot_version: int | None = None
    error: str | None = None
    error_code: str | None = None

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "run_id": self.run_id,
            "project_id": str(self.project_id),
            "status": self.status,
            "stop_reason": self.stop_reason,
            "reply": self.reply,
            "files_created": self.files_created,
            "files_changed": self.files_changed,
            "files_deleted": self.files_deleted,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6),
            "steps": self.steps,
            "preview_url": self.preview_url,
            "snapshot_version": self.snapshot_version,
            "error": self.error,
            "error_code": self.error_code,
        }


class RunHandle:
    """A run in progress (or just finished): its events, its result, cancellation."""

    def __init__(self, run_id: str, project_id: uuid.UUID, *, cancel_grace: float) -> None:
        self.run_id = run_id
        self.project_id = project_id
        self.stream = RunStream()
        self.status: RunStatus = "pending"
        self.control = RunControl()
        self.graph_stream: RunStream | None = None
        """LangGraph's own stream parts (event type = stream mode, data ``{"chunk": part}``),
        when the run was started with ``graph_stream``."""
        self.stream_modes: tuple[GraphStreamMode, ...] = STREAM_MODES
        self.position: int | None = None
        self._takeover_of: int | None = None
        self._missed_a_claim = False
        """Whether a worker's round has found it still pending (see RunWorker)."""
        """Resuming a run whose lease had not run out: its attempts then. It is this
        process's to take over until another worker does (its attempts grow)."""
        """While pending: how many queued runs go first, plus one (1 = next)."""
        self.queue_notes = True
        """Publish ``queued`` events while pending (not for a resumed run, whose stream
        goes on from its earlier attempt)."""
        self._adopted = False
        """Claimed by this process's worker but started elsewhere."""
        self._cancel_grace = cancel_grace
        self._task: asyncio.Task[RunResult] | None = None
        self._placed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        """Resolved by the worker: a claim to run here, or where the run is instead."""
        self._executing = False
        self._handing_over = False
        """Stopping to let another worker continue (shutdown, or the lease was lost)."""
        self._lost = False
        """Another worker holds the lease now."""
        self._finishing = False
        self._finished_seen = False
        self._cancel_wanted = False
        self._canceller: Callable[[RunHandle], None] | None = None

    @property
    def done(self) -> bool:
        """True once the run has ended."""
        return self._task is not None and self._task.done()

    def events(self, *, after: int = -1) -> AsyncIterator[RunEvent]:
        """The run's events from the beginning (or after ``after``) until it ends."""
        return self.stream.subscribe(after=after)

    async def wait(self) -> RunResult:
        """Wait for the run to end and return its result."""
        assert self._task is not None
        return await asyncio.shield(self._task)

    def cancel(self) -> None:
        """Stop the run at the next step boundary.

        A step that does not finish within the cancel grace period is cancelled
        outright; the context stays at its last completed step. A run still queued
        (``enqueue``) leaves the queue at once and ends ``cancelled``.
        """
        if self.done:
            return
        if not self._executing and self._canceller is not None:
            # Queued, or running in another process: the service reaches it there.
            self._canceller(self)
            return
        self.control.request_drain("cancelled")
        loop = asyncio.get_running_loop()
        loop.call_later(self._cancel_grace, self._hard_cancel)

    def _hard_cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


async def close_streams(handle: RunHandle) -> None:
    """Mark the end of a run's streams (its events and, when kept, LangGraph's parts)."""
    await handle.stream.close()
    if handle.graph_stream is not None:
        await handle.graph_stream.close()
