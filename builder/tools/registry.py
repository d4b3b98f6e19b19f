"""The tool registry: every tool from every plugin, by name, with its provenance."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

from langchain_core.tools import BaseTool

from builder.errors import DuplicateTool, NotFound
from builder.settings import OperationKind
from builder.tools.bound import BoundTool
from builder.tools.context import ToolContext
from builder.tools.foreign import tool_from_langchain
from builder.tools.tool import Tool

__all__ = ["ToolRegistry"]


class ToolRegistry:
    """Tools by name. Plugins add to it through the ``register`` callback of their hook."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(
        self,
        fn: Callable[..., Any] | BaseTool,
        *,
        plugin: str,
        name: str | None = None,
        timeout: OperationKind | Literal["default"] | None = "default",
    ) -> Tool:
        """Add a tool made from ``fn``: a function (see :meth:`Tool.from_function`) or
        any LangChain tool (see :func:`~builder.tools.foreign.tool_from_langchain`).

        Args:
            fn: A typed, documented function, sync or async, or a LangChain ``BaseTool``.
            plugin: The plugin registering it.
            name: The tool's name; defaults to the function's or the tool's name.
            timeout: The operation budget of one call; None when the tool bounds itself.
                By default ``sandbox`` for a function, ``ai`` for a LangChain tool.

        Raises:
            DuplicateTool: Another plugin already registered a tool with this name.
            InvalidTool: ``fn`` cannot be described as a tool.
        """
        if isinstance(fn, BaseTool):
            budget: OperationKind | None = "ai" if timeout == "default" else timeout
            tool = tool_from_langchain(fn, plugin=plugin, name=name, timeout=budget)
        else:
            budget = "sandbox" if timeout == "default" else timeout
            tool = Tool.from_function(fn, plugin=plugin, name=name, timeout=budget)
        existing = self._tools.get(tool.name)
        if existing is not None:
            raise DuplicateTool(tool.name, plugin=plugin, other_plugin=existing.plugin)
        self._tools[tool.name] = tool
        return tool

    def registrar(self, plugin: str) -> Callable[..., Tool]:
        """The ``register`` callback handed to ``plugin``'s hook implementation."""

        def register(
            fn: Callable[..., Any] | BaseTool,
            *,
            name: str | None = None,
            timeout: OperationKind | Literal["default"] | None = "default",
        ) -> Tool:
            return self.register(fn, plugin=plugin, name=name, timeout=timeout)

        return register

    def get(self, name: str) -> Tool:
        """The tool called ``name``.

        Raises:
            NotFound: No such tool.
        """
        try:
            return self._tools[name]
        except KeyError:
            raise NotFound("tool", name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(sorted(self._tools.values(), key=lambda tool: tool.name))

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        """Every tool name, sorted."""
        return sorted(self._tools)

    def copy(self) -> ToolRegistry:
        """A new registry with the same tools, to extend without changing this one."""
        clone = ToolRegistry()
        clone._tools = dict(self._tools)
        return clone

    def definitions(self) -> list[BoundTool]:
        """Every tool as a LangChain tool without a run context, sorted by name.

        This is what a chat model's ``bind_tools`` receives: each tool's name,
        description and argument schema, converted by the model's own integration.
        """
        return [BoundTool(tool) for tool in self]

    def as_langchain_tool(self, name: str, ctx: ToolContext) -> BoundTool:
        """The tool called ``name`` as a LangChain tool bound to ``ctx``.

        Raises:
            NotFound: No such tool.
        """
        return BoundTool(self.get(name), ctx)

    def as_langchain_tools(
        self, ctx: ToolContext, *, names: Iterable[str] | None = None
    ) -> list[BoundTool]:
        """Tools as LangChain tools bound to ``ctx``, sorted by name.

        Args:
            ctx: The run context every call receives.
            names: Only these tools (default: all).

        Raises:
            NotFound: One of ``names`` is not a registered tool.
        """
        chosen = [self.get(name) for name in sorted(set(names))] if names else list(self)
        return [BoundTool(tool, ctx) for tool in chosen]
