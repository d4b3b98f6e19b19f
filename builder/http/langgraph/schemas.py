"""Request bodies of the LangGraph API, field for field as ``langgraph-sdk`` 0.4 sends them.

Every field the SDK can send is declared, so a request is never refused for a field
the official client adds on its own; fields builder cannot honour are refused with a
422 that names them (see :func:`builder.http.langgraph.inputs.check_run_options`)
rather than silently ignored. Unknown fields are refused like everywhere else in the API.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from builder.http.schemas import RequestBody

__all__ = [
    "AssistantCountBody",
    "AssistantSearchBody",
    "HistoryBody",
    "RunCreateBody",
    "StateCheckpointBody",
    "StateUpdateBody",
    "ThreadCountBody",
    "ThreadCreateBody",
    "ThreadPatchBody",
    "ThreadSearchBody",
    "ThreadTTL",
]

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
SortOrder = Literal["asc", "desc"]
Limit = Field(10, ge=1, le=1000)
Offset = Field(0, ge=0, le=1_000_000)


class ThreadTTL(RequestBody):
    """How long a thread's context lives after its last use."""

    ttl: float = Field(gt=0, le=525_600, description="Minutes (at most a year).")
    strategy: Literal["delete", "keep_latest"] = "delete"
    """What an expired context keeps is the server's sweep strategy; both are accepted."""

    @property
    def seconds(self) -> int:
        """The TTL in whole seconds (at least one)."""
        return max(1, round(self.ttl * 60))


class ThreadCreateBody(RequestBody):
    """``POST /threads``."""

    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None
    supersteps: list[dict[str, Any]] | None = None
    ttl: ThreadTTL | None = None


class ThreadPatchBody(RequestBody):
    """``PATCH /threads/{thread_id}``."""

    metadata: dict[str, Any] | None = None
    ttl: ThreadTTL | None = None


class ThreadSearchBody(RequestBody):
    """``POST /threads/search``."""

    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    ids: list[str] | None = Field(default=None, max_length=1000)
    status: ThreadStatus | None = None
    limit: int = Limit
    offset: int = Offset
    sort_by: (
        Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] | None
    ) = None
    sort_order: SortOrder | None = None
    select: list[str] | None = None
    extract: dict[str, Any] | None = None


class ThreadCountBody(RequestBody):
    """``POST /threads/count``."""

    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: ThreadStatus | None = None


class StateUpdateBody(RequestBody):
    """``POST /threads/{thread_id}/state``."""

    values: dict[str, Any] | list[dict[str, Any]] | None = None
    checkpoint_id: str | None = None
    checkpoint: dict[str, Any] | None = None
    as_node: str | None = None


class StateCheckpointBody(RequestBody):
    """``POST /threads/{thread_id}/state/checkpoint``."""

    checkpoint: dict[str, Any]
    subgraphs: bool = False
    select: list[str] | None = None


class HistoryBody(RequestBody):
    """``POST /threads/{thread_id}/history``."""

    limit: int = Limit
    before: dict[str, Any] | str | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    select: list[str] | None = None


class AssistantSearchBody(RequestBody):
    """``POST /assistants/search``."""

    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = Limit
    offset: int = Offset
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    sort_order: SortOrder | None = None
    select: list[str] | None = None


class AssistantCountBody(RequestBody):
    """``POST /assistants/count``."""

    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None


class RunCreateBody(RequestBody):
    """``POST …/runs``, ``…/runs/stream`` and ``…/runs/wait``, threaded or stateless."""

    assistant_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    stream_mode: str | list[str] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    interrupt_before: str | list[str] | None = None
    interrupt_after: str | list[str] | None = None
    feedback_keys: list[str] | None = None
    webhook: str | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    checkpoint_during: bool | None = None
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] | None = None
    if_not_exists: Literal["create", "reject"] | None = None
    on_disconnect: Literal["cancel", "continue"] | None = None
    on_completion: Literal["delete", "keep"] | None = None
    after_seconds: float | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    strict_resume: bool | None = None
    langsmith_tracer: dict[str, Any] | None = None
