"""Loading plugins: the built-in tools and every installed ``builder`` entry point.

Third-party plugins are found through the ``builder`` entry-point group.
``BUILDER_LOAD_PLUGINS`` (``settings.load_plugins``) chooses which load: unset = every
installed plugin, a comma-separated list = only those entry-point names, empty = none.
The built-in tools are a plugin too, registered through the same hook, and always load.

Loading happens once per process (:func:`load_plugins` is idempotent); the tools
become one :class:`~builder.tools.registry.ToolRegistry`
(:func:`get_tool_registry`) in which every tool knows the plugin that registered it.
"""

from __future__ import annotations

import importlib.metadata
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from builder import hookspecs
from builder._version import __version__
from builder.errors import ConfigurationError
from builder.log import get_logger
from builder.settings import Settings, get_settings
from builder.starters import StarterRegistry
from builder.tools import builtin
from builder.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from builder.publish.publishers import PublisherRegistry

__all__ = [
    "BUILTIN_PLUGIN",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "allowed_plugins",
    "build_publisher_registry",
    "build_starter_registry",
    "build_tool_registry",
    "get_publisher_registry",
    "get_starter_registry",
    "get_tool_registry",
    "load_plugins",
    "loaded_plugins",
    "new_plugin_manager",
    "reset_plugins",
]

ENTRY_POINT_GROUP = "builder"
BUILTIN_PLUGIN = "builtin"
"""The plugin name of builder's own tools."""

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """Where a loaded plugin came from."""

    name: str
    """The entry-point name (what ``BUILDER_LOAD_PLUGINS`` lists)."""
    distribution: str | None
    version: str | None


@dataclass(frozen=True, slots=True)
class _Loaded:
    manager: pluggy.PluginManager
    registry: ToolRegistry
    plugins: tuple[PluginInfo, ...]


_lock = threading.Lock()
_loaded: _Loaded | None = None


def new_plugin_manager() -> pluggy.PluginManager:
    """An empty plugin manager that knows builder's hooks."""
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    return manager


def allowed_plugins(settings: Settings) -> set[str] | None:
    """The entry-point names ``settings.load_plugins`` allows; None means all of them."""
    if settings.load_plugins is None:
        return None
    return {name.strip() for name in settings.load_plugins.split(",") if name.strip()}


def load_plugins(settings: Settings | None = None) -> pluggy.PluginManager:
    """Load the built-in tools and the allowed third-party plugins, once per process.

    A second call returns the same manager without looking at ``settings`` again;
    :func:`reset_plugins` forgets what was loaded.

    Args:
        settings: Where ``load_plugins`` (the allow-list) is read; defaults to
            :func:`~builder.settings.get_settings`.

    Returns:
        The plugin manager (see :func:`loaded_plugins` for where each plugin came from).

    Raises:
        ConfigurationError: An entry point fails to import or two share a name.
        DuplicateTool: Two plugins register tools of the same name.
        pluggy.PluginValidationError: A plugin implements a hook that does not exist.
    """
    return _load(settings).manager


def get_tool_registry(settings: Settings | None = None) -> ToolRegistry:
    """The one tool registry of this process, loading plugins first if needed.

    Raises:
        Whatever :func:`load_plugins` raises.
    """
    return _load(settings).registry


def loaded_plugins(settings: Settings | None = None) -> list[PluginInfo]:
    """Every loaded plugin with the distribution it came from, sorted by name."""
    return sorted(_load(settings).plugins, key=lambda info: info.name)


def reset_plugins() -> None:
    """Forget the loaded plugins so the next :func:`load_plugins` loads afresh."""
    global _loaded
    with _lock:
        _loaded = None


def build_tool_registry(manager: pluggy.PluginManager) -> ToolRegistry:
    """Collect the tools every plugin of ``manager`` registers.

    Each hook implementation is called with its own ``register`` callback, so every
    tool records the plugin that registered it. Plugins are visited in registration
    order (the built-in tools first), which decides who is named as the earlier one
    when two register the same name.

    Raises:
        DuplicateTool: Two plugins register tools of the same name.
        InvalidTool: A plugin registers something that cannot be a tool.
    """
    registry = ToolRegistry()
    for impl in manager.hook.register_tools.get_hookimpls():
        if impl.hookwrapper or impl.wrapper:
            continue
        arguments = {"register": registry.registrar(impl.plugin_name)}
        impl.function(*(arguments[name] for name in impl.argnames))
    return registry


def build_starter_registry(manager: pluggy.PluginManager) -> StarterRegistry:
    """Collect the starters every plugin of ``manager`` registers, with provenance.

    Raises:
        InvalidInput: A starter's name is malformed or taken, or its directory missing.
    """
    registry = StarterRegistry()
    for impl in manager.hook.register_starters.get_hookimpls():
        if impl.hookwrapper or impl.wrapper:
            continue

        def register(
            name: str, directory: Any, *, description: str, _plugin: str = impl.plugin_name
        ) -> None:
            registry.register(name, directory, description=description, plugin=_plugin)

        impl.function(register)
    return registry


def build_publisher_registry(manager: pluggy.PluginManager) -> PublisherRegistry:
    """Collect the publishers every plugin of ``manager`` registers, with provenance.

    Raises:
        InvalidInput: A publisher's name is malformed or taken, or it is no publisher.
    """
    from builder.publish.publishers import PublisherRegistry

    registry = PublisherRegistry()
    for impl in manager.hook.register_publishers.get_hookimpls():
        if impl.hookwrapper or impl.wrapper:
            continue

        def register(
            name: str, publisher: Any, *, description: str, _plugin: str = impl.plugin_name
        ) -> None:
            registry.register(name, publisher, description=description, plugin=_plugin)

        impl.function(register)
    return registry


def get_publisher_registry(settings: Settings | None = None) -> PublisherRegistry:
    """Every publisher of the loaded plugins (the built-in ones first)."""
    return build_publisher_registry(load_plugins(settings))


def get_starter_registry(settings: Settings | None = None) -> StarterRegistry:
    """Every starter of the loaded plugins (the built-in ones first)."""
    return build_starter_registry(load_plugins(settings))


def _load(settings: Settings | None) -> _Loaded:
    global _loaded
    with _lock:
        if _loaded is None:
            manager = new_plugin_manager()
            manager.register(builtin, name=BUILTIN_PLUGIN)
            infos = [PluginInfo(BUILTIN_PLUGIN, "builder-agent", __version__)]
            infos += _load_entry_points(manager, allowed_plugins(settings or get_settings()))
            manager.check_pending()
            _loaded = _Loaded(manager, build_tool_registry(manager), tuple(infos))
        return _loaded


def _load_entry_points(manager: pluggy.PluginManager, allowed: set[str] | None) -> list[PluginInfo]:
    loaded: list[PluginInfo] = []
    found: set[str] = set()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.add(entry_point.name)
        if allowed is not None and entry_point.name not in allowed:
            continue
        dist = entry_point.dist
        origin = f"{dist.name} {dist.version}" if dist is not None else entry_point.value
        if manager.has_plugin(entry_point.name):
            raise ConfigurationError(
                f"two plugins are named {entry_point.name!r} (one is {origin}); "
                "uninstall one of them"
            )
        try:
            plugin = entry_point.load()
        except Exception as exc:
            raise ConfigurationError(
                f"plugin {entry_point.name!r} ({origin}) failed to load: {exc}; fix or "
                "uninstall it, or leave it out of BUILDER_LOAD_PLUGINS"
            ) from exc
        manager.register(plugin, name=entry_point.name)
        loaded.append(
            PluginInfo(
                entry_point.name,
                dist.name if dist is not None else None,
                dist.version if dist is not None else None,
            )
        )
    for missing in sorted((allowed or set()) - found):
        log.warning("plugins.not_installed", plugin=missing)
    return loaded
