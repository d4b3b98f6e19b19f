"""``langgraph dev`` (LangGraph's in-memory dev server) in a venv of its own.

``langgraph-cli[inmem]`` cannot share builder's environment: its server pins older
versions of packages builder's test tools need (structlog, jsonschema-rs). Its venv
extends the test environment (a ``.pth`` file adds that environment's site directories
after its own), so pip installs only what the server adds or pins differently, and the
graph runs with the test environment's langgraph and builder's other dependencies. It
is made once per test environment under ``~/.cache/builder-tests`` and reused while
the pins stay the same.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

__all__ = ["LANGGRAPH_CLI_PINS", "langgraph_bin"]

LANGGRAPH_CLI_PINS = (
    "langgraph-cli[inmem]==0.4.40",
    "langgraph-api==0.16.7",
    "langgraph-runtime-inmem==0.36.7",
)
_SITE_DIRS = site.getsitepackages()
"""The test environment's site directories (with the base interpreter's, when it sees
them)."""
_KEY = hashlib.sha256(repr((LANGGRAPH_CLI_PINS, _SITE_DIRS)).encode()).hexdigest()[:12]
_CACHE = Path.home() / ".cache" / "builder-tests" / f"langgraph-cli-{_KEY}"


def _extend_test_environment(venv: Path) -> None:
    purelib = sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    lines = [f"import site; site.addsitedir({directory!r})" for directory in _SITE_DIRS]
    (Path(purelib) / "builder-tests-environment.pth").write_text("\n".join(lines) + "\n")


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
        subprocess.run([sys.executable, "-m", "venv", str(_CACHE)], check=True)
        _extend_test_environment(_CACHE)
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
