"""Real Vite for preview tests: a pinned version installed once, outside the repository."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

__all__ = ["VITE_VERSION", "vite_bin"]

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
