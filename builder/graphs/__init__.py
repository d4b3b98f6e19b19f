"""The web-builder graph: state, nodes, the TTL-bounded checkpointer, and its builder."""

from __future__ import annotations

from builder.graphs.checkpointer import SweepResult, TTLCheckpointer
from builder.graphs.context import RunContext
from builder.graphs.state import WebBuilderState
from builder.graphs.web_builder import WebBuilderGraph, build_web_builder_graph, tool_specs

__all__ = [
    "RunContext",
    "SweepResult",
    "TTLCheckpointer",
    "WebBuilderGraph",
    "WebBuilderState",
    "build_web_builder_graph",
    "tool_specs",
]
