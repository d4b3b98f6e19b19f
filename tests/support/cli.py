"""``builder`` run as a user runs it: a real subprocess with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["run_builder", "user_env"]


def user_env(*, drop: tuple[str, ...] = (), **values: str) -> dict[str, str]:
    """This process's environment without ``BUILDER_*`` (and ``drop``) prefixes, plus
    ``values`` and a wide terminal so tables are not wrapped."""
    prefixes = ("BUILDER_", *drop)
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(COLUMNS="200", **values)
    return env


def run_builder(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m builder ARGS``, waited for (five minutes at most)."""
    return subprocess.run(
        [sys.executable, "-m", "builder", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
