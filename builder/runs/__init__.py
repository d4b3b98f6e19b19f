"""The runs service: turns of the agent on projects, with events, queuing and cancel."""

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
]
