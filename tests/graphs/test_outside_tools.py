"""Tools written outside builder: a plain LangChain tool and the tools of MCP servers.

The MCP server is a real process built with the ``mcp`` SDK, over stdio and over
streamable HTTP on loopback; the agent (a scripted model) calls its tool through the
graph, and the server's log shows the call arrived.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver

from builder.errors import ConfigurationError, InvalidTool
from builder.graphs.context import RunContext
from builder.graphs.web_builder import build_web_builder_graph
from builder.locks import LockManager
from builder.persistence.database import Database
from builder.persistence.projects import create_project
from builder.persistence.users import get_or_create_user
from builder.plugins import build_tool_registry, load_plugins
from builder.runs.service import RunService
from builder.sandbox.local import LocalSandbox
from builder.settings import McpServer, Settings
from builder.tools.mcp import register_mcp_tools
from builder.tools.registry import ToolRegistry
from tests.support.scripts import call, write_script

ROOT = Path(__file__).resolve().parents[2]


@tool(parse_docstring=True)
def shout(text: str) -> str:
    """Say a text louder.

    Args:
        text: What to say.
    """
    return text.upper() + "!"


@pytest.fixture
async def sandbox(settings: Settings) -> AsyncIterator[LocalSandbox]:
    box = LocalSandbox(str(uuid.uuid4()), settings=settings)
    yield box
    await box.close()


@pytest.fixture
async def locks() -> AsyncIterator[LockManager]:
    manager = LockManager(None, timeout=5)
    yield manager
    await manager.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The MCP server on streamable HTTP: its URL and its call log."""
    log, port = tmp_path / "http-calls.jsonl", _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.mcp_server", "http", str(log), str(port)], cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        for _ in range(200):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the MCP server exited"
                time.sleep(0.05)
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=10)


def _stdio(log: Path) -> McpServer:
    return McpServer(
        transport="stdio",
        command=sys.executable,
        args=["-m", "tests.support.mcp_server", "stdio", str(log)],
        cwd=str(ROOT),
    )


async def _tool_results(
    graph: Any, settings: Settings, sandbox: LocalSandbox, locks: LockManager
) -> list[str]:
    ctx = RunContext(sandbox=sandbox, locks=locks, settings=settings)
    config = {"configurable": {"thread_id": "t"}}
    state = {
        "messages": [("user", "go")],
        "run_id": ctx.run_id,
        "run_steps": 0,
        "run_tokens": 0,
        "stop_reason": None,
    }
    await graph.ainvoke(state, config, context=ctx)
    messages = (await graph.aget_state(config)).values["messages"]
    return [str(m.content) for m in messages if isinstance(m, ToolMessage)]


def _script(tmp_path: Path) -> str:
    return write_script(
        tmp_path,
        [
            [
                {"tool_calls": [call("shout", text="hi")]},
                {"tool_calls": [call("add", a=2, b=3)]},
                {"content": "Done."},
            ]
        ],
    )


async def _registry_with_mcp(settings: Settings) -> ToolRegistry:
    registry = build_tool_registry(load_plugins(settings))
    added = await register_mcp_tools(registry, settings)
    assert added == ["add"]
    assert registry.get("add").plugin == "mcp:arithmetic"
    return registry


@pytest.mark.slow
async def test_the_agent_calls_a_langchain_tool_and_a_stdio_mcp_tool(
    settings: Settings, sandbox: LocalSandbox, locks: LockManager, tmp_path: Path
) -> None:
    log = tmp_path / "stdio-calls.jsonl"
    configured = settings.model_copy(update={"mcp_servers": {"arithmetic": _stdio(log)}})
    registry = await _registry_with_mcp(configured)
    graph = build_web_builder_graph(
        model=_script(tmp_path),
        tools=registry,
        extra_tools=[shout],
        settings=configured,
        checkpointer=InMemorySaver(),
    )
    assert await _tool_results(graph, configured, sandbox, locks) == ["HI!", "2 + 3 = 5"]
    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        {"tool": "add", "a": 2, "b": 3}
    ]


@pytest.mark.slow
async def test_the_agent_calls_a_streamable_http_mcp_tool(
    settings: Settings,
    sandbox: LocalSandbox,
    locks: LockManager,
    tmp_path: Path,
    http_server: tuple[str, Path],
) -> None:
    url, log = http_server
    server = McpServer(transport="streamable_http", url=url)
    configured = settings.model_copy(update={"mcp_servers": {"arithmetic": server}})
    registry = await _registry_with_mcp(configured)
    graph = build_web_builder_graph(
        model=_script(tmp_path),
        tools=registry,
        extra_tools=[shout],
        settings=configured,
        checkpointer=InMemorySaver(),
    )
    assert await _tool_results(graph, configured, sandbox, locks) == ["HI!", "2 + 3 = 5"]
    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        {"tool": "add", "a": 2, "b": 3}
    ]


def test_a_langchain_tool_keeps_its_schema_and_provenance() -> None:
    registry = ToolRegistry()
    registered = registry.register(shout, plugin="app")
    assert (registered.name, registered.plugin, registered.source) == ("shout", "app", shout)
    assert registered.timeout == "ai"
    assert registered.parameters()["properties"] == {
        "text": {"description": "What to say.", "type": "string"}
    }
    (definition,) = registry.definitions()
    assert definition.metadata == {"plugin": "app"}


def test_a_langchain_tool_without_a_usable_name_is_refused() -> None:
    class Nameless(BaseTool):
        name: str = "has spaces"
        description: str = "A tool."

        def _run(self) -> str:
            return ""

    with pytest.raises(InvalidTool, match="has spaces"):
        ToolRegistry().register(Nameless(), plugin="app")


async def test_an_unreachable_mcp_server_is_a_configuration_error(settings: Settings) -> None:
    server = McpServer(transport="streamable_http", url=f"http://127.0.0.1:{_free_port()}/mcp")
    configured = settings.model_copy(update={"mcp_servers": {"gone": server}})
    with pytest.raises(ConfigurationError, match="MCP server 'gone'"):
        await register_mcp_tools(ToolRegistry(), configured)


def test_an_mcp_server_needs_its_endpoint() -> None:
    with pytest.raises(ValueError, match="needs a command"):
        McpServer(transport="stdio")
    with pytest.raises(ValueError, match="needs a url"):
        McpServer(transport="streamable_http")


@pytest.mark.slow
async def test_a_run_of_the_runs_service_calls_the_configured_mcp_server(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "service-calls.jsonl"
    configured = settings.model_copy(update={"mcp_servers": {"arithmetic": _stdio(log)}})
    user = await get_or_create_user(db, name="alice")
    project = await create_project(db, user_id=user.id, name="sums")
    async with RunService.open(
        configured, db=db, model=_script(tmp_path), extra_tools=[shout]
    ) as service:
        handle = await service.start(user_id=user.id, project_id=project.id, prompt="go")
        assert (await handle.wait()).status == "success"
    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        {"tool": "add", "a": 2, "b": 3}
    ]
