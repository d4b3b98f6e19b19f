"""ToolRegistry: one tool per name, provenance, LangChain views."""

from __future__ import annotations

import pytest

from builder.errors import DuplicateTool, NotFound
from builder.tools.context import ToolContext
from builder.tools.registry import ToolRegistry

BUILTIN_TOOLS = [
    "analyze_project_state",
    "batch_write_files",
    "check_build",
    "delete_file",
    "edit_file",
    "get_dev_server_status",
    "get_project_structure",
    "install_packages",
    "list_files",
    "mark_step_complete",
    "plan_changes",
    "publish_project",
    "read_file",
    "rename_file",
    "run_command",
    "screenshot_preview",
    "search_files",
    "start_dev_server",
    "write_file",
]


async def ping(*, ctx: ToolContext) -> str:
    """Answer pong."""
    return "pong"


def test_builtin_tools(registry: ToolRegistry) -> None:
    assert registry.names() == BUILTIN_TOOLS
    assert {tool.plugin for tool in registry} == {"builtin"}
    assert {tool.name: tool.timeout for tool in registry if tool.timeout != "sandbox"} == {
        "check_build": None,
        "install_packages": None,
        "publish_project": None,
        "screenshot_preview": None,  # BUILDER_TIMEOUT_SCREENSHOT bounds it
        "run_command": None,
        "start_dev_server": "dev_server",
    }


def test_duplicate_names_are_refused_naming_both_plugins() -> None:
    registry = ToolRegistry()
    registry.register(ping, plugin="first")
    with pytest.raises(DuplicateTool) as caught:
        registry.registrar("second")(ping)
    assert (caught.value.tool, caught.value.plugin, caught.value.other_plugin) == (
        "ping",
        "second",
        "first",
    )
    assert "'second'" in caught.value.message and "'first'" in caught.value.message
    registry.registrar("second")(ping, name="ping2")
    assert [(t.name, t.plugin) for t in registry] == [("ping", "first"), ("ping2", "second")]


def test_lookup_and_langchain_views(registry: ToolRegistry, ctx: ToolContext) -> None:
    assert "edit_file" in registry and "nope" not in registry
    assert len(registry) == len(BUILTIN_TOOLS)
    with pytest.raises(NotFound):
        registry.get("nope")
    assert [t.name for t in registry.as_langchain_tools(ctx)] == BUILTIN_TOOLS
    chosen = registry.as_langchain_tools(ctx, names=["write_file", "read_file"])
    assert [t.name for t in chosen] == ["read_file", "write_file"]
    with pytest.raises(NotFound):
        registry.as_langchain_tools(ctx, names=["nope"])
