"""Tool results: kept short enough for the model's context, and with images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from builder.images import Image

__all__ = ["ToolContent", "WithImages", "truncate"]

ToolContent = str | list[str | dict[str, Any]]
"""What a tool call answers the model: text, or content blocks (text, then images)."""


@dataclass(frozen=True, slots=True)
class WithImages:
    """A tool result the model reads as text followed by images.

    Return it from a tool to show the model an image (a screenshot); models that
    cannot take images in a tool result get them in a user message right after.
    """

    text: str
    images: Sequence[Image]

    def content(self, limit: int) -> ToolContent:
        """The text (cut to ``limit``) then an image block per image."""
        blocks: list[str | dict[str, Any]] = [{"type": "text", "text": truncate(self.text, limit)}]
        blocks.extend(image.content_block() for image in self.images)
        return blocks


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, saying how much was left out.

    The beginning and the end are kept (errors tend to be at the end of command
    output); the middle gives way to a note with the number of characters cut.

    Args:
        text: The full result.
        limit: The most characters the result may have (at least 100).
    """
    if len(text) <= limit:
        return text
    # The note's length depends on the count it prints; reserve room for the widest.
    note_room = len(f"\n[… {len(text):,} characters cut …]\n")
    keep = max(limit - note_room, 0)
    head = keep * 2 // 3
    tail = keep - head
    cut = len(text) - head - tail
    note = f"\n[… {cut:,} characters cut …]\n"
    return text[:head] + note + (text[len(text) - tail :] if tail else "")
