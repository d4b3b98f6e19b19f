"""The studio's budgets, measured in the system Chromium against a real ``builder serve``.

* **First load of the projects screen:** every JavaScript and CSS response the page
  fetches until the projects list is on screen, as transferred (gzip) and as decoded,
  and the time until the list is shown, against loading a blank page (``about:blank``,
  then a one-request JSON page from the same server) in the same browser.
* **Chat to first step:** the time from sending a message in the studio to the first
  tool step on screen, against the same event (``tool_start``) reaching a bare SSE
  client (httpx) for an identical run. Rounds alternate the two, each on a fresh
  project with the scripted model, one run at a time.

Run ``python -m bench.studio``; the table goes into docs/benchmarks.md between the
``bench:studio`` markers.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

from bench.report import create_database, drop_database, write_section

NAME = "studio"
ROUNDS = 5
BUDGET_BYTES = 150 * 1024
PROMPT = "Build a small website for a bakery."
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FIRST_STEP = """() => new Promise((resolve) => {
  const start = performance.now();
  new MutationObserver((_, observer) => {
    if (document.querySelector('.step')) {
      observer.disconnect();
      resolve(performance.now() - start);
    }
  }).observe(document.body, { childList: true, subtree: true });
  document.querySelector('form.composer button[type=submit]').click();
})"""


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server(db_url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")}
    env.update(
        BUILDER_DATABASE_URL=db_url,
        BUILDER_DATA_DIR=str(data_dir),
        BUILDER_MODEL="scripted:demo",
        BUILDER_RATE_LIMIT_DEFAULT="100000/minute",
        BUILDER_RATE_LIMIT_CHAT="100000/minute",
    )
    builder = [sys.executable, "-m", "builder"]
    subprocess.run([*builder, "db", "upgrade"], env=env, check=True, capture_output=True)
    port = _port()
    log = (data_dir.parent / "server.log").open("wb")
    process = subprocess.Popen(
        [*builder, "serve", "--port", str(port), "--no-access-log"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


def _first_load(page: Page, url: str) -> dict[str, Any]:
    assets: list[dict[str, Any]] = []

    def record(response: Any) -> None:
        kind = response.request.resource_type
        if kind in ("script", "stylesheet"):
            sizes = response.request.sizes()
            assets.append(
                {"url": response.url, "sent": sizes["responseBodySize"], "body": response.body()}
            )

    page.on("response", record)
    start = time.perf_counter()
    page.goto(url + "/")
    page.wait_for_selector("ul.grid[aria-busy=false]", state="attached")
    seconds = time.perf_counter() - start
    page.remove_listener("response", record)
    return {
        "seconds": seconds,
        "files": len(assets),
        "sent": sum(a["sent"] for a in assets),
        "decoded": sum(len(a["body"]) for a in assets),
    }


def _blank(page: Page, url: str) -> float:
    start = time.perf_counter()
    page.goto("about:blank")
    page.goto(url + "/api/health")
    return time.perf_counter() - start


def _bare_first_step(url: str, project_id: str) -> float:
    with httpx.Client(base_url=url, timeout=120) as client:
        start = time.perf_counter()
        first = None
        with client.stream(
            "POST", f"/api/projects/{project_id}/chat", json={"prompt": PROMPT}
        ) as response:
            for line in response.iter_lines():
                if first is None and line == "event: tool_start":
                    first = time.perf_counter() - start
        assert first is not None
        return first


def _studio_first_step(page: Page, url: str, project_id: str) -> float:
    page.goto(f"{url}/#/p/{project_id}")
    page.wait_for_selector("form.composer")
    page.fill("#chat-prompt", PROMPT)
    ms: float = page.evaluate(FIRST_STEP)
    page.wait_for_selector(".turn-end", timeout=120_000)
    return ms / 1000


def main() -> None:
    name, db_url = create_database()
    work = Path(tempfile.mkdtemp(prefix="bench-studio-"))
    process, url = _server(db_url, work / "data")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            loads, blanks, studio, bare = [], [], [], []
            for round_ in range(ROUNDS):
                context = browser.new_context()  # a cold cache every round
                page = context.new_page()
                if round_ % 2:
                    blanks.append(_blank(page, url))
                    loads.append(_first_load(page, url))
                else:
                    loads.append(_first_load(page, url))
                    blanks.append(_blank(page, url))
                projects = [
                    httpx.post(f"{url}/api/projects", json={"name": f"b{round_}{i}"}).json()["id"]
                    for i in range(2)
                ]
                if round_ % 2:
                    bare.append(_bare_first_step(url, projects[0]))
                    studio.append(_studio_first_step(page, url, projects[1]))
                else:
                    studio.append(_studio_first_step(page, url, projects[0]))
                    bare.append(_bare_first_step(url, projects[1]))
                context.close()
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
        drop_database(name)
    sent = loads[0]["sent"]
    decoded = loads[0]["decoded"]
    ms = lambda values: statistics.median(values) * 1000  # noqa: E731
    body = "\n".join(
        [
            "## Studio budgets",
            "",
            f"`python -m bench.studio`: {ROUNDS} rounds on {platform.machine()} "
            f"({os.cpu_count()} CPUs), Chromium headless, one `builder serve` (scripted "
            "model, local sandbox), a fresh browser context (cold cache) per round; "
            "medians.",
            "",
            "| Measure | Studio | Baseline | Budget |",
            "| --- | --- | --- | --- |",
            f"| JS + CSS on first load of the projects screen, transferred (gzip) | "
            f"{sent / 1024:.1f} KB in {loads[0]['files']} files ({decoded / 1024:.1f} KB "
            f"decoded) | blank page: 0 KB | < {BUDGET_BYTES // 1024} KB "
            f"({'met' if sent < BUDGET_BYTES else 'missed'}) |",
            f"| Time until the projects list is shown | {ms([r['seconds'] for r in loads]):.0f}"
            f" ms | blank page, then one JSON request: {ms(blanks):.0f} ms | — |",
            f"| Chat message sent → first step on screen | {ms(studio):.0f} ms | the same "
            f"event at a bare SSE client: {ms(bare):.0f} ms | — |",
            "",
            "The first step's time is mostly the run's own start (the scripted model and "
            "the sandbox); the difference between the two columns is what the page adds: "
            "the request from the browser, parsing the stream and rendering.",
            "",
            "Each round, ms: "
            + json.dumps(
                {
                    "studio": [round(v * 1000) for v in studio],
                    "bare": [round(v * 1000) for v in bare],
                }
            ),
        ]
    )
    write_section(NAME, body)
    print(body)


if __name__ == "__main__":
    main()
