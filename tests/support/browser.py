"""The system's Chromium, driven by Playwright (whose own browser download is not used):
one way for every browser test to start it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

__all__ = ["ARGS", "CHROMIUM", "chromium"]

CHROMIUM = "/usr/bin/chromium"
ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking")


@contextmanager
def chromium(*extra_args: str) -> Iterator[Browser]:
    """A headless Chromium for the block (``extra_args`` after the usual flags).

    Playwright's sync API runs an event loop of its own: do any ``asyncio.run`` set-up
    before entering.
    """
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()
