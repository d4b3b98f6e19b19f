"""BoundTool: a builder tool as a LangChain tool bound to one run context."""

from __future__ import annotations

import pytest
from langchain_core.messages import ToolMessage

from builder.errors import NotFound
from builder.tools.bound import BoundTool
from builder.tools.context import ToolContext
from builder.tools.registry import ToolRegistry
from builder.tools.tool import Tool


async def fails_on_purpose(name: str, *, ctx: ToolContext) -> str:
    """Raise a builder error."""
    raise NotFound("thing", name)


async def crashes(*, ctx: ToolContext) -> str:
    """Raise an unexpected error."""
    raise RuntimeError("bug")


def tool_call(tool_name: str, **args: object) -> dict[str, object]:
    return {"type": "tool_call", "id": "call-7", "name": tool_name, "args": args}


def test_schema_excludes_the_context(registry: ToolRegistry, ctx: ToolContext) -> None:
    bound = registry.as_langchain_tool("edit_file", ctx)
    assert isinstance(bound, BoundTool)
    assert set(bound.args) == {"path", "search", "replace"}
    assert bound.tool_call_schema.model_json_schema()["required"] == ["path", "search", "replace"]
    assert bound.context is ctx and bound.tool.plugin == "builtin"
    assert bound.metadata == {"plugin": "builtin"}


async def test_builder_errors_become_error_results(ctx: ToolContext) -> None:
    bound = BoundTool(Tool.from_function(fails_on_purpose, plugin="example"), ctx)
    message = await bound.ainvoke(tool_call("fails_on_purpose", name="x"))
    assert isinstance(message, ToolMessage)
    assert (message.status, message.content, message.tool_call_id) == (
        "error",
        "Error (not_found): thing x not found",
        "call-7",
    )
    assert list(ctx.effects.errors) == ["fails_on_purpose: thing x not found"]


async def test_invalid_arguments_become_error_results(
    registry: ToolRegistry, ctx: ToolContext
) -> None:
    bound = registry.as_langchain_tool("read_file", ctx)
    message = await bound.ainvoke(tool_call("read_file", path="a.txt", offset="first"))
    assert isinstance(message, ToolMessage)
    assert message.status == "error"
    assert message.content == (
        "Error (invalid_arguments): offset: Input should be a valid integer, "
        "unable to parse string as an integer"
    )


async def test_unexpected_errors_propagate(ctx: ToolContext) -> None:
    bound = BoundTool(Tool.from_function(crashes, plugin="example"), ctx)
    with pytest.raises(RuntimeError, match="bug"):
        await bound.ainvoke(tool_call("crashes"))


def test_sync_invoke_says_to_use_ainvoke(registry: ToolRegistry, ctx: ToolContext) -> None:
    bound = registry.as_langchain_tool("list_files", ctx)
    with pytest.raises(NotImplementedError, match="ainvoke"):
        bound.invoke({})
