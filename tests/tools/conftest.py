"""Fixtures for tool tests: a real local sandbox, a run context, the built-in registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from builder.locks import LockManager
from builder.plugins import BUILTIN_PLUGIN, build_tool_registry, new_plugin_manager
from builder.sandbox.local import LocalSandbox
from builder.settings import Settings
from builder.tools import builtin
from builder.tools.context import ToolContext
from builder.tools.registry import ToolRegistry


def builtin_registry() -> ToolRegistry:
    """A registry holding only the built-in tools (no installed plugins)."""
    manager = new_plugin_manager()
    manager.register(builtin, name=BUILTIN_PLUGIN)
    return build_tool_registry(manager)


@pytest.fixture
def registry() -> ToolRegistry:
    return builtin_registry()


@pytest.fixture
async def sandbox(settings: Settings) -> AsyncIterator[LocalSandbox]:
    box = LocalSandbox("project-1", settings=settings)
    try:
        yield box
    finally:
        await box.close()


@pytest.fixture
def ctx(sandbox: LocalSandbox, settings: Settings) -> ToolContext:
    return ToolContext(
        sandbox=sandbox,
        project_id="project-1",
        settings=settings,
        locks=LockManager(None, timeout=5),
    )


class Caller:
    """Calls built-in tools the way an agent does: as LangChain tools, by tool call."""

    def __init__(self, registry: ToolRegistry, ctx: ToolContext) -> None:
        self.registry = registry
        self.ctx = ctx

    async def message(self, name: str, **args: Any) -> ToolMessage:
        tool = self.registry.as_langchain_tool(name, self.ctx)
        result = await tool.ainvoke(
            {"type": "tool_call", "id": "call-1", "name": name, "args": args}
        )
        assert isinstance(result, ToolMessage)
        return result

    async def __call__(self, name: str, **args: Any) -> str:
        """The result text; fails the test when the tool reported an error."""
        message = await self.message(name, **args)
        assert message.status == "success", message.content
        assert isinstance(message.content, str)
        return message.content

    async def error(self, name: str, **args: Any) -> str:
        """The error text; fails the test when the tool succeeded."""
        message = await self.message(name, **args)
        assert message.status == "error", message.content
        assert isinstance(message.content, str)
        return message.content


@pytest.fixture
def call(registry: ToolRegistry, ctx: ToolContext) -> Caller:
    return Caller(registry, ctx)
