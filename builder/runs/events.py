"""Run events: what a run reports while it works, and the stream that carries them.

Every run emits a sequence of :class:`RunEvent` — ``queued`` (at once when it is
recorded, then its position while it waits in the run queue, whenever it changes),
``run_started``, ``token``,
``message``, ``tool_start``, ``tool_progress``, ``tool_end``, ``file_changed``,
``snapshot``, ``check``, ``error`` and finally ``run_finished``. A :class:`RunStream` keeps a
bounded replay buffer, so a client that subscribes late (or reconnects) still sees
the run from its beginning as long as the buffer holds it, and any number of clients
can follow one run. With Redis, :mod:`builder.runs.fanout` copies the stream there so
other processes can follow it too.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EVENT_TYPES", "REPLAY_EVENTS", "RunEvent", "RunStream"]

EVENT_TYPES = (
    "queued",
    "run_started",
    "token",
    "message",
    "tool_start",
    "tool_progress",
    "tool_end",
    "file_changed",
    "snapshot",
    "check",
    "error",
    "run_finished",
)

REPLAY_EVENTS = 5000
"""Most events a run's stream keeps for late subscribers."""


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of a run."""

    type: str
    """One of :data:`EVENT_TYPES`."""
    data: dict[str, Any]
    seq: int
    """Position in the run's stream, from 0."""
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data."""
        return {"type": self.type, "seq": self.seq, "at": self.at, **self.data}


class RunStream:
    """A run's events: appended by the run, read by any number of subscribers.

    Args:
        replay: Most events kept for late subscribers; the oldest are dropped first
            (token events are the bulk, and a late reader still gets every message).
    """

    def __init__(self, *, replay: int = REPLAY_EVENTS, first_seq: int = 0) -> None:
        self._events: deque[RunEvent] = deque(maxlen=replay)
        self._next_seq = first_seq
        self._closed = False
        self._changed = asyncio.Condition()

    handed_over = False
    """Closed because another process goes on with the run (no end is published)."""

    @property
    def next_seq(self) -> int:
        """The seq the next event will have."""
        return self._next_seq

    @property
    def closed(self) -> bool:
        """True once the run has finished and no more events will come."""
        return self._closed

    async def publish(self, type_: str, **data: Any) -> RunEvent:
        """Append an event and wake subscribers."""
        event = RunEvent(type=type_, data=data, seq=self._next_seq)
        async with self._changed:
            self._events.append(event)
            self._next_seq += 1
            self._changed.notify_all()
        return event

    def renumber(self, first_seq: int) -> None:
        """Number the next events from ``first_seq`` on (never back): a run taken over
        goes on from where the stream of its earlier attempt stopped, and a worker's
        stream leaves seq 0 to the ``queued`` event of the process that started the run.
        Events already published keep their numbers."""
        self._next_seq = max(self._next_seq, first_seq)

    async def put(self, event: RunEvent) -> None:
        """Append an event numbered elsewhere (a run followed from another process).

        Its ``seq`` is kept, so a client's ``Last-Event-ID`` means the same event in
        every process; an event at or before the last one is ignored.
        """
        async with self._changed:
            if event.seq < self._next_seq:
                return
            self._events.append(event)
            self._next_seq = event.seq + 1
            self._changed.notify_all()

    async def close(self) -> None:
        """Mark the end of the stream."""
        async with self._changed:
            self._closed = True
            self._changed.notify_all()

    async def next_events(self, *, after: int, limit: int | None = None) -> list[RunEvent]:
        """The events with ``seq > after`` (at most ``limit``), waiting until there is one.

        Returns:
            The oldest such events still buffered, in order; an empty list only once the
            stream is closed and every event has been read.
        """
        async with self._changed:
            while True:
                if self._events and self._events[-1].seq > after:
                    start = self._first_after(after)
                    stop = None if limit is None else start + limit
                    return list(itertools.islice(self._events, start, stop))
                if self._closed:
                    return []
                await self._changed.wait()

    def _first_after(self, after: int) -> int:
        """Index of the first buffered event with ``seq > after``."""
        events = self._events
        start = max(0, after + 1 - events[0].seq)
        if events[-1].seq - events[0].seq == len(events) - 1:
            return start  # consecutive seqs: straight to it
        # Gaps (events a crashed process never passed on): search.
        low, high = 0, len(events)
        while low < high:
            middle = (low + high) // 2
            if events[middle].seq > after:
                high = middle
            else:
                low = middle + 1
        return low

    async def subscribe(self, *, after: int = -1) -> AsyncIterator[RunEvent]:
        """Events with ``seq > after``: the buffered ones, then live ones until the end."""
        position = after
        while pending := await self.next_events(after=position):
            for event in pending:
                position = event.seq
                yield event
