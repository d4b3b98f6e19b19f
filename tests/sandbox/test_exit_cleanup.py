"""A program that never closes its sandbox leaves no dev server behind when it exits.

This is the README's library snippet: a script builds a sandbox, starts a dev server
in it, and ends without closing anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import asyncio, os, sys
from builder import LocalSandbox, Settings

async def main() -> None:
    sandbox = LocalSandbox("leaky", settings=Settings(data_dir=sys.argv[1]))
    info = await sandbox.start_process("dev", "sleep 300 & sleep 300")
    print(info.port, flush=True)
    # Ends without sandbox.close(): the script simply returns.

asyncio.run(main())
"""


def _processes_in(directory: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if cwd == directory or directory in cwd.parents:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_script_that_never_closes_its_sandbox_leaves_no_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    workspace = (data / "workspaces" / "leaky").resolve()
    assert workspace.is_dir()
    assert _processes_in(workspace) == []
