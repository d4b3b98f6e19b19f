"""Tools: typed functions the agent calls, collected from plugins into one registry.

:class:`Tool` describes one; :class:`ToolRegistry` holds them all by name;
:class:`ToolContext` is what a tool receives when it runs. The built-in tools live in
the modules of this package and register through :mod:`builder.tools.builtin`. Any
LangChain tool registers too (:mod:`builder.tools.foreign`), and so do the tools of
MCP servers (:mod:`builder.tools.mcp`).
"""

from __future__ import annotations

from builder.tools.bound import BoundTool
from builder.tools.context import (
    DevServerStatus,
    Plan,
    PlanStep,
    ToolContext,
    ToolEffects,
    ToolEvent,
)
from builder.tools.foreign import tool_from_langchain
from builder.tools.mcp import mcp_tools, register_mcp_tools
from builder.tools.output import WithImages
from builder.tools.registry import ToolRegistry
from builder.tools.tool import Tool

__all__ = [
    "BoundTool",
    "DevServerStatus",
    "Plan",
    "PlanStep",
    "Tool",
    "ToolContext",
    "ToolEffects",
    "ToolEvent",
    "ToolRegistry",
    "WithImages",
    "mcp_tools",
    "register_mcp_tools",
    "tool_from_langchain",
]
