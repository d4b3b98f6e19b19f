"""The preview gateway, end to end: a real server, real Vite, real Chromium.

The server listens for previews on its own port; Chromium opens a project's preview
through the signed ``<token>.localhost`` URL the API hands out.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import Browser

from builder.persistence.database import Database
from builder.persistence.snapshots import save_snapshot
from builder.preview.tokens import PreviewSigner, preview_key
from builder.settings import Settings
from tests.http.conftest import _serve
from tests.http.server import ServerProcess, free_port
from tests.http.vite import edit_script, vite_project
from tests.support.browser import chromium

pytestmark = pytest.mark.slow

SECRET = "preview-test-secret"
API_COOKIE = "builder_session"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: str
) -> Iterator[ServerProcess]:
    """A development server with a preview listener and a chat script that edits main.js."""
    script = edit_script(tmp_path_factory.mktemp("script"))
    env = {
        "BUILDER_ENVIRONMENT": "development",
        "BUILDER_SECRET_KEY": SECRET,
        "BUILDER_PREVIEW_PORT": str(free_port()),
        "BUILDER_MODEL": script,
        "BUILDER_RATE_LIMIT_DEFAULT": "100000/minute",
        "BUILDER_RATE_LIMIT_CHAT": "100000/minute",
        "BUILDER_TIMEOUT_DEV_SERVER": "120",
        # Vite is installed once into a cache outside the workspace, which a confined
        # sandbox cannot see; the gateway, not confinement, is what these tests check.
        "BUILDER_SANDBOX_BACKEND": "local-unconfined",
    }
    yield from _serve(tmp_path_factory, migrated_template, env)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _project_with_vite(
    server: ServerProcess, client: httpx.Client
) -> tuple[str, dict[str, object]]:
    pid = client.post("/api/projects", json={"name": "vite"}).json()["id"]
    files = vite_project(server.url)

    async def seed(db: Database) -> None:
        await save_snapshot(db, project_id=uuid.UUID(pid), changes=files)

    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's loop
        thread.submit(server.run, seed).result()
    started = client.post(f"/api/sandbox/{pid}/dev-server").json()
    assert started["running"] and started["answering"], "\n".join(started["logs"])
    return pid, started


def _preview_port(server: ServerProcess) -> int:
    return int(server.env["BUILDER_PREVIEW_PORT"])


def _get(server: ServerProcess, host: str, path: str = "/") -> httpx.Response:
    """A request to the preview listener naming ``host`` (what a browser sends)."""
    return httpx.get(
        f"http://127.0.0.1:{_preview_port(server)}{path}", headers={"host": host}, timeout=30
    )


def test_vite_hmr_through_the_gateway_and_the_page_cannot_reach_the_api(
    server: ServerProcess, browser: Browser
) -> None:
    with server.client() as client:
        pid, started = _project_with_vite(server, client)
        url = str(started["preview_url"])
        assert url.startswith("http://") and f".localhost:{_preview_port(server)}/" in url
        assert str(started["port"]) not in url.split(":")[-1].rstrip("/")
        assert (
            client.get(f"/api/sandbox/{pid}/dev-server")
            .json()["preview_url"]
            .endswith(f".localhost:{_preview_port(server)}/")
        )

        context = browser.new_context()
        context.add_cookies([{"name": API_COOKIE, "value": "secret-session", "url": server.url}])
        page = context.new_page()
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(url)
        page.wait_for_function("document.getElementById('app').textContent === 'version one'")
        page.evaluate("window.marker = 42")

        # The page's own script: no API cookie visible, the API unreadable cross-origin.
        page.wait_for_function("document.getElementById('probe').textContent !== ''")
        probe = json.loads(page.text_content("#probe") or "{}")
        assert API_COOKIE not in probe["cookies"]
        assert probe["api"] == "blocked"

        # edit_file by the agent; Vite pushes the update over the proxied WebSocket.
        run = client.post(f"/api/projects/{pid}/chat/wait", json={"prompt": "change it"})
        assert run.status_code == 200, run.text
        assert run.json()["files_changed"] == ["main.js"], run.text
        # The run reports the gateway URL (chat events, state, CLI), not the sandbox port.
        assert run.json()["preview_url"].endswith(f".localhost:{_preview_port(server)}/")
        page.wait_for_function(
            "document.getElementById('app').textContent === 'version two'", timeout=30_000
        )
        assert page.evaluate("window.marker") == 42  # updated in place, not reloaded
        assert any(s.startswith("ws://") and ".localhost:" in s for s in sockets), sockets
        context.close()


def test_tokens_forged_expired_other_project_or_stale_get_a_bare_404(
    server: ServerProcess,
) -> None:
    with server.client() as client:
        pid, started = _project_with_vite(server, client)
        url = str(started["preview_url"])
        host = url.split("//", 1)[1].rstrip("/")
        token = host.split(".", 1)[0]
        assert _get(server, host).status_code == 200

        signer = PreviewSigner(preview_key(Settings(secret_key=SECRET)), ttl=60)
        generation = signer.verify(token)
        assert generation is not None
        suffix = host[len(token) :]
        forged = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
        expired = signer.sign(
            uuid.UUID(pid), generation=generation.generation, now=time.time() - 3600, ttl=60
        )
        other = client.post("/api/projects", json={"name": "other"}).json()["id"]
        other_token = signer.sign(uuid.UUID(other), generation=generation.generation)
        wrong_key = PreviewSigner(b"x" * 32, ttl=60).sign(
            uuid.UUID(pid), generation=generation.generation
        )
        for bad in (forged, expired, other_token, wrong_key, "nope"):
            response = _get(server, bad + suffix)
            assert (response.status_code, response.text) == (404, "not found\n"), bad

        # No API route on the preview origin, no open proxy, no preview on the API origin.
        assert _get(server, f"127.0.0.1:{_preview_port(server)}", "/api/health").status_code == 404
        assert _get(server, "example.com", "/").status_code == 404
        with socket.create_connection(("127.0.0.1", _preview_port(server))) as raw:
            raw.sendall(b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
            assert raw.recv(64).startswith(b"HTTP/1.1 404")
        # The API origin's "/" is the studio, never a preview.
        api_root = httpx.get(f"{server.url}/", headers={"host": f"127.0.0.1:{server.port}"})
        assert "<title>builder studio</title>" in api_root.text
        assert "main.js" not in api_root.text
        assert client.get("/api/health").status_code == 200

        # Restarting the dev server revokes the old link; the new one works.
        time.sleep(1.1)  # generations are whole seconds
        restarted = client.post(f"/api/sandbox/{pid}/dev-server").json()
        assert _get(server, host).status_code == 404
        new_host = str(restarted["preview_url"]).split("//", 1)[1].rstrip("/")
        assert _get(server, new_host).status_code == 200


def test_websocket_upgrades_without_a_valid_token_are_refused(server: ServerProcess) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    port = _preview_port(server)
    with pytest.raises(InvalidStatus) as refused:
        connect(
            f"ws://{'a' * 55}.localhost:{port}/",
            sock=socket.create_connection(("127.0.0.1", port)),
            subprotocols=["vite-hmr"],  # type: ignore[list-item]
        )
    assert refused.value.response.status_code == 403  # uvicorn's answer to a close before accept
