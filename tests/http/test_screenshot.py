"""Screenshots: the project's own preview only, every other origin blocked."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.errors import DependencyUnavailable
from builder.http.screenshot import Screenshotter, origin_of
from builder.persistence.database import Database
from builder.persistence.snapshots import save_snapshot
from builder.settings import Settings
from tests.http.origins import Page, RecordingServer
from tests.http.server import ServerProcess

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def tracker() -> Iterator[RecordingServer]:
    """Another origin: it must never be asked for anything."""
    server = RecordingServer()
    yield server
    server.close()


def _page(tracker: RecordingServer) -> str:
    other = tracker.url
    return f"""<!doctype html><title>t</title>
<h1>Preview</h1>
<img src="{other}/pixel.png" alt="x">
<link rel="stylesheet" href="{other}/style.css">
<iframe src="/go-away"></iframe>
<script>fetch("{other}/beacon").catch(() => {{}});</script>
<script src="{other}/script.js"></script>
"""


def test_the_route_screenshots_the_projects_running_preview_only(
    dev_server: ServerProcess, tracker: RecordingServer
) -> None:
    with dev_server.client(dev_server.new_key("shots")) as client:
        pid = client.post("/api/projects", json={"name": "s"}).json()["id"]
        none_running = client.post(f"/api/projects/{pid}/screenshot")
        assert none_running.status_code == 409
        assert none_running.json()["error"]["message"] == (
            "no dev server is running for this project; start it first"
        )

        async def files(db: Database) -> None:
            await save_snapshot(
                db, project_id=uuid.UUID(pid), changes={"index.html": _page(tracker).encode()}
            )

        dev_server.run(files)
        started = client.post(f"/api/sandbox/{pid}/dev-server").json()
        assert (started["running"], started["answering"]) == (True, True)
        assert (
            client.get(f"/api/sandbox/{pid}/dev-server").json()["preview_url"]
            == (started["preview_url"])
        )
        shot = client.post(f"/api/projects/{pid}/screenshot")
        assert shot.status_code == 200 and shot.headers["content-type"] == "image/png"
        assert shot.content.startswith(PNG_MAGIC)
        stored = dev_server.data_dir / "screenshots" / pid / shot.headers["x-screenshot"]
        assert stored.read_bytes() == shot.content
        stopped = client.delete(f"/api/sandbox/{pid}/dev-server").json()
        assert (stopped["running"], stopped["preview_url"]) == (False, None)
        assert client.post(f"/api/projects/{pid}/screenshot").status_code == 409
    assert tracker.paths == []


def test_screenshot_takes_no_url_from_the_caller(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("shots-url")) as client:
        pid = client.post("/api/projects", json={"name": "s"}).json()["id"]
        answer = client.post(
            f"/api/projects/{pid}/screenshot", json={"url": "http://169.254.169.254/"}
        )
    # The body is ignored: no dev server runs, so there is nothing to screenshot.
    assert answer.status_code == 409


@pytest.fixture
def preview(tracker: RecordingServer) -> Iterator[RecordingServer]:
    """A preview origin with a page that reaches for the tracker, and a redirect to it."""

    def pages(path: str) -> Page | None:
        if path == "/":
            return 200, {"content-type": "text/html"}, _page(tracker).encode()
        if path == "/go-away":
            return 302, {"location": f"{tracker.url}/redirected"}, b""
        return None

    server = RecordingServer(pages)
    yield server
    server.close()


async def test_requests_redirects_and_navigations_off_the_preview_origin_are_blocked(
    tmp_path: Path, preview: RecordingServer, tracker: RecordingServer
) -> None:
    shooter = Screenshotter(Settings(data_dir=tmp_path))
    try:
        image = await shooter.capture(preview.url + "/")
    finally:
        await shooter.aclose()
    assert image.startswith(PNG_MAGIC)
    assert sorted(set(preview.paths)) == ["/", "/go-away"]
    assert tracker.paths == []


async def test_without_the_guard_the_same_page_reaches_the_other_origin(
    tmp_path: Path, preview: RecordingServer, tracker: RecordingServer
) -> None:
    """What the guard prevents (and proof the tracker would notice)."""
    shooter = Screenshotter(Settings(data_dir=tmp_path))
    browser = await shooter._browser_started()
    try:
        page = await browser.new_page()
        await page.goto(preview.url + "/", wait_until="load")
        await page.wait_for_timeout(200)
        await page.close()
    finally:
        await shooter.aclose()
    assert "/pixel.png" in tracker.paths and "/redirected" in tracker.paths


async def test_no_browser_is_a_clear_dependency_error(tmp_path: Path) -> None:
    shooter = Screenshotter(Settings(data_dir=tmp_path, browser_path="/nonexistent/chromium"))
    with pytest.raises(DependencyUnavailable) as caught:
        await shooter.capture("http://127.0.0.1:9/")
    assert (caught.value.dependency, caught.value.message) == (
        "browser",
        "no Chromium found; install it or set BUILDER_BROWSER_PATH",
    )


def test_origins_compare_scheme_host_and_port() -> None:
    assert origin_of("http://LocalHost/x") == origin_of("http://localhost:80/y")
    assert origin_of("http://127.0.0.1:8000/") != origin_of("http://127.0.0.1:8001/")
    assert origin_of("https://a.example/") != origin_of("http://a.example:443/")
