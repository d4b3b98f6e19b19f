"""Plugin loading: entry points, the allow-list, idempotence, provenance, validation.

Third-party plugins are faked the way pytest's own tests do it: a replacement for
``importlib.metadata.entry_points`` that offers entry points of made-up distributions.
(The real site-checker distribution is tested through its installed entry point in
``plugins/site-checker/tests``.)
"""

from __future__ import annotations

import importlib.metadata
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pluggy
import pytest

from builder import plugins
from builder.errors import ConfigurationError, DuplicateTool
from builder.hookspecs import hookimpl
from builder.settings import Settings
from builder.tools.context import ToolContext


@dataclass
class FakeDistribution:
    name: str
    version: str = "1.0"


@dataclass
class FakeEntryPoint:
    name: str
    plugin: Any
    dist: FakeDistribution | None = None
    group: str = "builder"
    loads: int = 0

    @property
    def value(self) -> str:
        return f"{self.name}_module"

    def load(self) -> Any:
        self.loads += 1
        if isinstance(self.plugin, Exception):
            raise self.plugin
        return self.plugin


def tool_plugin(name: str, *tools: Callable[..., Any]) -> types.ModuleType:
    """A plugin module whose hook registers ``tools``."""
    module = types.ModuleType(name)

    @hookimpl
    def register_tools(register: Callable[..., Any]) -> None:
        for tool in tools:
            register(tool)

    module.register_tools = register_tools  # type: ignore[attr-defined]
    return module


async def weather(city: str, *, ctx: ToolContext) -> str:
    """Report the weather in CITY."""
    return f"sunny in {city}"


def dice(sides: int = 6) -> int:
    """Roll a die with SIDES sides."""
    return sides


@pytest.fixture(autouse=True)
def fresh_plugins() -> Iterator[None]:
    plugins.reset_plugins()
    yield
    plugins.reset_plugins()


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[FakeEntryPoint]:
    """Entry points of two fake distributions, in place of the installed ones."""
    points = [
        FakeEntryPoint(
            "weather",
            tool_plugin("weather_plugin", weather),
            FakeDistribution("weather-tools", "2.1"),
        ),
        FakeEntryPoint("dice", tool_plugin("dice_plugin", dice), FakeDistribution("dice-tools")),
    ]

    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        return [point for point in points if point.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return points


def names_and_plugins(settings: Settings) -> dict[str, str]:
    registry = plugins.get_tool_registry(settings)
    return {tool.name: tool.plugin for tool in registry if tool.plugin != "builtin"}


@pytest.mark.usefixtures("installed")
def test_all_installed_plugins_load_when_unset() -> None:
    settings = Settings()
    assert names_and_plugins(settings) == {"weather": "weather", "dice": "dice"}
    assert plugins.loaded_plugins(settings) == [
        plugins.PluginInfo("builtin", "builder-agent", plugins.__version__),
        plugins.PluginInfo("dice", "dice-tools", "1.0"),
        plugins.PluginInfo("weather", "weather-tools", "2.1"),
    ]


@pytest.mark.usefixtures("installed")
def test_allow_list_loads_only_the_named_plugins() -> None:
    assert names_and_plugins(Settings(load_plugins=" dice , not-installed")) == {"dice": "dice"}


def test_empty_allow_list_loads_no_third_party_plugin(installed: list[FakeEntryPoint]) -> None:
    registry = plugins.get_tool_registry(Settings(load_plugins=""))
    assert {tool.plugin for tool in registry} == {"builtin"}
    assert "edit_file" in registry
    assert [point.loads for point in installed] == [0, 0]


def test_allow_list_comes_from_the_environment(
    installed: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUILDER_LOAD_PLUGINS", "weather")
    assert names_and_plugins(Settings()) == {"weather": "weather"}


def test_loading_is_idempotent(installed: list[FakeEntryPoint]) -> None:
    manager = plugins.load_plugins(Settings())
    registry = plugins.get_tool_registry()
    # A second call, even with other settings, returns what was loaded the first time.
    assert plugins.load_plugins(Settings(load_plugins="")) is manager
    assert plugins.get_tool_registry() is registry
    assert [point.loads for point in installed] == [1, 1]
    assert sorted(name for name, _ in manager.list_name_plugin()) == ["builtin", "dice", "weather"]
    plugins.reset_plugins()
    assert plugins.load_plugins(Settings()) is not manager


def test_a_duplicate_tool_names_both_plugins(installed: list[FakeEntryPoint]) -> None:
    async def edit_file(path: str) -> str:
        """Shadow the built-in edit_file."""
        return path

    installed.append(FakeEntryPoint("shadow", tool_plugin("shadow_plugin", edit_file)))
    with pytest.raises(DuplicateTool) as caught:
        plugins.load_plugins(Settings())
    assert (caught.value.tool, caught.value.plugin, caught.value.other_plugin) == (
        "edit_file",
        "shadow",
        "builtin",
    )
    assert str(caught.value) == (
        "tool 'edit_file' from plugin 'shadow' clashes with the tool of the same name from "
        "plugin 'builtin'; uninstall one or leave it out of BUILDER_LOAD_PLUGINS"
    )
    # Leaving the offender out of the allow-list is the way out.
    assert names_and_plugins(Settings(load_plugins="weather,dice")) == {
        "weather": "weather",
        "dice": "dice",
    }


def test_a_misspelled_hook_is_caught(installed: list[FakeEntryPoint]) -> None:
    module = types.ModuleType("typo_plugin")

    @hookimpl
    def register_tool(register: Callable[..., Any]) -> None:
        """Misspelled: register_tool instead of register_tools."""

    module.register_tool = register_tool  # type: ignore[attr-defined]
    installed.append(FakeEntryPoint("typo", module))
    with pytest.raises(pluggy.PluginValidationError, match="unknown hook 'register_tool'"):
        plugins.load_plugins(Settings())


def test_a_plugin_that_fails_to_import(installed: list[FakeEntryPoint]) -> None:
    installed.append(
        FakeEntryPoint(
            "broken",
            ImportError("No module named 'missing'"),
            FakeDistribution("broken-dist", "0.3"),
        )
    )
    with pytest.raises(ConfigurationError) as caught:
        plugins.load_plugins(Settings())
    assert str(caught.value) == (
        "plugin 'broken' (broken-dist 0.3) failed to load: No module named 'missing'; fix or "
        "uninstall it, or leave it out of BUILDER_LOAD_PLUGINS"
    )


def test_two_entry_points_with_one_name(installed: list[FakeEntryPoint]) -> None:
    installed.append(
        FakeEntryPoint("dice", tool_plugin("other_dice"), FakeDistribution("other", "9"))
    )
    with pytest.raises(ConfigurationError, match="two plugins are named 'dice'"):
        plugins.load_plugins(Settings())


async def test_sync_and_async_plugin_tools_run(
    installed: list[FakeEntryPoint], ctx_factory: Callable[[], ToolContext]
) -> None:
    registry = plugins.get_tool_registry(Settings())
    ctx = ctx_factory()
    dice_tool, weather_tool = registry.as_langchain_tools(ctx, names=["weather", "dice"])
    assert await weather_tool.ainvoke({"city": "Oslo"}) == "sunny in Oslo"
    assert await dice_tool.ainvoke({"sides": 20}) == "20"
    assert set(weather_tool.args) == {"city"}


@pytest.fixture
def ctx_factory(tmp_path: Any) -> Callable[[], ToolContext]:
    from builder.locks import LockManager
    from builder.sandbox.local import LocalSandbox

    def make() -> ToolContext:
        settings = Settings(data_dir=tmp_path)
        return ToolContext(
            sandbox=LocalSandbox("p", settings=settings),
            project_id="p",
            settings=settings,
            locks=LockManager(None, timeout=5),
        )

    return make
