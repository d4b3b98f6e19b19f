"""The studio with a real model path: ``builder serve`` talks to a loopback server speaking
OpenAI's wire format; a change asked for in the chat reaches the preview, and the turn
shows the tokens it used and what they cost."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.http.axe import axe_violations
from tests.http.conftest import _serve
from tests.http.server import ServerProcess, free_port
from tests.http.test_studio_browser import (
    _context,
    _new_user,
    _preview_heading,
    _seed,
    _sign_in,
    browser,
    shoot,
)
from tests.models.openai_server import OpenAIServer, completion

pytestmark = pytest.mark.slow

__all__ = ["browser", "shoot"]  # the fixtures, shared with the studio's other browser tests

BEFORE = b"<!doctype html><title>Bakery</title><h1>Fresh bread every morning</h1>\n"
AFTER = "<!doctype html><title>Bakery</title><h1>Now baking on Sundays too</h1>\n"
DONE = "The home page now says you bake on Sundays."


@pytest.fixture(scope="module")
def provider() -> Iterator[OpenAIServer]:
    replies = [
        completion(
            "I'll change the heading.",
            tool_calls=[
                {
                    "id": "call_1",
                    "name": "write_file",
                    "args": {"path": "index.html", "content": AFTER},
                }
            ],
            usage=(900, 60),
        ),
        completion(DONE, usage=(1000, 20)),
    ]
    with OpenAIServer(*replies) as server:
        yield server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: str, provider: OpenAIServer
) -> Iterator[ServerProcess]:
    env = {
        "BUILDER_ENVIRONMENT": "development",
        "BUILDER_ALLOW_ANONYMOUS": "false",
        "BUILDER_SECRET_KEY": "studio-model-secret",
        "BUILDER_PREVIEW_PORT": str(free_port()),
        "BUILDER_MODEL": "openai:gpt-test",
        "BUILDER_MODEL_BASE_URL": provider.base_url,
        "BUILDER_MODEL_API_KEY": "sk-test-key",
        "BUILDER_MODEL_RETRIES": "0",
        "BUILDER_MODEL_PRICES": json.dumps({"gpt-test": {"input": 2.0, "output": 8.0}}),
    }
    yield from _serve(tmp_path_factory, migrated_template, env)


def test_a_change_asked_in_the_chat_of_a_real_model_reaches_the_preview_with_its_cost(
    server: ServerProcess,
    provider: OpenAIServer,
    browser: Browser,
    shoot: Callable[[Page, str], None],
) -> None:
    key = _new_user(server)
    with server.client(key) as client:
        pid = client.post("/api/projects", json={"name": "Sunday bakery"}).json()["id"]
    _seed(server, pid, {"index.html": BEFORE}, "the first home page")
    context = _context(browser)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    _sign_in(page, server, key)
    page.goto(f"{server.url}/#/p/{pid}")
    page.get_by_role("button", name="Start preview").click()
    expect(_preview_heading(page)).to_have_text("Fresh bread every morning", timeout=30_000)

    page.get_by_label("Message").fill("Say that we bake on Sundays too")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".turn-end")).to_contain_text("Finished", timeout=60_000)
    expect(_preview_heading(page)).to_have_text("Now baking on Sundays too", timeout=30_000)
    expect(page.locator(".step", has_text="write_file")).to_contain_text("done")
    expect(page.locator(".log .item-text", has_text=DONE)).to_have_count(1)
    # The agent checked its work before the turn ended, and says so last.
    expect(page.locator(".log .item-text").last).to_contain_text("The automatic check passed")
    # 1,900 input tokens at $2/M and 80 output tokens at $8/M: $0.00444.
    expect(page.locator(".turn-end .usage")).to_have_text(
        "1,980 tokens (1,900 in, 80 out) · $0.0044"
    )
    shoot(page, "project-real-model")
    assert axe_violations(page) == []

    # The run changed the site while its preview ran: the studio had it screenshotted,
    # and the projects screen shows the thumbnail, lazily, at two widths, sized.
    card = page.locator(".project", has_text="Sunday bakery")
    thumb = card.locator("img.thumb")
    page.goto(f"{server.url}/#/")
    for _ in range(10):  # the screenshot is taken after the run, in the background
        page.reload()
        expect(card).to_be_visible()
        if thumb.count():
            break
        page.wait_for_timeout(500)
    expect(thumb).to_have_attribute("loading", "lazy")
    expect(thumb).to_have_attribute("width", "320")
    expect(thumb).to_have_attribute("height", "200")
    srcset = thumb.get_attribute("srcset") or ""
    assert re.fullmatch(
        rf"/api/projects/{pid}/thumbnails/([0-9a-f]{{16}})-320\.webp 320w, "
        rf"/api/projects/{pid}/thumbnails/\1-640\.webp 640w",
        srcset,
    ), srcset
    thumb.scroll_into_view_if_needed()  # lazy: loaded once near the viewport
    expect(thumb).to_have_js_property("complete", True)
    assert thumb.evaluate("image => image.naturalWidth") in (320, 640)
    shoot(page, "projects-thumbnails")
    assert axe_violations(page) == []

    # Opened again later, the project still shows what each turn used and cost.
    page.goto(f"{server.url}/#/p/{pid}")
    expect(page.locator(".turn-end .usage")).to_have_text(
        "1,980 tokens (1,900 in, 80 out) · $0.0044"
    )

    first = provider.requests[0]
    assert first["model"] == "gpt-test" and first["stream"] is True
    assert first["messages"][-1]["content"] == "Say that we bake on Sundays too"
    assert errors == []
    context.close()
