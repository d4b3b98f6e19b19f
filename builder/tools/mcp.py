"""Tools of MCP servers, through ``langchain-mcp-adapters``.

``BUILDER_MCP_SERVERS`` (``settings.mcp_servers``) names the servers: a program
started over stdio, or a streamable-HTTP URL. Their tools are LangChain tools
(:func:`mcp_tools`) and join a tool registry like any other
(:func:`register_mcp_tools`), each under the plugin name ``mcp:<server>`` so its
provenance shows. Every call opens its own MCP session (a stdio server is started for
the call and ends with it), so nothing stays open between runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from builder.errors import ConfigurationError
from builder.settings import McpServer, Settings

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from builder.tools.registry import ToolRegistry

__all__ = ["MCP_PLUGIN_PREFIX", "mcp_tools", "register_mcp_tools", "tools_with_mcp"]

MCP_PLUGIN_PREFIX = "mcp:"
"""The plugin name of an MCP server's tools is this prefix and the server's name."""


def _connection(server: McpServer) -> dict[str, Any]:
    if server.transport == "stdio":
        connection: dict[str, Any] = {
            "transport": "stdio",
            "command": server.command,
            "args": list(server.args),
        }
        if server.env is not None:
            connection["env"] = dict(server.env)
        if server.cwd is not None:
            connection["cwd"] = server.cwd
        return connection
    connection = {"transport": "streamable_http", "url": server.url}
    if server.headers is not None:
        connection["headers"] = dict(server.headers)
    return connection


async def mcp_tools(settings: Settings) -> dict[str, list[BaseTool]]:
    """Each configured MCP server's tools, as LangChain tools, by server name.

    Raises:
        ConfigurationError: A server cannot be reached or does not speak MCP.
    """
    from langchain_mcp_adapters.client import MultiServerMCPClient

    found: dict[str, list[BaseTool]] = {}
    for name, server in sorted(settings.mcp_servers.items()):
        client = MultiServerMCPClient({name: _connection(server)})  # type: ignore[dict-item]
        try:
            found[name] = await client.get_tools(server_name=name)
        except Exception as exc:  # any failure to list tools is a configuration problem
            raise ConfigurationError(
                f"MCP server {name!r} ({server.transport}) did not list its tools: "
                f"{type(exc).__name__}: {exc}; check BUILDER_MCP_SERVERS"
            ) from exc
    return found


async def register_mcp_tools(registry: ToolRegistry, settings: Settings) -> list[str]:
    """Add every configured MCP server's tools to ``registry``.

    Returns:
        The names of the tools added, sorted.

    Raises:
        ConfigurationError: A server cannot be reached.
        DuplicateTool: An MCP tool has the name of a tool already registered.
    """
    added: list[str] = []
    for server, tools in (await mcp_tools(settings)).items():
        for tool in tools:
            added.append(registry.register(tool, plugin=f"{MCP_PLUGIN_PREFIX}{server}").name)
    return sorted(added)


async def tools_with_mcp(settings: Settings) -> ToolRegistry | None:
    """The plugins' tools and the MCP servers' tools in a new registry; None (the
    plugins' registry as it is) when no MCP server is configured.

    Raises:
        Whatever :func:`register_mcp_tools` raises.
    """
    if not settings.mcp_servers:
        return None
    from builder.plugins import get_tool_registry

    registry = get_tool_registry(settings).copy()
    await register_mcp_tools(registry, settings)
    return registry
