"""Opaque pagination cursors.

A cursor is the sort key of the last item of a page, as base64url-encoded JSON tagged
with what it pages, so a cursor from one listing is refused by another instead of
silently skipping rows. Callers must treat it as an opaque string.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from builder.errors import InvalidInput

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(kind: str, *values: Any) -> str:
    """A cursor for ``kind`` holding the JSON values of a sort key."""
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, *, size: int) -> list[Any]:
    """The sort key in a cursor made by :func:`encode_cursor` for the same ``kind``.

    Raises:
        InvalidInput: The cursor is malformed or belongs to another listing.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidInput("malformed pagination cursor") from None
    if not isinstance(decoded, list) or len(decoded) != size + 1 or decoded[0] != kind:
        raise InvalidInput("pagination cursor does not belong to this listing")
    return decoded[1:]
