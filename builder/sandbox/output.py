"""Bounded output: what a command printed, and what a long-running process printed lately.

:class:`OutputCapture` keeps the head and the tail of a command's output within a byte
cap and counts what it cut; :class:`LogRing` keeps the last lines of a long-running
process. Both stay the same size however much is written to them.
"""

from __future__ import annotations

from collections import deque

__all__ = ["DEFAULT_LOG_LINES", "MAX_LINE_CHARS", "LogRing", "OutputCapture"]

DEFAULT_LOG_LINES = 500
"""Lines a long-running process's ring buffer keeps."""
MAX_LINE_CHARS = 2000
"""Longer lines are cut: one minified bundle must not evict the whole log."""


class OutputCapture:
    """The first and last bytes of a stream, at most ``limit`` bytes in all.

    The head shows how the command started, the tail how it ended (where build errors
    are); the middle is cut and counted in :attr:`truncated_bytes`.

    Args:
        limit: Most bytes kept.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self._head_limit = self.limit - self.limit // 2
        self._tail_limit = self.limit // 2
        self._head = bytearray()
        self._tail = bytearray()
        self.total_bytes = 0

    def feed(self, chunk: bytes) -> None:
        """Add output."""
        self.total_bytes += len(chunk)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self._tail_limit:
            self._tail += chunk
            if len(self._tail) > self._tail_limit:
                del self._tail[: len(self._tail) - self._tail_limit]

    @property
    def truncated_bytes(self) -> int:
        """Bytes written but not kept."""
        return self.total_bytes - len(self._head) - len(self._tail)

    def text(self) -> str:
        """The kept output as text, with a marker where bytes were cut."""
        head = self._head.decode("utf-8", errors="replace")
        if not self.truncated_bytes:
            return head + self._tail.decode("utf-8", errors="replace")
        marker = f"\n[... {self.truncated_bytes} bytes cut ...]\n"
        return head + marker + self._tail.decode("utf-8", errors="replace")


class LogRing:
    """The most recent lines of a process's output.

    Args:
        maxlen: Lines kept; older ones are dropped.
    """

    def __init__(self, maxlen: int = DEFAULT_LOG_LINES) -> None:
        self._lines: deque[str] = deque(maxlen=maxlen)
        self._partial = ""

    def feed(self, data: bytes | str) -> None:
        """Add output; complete lines enter the ring, a trailing partial line waits."""
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        pieces = (self._partial + text).split("\n")
        self._partial = pieces.pop()[: MAX_LINE_CHARS + 1]
        for piece in pieces:
            self._append(piece)

    def add_line(self, line: str) -> None:
        """Add one complete line (a trailing newline is dropped)."""
        self._append(line.removesuffix("\n"))

    def flush(self) -> None:
        """Move a pending partial line into the ring (the stream has ended)."""
        if self._partial:
            self._append(self._partial)
            self._partial = ""

    def tail(self, count: int) -> list[str]:
        """The last ``count`` lines, oldest first (a pending partial line included)."""
        lines = list(self._lines)
        if self._partial:
            lines.append(self._partial[:MAX_LINE_CHARS])
        return lines[-count:] if count > 0 else []

    def _append(self, line: str) -> None:
        line = line.removesuffix("\r")
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + " [line cut]"
        self._lines.append(line)
