"""A real HTTP server speaking the OpenAI chat-completions API, for model tests.

It listens on 127.0.0.1, answers ``POST /v1/chat/completions`` from a queue of
:class:`Reply` objects (the last one repeats), and records every request body
(:class:`~tests.support.fake_provider.FakeProvider`). A reply can be an error status
with headers (``Retry-After``), a completion (sent as server-sent events when the
request asks to stream), or a hang that never answers. Like the real API it refuses
(400) tool calls left unanswered and images in any message but a user's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.support.fake_provider import Exchange, FakeProvider

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


def _images_outside_user_messages(messages: list[dict[str, Any]]) -> str | None:
    """OpenAI's check: image content is only allowed in user messages."""
    for index, message in enumerate(messages):
        content = message.get("content")
        if message.get("role") == "user" or not isinstance(content, list):
            continue
        if any(isinstance(part, dict) and part.get("type") == "image_url" for part in content):
            return (
                f"Invalid 'messages[{index}]'. Image URLs are only allowed for messages with "
                f"role 'user', but this message with role '{message.get('role')}' contains "
                "an image URL."
            )
    return None


class OpenAIServer(FakeProvider[Reply]):
    """The server; use it as a context manager.

    Args:
        *replies: Answers in order; the last one answers every later request.
    """

    route = "/v1/chat/completions"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (ends in ``/v1``)."""
        return f"{self.origin}/v1"

    def default_reply(self) -> Reply:
        return completion("ok")

    def answer(self, exchange: Exchange, body: dict[str, Any]) -> None:
        messages = body.get("messages", [])
        problem = _unanswered_tool_calls(messages) or _images_outside_user_messages(messages)
        if problem:
            self.record_refused(body)
            exchange.send_json(400, {"error": {"message": problem, "code": None}})
            return
        reply = self.next_reply(body, exchange.header_map)
        if reply.hang:
            self.stopping.wait()
            exchange.close_connection = True
            return
        if reply.status == 200 and body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = _stream_events(reply, include_usage)
            exchange.send_events(((None, event) for event in events), done=True)
            return
        exchange.send_json(reply.status, reply.body, reply.headers)
