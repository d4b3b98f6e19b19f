"""The studio end to end: a real server, the scripted model, real sandboxes and previews,
and the system Chromium driving the page as a person would.

Every screen's screenshot is saved under the test's temporary directory, and also into
``$BUILDER_TEST_SCREENSHOTS`` when set (``BUILDER_TEST_SCREENSHOTS=docs/screenshots``
refreshes the README's).
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from builder.persistence.database import Database
from builder.persistence.snapshots import save_snapshot
from tests.http.axe import axe_violations
from tests.http.conftest import _serve
from tests.http.server import ServerProcess, free_port
from tests.support.browser import chromium
from tests.support.scripts import call, write_script

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "Build a small website for Harbor Lane Bakery: home, about and contact pages."
PAYLOAD = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'

# Watches the conversation while a run streams: how many steps were on screen at each
# change, whether the run had ended, and whether a step was ever shown running.
WATCH_STEPS = """() => {
  window.__seen = { counts: [], running: false };
  new MutationObserver(() => {
    const steps = document.querySelectorAll('.step').length;
    const ended = document.querySelector('.turn-end') !== null;
    if (document.querySelector('.step[data-status="running"]')) window.__seen.running = true;
    const last = window.__seen.counts[window.__seen.counts.length - 1];
    if (!last || last[0] !== steps || last[1] !== ended) window.__seen.counts.push([steps, ended]);
  }).observe(document.body, { childList: true, subtree: true, attributes: true });
}"""


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: str
) -> Iterator[ServerProcess]:
    """Keys required (no anonymous access), previews on their own origin."""
    yield from _serve(tmp_path_factory, migrated_template, _studio_env())


def _studio_env(**more: str) -> dict[str, str]:
    return {
        "BUILDER_ENVIRONMENT": "development",
        "BUILDER_ALLOW_ANONYMOUS": "false",
        "BUILDER_SECRET_KEY": "studio-test-secret",
        "BUILDER_PREVIEW_PORT": str(free_port()),
        "BUILDER_RATE_LIMIT_DEFAULT": "100000/minute",
        "BUILDER_RATE_LIMIT_CHAT": "100000/minute",
        **more,
    }


@pytest.fixture(scope="module")
def slow_server(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: str
) -> Iterator[ServerProcess]:
    """Like ``server``, with a model that takes a second per answer: its runs are still
    working when a test acts during them, however fast the machine is."""

    def turn(name: str, steps: int) -> list[dict[str, Any]]:
        return [
            *(
                {
                    "content": f"Step {i}.",
                    "tool_calls": [call("write_file", path=f"{name}-{i}.txt", content=f"{i}\n")],
                    "delay_s": 1.0,
                }
                for i in range(steps)
            ),
            {"content": "Done.", "delay_s": 1.0},
        ]

    scripts = tmp_path_factory.mktemp("slow-model")
    env = _studio_env(
        BUILDER_CHECK_ROUNDS="0",
        # Cancelled, then worked while another page sends, then the queued message.
        BUILDER_MODEL=write_script(scripts, [turn("first", 4), turn("again", 6), turn("blue", 1)]),
    )
    yield from _serve(tmp_path_factory, migrated_template, env)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def shoot(tmp_path: Path) -> Callable[[Page, str], None]:
    """Save a screenshot of the page as ``<name>.png``."""
    wanted = os.environ.get("BUILDER_TEST_SCREENSHOTS")
    also = ROOT / wanted if wanted else None  # relative to the checkout (tests change cwd)

    def save(page: Page, name: str) -> None:
        page.screenshot(path=tmp_path / f"{name}.png")
        if also is not None:
            also.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=also / f"{name}.png")

    return save


def _in_thread(server: ServerProcess, work: Any) -> Any:
    """``server.run(work)`` off this thread (Playwright's sync API holds its event loop)."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(server.run, work).result()


def _seed(server: ServerProcess, project_id: str, files: dict[str, bytes], summary: str) -> None:
    async def work(db: Database) -> None:
        await save_snapshot(db, project_id=uuid.UUID(project_id), changes=files, summary=summary)

    _in_thread(server, work)


def _new_user(server: ServerProcess) -> str:
    return _in_thread_key(server, f"studio-{uuid.uuid4().hex[:8]}")


def _in_thread_key(server: ServerProcess, user: str) -> str:
    with ThreadPoolExecutor(1) as thread:
        key: str = thread.submit(server.new_key, user).result()
        return key


def _context(browser: Browser, **options: Any) -> BrowserContext:
    return browser.new_context(viewport={"width": 1280, "height": 860}, **options)


def _sign_in(page: Page, server: ServerProcess, key: str) -> None:
    page.goto(server.url + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible()


def _preview_heading(page: Page) -> Any:
    return page.frame_locator('iframe[title="Site preview"]').locator("h1")


def test_sign_in_build_from_a_prompt_preview_and_restore_a_version(
    server: ServerProcess, browser: Browser, shoot: Callable[[Page, str], None]
) -> None:
    key = _new_user(server)
    context = _context(browser)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # Sign in, by keyboard: a wrong key is refused in words, the right one lets us in.
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="Sign in to builder studio")).to_be_visible()
    shoot(page, "sign-in")
    assert axe_violations(page) == []
    page.get_by_label("API key").focus()
    page.keyboard.type("bld_not-a-real-key")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("invalid API key")
    page.get_by_label("API key").fill(key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible()
    (cookie,) = [c for c in context.cookies() if c["name"] == "builder_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert key not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # scripts cannot read the session
    shoot(page, "projects")
    assert axe_violations(page) == []

    # A new project from a prompt: the steps stream in while the run works.
    page.get_by_label("Describe the site you want").fill(PROMPT)
    page.evaluate(WATCH_STEPS)
    page.get_by_role("button", name="Build it").click()
    expect(page.get_by_role("heading", name=PROMPT[:57].rstrip() + "…")).to_be_visible()
    project_id = page.url.rsplit("/", 1)[1]
    page.evaluate(WATCH_STEPS)  # the project screen replaced the body's content
    expect(page.locator(".turn-end")).to_contain_text("Finished", timeout=120_000)
    seen = page.evaluate("window.__seen")
    during = sorted({steps for steps, ended in seen["counts"] if not ended})
    assert len(during) >= 5 and during[-1] >= 5, seen  # steps appeared one after another
    assert seen["running"], "a step was shown running before it finished"
    steps = page.locator(".step")
    assert steps.count() >= 10
    assert page.locator('.step[data-status="done"]').count() == steps.count()
    expect(page.locator(".step", has_text="start_dev_server")).to_contain_text("running")
    shoot(page, "project-chat")

    # The preview shows the site, framed from the preview origin.
    expect(_preview_heading(page)).to_contain_text("Fresh bread", timeout=30_000)
    frame_src = page.get_attribute('iframe[title="Site preview"]', "src") or ""
    assert ".localhost:" in frame_src and not frame_src.startswith(server.url)
    assert "allow-scripts" in (page.get_attribute("iframe", "sandbox") or "")
    page.get_by_label("Mobile").check()
    assert page.evaluate("document.querySelector('iframe').getBoundingClientRect().width") == 375
    page.get_by_label("Desktop").check()
    shoot(page, "project-preview")
    assert axe_violations(page) == []

    # Files, reached from the tabs by keyboard; the code is shown as text.
    page.get_by_role("tab", name="Preview").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Files")).to_have_attribute("aria-selected", "true")
    page.get_by_role("button", name="index.html").click()
    expect(page.locator(".viewer pre")).to_contain_text("<h1>Fresh bread")
    shoot(page, "project-files")
    assert axe_violations(page) == []

    # Versions: two more appear (made elsewhere); restoring one brings its site back.
    latest = page.evaluate(
        f"fetch('/api/projects/{project_id}/snapshots?limit=1').then(r => r.json())"
    )["items"][0]["version"]
    original = page.evaluate(
        f"fetch('/api/projects/{project_id}/files/index.html').then(r => r.json())"
    )["content"].encode()
    holiday = b"<!doctype html><title>Closed</title><h1>Closed for the holidays</h1>"
    _seed(server, project_id, {"index.html": holiday}, "closed for the holidays")
    _seed(server, project_id, {"index.html": original}, "open again")
    page.get_by_role("tab", name="Versions").click()
    expect(page.get_by_text(f"Version {latest + 2}", exact=True)).to_be_visible()
    restore = page.get_by_role("button", name=f"Restore version {latest + 1}")
    restore.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Restore version {latest + 1}?")
    dialog.get_by_role("button", name="Restore").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Restored version {latest + 1} as version {latest + 3}."
    )
    expect(page.get_by_text(f"Version {latest + 3}", exact=True)).to_be_visible()
    restored = page.locator(".timeline > li").first
    expect(restored).to_contain_text(f"restored version {latest + 1}")
    restored.get_by_role("button", name="Show changes").click()
    expect(restored.locator("pre")).to_contain_text("+<!doctype html><title>Closed</title>")
    shoot(page, "project-versions")
    assert axe_violations(page) == []
    page.get_by_role("tab", name="Preview").click()
    expect(_preview_heading(page)).to_have_text("Closed for the holidays", timeout=30_000)
    page.get_by_role("tab", name="Versions").click()
    page.get_by_role("button", name=f"Restore version {latest}", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Restore").click()
    expect(page.get_by_role("status")).to_contain_text(f"Restored version {latest} as")
    page.get_by_role("tab", name="Preview").click()
    expect(_preview_heading(page)).to_contain_text("Fresh bread", timeout=30_000)

    # Sign out: the cookie is gone and the page asks for a key again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"] == "builder_session"]
    page.reload()
    expect(page.get_by_role("heading", name="Sign in to builder studio")).to_be_visible()
    assert errors == []
    context.close()


def test_a_second_user_sees_none_of_the_first_users_projects(
    server: ServerProcess, browser: Browser
) -> None:
    with server.client(_new_user(server)) as alice:
        secret = alice.post("/api/projects", json={"name": "Alice's secret shop"}).json()
    context = _context(browser)
    page = context.new_page()
    _sign_in(page, server, _new_user(server))
    expect(page.get_by_text("No projects yet")).to_be_visible()
    page.get_by_label("Search projects").fill("secret")
    expect(page.get_by_text("No project matches this search.")).to_be_visible()
    page.goto(f"{server.url}/#/p/{secret['id']}")
    expect(page.get_by_role("heading", name="Project not available")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("not found")
    assert "Alice" not in page.content()
    context.close()


def test_model_output_file_names_and_contents_are_text_and_never_run(
    server: ServerProcess, browser: Browser
) -> None:
    key = _new_user(server)
    with server.client(key) as client:
        pid = client.post("/api/projects", json={"name": PAYLOAD}).json()["id"]
        for role in ("user", "assistant"):
            made = client.post(
                f"/api/projects/{pid}/messages", json={"role": role, "content": PAYLOAD}
            )
            assert made.status_code == 201, made.text
    name = '<img src="x" onerror="window.__pwned=3">.html'
    _seed(server, pid, {name: PAYLOAD.encode()}, PAYLOAD)

    context = _context(browser)
    page = context.new_page()
    page.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.__violations.push(e.violatedDirective));"
    )
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _sign_in(page, server, key)
    expect(page.get_by_role("link", name=PAYLOAD)).to_be_visible()  # the project's name
    page.get_by_role("link", name=PAYLOAD).click()
    expect(page.locator(".log .text", has_text=PAYLOAD)).to_have_count(2)
    page.get_by_role("tab", name="Files").click()
    page.get_by_role("button", name=name).click()
    expect(page.locator(".viewer pre")).to_have_text(PAYLOAD)
    page.get_by_role("tab", name="Versions").click()
    expect(page.locator(".timeline p", has_text=PAYLOAD)).to_have_count(1)

    markup = "document.querySelectorAll('main [onerror], main script, main img').length"
    assert page.evaluate(markup) == 0
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("window.__violations") == []
    assert dialogs == []

    # The twin: the same text parsed as HTML is caught by the check above, and the
    # page's policy still refuses to run its handler.
    page.evaluate(f"document.querySelector('.timeline p').innerHTML = {PAYLOAD!r}")
    assert page.evaluate(markup) == 2
    page.wait_for_function("window.__violations.length > 0")
    assert page.evaluate("window.__pwned") is None
    context.close()


def test_the_studio_fits_375_pixels_and_follows_a_dark_system_theme(
    server: ServerProcess, browser: Browser, shoot: Callable[[Page, str], None]
) -> None:
    key = _new_user(server)
    with server.client(key) as client:
        client.post("/api/projects", json={"name": "Corner café"})
    light = _context(browser)
    page = light.new_page()
    _sign_in(page, server, key)
    light_background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    light.close()

    dark = browser.new_context(viewport={"width": 375, "height": 740}, color_scheme="dark")
    page = dark.new_page()
    _sign_in(page, server, key)
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != light_background
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shoot(page, "projects-mobile-dark")
    assert axe_violations(page) == []

    # The prompt helper rewrites a short request into a fuller one, left to edit.
    page.get_by_label("Describe the site you want").fill("a bakery site")
    page.get_by_role("button", name="Improve the prompt").click()
    expect(page.get_by_label("Describe the site you want")).to_have_value(
        re.compile(r"^Build a small static website for Harbor Lane Bakery")
    )
    page.get_by_label("Describe the site you want").fill("")

    # Star, then delete with a confirmation that can be declined.
    page.get_by_role("button", name="Star Corner café").click()
    expect(page.get_by_role("button", name="Star Corner café")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.get_by_role("button", name="Delete Corner café").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_role("link", name="Corner café")).to_be_visible()
    with server.client(key) as client:
        client.post("/api/projects", json={"name": "Doomed kiosk"})
    page.reload()
    page.get_by_role("button", name="Delete Doomed kiosk").click()
    expect(page.get_by_role("dialog")).to_contain_text("cannot be undone")
    page.get_by_role("dialog").get_by_role("button", name="Delete project").click()
    expect(page.get_by_role("link", name="Doomed kiosk")).to_have_count(0)
    with server.client(key) as client:
        names = [p["name"] for p in client.get("/api/projects").json()["items"]]
    assert names == ["Corner café"]
    page.get_by_role("link", name="Corner café").click()
    expect(page.get_by_role("tab", name="Preview")).to_be_visible()
    expect(page.get_by_text("The preview is not running.")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shoot(page, "project-mobile-dark")
    assert axe_violations(page) == []
    page.get_by_role("tab", name="Versions").click()
    expect(page.get_by_text("No versions yet.")).to_be_visible()
    assert axe_violations(page) == []
    dark.close()


def test_a_run_can_be_cancelled_and_a_message_during_a_run_is_told_409_and_can_queue(
    slow_server: ServerProcess, browser: Browser
) -> None:
    server = slow_server
    key = _new_user(server)
    with server.client(key) as client:
        pid = client.post("/api/projects", json={"name": "Busy bakery"}).json()["id"]
    context = _context(browser)
    first, second = context.new_page(), context.new_page()
    _sign_in(first, server, key)
    for page in (first, second):
        page.goto(f"{server.url}/#/p/{pid}")
        expect(page.get_by_role("heading", name="Busy bakery")).to_be_visible()

    # Cancel: the run stops at its next step boundary and the chat says so.
    first.get_by_label("Message").fill("Build the bakery site")
    first.get_by_role("button", name="Send").click()
    expect(first.locator(".step").first).to_be_visible()
    first.get_by_role("button", name="Cancel run").press("Enter")  # by keyboard
    expect(first.locator(".turn-end")).to_contain_text("Ended: cancelled", timeout=60_000)
    expect(first.get_by_role("button", name="Cancel run")).to_have_count(0)

    # A second message while a run works is told so, and can wait its turn.
    first.get_by_label("Message").fill("Build it again")
    first.get_by_role("button", name="Send").click()
    expect(first.locator(".step").nth(1)).to_be_visible()
    second.get_by_label("Message").fill("And make it blue")
    second.get_by_role("button", name="Send").click()
    expect(second.get_by_role("alert")).to_contain_text("already has a run in progress")
    second.get_by_role("button", name="Queue my message").click()
    # It waits its turn, and the chat says where it stands (from the run's own events),
    # unless the run ahead ended first (it then starts at once; tests/runs/
    # test_queue_events.py covers the places deterministically).
    queued, started = second.locator(".queued"), second.locator(".turn").last.locator(".step")
    expect(queued.or_(started.first)).to_be_visible(timeout=30_000)
    if queued.count():
        expect(queued).to_have_text("queued, 1 ahead")
    # A page opened while the run works (a reload, another tab) follows it to its end.
    third = context.new_page()
    third.goto(f"{server.url}/#/p/{pid}")
    expect(third.locator(".step").first).to_be_visible()
    expect(third.locator(".turn-end").last).to_contain_text("Finished", timeout=120_000)
    expect(first.locator(".turn-end").last).to_contain_text("Finished", timeout=120_000)
    expect(second.locator(".turn-end").last).to_contain_text("Finished", timeout=120_000)
    expect(second.locator(".bubble.user", has_text="And make it blue")).to_be_visible()
    context.close()


def test_a_hand_edit_is_saved_and_one_made_on_stale_content_shows_a_conflict(
    server: ServerProcess, browser: Browser, shoot: Callable[[Page, str], None]
) -> None:
    key = _new_user(server)
    with server.client(key) as client:
        pid = client.post("/api/projects", json={"name": "Hand edits"}).json()["id"]
    _seed(server, pid, {"index.html": b"<h1>Hello</h1>\n"}, "first")
    context = _context(browser)
    page = context.new_page()
    _sign_in(page, server, key)
    page.goto(f"{server.url}/#/p/{pid}")
    page.get_by_role("tab", name="Files").click()
    page.get_by_role("button", name="index.html").click()
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Contents of index.html").fill("<h1>Hello by hand</h1>\n")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved as version 2.")
    expect(page.locator(".viewer pre")).to_have_text("<h1>Hello by hand</h1>\n")

    # Someone else saves a version while this edit is open: saving it is refused.
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Contents of index.html").fill("<h1>Mine</h1>\n")
    _seed(server, pid, {"index.html": b"<h1>Theirs</h1>\n"}, "theirs")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("Not saved: index.html changed")
    expect(page.get_by_label("Contents of index.html")).to_have_value("<h1>Mine</h1>\n")
    latest = page.evaluate(f"fetch('/api/projects/{pid}/files/index.html').then(r => r.json())")
    assert latest["content"] == "<h1>Theirs</h1>\n"  # not overwritten
    shoot(page, "project-edit-conflict")
    assert axe_violations(page) == []
    page.get_by_role("button", name="Load the latest").click()
    expect(page.locator(".viewer h3")).to_contain_text("version 3")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved as version 4.")
    expect(page.locator(".viewer pre")).to_have_text("<h1>Mine</h1>\n")
    context.close()


def test_code_is_highlighted_and_diffs_coloured_by_modules_loaded_only_when_opened(
    server: ServerProcess, browser: Browser, shoot: Callable[[Page, str], None]
) -> None:
    key = _new_user(server)
    with server.client(key) as client:
        pid = client.post("/api/projects", json={"name": "Highlights"}).json()["id"]
    page_html = '<!doctype html>\n<h1 class="hero">Hello</h1>\n<script>let n = 1;</script>\n'
    _seed(server, pid, {"index.html": b"<h1>Hello</h1>\n", "notes.txt": b"<b>plain</b>\n"}, "one")
    _seed(server, pid, {"index.html": page_html.encode()}, "two")
    context = _context(browser)
    page = context.new_page()
    loaded: list[str] = []
    page.on("request", lambda request: loaded.append(request.url.rsplit("/", 1)[-1]))
    _sign_in(page, server, key)
    page.goto(f"{server.url}/#/p/{pid}")
    expect(page.get_by_role("tab", name="Files")).to_be_visible()
    assert "code.js" not in loaded and "prism.module.js" not in loaded

    page.get_by_role("tab", name="Files").click()
    page.get_by_role("button", name="index.html").click()
    viewer = page.locator(".viewer pre")
    expect(viewer).to_have_attribute("data-language", "markup")
    expect(viewer).to_have_text(page_html)  # the same text, split into tokens
    expect(viewer.locator(".tok-tag", has_text="h1").first).to_be_visible()
    expect(viewer.locator(".tok-attr-value", has_text="hero")).to_have_count(1)
    expect(viewer.locator(".tok-keyword", has_text="let")).to_have_count(1)
    assert {"code.js", "prism.module.js"} <= set(loaded)
    assert page.evaluate("document.querySelectorAll('.viewer script, .viewer h1').length") == 0
    shoot(page, "project-code")
    assert axe_violations(page) == []
    page.get_by_role("button", name="notes.txt").click()  # no grammar: plain text
    expect(viewer).to_have_attribute("data-language", "text")
    expect(viewer).to_have_text("<b>plain</b>\n")
    assert viewer.locator("span").count() == 0

    page.get_by_role("tab", name="Versions").click()
    page.locator(".timeline > li").first.get_by_role("button", name="Show changes").click()
    diff = page.locator(".diff")
    expect(diff.locator(".d-del")).to_have_text("-<h1>Hello</h1>\n")
    expect(diff.locator(".d-add").first).to_have_text("+<!doctype html>\n")
    expect(diff.locator(".d-hunk")).to_have_count(1)
    assert axe_violations(page) == []
    context.close()


PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360f8cf000000030101005d2d6c1b0000000049454e44ae426082"
)
# Adds a file to an element as a paste (on the prompt) or a drop (on its form).
GIVE_FILE = """([selector, kind, name, type, bytes]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([new Uint8Array(bytes)], name, { type }));
  const target = document.querySelector(selector);
  const event = kind === 'paste'
    ? new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true, cancelable: true })
    : new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true });
  target.dispatchEvent(event);
}"""


def test_images_are_attached_checked_previewed_and_sent_with_the_message(
    server: ServerProcess, browser: Browser, shoot: Callable[[Page, str], None]
) -> None:
    """The chat request's "images" are built here and asserted on the wire (the request
    is answered by the test, as the server side of images is separate)."""
    key = _new_user(server)
    context = _context(browser)
    page = context.new_page()
    sent: list[dict[str, Any]] = []

    def answer(route: Any) -> None:
        sent.append(route.request.post_data_json)
        finished = {"status": "success", "input_tokens": 3, "output_tokens": 2, "steps": 0}
        route.fulfill(
            status=200,
            headers={"content-type": "text/event-stream", "x-run-id": "run-test"},
            body=f"event: run_finished\ndata: {json.dumps(finished)}\n\n",
        )

    page.route(re.compile(r".*/api/projects/[0-9a-f-]+/chat$"), answer)
    _sign_in(page, server, key)

    # The new-project box: picked files are checked one by one, previewed, removable.
    big = b"\x89PNG" + bytes(5 * 1024 * 1024)
    page.locator("#new-images").set_input_files(
        [
            {"name": "logo.png", "mimeType": "image/png", "buffer": PNG_1PX},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"},
            {"name": "huge.png", "mimeType": "image/png", "buffer": big},
            {"name": "a.gif", "mimeType": "image/gif", "buffer": b"GIF89a"},
        ]
    )
    attached = page.get_by_role("list", name="Attached images")
    expect(attached.get_by_role("img")).to_have_count(2)
    refused = page.get_by_role("alert")
    expect(refused).to_contain_text("notes.txt: not a PNG, JPEG, WebP or GIF image")
    expect(refused).to_contain_text("huge.png: 5.0 MB, larger than 5.0 MB")
    page.locator("#new-images").set_input_files(
        [
            {"name": f"more-{n}.webp", "mimeType": "image/webp", "buffer": b"RIFF" + bytes(n)}
            for n in range(3)
        ]
    )
    expect(attached.get_by_role("img")).to_have_count(4)
    expect(page.get_by_role("alert")).to_have_text("more-2.webp: at most 4 images per message")
    shoot(page, "projects-attachments")
    assert axe_violations(page) == []
    for name in ("a.gif", "more-0.webp", "more-1.webp"):
        page.get_by_role("button", name=f"Remove {name}").click()
    expect(attached.get_by_role("img")).to_have_count(1)
    page.get_by_label("Describe the site you want").fill("A site like this logo")
    page.get_by_role("button", name="Build it").click()
    expect(page.locator(".turn-end")).to_contain_text("Finished")
    assert sent[-1] == {
        "prompt": "A site like this logo",
        "multitask": "reject",
        "images": [{"media_type": "image/png", "data": base64.b64encode(PNG_1PX).decode()}],
    }
    expect(page.locator(".bubble.user")).to_contain_text("1 image attached")

    # The chat box: one image pasted, one dropped, both sent with the message.
    page.evaluate(GIVE_FILE, ["#chat-prompt", "paste", "shot.png", "image/png", list(PNG_1PX)])
    jpeg = b"\xff\xd8\xff\xe0" + bytes(16)
    page.evaluate(GIVE_FILE, ["form.composer", "drop", "photo.jpg", "image/jpeg", list(jpeg)])
    expect(page.get_by_role("list", name="Attached images").get_by_role("img")).to_have_count(2)
    page.get_by_label("Message").fill("Use these")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".turn-end")).to_have_count(2)
    assert sent[-1]["images"] == [
        {"media_type": "image/png", "data": base64.b64encode(PNG_1PX).decode()},
        {"media_type": "image/jpeg", "data": base64.b64encode(jpeg).decode()},
    ]
    expect(page.locator(".bubble.user").last).to_contain_text("2 images attached")
    expect(page.get_by_role("list", name="Attached images")).to_have_count(0)  # cleared

    # Without images the request is what it always was.
    page.get_by_label("Message").fill("No pictures")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".turn-end")).to_have_count(3)
    assert sent[-1] == {"prompt": "No pictures", "multitask": "reject"}
    context.close()
