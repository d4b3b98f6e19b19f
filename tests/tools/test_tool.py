"""Tool.from_function: name, description and schema from the function; context injection."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import TYPE_CHECKING, Annotated, Any

import pytest
from pydantic import Field, ValidationError

from builder.errors import InvalidTool, OperationTimeout
from builder.tools.tool import Tool, parse_docstring

if TYPE_CHECKING:
    from builder.tools.context import ToolContext


async def greet(name: str, times: Annotated[int, Field(ge=1)] = 1, *, ctx: ToolContext) -> str:
    """Greet someone by name.

    A second paragraph the model does not need.

    Args:
        name: Who to greet.
        times: How many times,
            at least once.

    Returns:
        The greeting.
    """
    return f"{ctx.project_id}: " + " ".join([f"hi {name}"] * times)


def shout(text: str) -> dict[str, Any]:
    """Upper-case TEXT in a worker thread."""
    return {"text": text.upper(), "thread": threading.current_thread().name}


def test_parse_docstring() -> None:
    summary, args = parse_docstring(greet.__doc__)
    assert summary == "Greet someone by name."
    assert args == {"name": "Who to greet.", "times": "How many times, at least once."}
    assert parse_docstring("One line\nand its continuation.") == (
        "One line and its continuation.",
        {},
    )
    assert parse_docstring(None) == ("", {})


def test_schema_comes_from_the_signature_without_the_context() -> None:
    tool = Tool.from_function(greet, plugin="example")
    assert (tool.name, tool.description, tool.plugin, tool.context_param) == (
        "greet",
        "Greet someone by name.",
        "example",
        "ctx",
    )
    # What a model receives: langchain-core's conversion of the argument schema.
    assert tool.parameters() == {
        "properties": {
            "name": {"description": "Who to greet.", "type": "string"},
            "times": {
                "default": 1,
                "description": "How many times, at least once.",
                "minimum": 1,
                "type": "integer",
            },
        },
        "required": ["name"],
        "type": "object",
    }
    assert json.dumps(tool.parameters())  # plain data, ready for any provider's wire


async def test_context_is_injected(ctx: ToolContext) -> None:
    tool = Tool.from_function(greet, plugin="example")
    assert await tool.run(ctx, {"name": "ada", "times": 2}) == "project-1: hi ada hi ada"
    with pytest.raises(ValidationError):
        await tool.run(ctx, {"name": "ada", "times": 0})
    with pytest.raises(ValidationError):
        await tool.run(ctx, {"name": "ada", "ctx": "forged"})


async def test_sync_tools_run_in_a_worker_thread(ctx: ToolContext) -> None:
    tool = Tool.from_function(shout, plugin="example", name="shout_it")
    assert tool.name == "shout_it" and tool.context_param is None and not tool.is_async
    result = await tool.run(ctx, {"text": "hey"})
    assert result.startswith('{"text": "HEY", "thread": "asyncio_')
    assert threading.current_thread().name not in result


async def test_results_are_truncated_with_a_note(ctx: ToolContext) -> None:
    def long_output(n: int) -> str:
        """Return N characters."""
        return "".join(str(i % 10) for i in range(n))

    ctx.settings = ctx.settings.model_copy(update={"tool_output_chars": 200})
    tool = Tool.from_function(long_output, plugin="example")
    result = await tool.run(ctx, {"n": 1000})
    assert len(result) <= 200
    assert "characters cut" in result
    assert result.startswith("0123456789") and result.endswith("789")


async def test_calls_run_under_the_operation_budget(ctx: ToolContext) -> None:
    async def slow() -> str:
        """Sleep longer than allowed."""
        await asyncio.sleep(10)
        return "never"

    ctx.settings = ctx.settings.model_copy(update={"timeout_sandbox": 0.05})
    tool = Tool.from_function(slow, plugin="example")
    with pytest.raises(OperationTimeout) as caught:
        await tool.run(ctx, {})
    assert (caught.value.operation, caught.value.seconds) == ("sandbox", 0.05)


def _no_doc(x: int) -> int:
    return x


def _untyped(x) -> int:  # type: ignore[no-untyped-def]
    """Has an untyped parameter."""
    return 1


def _positional_ctx(ctx: ToolContext) -> str:
    """Takes the context positionally."""
    return ""


def _varargs(*names: str) -> str:
    """Takes *args."""
    return ""


def _unresolvable(x: NoSuchType) -> str:  # type: ignore[name-defined]  # noqa: F821
    """Has an annotation that does not resolve."""
    return ""


@pytest.mark.parametrize(
    ("fn", "name", "reason"),
    [
        (_no_doc, None, "it needs a docstring"),
        (_untyped, None, "parameter 'x' has no type"),
        (_positional_ctx, None, "the ToolContext must be one keyword-only parameter"),
        (_varargs, None, "*args and **kwargs cannot be described"),
        (_unresolvable, None, "its type annotations cannot be resolved"),
        (shout, "has space", "a name is 1-64 letters"),
    ],
)
def test_invalid_tools_are_refused(fn: Any, name: str | None, reason: str) -> None:
    with pytest.raises(InvalidTool) as caught:
        Tool.from_function(fn, plugin="example", name=name)
    assert reason in caught.value.message
    assert caught.value.plugin == "example"
