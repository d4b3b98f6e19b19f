"""Builder tools as LangChain tools, so they work in any LangChain or LangGraph agent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, ToolException
from pydantic import PrivateAttr, ValidationError

from builder.errors import BuilderError
from builder.tools.context import ToolContext
from builder.tools.foreign import langchain_args_schema
from builder.tools.output import ToolContent
from builder.tools.tool import Tool

__all__ = ["BoundTool", "answer_call"]


def _validation_message(error: ValidationError | Any) -> str:
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'arguments'}: {item['msg']}"
            for item in error.errors()
        )
        return f"Error (invalid_arguments): {problems}"
    return f"Error (invalid_arguments): {error}"


class BoundTool(BaseTool):
    """A builder :class:`Tool` bound to one run context, as a LangChain ``BaseTool``.

    The argument schema is the tool's own (the context is not part of it), so the same
    object gives a chat model's ``bind_tools`` the tool's definition. Without a context
    (``context=None``) it only describes the tool: calling it is an error. Errors
    builder raises on purpose (limits, conflicts, missing files, timeouts) come back
    to the model as an error result; anything unexpected propagates. Builder tools
    are asynchronous: use ``ainvoke``.
    """

    _tool: Tool = PrivateAttr()
    _context: ToolContext | None = PrivateAttr()

    def __init__(self, tool: Tool, context: ToolContext | None = None) -> None:
        super().__init__(
            name=tool.name,
            description=tool.description,
            args_schema=langchain_args_schema(tool),
            handle_tool_error=True,
            handle_validation_error=_validation_message,
            metadata={"plugin": tool.plugin},
        )
        self._tool = tool
        self._context = context

    @property
    def tool(self) -> Tool:
        """The builder tool behind this LangChain tool."""
        return self._tool

    @property
    def context(self) -> ToolContext | None:
        """The run context every call receives; None for a description only."""
        return self._context

    def _run(self, *args: Any, **kwargs: Any) -> str:
        raise NotImplementedError(f"{self.name} is asynchronous; call it with ainvoke")

    async def _arun(self, *args: Any, **kwargs: Any) -> ToolContent:
        kwargs.pop("run_manager", None)
        context = self._context
        if context is None:
            raise ToolException(f"{self.name} has no run context; bind one to call it")
        try:
            return await self._tool.run(context, kwargs)
        except BuilderError as exc:
            raise ToolException(_failure(context, self.name, exc)) from exc


def _failure(context: ToolContext, name: str, exc: BuilderError) -> str:
    """What the model is told of an error a tool raised on purpose (and remembered)."""
    context.effects.error(f"{name}: {exc.message}")
    return f"Error ({exc.code}): {exc.message}"


async def answer_call(
    tool: Tool, context: ToolContext, call_id: str, arguments: Mapping[str, Any]
) -> ToolMessage:
    """The answer ``BoundTool(tool, context).ainvoke(call)`` gives a tool call, without
    LangChain's tool machinery: the arguments are validated once (by the tool) and no
    callbacks run. For a graph's own tools node, which reports its calls itself."""
    try:
        content: ToolContent = await tool.run(context, arguments)
        status = "success"
    except ValidationError as exc:
        content, status = _validation_message(exc), "error"
    except BuilderError as exc:
        content, status = _failure(context, tool.name, exc), "error"
    return ToolMessage(content, tool_call_id=call_id, name=tool.name, status=status)
