"""Images of a chat turn: accepted types, base64, signatures, size and count limits."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from builder.errors import ImageTooLarge, InvalidImage
from builder.images import (
    MAX_IMAGES,
    Image,
    check_image_count,
    decode_image,
    image_from_block,
    image_from_file,
    sniff_media_type,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 40
GIF = b"GIF89a" + b"\x00" * 40
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 40
LIMIT = 1024


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("media_type", "data"),
    [("image/png", PNG), ("image/jpeg", JPEG), ("image/gif", GIF), ("image/webp", WEBP)],
)
def test_each_accepted_type_decodes_to_its_bytes(media_type: str, data: bytes) -> None:
    assert sniff_media_type(data) == media_type
    assert decode_image(media_type, b64(data), limit=LIMIT) == Image(media_type, data)


def test_a_type_builder_does_not_take_is_refused_by_name() -> None:
    with pytest.raises(InvalidImage, match=r"image 2: type 'image/svg\+xml' is not accepted"):
        decode_image("image/svg+xml", b64(b"<svg/>"), limit=LIMIT, index=1)


def test_text_that_is_not_base64_is_refused() -> None:
    with pytest.raises(InvalidImage, match="not valid base64"):
        decode_image("image/png", "iVBOR w0K!!", limit=LIMIT)


def test_bytes_of_another_format_than_declared_are_refused() -> None:
    with pytest.raises(InvalidImage, match="declared image/png but its bytes are a JPEG image"):
        decode_image("image/png", b64(JPEG), limit=LIMIT)
    with pytest.raises(InvalidImage, match="declared image/gif but its bytes are not a PNG"):
        decode_image("image/gif", b64(b"hello, world"), limit=LIMIT)


def test_an_image_over_the_limit_is_too_large_with_its_size_and_the_limit() -> None:
    big = PNG + b"\x00" * LIMIT
    with pytest.raises(ImageTooLarge) as caught:
        decode_image("image/png", b64(big), limit=LIMIT, index=2)
    assert (caught.value.index, caught.value.size, caught.value.limit) == (2, len(big), LIMIT)
    assert (
        "image 3 is" in caught.value.message and "BUILDER_MAX_IMAGE_BYTES" in caught.value.message
    )
    exact = PNG + b"\x00" * (LIMIT - len(PNG))
    assert decode_image("image/png", b64(exact), limit=LIMIT).data == exact


def test_a_turn_carries_at_most_four_images() -> None:
    check_image_count([object()] * MAX_IMAGES)
    with pytest.raises(InvalidImage, match="at most 4 images, not 5"):
        check_image_count([object()] * (MAX_IMAGES + 1))


def test_content_blocks_of_each_accepted_form_give_the_image() -> None:
    expected = Image("image/png", PNG)
    for block in (
        {"type": "image", "base64": b64(PNG), "mime_type": "image/png"},
        {"type": "image", "source_type": "base64", "data": b64(PNG), "mime_type": "image/png"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}},
        {"type": "image_url", "image_url": f"data:image/png;base64,{b64(PNG)}"},
    ):
        assert image_from_block(block, limit=LIMIT) == expected
    assert image_from_block({"type": "text", "text": "hi"}, limit=LIMIT) is None
    assert image_from_block("plain text", limit=LIMIT) is None
    assert expected.content_block() == {
        "type": "image",
        "base64": b64(PNG),
        "mime_type": "image/png",
    }


def test_links_and_file_ids_are_refused_not_fetched() -> None:
    for block in (
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image", "url": "https://example.com/cat.png"},
        {"type": "image", "file_id": "file-123"},
    ):
        with pytest.raises(InvalidImage, match="base64"):
            image_from_block(block, limit=LIMIT)


def test_a_file_is_typed_by_its_bytes(tmp_path: Path) -> None:
    (tmp_path / "sketch.jpg").write_bytes(PNG)  # the extension does not matter
    assert image_from_file(tmp_path / "sketch.jpg", limit=LIMIT) == Image("image/png", PNG)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InvalidImage, match=r"notes\.png is not a PNG, JPEG, WebP or GIF image"):
        image_from_file(tmp_path / "notes.png", limit=LIMIT)
    (tmp_path / "big.png").write_bytes(PNG + b"\x00" * LIMIT)
    with pytest.raises(ImageTooLarge):
        image_from_file(tmp_path / "big.png", limit=LIMIT)
    with pytest.raises(InvalidImage, match="cannot be read"):
        image_from_file(tmp_path / "missing.png", limit=LIMIT)
