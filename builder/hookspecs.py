"""The hooks a builder plugin can implement.

A plugin is a module (or object) with functions marked :data:`hookimpl`, installed
under the ``builder`` entry-point group. Hooks receive a ``register`` callback instead
of returning values, so builder validates, names and records the provenance of
everything a plugin offers in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("builder")
hookimpl = pluggy.HookimplMarker("builder")


@hookspec
def register_tools(register: Callable[..., Any]) -> None:
    """Register tools: call ``register(fn, *, name=None)`` once per tool: a typed,
    documented function or any LangChain ``BaseTool`` (an MCP server's too)."""


@hookspec
def register_starters(register: Callable[..., Any]) -> None:
    """Register starters: ``register(name, directory, *, description)`` once per starter."""


@hookspec
def register_publishers(register: Callable[..., Any]) -> None:
    """Register publishers (where a version can be pushed or deployed):
    ``register(name, publisher, *, description)`` once per publisher, where
    ``publisher`` follows :class:`builder.publish.publishers.Publisher`."""
