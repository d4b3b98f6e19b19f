"""``builder demo`` and ``builder run`` as users run them: real processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from builder.persistence.embedded import stop_embedded
from tests.support.browser import chromium

pytestmark = pytest.mark.slow

DEMO_FILES = ["about.html", "contact.html", "index.html", "logo.svg", "script.js", "styles.css"]


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")}
    env.update(COLUMNS="200", **values)
    return env


def _builder(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "builder", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_demo_works_with_no_configuration(tmp_path: Path) -> None:
    """A fresh install: no database URL, no model, no keys — the embedded database."""
    data_dir = tmp_path / "data"
    try:
        result = _builder(
            "demo",
            "--exit",
            "--dir",
            str(tmp_path / "site"),
            env=_env(BUILDER_DATA_DIR=str(data_dir)),
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        for tool in ("plan_changes", "write_file", "edit_file", "start_dev_server"):
            assert f"✓ {tool}" in out
        assert "status" in out and "success (done)" in out
        assert "preview        http://127.0.0.1:" in out
        assert "files created  about.html, contact.html, index.html, logo.svg, script.js" in out
        assert sorted(p.name for p in (tmp_path / "site").iterdir()) == DEMO_FILES
        assert (data_dir / "postgres").is_dir()
        # It says what it leaves running, and how to stop it.
        assert f"the embedded PostgreSQL keeps running in {data_dir / 'postgres'}" in out
        assert "`builder db stop` stops it" in out
        stopped = _builder("db", "stop", env=_env(BUILDER_DATA_DIR=str(data_dir)), cwd=tmp_path)
        assert (
            stopped.stdout.strip() == f"stopped the embedded PostgreSQL in {data_dir / 'postgres'}"
        )
        assert not (data_dir / "postgres" / "postmaster.pid").exists()
    finally:
        stop_embedded(data_dir / "postgres")


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")
def test_demo_with_the_react_starter_installs_builds_and_passes_its_check(
    migrated_db_url: str, tmp_path: Path
) -> None:
    env = _env(BUILDER_DATA_DIR=str(tmp_path / "data"), BUILDER_DATABASE_URL=migrated_db_url)
    result = _builder(
        "demo", "--starter", "vite-react-ts", "--exit", "--dir", str(tmp_path / "site"),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for tool in ("install_packages", "write_file", "start_dev_server"):
        assert f"✓ {tool}" in out
    assert "Installed with npm:" in out
    # The end-of-turn check built the site (tsc and vite) and said so.
    assert "The automatic check passed: (build) The build passes (npm run build)." in out
    assert "No errors in the dev server's log." in out
    assert "success (done)" in out
    assert "files changed  src/App.tsx" in out and "files created  src/Menu.tsx" in out
    app = (tmp_path / "site" / "src" / "App.tsx").read_text()
    assert 'import Menu, { BREADS } from "./Menu";' in app
    assert (tmp_path / "site" / "package-lock.json").is_file()

    unknown = _builder("demo", "--starter", "astro", "--exit", env=env, cwd=tmp_path)
    assert unknown.returncode == 2
    assert "there is no demo for the 'astro' starter; the demos are: static, vite-react-ts" in (
        " ".join(unknown.stderr.split()).replace("│", "").replace("  ", " ")
    )


def test_run_continues_the_same_project(migrated_db_url: str, tmp_path: Path) -> None:
    env = _env(
        BUILDER_DATA_DIR=str(tmp_path / "data"),
        BUILDER_DATABASE_URL=migrated_db_url,
        BUILDER_MODEL="scripted:demo",
    )
    first = _builder("run", "A bakery site", "--project", "bakery", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "project bakery" in first.stdout and "continuing" not in first.stdout
    second = _builder("run", "Make it greener", "--project", "bakery", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "continuing project bakery" in second.stdout
    assert "files changed  styles.css" in second.stdout


def test_run_without_a_model_says_how_to_configure_one(tmp_path: Path) -> None:
    result = _builder("run", "hello", env=_env(BUILDER_DATA_DIR=str(tmp_path)), cwd=tmp_path)
    assert result.returncode != 0
    assert "BUILDER_MODEL" in result.stderr + result.stdout


@contextmanager
def _serving(
    *args: str, env: dict[str, str], cwd: Path, sigint_ignored: bool = False
) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """``python -m builder <args>`` in a session of its own until it prints "press Ctrl+C
    to stop"; yields the process and its lines so far, and kills it if it still runs at
    the end. With ``sigint_ignored`` it starts with SIGINT ignored, as a background job
    of a shell script does."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if sigint_ignored else None
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "builder", *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "press Ctrl+C to stop" in line:
                break
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_ctrl_c_on_demo_serve_stops_the_dev_server_and_says_what_it_leaves(
    tmp_path: Path,
) -> None:
    """Ctrl+C reaches the terminal's foreground group; the dev server is in its own."""
    data_dir = tmp_path / "data"
    try:
        with _serving(
            *("demo", "--serve", "--port", str(_free_port())),
            env=_env(BUILDER_DATA_DIR=str(data_dir)),
            cwd=tmp_path,
        ) as (process, lines):
            assert "http://127.0.0.1:" in lines[-1], lines
            port = int(lines[-1].split("http://127.0.0.1:")[1].split("/")[0])
            project_id = lines[-1].split()[1].rsplit("/", 1)[1]
            assert _answers(port)
            deadline = time.monotonic() + 60
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                while time.monotonic() < deadline:  # the studio starts the preview
                    preview = client.get(f"/api/sandbox/{project_id}/dev-server").json()
                    if preview["running"]:
                        break
                    time.sleep(0.5)
            dev_port = int(preview["port"])
            assert _answers(dev_port)
            os.killpg(process.pid, signal.SIGINT)
            rest, _ = process.communicate(timeout=60)
            assert not _answers(port), "the studio outlived builder"
            assert not _answers(dev_port), "the dev server outlived builder"
            assert f"the embedded PostgreSQL keeps running in {data_dir / 'postgres'}" in rest
            assert "`builder db stop` stops it" in rest
            stopped = _builder("db", "stop", env=_env(BUILDER_DATA_DIR=str(data_dir)), cwd=tmp_path)
            assert "stopped the embedded PostgreSQL" in stopped.stdout
            assert not (data_dir / "postgres" / "postmaster.pid").exists()
    finally:
        stop_embedded(data_dir / "postgres")


@contextmanager
def _demo_serving(tmp_path: Path, *args: str) -> Iterator[tuple[int, str]]:
    """``builder demo --serve`` (with ``args``) until it prints its studio URL; yields the
    port and that URL, then stops it with Ctrl+C and checks that nothing answers."""
    data_dir = tmp_path / "data"
    port = _free_port()
    try:
        with _serving(
            *("demo", *args, "--serve", "--port", str(port)),
            env=_env(BUILDER_DATA_DIR=str(data_dir)),
            cwd=tmp_path,
        ) as (process, lines):
            url = lines[-1].split()[1]
            assert url.startswith(f"http://127.0.0.1:{port}/#/p/"), "".join(lines)
            yield port, url
            os.killpg(process.pid, signal.SIGINT)
            process.communicate(timeout=60)
            assert not _answers(port)
    finally:
        stop_embedded(data_dir / "postgres")


def test_demo_serve_opens_the_studio_on_the_demo_project_with_its_preview(
    tmp_path: Path,
) -> None:
    with _demo_serving(tmp_path) as (port, url):
        project_id = url.rsplit("/", 1)[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as browser:
            assert "<title>builder studio</title>" in browser.get("/").text
            signed_in = browser.post("/api/sign-in", json={})  # anonymous: straight in
            assert signed_in.status_code == 200, signed_in.text
            projects = browser.get("/api/projects").json()["items"]
            assert [p["id"] for p in projects] == [project_id]
            files = browser.get(f"/api/projects/{project_id}/files").json()["files"]
            assert sorted(f["path"] for f in files) == DEMO_FILES
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                preview = browser.get(f"/api/sandbox/{project_id}/dev-server").json()
                if preview["running"]:
                    break
                time.sleep(0.5)
            assert preview["preview_url"].startswith("http://"), preview
            assert f".localhost:{port + 1}/" in preview["preview_url"]
            page = httpx.get(
                f"http://127.0.0.1:{port + 1}/",
                headers={"host": preview["preview_url"].split("//")[1].rstrip("/")},
            )
            assert "Harbor Lane Bakery" in page.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@contextmanager
def _run_serving(
    tmp_path: Path, database_url: str, *, sigint_ignored: bool = False, **settings: str
) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """``builder run "A bakery site" --serve`` until it serves its preview; yields the
    process, its output so far and the preview URL. With ``sigint_ignored`` it starts
    with SIGINT ignored, as a background job of a shell script does."""
    env = _env(
        BUILDER_DATA_DIR=str(tmp_path / "data"),
        BUILDER_DATABASE_URL=database_url,
        BUILDER_MODEL="scripted:demo",
        **settings,
    )
    with _serving(
        "run", "A bakery site", "--serve", env=env, cwd=tmp_path, sigint_ignored=sigint_ignored
    ) as (process, lines):
        out = "".join(lines)
        assert "serving " in lines[-1], out
        yield process, out, lines[-1].split("serving ", 1)[1].split(" ", 1)[0]


def test_run_prints_a_preview_url_that_opens_even_with_a_gateway_configured(
    migrated_db_url: str, tmp_path: Path
) -> None:
    """The settings a server uses (a preview listener, a wildcard preview domain, an
    advertised address) do not make ``builder run`` print a gateway link: no gateway can
    reach the dev server this process runs, so it prints the dev server's own URL."""
    with _run_serving(
        tmp_path,
        migrated_db_url,
        BUILDER_SECRET_KEY="cli-preview-secret",
        BUILDER_PREVIEW_PORT="1",
        BUILDER_PREVIEW_BASE_URL="https://{token}.preview.example.com",
        BUILDER_ADVERTISE_URL="http://10.0.0.5:8000",
    ) as (process, out, url):
        assert url.startswith("http://127.0.0.1:"), out
        assert f"preview        {url}" in out
        with urllib.request.urlopen(url + "index.html", timeout=10) as page:  # noqa: S310
            assert page.status == 200
        os.killpg(process.pid, signal.SIGINT)
        process.communicate(timeout=60)


@pytest.mark.parametrize(
    ("stop", "sigint_ignored"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c", "ctrl-c-started-in-the-background", "sigterm"],
)
def test_run_serve_stops_cleanly_on_ctrl_c_or_sigterm(
    migrated_db_url: str, tmp_path: Path, stop: signal.Signals, sigint_ignored: bool
) -> None:
    """``builder run --serve`` serves until Ctrl+C, also when a script started it in the
    background (which starts it with SIGINT ignored), or until SIGTERM; either way it
    ends cleanly and its dev server with it."""
    with _run_serving(tmp_path, migrated_db_url, sigint_ignored=sigint_ignored) as (
        process,
        _,
        url,
    ):
        port = int(url.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
        assert _answers(port)
        process.send_signal(stop)
        process.communicate(timeout=60)
        assert process.returncode == 0
        assert not _answers(port), "the dev server outlived builder run"


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")
def test_the_react_demo_shows_in_the_studio_and_a_chat_updates_it_by_hot_reload(
    tmp_path: Path,
) -> None:
    """``builder demo --starter vite-react-ts --serve`` as a person uses it: the studio in
    Chromium shows the React site in its preview, and a change asked for in the chat
    reaches the preview by hot reload, without reloading the page."""
    with (
        _demo_serving(tmp_path, "--starter", "vite-react-ts") as (_, url),
        chromium() as browser,
    ):
        page = browser.new_page()
        loads: list[str] = []
        page.on("framenavigated", lambda f: loads.append(f.url))
        page.goto(url)
        site = page.frame_locator('iframe[title="Site preview"]')
        expect(site.locator("h1")).to_have_text("Harbor Lane Bakery", timeout=60_000)
        expect(site.locator("li")).to_have_count(3)  # the typed menu, rendered by React
        frame = next(f for f in page.frames if ".localhost:" in f.url)
        frame.evaluate("window.marker = 42")

        page.get_by_label("Message").fill("Make the tagline warmer")
        page.get_by_role("button", name="Send").click()
        expect(site.locator("header p")).to_have_text(
            "Warm bread, every morning, since 1987.", timeout=60_000
        )
        assert frame.evaluate("window.marker") == 42  # updated in place, not reloaded
        expect(page.locator(".turn-end").last).to_contain_text("Finished", timeout=60_000)
        # The studio loaded the preview once: the new version did not load it again.
        assert len([u for u in loads if ".localhost:" in u]) == 1, loads
        assert frame.evaluate("window.marker") == 42
