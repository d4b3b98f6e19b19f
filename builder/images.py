"""Images a person attaches to a chat turn, and those a tool shows the model.

An :class:`Image` is checked once, where it enters builder (the REST chat body, a
LangGraph message's content blocks, ``builder run --image``): its declared type must
be PNG, JPEG, WebP or GIF, its bytes must start with that format's signature, and it
must fit ``BUILDER_MAX_IMAGE_BYTES``; a turn carries at most :data:`MAX_IMAGES`.
In the agent's context an image is LangChain's standard image content block, which
each provider integration turns into its own wire format (an ``image_url`` data URL
for OpenAI, a base64 ``source`` for Anthropic).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import ImageTooLarge, InvalidImage

__all__ = [
    "MAX_IMAGES",
    "MEDIA_TYPES",
    "Image",
    "check_image_count",
    "decode_image",
    "image_from_block",
    "image_from_file",
    "sniff_media_type",
]

MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
"""The image types a chat turn may carry (those every supported provider reads)."""
MAX_IMAGES = 4
"""Most images one chat turn may carry."""

_NAMES = "a PNG, JPEG, WebP or GIF image"


@dataclass(frozen=True, slots=True)
class Image:
    """An image's type and bytes, checked."""

    media_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        """The SHA-256 of the bytes (the image's blob key)."""
        return hashlib.sha256(self.data).hexdigest()

    def content_block(self) -> dict[str, Any]:
        """LangChain's standard base64 image block."""
        return {
            "type": "image",
            "base64": base64.b64encode(self.data).decode("ascii"),
            "mime_type": self.media_type,
        }


def sniff_media_type(data: bytes) -> str | None:
    """The image type the bytes' signature says, or None for none of :data:`MEDIA_TYPES`."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _checked(media_type: str, data: bytes, *, limit: int, index: int) -> Image:
    if media_type not in MEDIA_TYPES:
        raise InvalidImage(
            f"type {media_type!r} is not accepted; use one of {', '.join(MEDIA_TYPES)}",
            index=index,
        )
    if len(data) > limit:
        raise ImageTooLarge(index=index, size=len(data), limit=limit)
    found = sniff_media_type(data)
    if found != media_type:
        what = f"a {found.removeprefix('image/').upper()} image" if found else f"not {_NAMES}"
        raise InvalidImage(f"declared {media_type} but its bytes are {what}", index=index)
    return Image(media_type, data)


def decode_image(media_type: str, data: str, *, limit: int, index: int = 0) -> Image:
    """An image from its declared type and base64 text.

    Args:
        media_type: The declared type, one of :data:`MEDIA_TYPES`.
        data: Standard base64 (padding required, no line breaks).
        limit: Most decoded bytes (``BUILDER_MAX_IMAGE_BYTES``).
        index: Its position in the turn, for messages.

    Raises:
        ImageTooLarge: More than ``limit`` bytes.
        InvalidImage: Another type, text that is not base64, or bytes of another format.
    """
    if media_type not in MEDIA_TYPES:
        _checked(media_type, b"", limit=limit, index=index)
    size = len(data) * 3 // 4 - (len(data) - len(data.rstrip("=")))
    if size > limit:  # refused before decoding it (exact for valid base64)
        raise ImageTooLarge(index=index, size=size, limit=limit)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("its data is not valid base64", index=index) from None
    return _checked(media_type, raw, limit=limit, index=index)


def image_from_file(path: Path, *, limit: int, index: int = 0) -> Image:
    """An image read from a file; its type is what its bytes say.

    Raises:
        InvalidImage: The file cannot be read or is not an accepted image.
        ImageTooLarge: The file is larger than ``limit``.
    """
    try:
        size = path.stat().st_size
        if size > limit:
            raise ImageTooLarge(index=index, size=size, limit=limit)
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidImage(f"{path} cannot be read: {exc.strerror}", index=index) from None
    found = sniff_media_type(data)
    if found is None:
        raise InvalidImage(f"{path} is not {_NAMES}", index=index)
    return _checked(found, data, limit=limit, index=index)


def _data_url(url: str, *, limit: int, index: int) -> Image:
    head, sep, data = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise InvalidImage(
            "only base64 data URLs (data:image/png;base64,...) are accepted, not links",
            index=index,
        )
    return decode_image(head[5:-7], data, limit=limit, index=index)


def image_from_block(block: Any, *, limit: int, index: int = 0) -> Image | None:
    """The image of a message content block; None for a block that is not an image.

    Accepts LangChain's standard image block (``{"type": "image", "base64": ...,
    "mime_type": ...}``, or the older ``"source_type": "base64", "data": ...``) and
    OpenAI's ``{"type": "image_url", "image_url": {"url": "data:...;base64,..."}}``.

    Raises:
        InvalidImage: An image block builder cannot take (a link, a file id, a bad type
            or encoding).
        ImageTooLarge: The image is larger than ``limit``.
    """
    if not isinstance(block, dict):
        return None
    kind = block.get("type")
    if kind == "image_url":
        target = block.get("image_url")
        url = target.get("url") if isinstance(target, dict) else target
        return _data_url(str(url or ""), limit=limit, index=index)
    if kind != "image":
        return None
    media_type = str(block.get("mime_type") or "")
    if isinstance(block.get("base64"), str):
        return decode_image(media_type, block["base64"], limit=limit, index=index)
    if block.get("source_type") == "base64" and isinstance(block.get("data"), str):
        return decode_image(media_type, block["data"], limit=limit, index=index)
    if isinstance(block.get("url"), str) and block["url"].startswith("data:"):
        return _data_url(block["url"], limit=limit, index=index)
    raise InvalidImage(
        "an image block must carry its bytes as base64 (links and file ids are not fetched)",
        index=index,
    )


def check_image_count(images: Sequence[object]) -> None:
    """Refuse more than :data:`MAX_IMAGES` images in one turn.

    Raises:
        InvalidImage: Too many images.
    """
    if len(images) > MAX_IMAGES:
        raise InvalidImage(f"a turn may carry at most {MAX_IMAGES} images, not {len(images)}")
