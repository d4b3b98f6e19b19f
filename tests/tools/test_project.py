"""analyze_project_state."""

from __future__ import annotations

from builder.sandbox.local import LocalSandbox
from builder.tools.context import ToolContext
from tests.tools.conftest import Caller


async def test_empty_project(call: Caller) -> None:
    assert await call("analyze_project_state") == (
        "Project project-1: 0 files, 0 bytes\n\n(no files yet)\n\nPlan: none yet.\n\n"
        "Dev server: not started.\n\nRecent errors: none."
    )


async def test_project_with_files_plan_and_errors(
    call: Caller, ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    await sandbox.write_file("index.html", b"<h1>x</h1>")
    await call("plan_changes", goal="Site", steps=["Home page"])
    await call.error("read_file", path="missing.html")
    result = await call("analyze_project_state", include_file_contents=True)
    assert result == (
        "Project project-1: 1 files, 10 bytes\n\n.\n  index.html (10 B)\n\n"
        "Goal: Site (0/1 steps done)\n1. [ ] Home page\n\n"
        "Dev server: not started.\n\n"
        "Recent errors:\n- read_file: file missing.html not found\n\n"
        "Contents:\n--- index.html ---\n<h1>x</h1>"
    )
