"""A real HTTP server speaking the OpenAI chat-completions API, for model tests.

It listens on 127.0.0.1, answers ``POST /v1/chat/completions`` from a queue of
:class:`Reply` objects (the last one repeats), and records every request body. A reply
can be an error status with headers (``Retry-After``), a completion (sent as
server-sent events when the request asks to stream), or a hang that never answers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["OpenAIServer", "Reply", "completion", "error"]


@dataclass
class Reply:
    """One answer of the server."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


def completion(
    content: str | None = "",
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    usage: tuple[int, int] = (12, 7),
    model: str = "test-model",
    finish_reason: str | None = None,
) -> Reply:
    """A successful chat completion with usage.

    A tool call is ``{"name", "args"}`` (sent as JSON) or ``{"name", "raw"}`` (the
    arguments string sent as is, e.g. invalid JSON).
    """
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": call.get("id", f"call_{n}"),
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": call["raw"] if "raw" in call else json.dumps(call["args"]),
                },
            }
            for n, call in enumerate(tool_calls)
        ]
    prompt_tokens, completion_tokens = usage
    return Reply(
        body={
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def error(status: int, message: str = "error", *, code: str | None = None, **headers: str) -> Reply:
    """An OpenAI-style error answer; keyword headers use ``_`` for ``-``."""
    return Reply(
        status=status,
        body={"error": {"message": message, "type": "test_error", "code": code}},
        headers={name.replace("_", "-"): value for name, value in headers.items()},
    )


def _stream_events(reply: Reply, include_usage: bool) -> Iterator[dict[str, Any]]:
    body = reply.body
    choice = body["choices"][0]
    base = {k: body[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return base | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    content = choice["message"].get("content") or ""
    for start in range(0, len(content), 4):
        yield chunk({"content": content[start : start + 4]})
    for index, call in enumerate(choice["message"].get("tool_calls", [])):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        yield chunk(
            {
                "tool_calls": [
                    {"index": index, "function": {"arguments": call["function"]["arguments"]}}
                ]
            }
        )
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield base | {"choices": [], "usage": body["usage"]}


def _unanswered_tool_calls(messages: list[dict[str, Any]]) -> str | None:
    """OpenAI's check: every tool call of an assistant message has a tool message next."""
    for index, message in enumerate(messages):
        calls = message.get("tool_calls") or []
        if message.get("role") != "assistant" or not calls:
            continue
        answered = set()
        for later in messages[index + 1 :]:
            if later.get("role") != "tool":
                break
            answered.add(later.get("tool_call_id"))
        missing = [call["id"] for call in calls if call["id"] not in answered]
        if missing:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. The following tool_call_ids did not "
                f"have response messages: {', '.join(missing)}"
            )
    return None


class OpenAIServer:
    """The server; use it as a context manager.

    Args:
        *replies: Answers in order; the last one answers every later request.
    """

    def __init__(self, *replies: Reply) -> None:
        self._replies = list(replies) or [completion("ok")]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (ends in ``/v1``)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next_reply(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
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
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send_json(404, {"error": {"message": f"no route {self.path}"}}, {})
                    return
                problem = _unanswered_tool_calls(body.get("messages", []))
                if problem:
                    server.requests.append(body)
                    self._send_json(400, {"error": {"message": problem, "code": None}}, {})
                    return
                reply = server._next_reply(body, {k.lower(): v for k, v in self.headers.items()})
                if reply.hang:
                    server._stopping.wait()
                    self.close_connection = True
                    return
                if reply.status == 200 and body.get("stream"):
                    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                    self._send_stream(_stream_events(reply, include_usage))
                    return
                self._send_json(reply.status, reply.body, reply.headers)

            def _send_json(
                self, status: int, body: dict[str, Any], headers: dict[str, str]
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _send_stream(self, events: Iterator[dict[str, Any]]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for event in events:
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

        return Handler
