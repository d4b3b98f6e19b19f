"""``langgraph dev`` (LangGraph's in-memory dev server) in a venv of its own.

``langgraph-cli[inmem]`` cannot share builder's environment: its server pins older
versions of packages builder's test tools need (structlog, jsonschema-rs). Its venv
sees the base interpreter's packages and adds the pinned server over them; it is made
once under ``~/.cache/builder-tests`` and reused while the pins stay the same.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["LANGGRAPH_CLI_PINS", "langgraph_bin"]

LANGGRAPH_CLI_PINS = (
    "langgraph-cli[inmem]==0.4.40",
    "langgraph-api==0.16.7",
    "langgraph-runtime-inmem==0.36.7",
)
_CACHE = Path.home() / ".cache" / "builder-tests" / "langgraph-cli-0.4.40"


def _base_python() -> str:
    """The interpreter builder's own venv was made from (its packages are shared)."""
    return str(Path(sys.base_prefix) / "bin" / "python3")


def langgraph_bin() -> Path:
    """The ``langgraph`` CLI of the venv (installed from PyPI on first use).

    Raises:
        RuntimeError: pip could not install it (with pip's output).
    """
    script = _CACHE / "bin" / "langgraph"
    if script.exists():
        return script
    _CACHE.parent.mkdir(parents=True, exist_ok=True)
    with (_CACHE.parent / ".langgraph-cli.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if script.exists():
            return script
        shutil.rmtree(_CACHE, ignore_errors=True)
        subprocess.run(
            [_base_python(), "-m", "venv", "--system-site-packages", str(_CACHE)], check=True
        )
        done = subprocess.run(
            [str(_CACHE / "bin" / "python"), "-m", "pip", "install", "-q", *LANGGRAPH_CLI_PINS],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            shutil.rmtree(_CACHE, ignore_errors=True)
            raise RuntimeError(f"installing {LANGGRAPH_CLI_PINS} failed:\n{done.stderr[-4000:]}")
    return script
