"""The runs service: turns of the agent on projects, with events, queuing and cancel, and
the workspaces (sandboxes, dev servers, previews) of projects."""

from __future__ import annotations

from builder.runs.events import EVENT_TYPES, RunEvent, RunStream
from builder.runs.fanout import RemoteStream, RunFanout
from builder.runs.service import (
    MultitaskStrategy,
    RunHandle,
    RunResult,
    RunService,
    RunStatus,
)
from builder.runs.workspace import Workspaces

__all__ = [
    "EVENT_TYPES",
    "MultitaskStrategy",
    "RemoteStream",
    "RunEvent",
    "RunFanout",
    "RunHandle",
    "RunResult",
    "RunService",
    "RunStatus",
    "RunStream",
    "Workspaces",
]
