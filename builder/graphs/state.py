"""The web-builder graph's state: what a checkpoint holds, and how updates merge.

File contents never appear here. ``files`` is a manifest (path → sha256); contents
live in the sandbox (live) and in content-addressed blobs in PostgreSQL (durable), so
a checkpoint stays small however big the project is. Every list is bounded: messages
are pruned at the end of a turn (the whole conversation is in the ``messages`` table),
tool history and errors keep only their most recent entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

# typing_extensions' TypedDict, which pydantic can describe on Python 3.11: LangGraph
# servers publish the state's JSON schema (Studio draws its forms from it).
from typing_extensions import TypedDict

__all__ = [
    "MAX_ERRORS",
    "MAX_TOOL_HISTORY",
    "CheckState",
    "DevServerState",
    "PlanState",
    "PlanStepState",
    "StepUsage",
    "StopReason",
    "ToolRecord",
    "WebBuilderState",
    "keep_last",
    "merge_manifest",
]

MAX_TOOL_HISTORY = 50
MAX_ERRORS = 10

StopReason = Literal[
    "done", "check_failed", "step_limit", "token_budget", "cost_budget", "cancelled"
]


class PlanStepState(TypedDict):
    """One step of the agent's plan."""

    description: str
    done: bool
    notes: str | None


class PlanState(TypedDict):
    """The agent's plan."""

    goal: str
    steps: list[PlanStepState]


class DevServerState(TypedDict):
    """The last known state of the project's dev server."""

    running: bool
    command: str
    port: int | None
    preview_url: str | None
    exit_code: int | None


class CheckState(TypedDict):
    """The outcome of the last end-of-turn check."""

    passed: bool
    report: str
    """The problems found, as the model was told them (empty when it passed)."""
    run_id: str | None
    rounds: int
    """How many times this run gave the model the check's problems."""


class ToolRecord(TypedDict):
    """One tool call, as remembered in the bounded tool history."""

    step: int
    tool: str
    ok: bool
    summary: str
    duration_ms: float


class StepUsage(TypedDict):
    """Tokens of one model call, waiting to be recorded by the persist node."""

    step: int
    model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: NotRequired[int]
    cache_write_tokens: NotRequired[int]


def merge_manifest(
    left: Mapping[str, str] | None, right: Mapping[str, str | None] | None
) -> dict[str, str]:
    """Apply manifest changes: ``path → sha256`` sets a file, ``path → None`` removes it."""
    merged = dict(left or {})
    for path, sha in (right or {}).items():
        if sha is None:
            merged.pop(path, None)
        else:
            merged[path] = sha
    return merged


def keep_last(limit: int) -> Any:
    """A reducer that appends and keeps only the ``limit`` most recent items."""

    def reducer(left: list[Any] | None, right: list[Any] | None) -> list[Any]:
        return [*(left or []), *(right or [])][-limit:]

    reducer.__name__ = f"keep_last_{limit}"
    return reducer


class RouteState(TypedDict, total=False):
    """The channels the routers after the agent and the tools read.

    LangGraph reads a conditional edge's input afresh from a copy of the state with the
    node's writes applied, only for the channels of the router's input schema: routers
    declaring just these leave the other channels' updates (the manifest, the tool
    history) to the step.
    """

    messages: Annotated[list[AnyMessage], add_messages]
    stop_reason: StopReason | None


class WebBuilderState(TypedDict, total=False):
    """The state of one project's agent context (a LangGraph thread)."""

    messages: Annotated[list[AnyMessage], add_messages]
    """The working conversation; pruned to the context budget at the end of a turn."""
    project_id: str
    files: Annotated[dict[str, str], merge_manifest]
    """The workspace manifest: path → sha256 of the content."""
    unsaved: dict[str, str | None]
    """Manifest changes not in a snapshot yet (path → sha256, None for removed): the
    calls of a model step so far, saved together after its last call."""
    snapshot_version: int | None
    """The latest snapshot version of the project."""
    rescan: bool
    """A command ran: the manifest must be rebuilt from the workspace."""
    plan: PlanState | None
    dev_server: DevServerState | None
    build_status: Literal["idle", "working", "done", "failed"]
    tool_history: Annotated[list[ToolRecord], keep_last(MAX_TOOL_HISTORY)]
    errors: Annotated[list[str], keep_last(MAX_ERRORS)]
    run_id: str | None
    """The run working on this context (set by the caller with each turn's input)."""
    run_steps: int
    """Model calls in the current run."""
    run_tokens: int
    """Tokens used by the current run."""
    run_cost: float | None
    """US dollars spent by the current run; None when the model's price is unknown."""
    pending_usage: StepUsage | None
    stop_reason: StopReason | None
    checked_files: dict[str, str]
    """The manifest the last end-of-turn check saw: a turn that leaves it unchanged
    is not checked again."""
    check: CheckState | None
    dev_log_seen: list[str]
    """Where the last check stopped reading the dev server's log (its start time and
    last lines): the next check reports only errors printed since."""
    model_message_id: str | None
    """The id of the last message the model itself produced. The tools node runs only
    the tool calls of that message, so calls written into the state by anyone else
    (a client updating the thread, a forged input) are never executed."""
