"""A bounded table of named long-running processes, shared by every sandbox backend."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from builder.errors import LimitExceeded

__all__ = ["DEFAULT_MAX_PROCESSES", "ProcessSlots"]

DEFAULT_MAX_PROCESSES = 8
"""Named long-running processes one sandbox keeps (running, or finished with logs)."""


class _Entry(Protocol):
    @property
    def finished(self) -> bool: ...

    @property
    def started_at(self) -> float: ...


E = TypeVar("E", bound=_Entry)


class ProcessSlots(Generic[E]):
    """At most ``limit`` named entries; a finished one keeps its slot until it is needed.

    Args:
        limit: Most entries held.
    """

    def __init__(self, limit: int = DEFAULT_MAX_PROCESSES) -> None:
        self.limit = limit
        self._entries: dict[str, E] = {}

    def get(self, name: str) -> E | None:
        """The entry called ``name``, or None."""
        return self._entries.get(name)

    def values(self) -> list[E]:
        """Every entry, in insertion order."""
        return list(self._entries.values())

    def pop(self, name: str) -> E | None:
        """Remove and return the entry called ``name``."""
        return self._entries.pop(name, None)

    def make_room(self) -> None:
        """Free one slot, dropping the oldest finished entries if needed.

        Raises:
            LimitExceeded: Every slot holds a running process.
        """
        excess = len(self._entries) - self.limit + 1
        if excess <= 0:
            return
        finished = sorted(
            (name for name, e in self._entries.items() if e.finished),
            key=lambda name: self._entries[name].started_at,
        )
        for name in finished[:excess]:
            del self._entries[name]
        if len(self._entries) >= self.limit:
            raise LimitExceeded(
                f"{self.limit} long-running processes are running already; stop one first",
                limit=self.limit,
                size=len(self._entries) + 1,
            )

    def add(self, name: str, entry: E) -> None:
        """Hold ``entry`` as ``name`` (call :meth:`make_room` first)."""
        assert name not in self._entries and len(self._entries) < self.limit
        self._entries[name] = entry
