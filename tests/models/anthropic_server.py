"""A real HTTP server speaking Anthropic's Messages API, for model tests.

It listens on 127.0.0.1, answers ``POST /v1/messages`` from a queue of replies (the
last one repeats) and records every request body and its headers
(:class:`~tests.support.fake_provider.FakeProvider`). A request asking to
stream gets Anthropic's server-sent events: ``message_start`` (with input and cache
usage), per content block ``content_block_start``, ``content_block_delta``
(``text_delta`` in small pieces, ``input_json_delta`` for tool input, split in two)
and ``content_block_stop``, then ``message_delta`` (stop reason and the cumulative usage,
input and cache tokens included) and ``message_stop``. Otherwise the whole message is one JSON body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.support.fake_provider import Exchange, FakeProvider

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


class AnthropicServer(FakeProvider[Message]):
    """The server; use it as a context manager. ``base_url`` has no ``/v1``."""

    route = "/v1/messages"

    @property
    def base_url(self) -> str:
        return self.origin

    def default_reply(self) -> Message:
        return message("ok")

    def not_found(self, path: str) -> Any:
        return {"type": "error", "error": {"type": "not_found_error", "message": path}}

    def answer(self, exchange: Exchange, body: dict[str, Any]) -> None:
        reply = self.next_reply(body, exchange.header_map)
        if reply.status != 200:
            exchange.send_json(reply.status, {"type": "error", "error": reply.error or {}})
            return
        model = str(body.get("model", "claude-test"))
        if body.get("stream"):
            exchange.send_events(_events(reply, model))
            return
        exchange.send_json(
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
