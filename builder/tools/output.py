"""Keeping tool results short enough for the model's context."""

from __future__ import annotations

__all__ = ["truncate"]


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
