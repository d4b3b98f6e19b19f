"""LangChain's agent-chat-ui against ``builder serve``, in a real Chromium.

The app (built once with npm, see :mod:`tests.http.agent_chat_ui`) is served by
``next start`` on its own origin and talks to a real ``builder serve`` with the
official JS SDK: it probes ``/info``, searches threads, creates one, streams a run and
reads the thread's history back. The key goes where the app keeps it (local storage,
sent as ``x-api-key``); the server allows the app's origin by CORS.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, expect

from tests.http.agent_chat_ui import agent_chat_ui, next_env
from tests.http.langgraph.conftest import GRAPH, PAGE, lg_script
from tests.http.server import ServerProcess, free_port
from tests.support.browser import chromium
from tests.support.database import clone_database
from tests.support.services import delete_redis_prefix, drop_database

pytestmark = pytest.mark.slow

_UI_START_SECONDS = 60


@dataclass(frozen=True)
class ChatSetup:
    """The server, a key for it and the app's URL."""

    server: ServerProcess
    key: str
    ui: str


def _start_ui(app: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["node_modules/.bin/next", "start", "--port", str(port), "--hostname", "127.0.0.1"],
            cwd=app,
            env=next_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + _UI_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"next start exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"next start did not answer:\n{log.read_text()}")


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory, migrated_template: str) -> Iterator[ChatSetup]:
    app = agent_chat_ui()
    if app is None:
        pytest.skip("npm is not installed")
    ui_port = free_port()
    ui = f"http://127.0.0.1:{ui_port}"
    url = clone_database(migrated_template)
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    base = tmp_path_factory.mktemp("chat-ui")
    server = ServerProcess(
        database_url=url,
        data_dir=base / "data",
        redis_prefix=prefix,
        env={
            "BUILDER_ENVIRONMENT": "development",
            "BUILDER_ALLOW_ANONYMOUS": "false",
            "BUILDER_MODEL": lg_script(base),
            "BUILDER_CORS_ORIGINS": ui,
            "BUILDER_RATE_LIMIT_DEFAULT": "100000/minute",
            "BUILDER_RATE_LIMIT_CHAT": "100000/minute",
        },
    )
    next_process = None
    try:
        server.start()
        next_process = _start_ui(app, ui_port, base / "next.log")
        yield ChatSetup(server, server.new_key("chat-ui"), ui)
    finally:
        if next_process is not None:
            next_process.terminate()
            next_process.wait(timeout=30)
        server.stop()
        drop_database(url)
        delete_redis_prefix(prefix)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright's sync API runs an event loop: set up the server (asyncio.run) first.
    with chromium() as launched:
        yield launched


def _open(browser: Browser, chat: ChatSetup, key: str, problems: list[str]) -> Page:
    context = browser.new_context()
    # Where the app's own form stores the key it sends as x-api-key.
    context.add_init_script(f"window.localStorage.setItem('lg:chat:apiKey', '{key}')")
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.request.method} {r.url}")
            if r.url.startswith(chat.server.url) and r.status >= 400
            else None
        ),
    )

    def failed(request: Request) -> None:
        # Chromium reports a streamed response sent with `cache-control: no-store` (as
        # every LangGraph server's SSE is) as aborted once the page has read all of it.
        if request.url.endswith("/runs/stream") and request.failure == "net::ERR_ABORTED":
            return
        problems.append(f"failed {request.method} {request.url}: {request.failure}")

    page.on("requestfailed", failed)
    return page


def _chat_url(chat: ChatSetup) -> str:
    return f"{chat.ui}/?apiUrl={chat.server.url}&assistantId={GRAPH}&chatHistoryOpen=true"


def test_the_chat_ui_streams_a_run_shows_its_tool_calls_and_reloads_the_thread(
    chat: ChatSetup, browser: Browser
) -> None:
    problems: list[str] = []
    page = _open(browser, chat, chat.key, problems)
    with page.expect_response(lambda r: r.url == f"{chat.server.url}/info") as probed:
        page.goto(_chat_url(chat))
    assert probed.value.status == 200

    box = page.get_by_placeholder("Type your message...")
    box.fill("A page that says hello")
    with page.expect_response(lambda r: r.url.endswith("/runs/stream")) as streamed:
        box.press("Enter")
    assert streamed.value.status == 200
    assert streamed.value.headers["content-type"].startswith("text/event-stream")

    # The run streams: the model's words before and after its tool call, and the call
    # itself (name and arguments) in the app's tool-call table.
    expect(page.get_by_text("The page is ready.")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("I'll write the page.")).to_be_visible()
    calls = page.locator("table", has_text="index.html")
    expect(calls.first).to_be_visible()
    expect(page.get_by_role("heading", name="write_file").first).to_be_visible()
    expect(page.get_by_text("Failed to connect to LangGraph server")).to_have_count(0)
    page.wait_for_url("**threadId=*")
    thread_id = page.url.split("threadId=")[1].split("&")[0]

    # The files were really written: the thread is a builder project.
    with chat.server.client(chat.key) as client:
        files = client.get(f"/api/projects/{thread_id}/files/index.html")
        assert files.status_code == 200, files.text
        assert files.json()["content"] == PAGE

    # A second message continues the thread (the app sends the head checkpoint along);
    # its Cancel button drops the stream, which cancels the run on the server.
    box.fill("Eight more files")
    with page.expect_response(lambda r: r.url.endswith("/runs/stream")) as again:
        box.press("Enter")
    assert again.value.status == 200, again.value.text()
    expect(page.get_by_text("Writing file 0.")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Cancel").click()
    with chat.server.client(chat.key) as client:
        deadline = time.monotonic() + 30
        while (runs := client.get(f"/threads/{thread_id}/runs").json())[0]["status"] in (
            "pending",
            "running",
        ):
            assert time.monotonic() < deadline, runs
            time.sleep(0.2)
        assert [run["status"] for run in runs] == ["interrupted", "success"]
        tree = client.get(f"/api/projects/{thread_id}/files").json()
    written = {entry["path"] for entry in tree["files"]}
    assert "index.html" in written and "f7.txt" not in written  # stopped before the last

    # Reloading shows the thread again, read back from the server, and it goes on.
    page.reload()
    # The user's message, in the thread and as the thread's name in the history.
    expect(page.get_by_text("A page that says hello")).to_have_count(2, timeout=30_000)
    expect(page.get_by_text("Writing file 0.")).to_be_visible()
    expect(page.get_by_role("heading", name="write_file").first).to_be_visible()
    box.fill("One more page")
    box.press("Enter")
    expect(page.get_by_text("The page is ready.")).to_have_count(2, timeout=60_000)

    # The history lists the thread (threads searched by graph id, named by their first
    # message); a fresh page opens it from there.
    other = _open(browser, chat, chat.key, problems)
    other.goto(_chat_url(chat))
    other.get_by_role("button", name="A page that says hello").click()
    expect(other.get_by_text("The page is ready.")).to_have_count(2, timeout=30_000)
    assert f"threadId={thread_id}" in other.url
    assert problems == [], problems


def test_the_chat_ui_says_it_cannot_connect_with_a_wrong_key(
    chat: ChatSetup, browser: Browser
) -> None:
    problems: list[str] = []
    page = _open(browser, chat, "bld_not-a-key", problems)
    page.goto(_chat_url(chat))
    expect(page.get_by_text("Failed to connect to LangGraph server")).to_be_visible()
    assert f"401 GET {chat.server.url}/info" in problems
