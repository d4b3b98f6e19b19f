"""A lean HTTP/1.1 client for load benchmarks: one keep-alive connection, spoken with h11.

On a 2-core machine the load generator shares the cores with the server it measures.
An httpx client spends a few milliseconds of CPU per request and per streamed chunk;
fifty of them sending at once take a core for a few hundred milliseconds, which the
server's figures would then include. This client writes requests and parses responses
with h11 (the HTTP/1.1 state machine under httpx) and nothing more, so what it costs is a
small part of what the server spends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import h11

__all__ = ["Connection", "Response", "ServerSentEvent"]

_READ = 65536
_READ_SECONDS = 300.0
"""Longest wait for the server to send anything (a run's stream included)."""


@dataclass
class Response:
    """A response's status, headers (names lower-cased) and, once read, its body."""

    status: int
    headers: dict[str, str]


@dataclass
class ServerSentEvent:
    """One event of a ``text/event-stream`` body."""

    event: str
    data: str

    def json(self) -> object:
        return json.loads(self.data)


class Connection:
    """One HTTP/1.1 connection to ``host:port``, reused request after request.

    Args:
        host: The server's address.
        port: Its port.
        headers: Sent with every request (say, ``authorization``).
    """

    def __init__(self, host: str, port: int, headers: Mapping[str, str] = {}) -> None:
        self.host, self.port = host, port
        self.headers = [("host", f"{host}:{port}"), *headers.items()]
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._h11 = h11.Connection(h11.CLIENT)

    async def open(self) -> None:
        """Connect (before the clock starts, as a browser's connection is open already)."""
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    def _request_bytes(self, method: str, target: str, body: bytes | None) -> bytes:
        headers = list(self.headers)
        if body is not None:
            headers += [("content-type", "application/json"), ("content-length", str(len(body)))]
        out = self._h11.send(h11.Request(method=method, target=target, headers=headers)) or b""
        if body is not None:
            out += self._h11.send(h11.Data(data=body)) or b""
        return out + (self._h11.send(h11.EndOfMessage()) or b"")

    async def _next(self) -> h11.Event | type[h11.PAUSED]:
        assert self._reader is not None
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                async with asyncio.timeout(_READ_SECONDS):
                    data = await self._reader.read(_READ)
                self._h11.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection")
            return event

    async def _send(self, method: str, target: str, json_body: object) -> Response:
        assert self._writer is not None
        body = None if json_body is None else json.dumps(json_body).encode()
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        self._writer.write(self._request_bytes(method, target, body))
        while True:
            event = await self._next()
            if isinstance(event, h11.Response):
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                return Response(event.status_code, headers)

    async def body(self) -> AsyncIterator[bytes]:
        """The rest of the current response's body, chunk by chunk."""
        while True:
            event = await self._next()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return

    async def request(
        self, method: str, target: str, *, json_body: object = None
    ) -> tuple[Response, bytes]:
        """Send a request and read its whole response."""
        response = await self._send(method, target, json_body)
        return response, b"".join([chunk async for chunk in self.body()])

    async def events(
        self, method: str, target: str, *, json_body: object = None
    ) -> tuple[Response, AsyncIterator[ServerSentEvent]]:
        """Send a request and iterate the events of its ``text/event-stream`` answer
        (when it is not one, read its body with :meth:`body` instead)."""
        response = await self._send(method, target, json_body)
        return response, self._events()

    async def _events(self) -> AsyncIterator[ServerSentEvent]:
        pending = b""
        async for chunk in self.body():
            pending += chunk
            # Events end with a blank line (the server writes CRLF line ends).
            *complete, pending = pending.replace(b"\r\n", b"\n").split(b"\n\n")
            for block in complete:
                event, data = "message", []
                for line in block.decode().split("\n"):
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))  # one space, as the spec says
                if data or event != "message":
                    yield ServerSentEvent(event, "\n".join(data))
