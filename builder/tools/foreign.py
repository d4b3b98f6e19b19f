"""LangChain tools written elsewhere, registered as builder tools.

Any :class:`~langchain_core.tools.BaseTool` (a ``@tool`` function, a community tool,
a tool of an MCP server loaded by ``langchain-mcp-adapters``) becomes a builder
:class:`~builder.tools.tool.Tool` whose function calls the LangChain tool. The model
sees the tool's own name, description and argument schema; the tool validates its own
arguments; builder adds the operation budget, output truncation and provenance (the
plugin that registered it, and the LangChain tool kept in ``source``). Such a tool
does not receive the run context: it works outside the sandbox.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict

from builder.errors import InvalidTool
from builder.settings import OperationKind
from builder.tools.tool import _NAME, Tool

__all__ = ["langchain_args_schema", "tool_from_langchain"]


class _JsonSchemaArgs(BaseModel):
    """The arguments of a tool described by a JSON schema: passed through as given.

    The bound tool hands LangChain the tool's own JSON schema (see
    :func:`langchain_args_schema`); the tool validates its arguments itself.
    """

    model_config = ConfigDict(extra="allow")


def langchain_args_schema(tool: Tool) -> type[BaseModel] | dict[str, Any]:
    """The argument schema a LangChain wrapper of ``tool`` declares.

    A tool registered from a LangChain tool with a JSON-schema argument schema (an MCP
    server's tool) declares that JSON schema; every other tool its pydantic model.
    """
    source = tool.source
    if isinstance(source, BaseTool) and isinstance(source.tool_call_schema, dict):
        return source.tool_call_schema
    return tool.args_schema


def _args_schema(tool: BaseTool, plugin: str) -> type[BaseModel]:
    schema = tool.tool_call_schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema
    if isinstance(schema, dict):
        return type(f"{tool.name}Args", (_JsonSchemaArgs,), {"__doc__": tool.description})
    raise InvalidTool(tool.name, plugin, "its argument schema is neither a model nor JSON")


def _text(result: Any) -> Any:
    """Content blocks that are all text (what MCP tools return) as their text."""
    if (
        isinstance(result, list)
        and result
        and all(isinstance(block, dict) and block.get("type") == "text" for block in result)
    ):
        return "\n".join(str(block.get("text", "")) for block in result)
    return result


def tool_from_langchain(
    tool: BaseTool, *, plugin: str, name: str | None = None, timeout: OperationKind | None = "ai"
) -> Tool:
    """A builder tool that calls ``tool``.

    Args:
        tool: Any LangChain tool.
        plugin: The plugin registering it (``app`` for a graph's extra tools).
        name: The name the model sees; defaults to the tool's own.
        timeout: The operation budget of one call (default ``ai``: such tools usually
            call a remote service); None when the tool bounds itself.

    Raises:
        InvalidTool: The name is not a valid tool name, or the tool has no description.
    """
    tool_name = name or tool.name
    if not _NAME.fullmatch(tool_name):
        raise InvalidTool(tool_name, plugin, "a name is 1-64 letters, digits, _ or -")
    if not tool.description.strip():
        raise InvalidTool(tool_name, plugin, "it needs a description")

    async def call(**arguments: Any) -> Any:
        # The tool validates its own arguments; a ToolException it raises reaches the
        # model as an error result through the bound tool's error handling.
        return _text(await tool.ainvoke(arguments))

    call.__name__ = tool_name
    call.__doc__ = tool.description
    return Tool(
        name=tool_name,
        description=tool.description,
        fn=call,
        args_schema=_args_schema(tool, plugin),
        plugin=plugin,
        timeout=timeout,
        source=tool,
    )
