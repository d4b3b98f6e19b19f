"""Between the durable conversation (``messages`` table) and the agent's context.

* :func:`rebuild_context` — the state a new or expired context starts from: the
  project's recent messages (with the images the user attached) and its latest
  snapshot's manifest. The user loses nothing when a context expires; the agent only
  forgets tool-call details.
* :func:`user_message` — a user's turn as the model sees it: text, then images.
* :class:`ReplyParts` — collects a turn's text and tool calls into the ``parts`` of
  the assistant message stored at the end of the turn.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage

from builder.concurrency import all_of
from builder.graphs.toolcalls import preview_args
from builder.images import Image
from builder.persistence.database import Database
from builder.persistence.messages import list_messages, message_images
from builder.persistence.schemas import MessagePublic, Page
from builder.persistence.snapshots import list_snapshots, tree

__all__ = ["ReplyParts", "rebuild_context", "user_message"]

_REBUILD_MESSAGES = 60


async def rebuild_context(
    db: Database, *, project_id: uuid.UUID, exclude: uuid.UUID | None = None
) -> dict[str, Any]:
    """Initial graph state for a project whose context is gone (new or expired).

    Args:
        db: The database.
        project_id: The project.
        exclude: A message not to include (the one starting this turn).

    Returns:
        ``messages`` (recent user and assistant text), ``files`` (the latest
        snapshot's manifest, nothing ``unsaved``) and ``snapshot_version``.
    """

    async def recent() -> tuple[Page[MessagePublic], dict[uuid.UUID, list[Image]]]:
        page = await list_messages(
            db, project_id=project_id, limit=_REBUILD_MESSAGES, newest_first=True
        )
        return page, await message_images(db, (m for m in page.items if m.role == "user"))

    (page, images), files, latest = await all_of(
        recent(),
        tree(db, project_id=project_id),
        list_snapshots(db, project_id=project_id, limit=1),
    )
    messages: list[AnyMessage] = []
    for stored in reversed(page.items):
        if stored.id == exclude or not stored.content.strip():
            continue
        if stored.role == "user":
            messages.append(
                user_message(stored.content, images.get(stored.id, ()), message_id=stored.id)
            )
        elif stored.role == "assistant":
            messages.append(AIMessage(stored.content, id=f"msg-{stored.id}"))
    while messages and not isinstance(messages[0], HumanMessage):
        messages.pop(0)  # a window starts with the user
    manifest = {path: entry.sha256 for path, entry in files.items()}
    version = latest.items[0].version if latest.items else None
    return {
        "messages": messages,
        "files": manifest,
        "unsaved": {},
        "snapshot_version": version,
    }


def user_message(
    text: str, images: Sequence[Image] = (), *, message_id: uuid.UUID | None
) -> HumanMessage:
    """A user's message for the context: plain text, or a text block then image blocks."""
    ident = f"msg-{message_id}" if message_id is not None else None
    if not images:
        return HumanMessage(text, id=ident)
    blocks: list[str | dict[str, Any]] = [{"type": "text", "text": text}]
    blocks.extend(image.content_block() for image in images)
    return HumanMessage(blocks, id=ident)


class ReplyParts:
    """The parts of a turn's assistant message: text and tool calls, in order."""

    def __init__(self, *, result_chars: int = 400, max_parts: int = 400) -> None:
        self.parts: list[dict[str, Any]] = []
        self._calls: dict[str, dict[str, Any]] = {}
        self._result_chars = result_chars
        self._max_parts = max_parts

    def add_model_message(self, message: AIMessage) -> None:
        """Record a model message's text and tool calls."""
        text = message.content if isinstance(message.content, str) else message.text
        if text.strip():
            self._append({"type": "text", "text": text})
        for call in message.tool_calls:
            part = {
                "type": "tool-call",
                "tool": call["name"],
                "call_id": call.get("id"),
                "args": preview_args(call.get("args", {})),
                "ok": None,
                "result": None,
            }
            if self._append(part) and call.get("id"):
                self._calls[str(call["id"])] = part

    def add_tool_result(self, message: ToolMessage) -> None:
        """Attach a tool result to its call."""
        part = self._calls.pop(message.tool_call_id, None)
        if part is not None:
            text = message.content if isinstance(message.content, str) else message.text
            part["ok"] = message.status != "error"
            part["result"] = text[: self._result_chars]

    def add_check(self, text: str) -> None:
        """Record the verdict of the end-of-turn check."""
        self._append({"type": "check", "text": text})

    @property
    def reply(self) -> str:
        """The text of the last text part (the model's final answer), followed by the
        end-of-turn check's verdict when there is one."""
        verdicts: list[str] = []
        for part in reversed(self.parts):
            if part["type"] == "check":
                verdicts.insert(0, str(part["text"]))
            elif part["type"] == "text":
                return "\n\n".join([str(part["text"]), *verdicts])
        return "\n\n".join(verdicts)

    def _append(self, part: dict[str, Any]) -> bool:
        if len(self.parts) >= self._max_parts:
            return False
        self.parts.append(part)
        return True
