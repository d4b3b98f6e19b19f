"""A project from the vite-react-ts starter, as a user gets it: npm installs it in the
confined sandbox, the dev server starts with the starter's own command, the preview opens
in real Chromium through the gateway, and an edit by the agent reaches the page by HMR
(React Fast Refresh) without reloading it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.http.conftest import _serve
from tests.http.server import ServerProcess, free_port
from tests.support.browser import chromium
from tests.support.scripts import call, write_script

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm"),
]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: str
) -> Iterator[ServerProcess]:
    """A development server whose scripted model installs and serves, then edits App.tsx."""
    turns = [
        [
            {"tool_calls": [call("install_packages"), call("start_dev_server")]},
            {"content": "Installed and running."},
        ],
        [
            {
                "tool_calls": [
                    call("edit_file", path="src/App.tsx", search="My site", replace="Our bakery")
                ]
            },
            {"content": "Renamed the site."},
        ],
    ]
    env = {
        "BUILDER_ENVIRONMENT": "development",
        "BUILDER_SECRET_KEY": "starter-preview-secret",
        "BUILDER_PREVIEW_PORT": str(free_port()),
        "BUILDER_MODEL": write_script(tmp_path_factory.mktemp("script"), turns),
        "BUILDER_TIMEOUT_DEV_SERVER": "120",
        "BUILDER_TIMEOUT_INSTALL": "600",
    }
    yield from _serve(tmp_path_factory, migrated_template, env)


def test_the_react_starter_updates_in_place_through_the_gateway(server: ServerProcess) -> None:
    with server.client() as client:
        created = client.post("/api/projects", json={"name": "shop", "starter": "vite-react-ts"})
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        first = client.post(f"/api/projects/{pid}/chat/wait", json={"prompt": "serve it"})
        assert first.status_code == 200, first.text
        result = first.json()
        assert result["stop_reason"] == "done", result["reply"]
        url = str(result["preview_url"])
        assert f".localhost:{server.env['BUILDER_PREVIEW_PORT']}/" in url
        # The turn's reply ends with the end-of-turn check's verdict: the build passes.
        assert "The automatic check passed: (build) The build passes" in result["reply"]

        with chromium() as browser:
            page = browser.new_page()
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.goto(url)
            page.wait_for_function(
                "document.querySelector('h1')?.textContent === 'My site'", timeout=60_000
            )
            page.evaluate("window.marker = 42")

            second = client.post(f"/api/projects/{pid}/chat/wait", json={"prompt": "rename"})
            assert second.status_code == 200, second.text
            assert second.json()["files_changed"] == ["src/App.tsx"], second.text
            page.wait_for_function(
                "document.querySelector('h1')?.textContent === 'Our bakery'", timeout=30_000
            )
            assert page.evaluate("window.marker") == 42  # updated in place, not reloaded
            assert any(".localhost:" in s for s in sockets), sockets
