"""Things plugins register by name: starters, publishers.

Each kind keeps its own checks of what is registered; the name rules, the refusal of a
taken name (naming both plugins), lookup with the known names in the error, and sorted
listing are these, once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from builder.errors import InvalidInput

__all__ = ["NamedRegistry"]

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


class _Registered(Protocol):
    @property
    def plugin(self) -> str: ...


T = TypeVar("T", bound=_Registered)


class NamedRegistry(Generic[T]):
    """Items of one kind by name, each knowing the plugin that registered it.

    Args:
        kind: What the items are called in messages (``starter``, ``publisher``).
    """

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._items: dict[str, T] = {}

    def _claim(self, name: str, plugin: str) -> None:
        """Refuse a malformed name, or one another plugin registered (``InvalidInput``)."""
        if not _NAME.fullmatch(name):
            raise InvalidInput(
                f"{self._kind} name {name!r}: use 1-40 lowercase letters, digits or -"
            )
        if name in self._items:
            other = self._items[name].plugin
            raise InvalidInput(
                f"{self._kind} {name!r} of {plugin} is already registered by {other}"
            )

    def _add(self, name: str, item: T) -> T:
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """The item called ``name``.

        Raises:
            InvalidInput: No such item; the message lists the known ones.
        """
        try:
            return self._items[name]
        except KeyError:
            raise InvalidInput(
                f"no {self._kind} named {name!r}; the {self._kind}s are: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Every item's name, sorted."""
        return sorted(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items[name] for name in self.names())
