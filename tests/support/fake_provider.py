"""What every fake model provider shares: a real HTTP server on 127.0.0.1 answering one
``POST`` route from a queue of replies (the last one repeats), recording each request
body and its headers, and writing JSON or server-sent events.

A provider (``tests/models/openai_server.py``, ``anthropic_server.py``) subclasses
:class:`FakeProvider`, names its route and writes its own answers in :meth:`answer`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Generic, Self, TypeVar

__all__ = ["Exchange", "FakeProvider"]

R = TypeVar("R")


class Exchange(BaseHTTPRequestHandler):
    """One request: its parsed body, and ways to answer it."""

    protocol_version = "HTTP/1.1"
    # Each event leaves at once, as a provider streaming tokens sends them.
    disable_nagle_algorithm = True
    provider: FakeProvider[Any]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.split("?")[0].rstrip("/") != self.provider.route:
            self.send_json(404, self.provider.not_found(self.path))
            return
        self.provider.answer(self, body)

    @property
    def header_map(self) -> dict[str, str]:
        """The request's headers, names in lower case."""
        return {name.lower(): value for name, value in self.headers.items()}

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Answer with a JSON body."""
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_events(self, events: Iterable[tuple[str | None, Any]], *, done: bool = False) -> None:
        """Answer with server-sent events, ``(event name or None, JSON data)`` each,
        flushed one by one (all at once with ``provider.burst``); ``done`` ends with
        OpenAI's ``data: [DONE]``."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        lines = [
            (f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n"
            for name, data in events
        ]
        if done:
            lines.append("data: [DONE]\n\n")
        for chunk in ["".join(lines)] if self.provider.burst else lines:
            self.wfile.write(chunk.encode())
            self.wfile.flush()
        self.close_connection = True


class FakeProvider(Generic[R]):
    """The server; use it as a context manager.

    Args:
        *replies: Answers in order; the last one answers every later request.
    """

    route: ClassVar[str]
    """The one path answered, e.g. ``/v1/chat/completions``."""
    burst: bool = False
    """Write a stream's events in one piece: a benchmark measures what the client does
    with them, not how the host schedules one write per event."""

    def __init__(self, *replies: R) -> None:
        self._replies = list(replies) or [self.default_reply()]
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        handler = type("Handler", (Exchange,), {"provider": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def next_reply(self, body: dict[str, Any], headers: dict[str, str]) -> R:
        """Record the request and take the next reply."""
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            return self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]

    def record_refused(self, body: dict[str, Any]) -> None:
        """Record a request refused before it took a reply."""
        with self._lock:
            self.requests.append(body)

    def default_reply(self) -> R:
        """The reply when none is given."""
        raise NotImplementedError

    def not_found(self, path: str) -> Any:
        """The JSON body of a 404."""
        return {"error": {"message": f"no route {path}"}}

    def answer(self, exchange: Exchange, body: dict[str, Any]) -> None:
        """Answer one request to :attr:`route`."""
        raise NotImplementedError
