"""Real Vite for preview tests: a pinned version installed once, outside the repository,
a project whose page updates in place over HMR, and the chat turn that edits it."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.support.scripts import call, write_script

__all__ = ["VITE_VERSION", "edit_script", "vite_bin", "vite_project"]

VITE_VERSION = "5.4.11"
_CACHE = Path.home() / ".cache" / "builder-tests" / f"vite-{VITE_VERSION}"


def vite_bin() -> Path | None:
    """Vite's CLI script (installed with npm on first use); None without npm."""
    script = _CACHE / "node_modules" / "vite" / "bin" / "vite.js"
    if script.exists():
        return script
    if shutil.which("npm") is None:
        return None
    _CACHE.mkdir(parents=True, exist_ok=True)
    with (_CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not script.exists():
            (_CACHE / "package.json").write_text('{"name": "vite-cache", "private": true}\n')
            subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", f"vite@{VITE_VERSION}"],
                cwd=_CACHE,
                check=True,
                capture_output=True,
                timeout=300,
            )
    return script


MAIN_JS = """export function render() {
  document.getElementById("app").textContent = "version one";
}
render();
if (import.meta.hot) import.meta.hot.accept();
"""

# The page's own script: what it can see of the API's cookies and responses.
PROBE_JS = """
const out = {};
out.cookies = document.cookie;
try {
  const r = await fetch(API + "/api/projects", { credentials: "include" });
  out.api = "read " + r.status + " " + (await r.text()).slice(0, 40);
} catch (e) { out.api = "blocked"; }
document.getElementById("probe").textContent = JSON.stringify(out);
"""


def vite_project(api_url: str) -> dict[str, bytes]:
    """A Vite project: ``#app`` says "version one" (main.js, hot-accepted) and ``#probe``
    reports what the page's script could read of the API at ``api_url``."""
    vite = vite_bin()
    assert vite is not None, "npm is needed to install Vite"
    package = {
        "name": "p",
        "private": True,
        "type": "module",
        "scripts": {"dev": f"node {vite} --strictPort --host 127.0.0.1 --clearScreen false"},
    }
    page = (
        '<!doctype html><title>p</title><div id="app"></div><div id="probe"></div>'
        '<script type="module" src="/main.js"></script>'
        f'<script type="module">const API = "{api_url}";{PROBE_JS}</script>'
    )
    return {
        "package.json": json.dumps(package).encode(),
        "index.html": page.encode(),
        "main.js": MAIN_JS.encode(),
    }


def edit_script(directory: Path) -> str:
    """A scripted model whose every turn edits main.js to say "version two"."""
    edit: list[dict[str, Any]] = [
        {
            "content": "Changing the text.",
            "tool_calls": [
                call("edit_file", path="main.js", search="version one", replace="version two"),
                call("get_dev_server_status"),
            ],
        },
        {"content": "Done."},
    ]
    return write_script(directory, [edit], after_last_turn="cycle")
