"""The HTTP layer reaches runs through ``builder.runs`` only.

``builder/http`` never imports the graph, the lock manager, the tools or the sandboxes
for a run's sake: starting, following, cancelling a run and holding a project idle are
the runs service's (:class:`~builder.runs.service.RunService`). The sandbox pool and the
dev-server tool are still used directly by the dev-server, preview and health routes,
which serve sandboxes rather than runs; they are listed here, so any new reach across
the line fails this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import builder.http

FORBIDDEN = ("builder.graphs", "builder.sandbox", "builder.locks", "builder.tools")
SANDBOX_ROUTES = {
    "deps.py": {"builder.sandbox.pool"},
    "services.py": {"builder.sandbox.pool"},
    "preview.py": {"builder.sandbox.pool", "builder.tools.devserver"},
    "routes/devserver.py": {
        "builder.sandbox.base",
        "builder.sandbox.pool",
        "builder.tools.devserver",
    },
    "routes/health.py": {"builder.sandbox.e2b"},
    "langgraph/assistants.py": {"builder.graphs.state"},
}


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
    assert _crossings() == SANDBOX_ROUTES


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
        if "runs.locks" in path.read_text() or "runs.checkpointer" in path.read_text()
    ]
    assert reaching == []
