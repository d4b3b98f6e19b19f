"""Thumbnails of a project's newest screenshot: WebP at two widths, named by content.

When a screenshot is stored, its top 16:10 part is scaled to :data:`WIDTHS` and encoded
as WebP (Pillow) beside it, in ``<data dir>/screenshots/<project>/thumbs/``, as
``<hash>-<width>.webp`` where ``<hash>`` is the first 16 hex digits of the screenshot's
SHA-256; ``latest.json`` names the current set. A file's name changes whenever its
content does, so it is served with a year-long, immutable cache lifetime; older sets are
removed when a new one is made.

Pillow comes with the ``screenshot`` extra, like the browser that takes the
screenshots; without it a screenshot is kept and simply has no thumbnails.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

from pydantic import BaseModel, ValidationError

from builder.errors import DependencyUnavailable, NotFound
from builder.log import get_logger

__all__ = [
    "CACHE_FOREVER",
    "WIDTHS",
    "Thumbnail",
    "ThumbnailSize",
    "latest_thumbnail",
    "make_thumbnails",
    "thumbnail_path",
    "try_make_thumbnails",
]

_log = get_logger("builder.http.thumbnails")
WIDTHS = (320, 640)
"""A card's image at 1x and 2x (or a wide card)."""
CACHE_FOREVER = "private, max-age=31536000, immutable"
_ASPECT = 10 / 16
_QUALITY = 80
_NAME = re.compile(r"^[0-9a-f]{16}-[0-9]{2,4}\.webp$")
_MANIFEST = "latest.json"


class ThumbnailSize(BaseModel):
    """One encoded size."""

    name: str
    """The file's name: ``<hash>-<width>.webp``."""
    width: int
    height: int
    bytes: int


class Thumbnail(BaseModel):
    """The thumbnails of a project's newest screenshot, smallest first."""

    hash: str
    sizes: list[ThumbnailSize]


def _folder(screenshots: Path) -> Path:
    return screenshots / "thumbs"


def make_thumbnails(screenshots: Path, image: bytes) -> Thumbnail:
    """Encode ``image`` (a screenshot) at every width of :data:`WIDTHS` and make it current.

    Args:
        screenshots: The project's screenshot folder.
        image: The screenshot (PNG, or any format Pillow reads).

    Raises:
        DependencyUnavailable: Pillow is not installed (the ``screenshot`` extra).
    """
    try:
        from PIL import Image
    except ImportError:
        raise DependencyUnavailable(
            "pillow", "thumbnails need Pillow: pip install 'builder-agent[screenshot]'"
        ) from None
    digest = hashlib.sha256(image).hexdigest()[:16]
    folder = _folder(screenshots)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = []
    with Image.open(io.BytesIO(image)) as source:
        picture = source.convert("RGB")
    top = picture.crop((0, 0, picture.width, min(picture.height, round(picture.width * _ASPECT))))
    for width in WIDTHS:
        height = max(1, round(top.height * width / top.width))
        scaled = top.resize((width, height), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        scaled.save(buffer, "WEBP", quality=_QUALITY, method=4)
        name = f"{digest}-{width}.webp"
        partial = folder / f".{name}.partial"
        partial.write_bytes(buffer.getvalue())
        partial.replace(folder / name)
        sizes.append(ThumbnailSize(name=name, width=width, height=height, bytes=buffer.tell()))
    thumbnail = Thumbnail(hash=digest, sizes=sizes)
    manifest = folder / f".{_MANIFEST}.partial"
    manifest.write_text(thumbnail.model_dump_json())
    manifest.replace(folder / _MANIFEST)
    for old in folder.glob("*.webp"):
        if not old.name.startswith(digest):
            old.unlink(missing_ok=True)
    return thumbnail


def try_make_thumbnails(screenshots: Path, image: bytes) -> Thumbnail | None:
    """:func:`make_thumbnails`, or None (logged) when Pillow is missing or cannot read it."""
    try:
        return make_thumbnails(screenshots, image)
    except DependencyUnavailable as exc:
        _log.warning("thumbnails_skipped", reason=exc.message)
    except (OSError, ValueError) as exc:  # Pillow's UnidentifiedImageError is an OSError
        _log.warning("thumbnails_failed", error=type(exc).__name__)
    return None


def latest_thumbnail(screenshots: Path) -> Thumbnail | None:
    """The current thumbnails of a project's screenshots, or None when there are none."""
    try:
        return Thumbnail.model_validate_json((_folder(screenshots) / _MANIFEST).read_bytes())
    except (OSError, ValidationError):
        return None


def thumbnail_path(screenshots: Path, name: str) -> Path:
    """The file of one thumbnail.

    Raises:
        NotFound: A malformed name, or no such file.
    """
    path = _folder(screenshots) / name
    if not _NAME.fullmatch(name) or not path.is_file():
        raise NotFound("thumbnail", name)
    return path
