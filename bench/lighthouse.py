"""Lighthouse scores of the studio's projects and project screens, in the system Chromium.

Lighthouse (npm ``lighthouse``, pinned below) is installed once into a cache directory
(``$BUILDER_BENCH_CACHE`` or ``~/.cache/builder-bench``) with npm, and run with
``CHROME_PATH=/usr/bin/chromium`` against a real ``builder serve`` (development,
anonymous access on, so the page goes straight in), for performance, accessibility and
best practices, in its default mobile configuration (simulated slow 4G and a 4x slower
CPU) and with ``--preset=desktop``. The baseline, in the same run, is a blank HTML page
served from loopback. The projects screen lists a few projects; the project screen is
one with a small site and a conversation.

Run ``python -m bench.lighthouse``; the table goes into docs/benchmarks.md between the
``bench:lighthouse`` markers. Every score must be at least 90.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench.report import create_database, drop_database, write_section
from bench.studio import _server

NAME = "lighthouse"
LIGHTHOUSE = "lighthouse@12.2.3"
CHROMIUM = "/usr/bin/chromium"
CATEGORIES = ("performance", "accessibility", "best-practices")
GOAL = 90
FLAGS = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage"
SITE = {
    "index.html": "<!doctype html><title>Harbor Lane</title><h1>Fresh bread</h1>\n",
    "about.html": "<!doctype html><title>About</title><p>Since 1987.</p>\n",
    "style.css": "body { font-family: system-ui; margin: 0 auto; max-width: 40rem }\n",
}


def _lighthouse() -> Path:
    """The pinned Lighthouse CLI, installed on first use."""
    cache = Path(os.environ.get("BUILDER_BENCH_CACHE", Path.home() / ".cache/builder-bench"))
    prefix = cache / LIGHTHOUSE.replace("@", "-")
    binary = prefix / "node_modules/.bin/lighthouse"
    if not binary.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", LIGHTHOUSE],
            check=True,
            capture_output=True,
        )
    return binary


def _blank_page() -> tuple[ThreadingHTTPServer, str]:
    page = (
        b'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        b'<meta name="viewport" content="width=device-width, initial-scale=1">'
        b'<meta name="description" content="A blank page."><title>Blank</title></head>'
        b"<body><main><h1>Blank</h1></main></body></html>"
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            body = page if self.path == "/" else b""
            self.send_response(200 if body else 404)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _score(binary: Path, url: str, *, desktop: bool, out: Path) -> dict[str, Any]:
    command = [
        str(binary),
        url,
        "--quiet",
        "--output=json",
        f"--output-path={out}",
        f"--only-categories={','.join(CATEGORIES)}",
        f"--chrome-flags={FLAGS}",
        "--max-wait-for-load=60000",
    ]
    if desktop:
        command.append("--preset=desktop")
    env = {**os.environ, "CHROME_PATH": CHROMIUM}
    subprocess.run(command, check=True, env=env, capture_output=True, timeout=300)
    report = json.loads(out.read_text())
    scores = {c: round(report["categories"][c]["score"] * 100) for c in CATEGORIES}
    failing = sorted(
        audit["id"]
        for audit in report["audits"].values()
        if audit.get("score") is not None
        and audit["score"] < 0.9
        and audit.get("scoreDisplayMode") in ("binary", "numeric")
    )
    metrics = report["audits"]
    return {
        "scores": scores,
        "fcp_ms": round(metrics["first-contentful-paint"]["numericValue"]),
        "lcp_ms": round(metrics["largest-contentful-paint"]["numericValue"]),
        "tbt_ms": round(metrics["total-blocking-time"]["numericValue"]),
        "cls": round(metrics["cumulative-layout-shift"]["numericValue"], 3),
        "below_90": failing,
    }


def _seed(url: str) -> str:
    with httpx.Client(base_url=url, timeout=60) as client:
        for name in ("Corner café", "Harbor Lane Bakery", "Night market"):
            project = client.post("/api/projects", json={"name": name}).json()
        pid = str(project["id"])
        for path, content in SITE.items():
            saved = client.put(
                f"/api/projects/{pid}/files/{path}", json={"content": content, "base_sha256": ""}
            )
            saved.raise_for_status()
        for role, content in (
            ("user", "A small site for a bakery"),
            ("assistant", "The bakery's home, about page and stylesheet are ready."),
        ):
            client.post(
                f"/api/projects/{pid}/messages", json={"role": role, "content": content}
            ).raise_for_status()
        return pid


def main() -> None:
    binary = _lighthouse()
    version = subprocess.run(
        [str(binary), "--version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    name, db_url = create_database()
    work = Path(tempfile.mkdtemp(prefix="bench-lighthouse-"))
    process, url = _server(db_url, work / "data")
    blank, blank_url = _blank_page()
    results: dict[str, dict[str, Any]] = {}
    try:
        pid = _seed(url)
        pages = {
            "blank page (baseline)": blank_url,
            "projects screen": f"{url}/",
            "project screen": f"{url}/#/p/{pid}",
        }
        for label, page_url in pages.items():
            for desktop in (False, True):
                key = f"{label}|{'desktop' if desktop else 'mobile'}"
                results[key] = _score(
                    binary, page_url, desktop=desktop, out=work / f"{len(results)}.json"
                )
    finally:
        blank.shutdown()
        process.terminate()
        process.wait(timeout=30)
        drop_database(name)
    rows = []
    met = True
    for key, result in results.items():
        label, form = key.split("|")
        scores = result["scores"]
        if "baseline" not in label:
            met = met and all(score >= GOAL for score in scores.values())
        rows.append(
            f"| {label} | {form} | "
            + " | ".join(str(scores[c]) for c in CATEGORIES)
            + f" | {result['fcp_ms']:,} | {result['lcp_ms']:,} | {result['tbt_ms']:,} | "
            f"{result['cls']} |"
        )
    below = [
        f"{key.replace('|', ', ')}: " + ", ".join(f"`{a}`" for a in result["below_90"])
        for key, result in results.items()
        if result["below_90"]
    ]
    body = "\n".join(
        [
            "## Studio: Lighthouse",
            "",
            f"`python -m bench.lighthouse`: Lighthouse {version} with the system Chromium "
            "(headless), against one `builder serve` (development, anonymous access), "
            "mobile (its default: simulated slow 4G, 4x CPU slowdown) and desktop presets; "
            "the baseline is a blank HTML page served from loopback in the same run.",
            "",
            "| Page | Form | Performance | Accessibility | Best practices | FCP ms | LCP ms "
            "| TBT ms | CLS |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            f"Goal: every score of both studio screens ≥ {GOAL}: {'met' if met else 'missed'}.",
            "",
            "Audits scoring below 0.9: " + ("; ".join(below) if below else "none") + ".",
        ]
    )
    write_section(NAME, body)
    print(body)


if __name__ == "__main__":
    main()
