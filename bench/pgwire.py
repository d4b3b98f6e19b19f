"""Counting what a workload asks of PostgreSQL: round trips and commits, on the wire.

:class:`WireCounter` is a TCP proxy in front of the server. A round trip is a burst
of client bytes sent after the server last spoke (the client waited for an answer
before sending more); a commit is a ``ReadyForQuery`` back to idle after a
transaction that wrote, in an explicit transaction or an implicit one. A statement
writes when the server says so (``INSERT``, ``UPDATE``, ``DELETE``, ``MERGE``,
``COPY``) or when its text does (a ``SELECT`` whose common table expressions write).
Connect through it with ``sslmode=disable`` (the proxy reads the protocol in the
clear).
"""

from __future__ import annotations

import asyncio
import re
import struct
from dataclasses import dataclass, field

__all__ = ["WireCounter", "WireCounts"]

_WRITES = (b"INSERT", b"UPDATE", b"DELETE", b"MERGE", b"COPY")
_WRITING_TEXT = re.compile(
    rb"\b(INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|MERGE\s+INTO)\b", re.I
)


@dataclass
class WireCounts:
    """What the clients asked of the server so far."""

    round_trips: int = 0
    commits: int = 0


@dataclass
class _ClientStream:
    """Parses the client's messages of one connection: which statements write."""

    server: _ServerStream
    buffer: bytes = b""
    started: bool = False
    writing: dict[bytes, bool] = field(default_factory=dict)

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if not self.started:  # the startup packet (or SSL request) has no type byte
            if len(self.buffer) < 4:
                return
            (length,) = struct.unpack("!I", self.buffer[:4])
            if len(self.buffer) < length:
                return
            self.buffer, self.started = self.buffer[length:], True
        while len(self.buffer) >= 5:
            kind = self.buffer[:1]
            (length,) = struct.unpack("!I", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            body, self.buffer = self.buffer[5 : 1 + length], self.buffer[1 + length :]
            if kind == b"Q" and _WRITING_TEXT.search(body):
                self.server.wrote = True
            elif kind == b"P":
                name, _, rest = body.partition(b"\0")
                self.writing[name] = bool(_WRITING_TEXT.search(rest.partition(b"\0")[0]))
            elif kind == b"B":
                statement = body[body.index(b"\0") + 1 :].partition(b"\0")[0]
                if self.writing.get(statement):
                    self.server.wrote = True


class _ServerStream:
    """Parses the server's messages of one connection, counting commits."""

    def __init__(self, counts: WireCounts) -> None:
        self.counts = counts
        self.buffer = b""
        self.wrote = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 5:
            kind = self.buffer[:1]
            (length,) = struct.unpack("!I", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            body, self.buffer = self.buffer[5 : 1 + length], self.buffer[1 + length :]
            if kind == b"C":
                tag = body.rstrip(b"\0")
                if tag.startswith(_WRITES):
                    self.wrote = True
                elif tag == b"ROLLBACK":
                    self.wrote = False
            elif kind == b"Z" and body[:1] == b"I":
                if self.wrote:
                    self.counts.commits += 1
                self.wrote = False


class WireCounter:
    """A counting proxy to ``host:port``; :attr:`port` is where clients connect."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.counts = WireCounts()
        self.port = 0
        self._server: asyncio.Server | None = None

    def reset(self) -> WireCounts:
        """Return the counts so far and start again from zero."""
        counts, self.counts = self.counts, WireCounts()
        return counts

    async def __aenter__(self) -> WireCounter:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        state = {"server_spoke": True}
        stream = _ServerStream(self.counts)
        client = _ClientStream(stream)

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if state["server_spoke"]:
                    self.counts.round_trips += 1
                    state["server_spoke"] = False
                client.feed(data)
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                state["server_spoke"] = True
                stream.counts = self.counts  # counts may have been reset meanwhile
                stream.feed(data)
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        try:
            await asyncio.gather(upstream(), downstream())
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # the benchmark is over: its event loop cancels open connections
        finally:
            client_w.close()
            server_w.close()
