"""examples/remote_client.py runs as documented against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.http.langgraph.conftest import LangGraphServer

EXAMPLE = Path(__file__).parents[3] / "examples" / "remote_client.py"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )


def test_the_remote_client_example_builds_through_the_sdk(lg_server: LangGraphServer) -> None:
    result = _run(["--url", lg_server.url, "--key", lg_server.alice, "--prompt", "A page"], {})
    assert result.returncode == 0, result.stderr
    thread_line, *rest = result.stdout.splitlines()
    assert thread_line.startswith("thread: ")
    assert rest == [
        "tool write_file(path='index.html', content='<h1>Hello</h1>\\n')",
        "  ok: Created index.html (15 bytes, 1 line).",
        "files: index.html",
        "reply: The page is ready.",
    ]


def test_the_example_reads_the_server_and_key_from_the_environment(
    lg_server: LangGraphServer,
) -> None:
    result = _run([], {"BUILDER_URL": lg_server.url, "BUILDER_API_KEY": lg_server.bob})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["files: index.html", "reply: The page is ready."]
    refused = _run([], {"BUILDER_URL": lg_server.url, "BUILDER_API_KEY": "bld_wrong"})
    assert refused.returncode != 0 and "invalid API key" in refused.stderr
