"""A real HTTP server speaking Anthropic's Messages API, for model tests.

It listens on 127.0.0.1, answers ``POST /v1/messages`` from a queue of replies (the
last one repeats) and records every request body and its headers. A request asking to
stream gets Anthropic's server-sent events: ``message_start`` (with input and cache
usage), per content block ``content_block_start``, ``content_block_delta``
(``text_delta`` in small pieces, ``input_json_delta`` for tool input, split in two)
and ``content_block_stop``, then ``message_delta`` (stop reason and the cumulative usage,
input and cache tokens included) and ``message_stop``. Otherwise the whole message is one JSON body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["AnthropicServer", "Message", "message"]


@dataclass
class Message:
    """One answer: content blocks, a stop reason and usage."""

    content: list[dict[str, Any]]
    stop_reason: str
    usage: dict[str, int] = field(default_factory=dict)
    status: int = 200
    error: dict[str, Any] | None = None


def message(
    text: str = "",
    *,
    tool_uses: list[dict[str, Any]] | None = None,
    usage: tuple[int, int] = (12, 7),
    cache: tuple[int, int] = (0, 0),
) -> Message:
    """A reply with text and tool uses; ``cache`` is (created, read) input tokens."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for n, use in enumerate(tool_uses or []):
        content.append(
            {
                "type": "tool_use",
                "id": use.get("id", f"toolu_{n}"),
                "name": use["name"],
                "input": use["input"],
            }
        )
    created, read = cache
    return Message(
        content=content,
        stop_reason="tool_use" if tool_uses else "end_turn",
        usage={
            "input_tokens": usage[0],
            "output_tokens": usage[1],
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
        },
    )


def _events(reply: Message, model: str) -> Iterator[tuple[str, dict[str, Any]]]:
    start_usage = dict(reply.usage, output_tokens=1)
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_test",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
    )
    for index, block in enumerate(reply.content):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            text = block["text"]
            for start in range(0, len(text), 5):
                delta = {"type": "text_delta", "text": text[start : start + 5]}
                yield (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
            raw = json.dumps(block["input"])
            half = len(raw) // 2
            for part in (raw[:half], raw[half:]):
                delta = {"type": "input_json_delta", "partial_json": part}
                yield (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
            # Cumulative, as the API reports it: input and cache tokens included.
            "usage": dict(reply.usage),
        },
    )
    yield "message_stop", {"type": "message_stop"}


class AnthropicServer:
    """The server; use it as a context manager. ``base_url`` has no ``/v1``."""

    def __init__(self, *replies: Message) -> None:
        self._replies = list(replies) or [message("ok")]
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> AnthropicServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Message:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            return self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.split("?")[0].rstrip("/") != "/v1/messages":
                    self._json(
                        404,
                        {
                            "type": "error",
                            "error": {"type": "not_found_error", "message": self.path},
                        },
                    )
                    return
                reply = server._next(body, {k.lower(): v for k, v in self.headers.items()})
                if reply.status != 200:
                    self._json(reply.status, {"type": "error", "error": reply.error or {}})
                    return
                model = str(body.get("model", "claude-test"))
                if body.get("stream"):
                    self._stream(_events(reply, model))
                    return
                self._json(
                    200,
                    {
                        "id": "msg_test",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": reply.content,
                        "stop_reason": reply.stop_reason,
                        "stop_sequence": None,
                        "usage": reply.usage,
                    },
                )

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, events: Iterator[tuple[str, dict[str, Any]]]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for name, data in events:
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                    self.wfile.flush()
                self.close_connection = True

        return Handler
