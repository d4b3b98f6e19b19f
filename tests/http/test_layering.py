"""The HTTP layer reaches runs, sandboxes and graphs through ``builder.runs`` only.

``builder/http`` never imports the graph, the lock manager, the tools or the sandboxes.
Starting, following, cancelling a run, a thread's state and history and holding a
project idle are the runs service's (:class:`~builder.runs.service.RunService`); a
project's sandbox, dev server and preview target are its
:class:`~builder.runs.workspace.Workspaces`; the sandbox backend's health probe and the
graph's state schema are functions in ``builder.runs``. No file may cross the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import builder.http

FORBIDDEN = ("builder.graphs", "builder.sandbox", "builder.locks", "builder.tools")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _crossings() -> dict[str, set[str]]:
    root = Path(builder.http.__file__).parent
    found = {}
    for path in sorted(root.rglob("*.py")):
        crossing = {
            name for name in _imports(path) if name.startswith(FORBIDDEN) or name in FORBIDDEN
        }
        if crossing:
            found[path.relative_to(root).as_posix()] = crossing
    return found


def test_http_reaches_runs_only_through_the_runs_service() -> None:
    assert _crossings() == {}


def test_the_run_lock_key_is_spelled_once() -> None:
    root = Path(builder.http.__file__).parent.parent
    spelled = [
        path.relative_to(root).as_posix()
        for path in root.rglob("*.py")
        if 'f"run:{' in path.read_text()
    ]
    assert spelled == ["runs/queue.py"]


def test_http_holds_no_lock_and_touches_no_checkpoint_itself() -> None:
    root = Path(builder.http.__file__).parent
    reaching = [
        path.relative_to(root).as_posix()
        for path in sorted(root.rglob("*.py"))
        if any(
            attribute in path.read_text()
            for attribute in ("runs.locks", "runs.checkpointer", "runs.graph.", "runs.pool")
        )
    ]
    assert reaching == []
