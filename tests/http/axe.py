"""axe-core for accessibility checks in the browser tests: a pinned version installed once,
outside the repository, and a helper that runs it on a page."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["AXE_VERSION", "axe_violations"]

AXE_VERSION = "4.14.1"
_CACHE = Path.home() / ".cache" / "builder-tests" / f"axe-core-{AXE_VERSION}"
_BLOCKING = ("serious", "critical")


def _axe_source() -> str:
    script = _CACHE / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        assert shutil.which("npm") is not None, "npm is needed to install axe-core"
        _CACHE.mkdir(parents=True, exist_ok=True)
        with (_CACHE / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not script.exists():
                (_CACHE / "package.json").write_text('{"name": "axe-cache", "private": true}\n')
                subprocess.run(
                    ["npm", "install", "--no-audit", "--no-fund", f"axe-core@{AXE_VERSION}"],
                    cwd=_CACHE,
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
    return script.read_text()


def axe_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each.

    The script is evaluated through the DevTools protocol, which the page's CSP does not
    govern, so the page is checked under its real policy. Frames (the preview: a site
    the model wrote) are not checked.
    """
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())
    found = page.evaluate(
        "axe.run(document, {iframes: false, resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " targets: v.nodes.map(n => n.target.join(' ')).slice(0, 3)})))"
    )
    return [
        f"{v['impact']} {v['id']}: {v['help']} at {v['targets']}"
        for v in found
        if v["impact"] in _BLOCKING
    ]
