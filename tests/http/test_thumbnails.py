"""Thumbnails: a screenshot becomes WebP at two widths, named by its content, listed with
the project and served to its owner only, cached for a year."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from PIL import Image

from builder.errors import DependencyUnavailable, NotFound
from builder.http.thumbnails import (
    CACHE_FOREVER,
    latest_thumbnail,
    make_thumbnails,
    thumbnail_path,
    try_make_thumbnails,
)
from tests.http.server import ServerProcess


def _png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (width, height), colour)
    image.paste((255, 255, 255), (0, 0, width, 40))  # a header band, kept by the crop
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_full_page_screenshot_becomes_its_top_at_two_widths_in_webp(tmp_path: Path) -> None:
    thumbnail = make_thumbnails(tmp_path, _png(1280, 3000, (200, 40, 40)))
    assert [(s.width, s.height) for s in thumbnail.sizes] == [(320, 200), (640, 400)]
    assert [s.name for s in thumbnail.sizes] == [
        f"{thumbnail.hash}-320.webp",
        f"{thumbnail.hash}-640.webp",
    ]
    for size in thumbnail.sizes:
        path = thumbnail_path(tmp_path, size.name)
        assert path.stat().st_size == size.bytes
        with Image.open(path) as image:
            assert (image.format, image.size) == ("WEBP", (size.width, size.height))
            red = image.convert("RGB").getpixel((size.width // 2, size.height - 2))
            assert red[0] > 150 and red[1] < 90  # the page, not padding
    assert latest_thumbnail(tmp_path) == thumbnail

    # A new screenshot replaces the set; the same one keeps its names.
    newer = make_thumbnails(tmp_path, _png(1280, 800, (40, 40, 200)))
    assert newer.hash != thumbnail.hash and latest_thumbnail(tmp_path) == newer
    assert sorted(p.name for p in (tmp_path / "thumbs").glob("*.webp")) == [
        s.name for s in newer.sizes
    ]
    assert make_thumbnails(tmp_path, _png(1280, 800, (40, 40, 200))).hash == newer.hash


def test_names_outside_the_pattern_are_not_found(tmp_path: Path) -> None:
    thumbnail = make_thumbnails(tmp_path, _png(640, 400, (0, 0, 0)))
    (tmp_path / "secret.webp").write_bytes(b"x")
    for name in (
        "../secret.webp",
        "latest.json",
        f"{thumbnail.hash}-320.png",
        "0" * 16 + "-1.webp",
    ):
        with pytest.raises(NotFound):
            thumbnail_path(tmp_path, name)
    assert latest_thumbnail(tmp_path / "nothing-here") is None


def test_without_pillow_a_screenshot_just_has_no_thumbnails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    png = _png(640, 400, (0, 0, 0))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DependencyUnavailable, match=r"builder-agent\[screenshot\]"):
        make_thumbnails(tmp_path, png)
    assert try_make_thumbnails(tmp_path, png) is None
    monkeypatch.undo()
    assert try_make_thumbnails(tmp_path, b"not an image") is None
    assert latest_thumbnail(tmp_path) is None


def test_projects_are_listed_with_thumbnails_served_to_their_owner_for_a_year(
    dev_server: ServerProcess,
) -> None:
    with dev_server.client(dev_server.new_key("thumbs")) as owner:
        shot = owner.post("/api/projects", json={"name": "with a screenshot"}).json()["id"]
        plain = owner.post("/api/projects", json={"name": "without"}).json()["id"]
        thumbnail = make_thumbnails(
            dev_server.data_dir / "screenshots" / shot, _png(1280, 800, (10, 120, 10))
        )
        listed = {p["id"]: p for p in owner.get("/api/projects").json()["items"]}
        assert listed[plain]["thumbnail"] is None
        assert listed[shot]["thumbnail"] == thumbnail.model_dump()
        small = thumbnail.sizes[0]
        served = owner.get(f"/api/projects/{shot}/thumbnails/{small.name}")
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/webp"
        assert served.headers["cache-control"] == CACHE_FOREVER
        assert (
            served.content
            == thumbnail_path(dev_server.data_dir / "screenshots" / shot, small.name).read_bytes()
        )
        missing = owner.get(f"/api/projects/{shot}/thumbnails/{'0' * 16}-320.webp")
        assert missing.status_code == 404
        assert owner.get(f"/api/projects/{shot}/thumbnails/latest.json").status_code == 404
    with dev_server.client(dev_server.new_key("someone-else")) as other:
        refused = other.get(f"/api/projects/{shot}/thumbnails/{small.name}")
        assert refused.status_code == 404
