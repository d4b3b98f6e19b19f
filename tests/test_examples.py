"""The examples run as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_custom_tool_app_runs_the_graph_with_its_own_tool() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "custom_tool_app.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "write_file: Created index.html (175 bytes, 5 lines).",
        "word_count: index.html: 16 words",
        "check: passed",
        "files: index.html",
        "reply: The landing page is written (index.html) and has 16 words.",
    ]
