"""LangChain's agent-chat-ui, built once with npm from a pinned package, outside the repository.

The app is the Next.js template of the npm package ``create-agent-chat-app`` (the
scaffolder LangChain publishes for it). Its dependencies are resolved as the registry
stood on :data:`NPM_BEFORE` (``npm install --before``), so a later release of any of
them cannot change what the tests run. The build is kept under
``~/.cache/builder-tests`` and reused while the pins stay the same.

The app loads the Inter font from Google Fonts at build time; with no route to Google,
Next's own hook for offline builds (``NEXT_FONT_GOOGLE_MOCKED_RESPONSES``) serves it a
face from an empty local file, so the page falls back to a system font.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

__all__ = ["AGENT_CHAT_APP", "NPM_BEFORE", "agent_chat_ui", "next_env"]

AGENT_CHAT_APP = "create-agent-chat-app@0.1.6"
"""The npm package and version the app comes from (its ``templates/nextjs``)."""
NPM_BEFORE = "2026-12-01"
"""Dependencies are the versions published before this day."""
_CACHE = Path.home() / ".cache" / "builder-tests" / f"agent-chat-ui-{AGENT_CHAT_APP.split('@')[1]}"
_FONTS = """\
// Google Fonts is out of reach: every stylesheet asked for is one face from an empty file.
const path = require("path");
const face = `@font-face { font-family: 'Inter'; font-style: normal; font-weight: 400;
  src: url(${path.join(__dirname, "empty.woff2")}) format('woff2'); }`;
module.exports = new Proxy({}, { get: () => face });
"""


def next_env() -> dict[str, str]:
    """The environment ``next`` runs in (no telemetry)."""
    return {**os.environ, "NEXT_TELEMETRY_DISABLED": "1"}


def _run(args: list[str], cwd: Path, *, timeout: float, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-4000:]}")


def agent_chat_ui() -> Path | None:
    """The built app's directory (``next start`` serves it); None without npm.

    Raises:
        RuntimeError: npm could not fetch, install or build it (with npm's output).
    """
    app = _CACHE / "app"
    built = app / ".next" / "BUILD_ID"
    if built.exists():
        return app
    if shutil.which("npm") is None:
        return None
    _CACHE.mkdir(parents=True, exist_ok=True)
    with (_CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if built.exists():
            return app
        shutil.rmtree(app, ignore_errors=True)
        packed = _CACHE / "pack"
        shutil.rmtree(packed, ignore_errors=True)
        packed.mkdir()
        _run(
            ["npm", "pack", AGENT_CHAT_APP, "--pack-destination", str(packed)], packed, timeout=300
        )
        (tarball,) = packed.glob("*.tgz")
        prefix = "package/templates/nextjs/"
        with tarfile.open(tarball) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
            for member in members:
                member.name = member.name.removeprefix(prefix)
            archive.extractall(app, members=members, filter="data")
        (_CACHE / "fonts.cjs").write_text(_FONTS)
        (_CACHE / "empty.woff2").write_bytes(b"")
        _run(
            ["npm", "install", "--no-audit", "--no-fund", f"--before={NPM_BEFORE}"],
            app,
            timeout=900,
        )
        env = {**next_env(), "NEXT_FONT_GOOGLE_MOCKED_RESPONSES": str(_CACHE / "fonts.cjs")}
        _run(["node_modules/.bin/next", "build", "--no-lint"], app, timeout=900, env=env)
    return app
