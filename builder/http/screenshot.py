"""Screenshots of a project's own preview, taken by headless Chromium (Playwright).

The page is the preview URL of the project's running dev server, read from the
project's sandbox; a caller never supplies a URL. Everything the page loads is held to
that one origin:

* every request (documents, frames, scripts, images, fetch/XHR) whose origin differs
  from the preview's is aborted, navigations away included;
* same-origin requests are fetched with redirects off and the answer handed back to
  the page, so a redirect's target is requested as a new request and checked again;
* WebSockets are closed, service workers blocked, downloads refused.

Chromium is started on the first screenshot (``BUILDER_BROWSER_PATH`` or the first of
``chromium``, ``chromium-browser``, ``google-chrome`` on PATH) with
``--headless --no-sandbox --disable-gpu --disable-background-networking`` and kept for
later ones; each screenshot gets a fresh browser context. Without Playwright or a
browser, a screenshot is ``DependencyUnavailable("browser")``.
"""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from builder.errors import Conflict, DependencyUnavailable, InvalidInput
from builder.log import get_logger
from builder.settings import Settings
from builder.timeouts import with_timeout

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright, Route, WebSocketRoute

__all__ = ["Screenshotter", "capture_preview", "origin_of", "screenshots_dir", "store_screenshot"]

_log = get_logger("builder.http.screenshot")
_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--no-first-run",
]
_VIEWPORT = {"width": 1280, "height": 800}


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL, with the scheme's default port made explicit."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class Screenshotter:
    """One headless Chromium per process, started on first use.

    Args:
        settings: ``browser_path`` and ``timeout_screenshot``.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = asyncio.Lock()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    def executable(self) -> str | None:
        """The Chromium executable to use, or None when there is none."""
        if self.settings.browser_path:
            return shutil.which(self.settings.browser_path)
        for name in _BROWSERS:
            found = shutil.which(name)
            if found:
                return found
        return None

    async def _browser_started(self) -> Browser:
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            try:
                from playwright.async_api import Error, async_playwright
            except ImportError:
                raise DependencyUnavailable(
                    "browser",
                    "screenshots need Playwright: pip install 'builder-agent[screenshot]'",
                ) from None
            executable = self.executable()
            if executable is None:
                raise DependencyUnavailable(
                    "browser", "no Chromium found; install it or set BUILDER_BROWSER_PATH"
                )
            if self._playwright is None:
                self._playwright = await async_playwright().start()
            try:
                self._browser = await self._playwright.chromium.launch(
                    executable_path=executable, headless=True, args=_ARGS
                )
            except Error as exc:
                _log.warning("screenshot.browser_failed", error=str(exc)[:300])
                raise DependencyUnavailable("browser", "Chromium could not be started") from exc
            return self._browser

    async def capture(self, url: str) -> bytes:
        """A PNG of ``url`` with every request off its origin blocked.

        Raises:
            DependencyUnavailable: No browser, or the page could not be loaded.
            OperationTimeout: It took longer than ``BUILDER_TIMEOUT_SCREENSHOT``.
        """
        browser = await self._browser_started()
        return await with_timeout(
            self._capture(browser, url), "screenshot", seconds=self.settings.timeout_screenshot
        )

    async def _capture(self, browser: Browser, url: str) -> bytes:
        from playwright.async_api import Error

        origin = origin_of(url)
        if not origin.startswith(("http://", "https://")):
            raise InvalidInput("the preview URL is not an http(s) URL")
        blocked: list[str] = []

        async def guard(route: Route) -> None:
            request = route.request
            if origin_of(request.url) != origin:
                blocked.append(request.url)
                await route.abort("blockedbyclient")
                return
            try:
                response = await route.fetch(max_redirects=0)
            except Error:
                await route.abort("failed")
                return
            await route.fulfill(response=response)

        async def no_websockets(socket: WebSocketRoute) -> None:
            await socket.close(code=1008, reason="blocked")

        context = await browser.new_context(
            viewport=_VIEWPORT,  # type: ignore[arg-type]
            service_workers="block",
            accept_downloads=False,
        )
        try:
            await context.route("**/*", guard)
            await context.route_web_socket(lambda _url: True, no_websockets)
            page = await context.new_page()
            try:
                await page.goto(url, wait_until="load")
            except Error as exc:
                raise DependencyUnavailable(
                    "preview", f"the preview did not load: {str(exc).splitlines()[0][:200]}"
                ) from exc
            image: bytes = await page.screenshot(type="png")
        finally:
            await context.close()
        if blocked:
            _log.info("screenshot.blocked_requests", count=len(blocked), first=blocked[0][:200])
        return image

    async def aclose(self) -> None:
        """Close the browser and Playwright."""
        browser, self._browser = self._browser, None
        playwright, self._playwright = self._playwright, None
        if browser is not None:
            await browser.close()
        if playwright is not None:
            await playwright.stop()


async def capture_preview(screenshotter: Screenshotter, preview_url: str | None) -> bytes:
    """A PNG of the preview of a project's dev server (``preview_url``: None when no dev
    server runs).

    Raises:
        Conflict: No dev server runs.
        DependencyUnavailable: No browser, or the page could not be loaded.
        OperationTimeout: It took longer than ``BUILDER_TIMEOUT_SCREENSHOT``.
    """
    if not preview_url:
        raise Conflict("no dev server is running for this project; start it first")
    return await screenshotter.capture(preview_url)


def screenshots_dir(settings: Settings, project_id: str) -> Path:
    """Where a project's screenshots are kept."""
    return settings.data_dir / "screenshots" / project_id


def store_screenshot(settings: Settings, project_id: str, image: bytes) -> str:
    """Save a PNG as ``<data dir>/screenshots/<project>/<UTC time>.png``; returns its name.

    Only the newest ``BUILDER_SCREENSHOTS_KEPT`` of a project are kept.
    """
    folder = screenshots_dir(settings, project_id)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.png"
    partial = folder / f".{name}.partial"
    partial.write_bytes(image)
    partial.replace(folder / name)
    for old in sorted(folder.glob("*.png"))[: -settings.screenshots_kept]:
        old.unlink(missing_ok=True)
    return name
