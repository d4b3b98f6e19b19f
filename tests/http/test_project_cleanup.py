"""Deleting a project closes its sandbox: the dev server stops and the workspace goes."""

from __future__ import annotations

import os
from pathlib import Path

from tests.http.server import ServerProcess


def _processes_in(directory: Path) -> list[int]:
    """Every process whose working directory is ``directory`` (or below it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:  # gone, or not ours to look at
            continue
        if cwd == directory or directory in cwd.parents:
            found.append(int(entry.name))
    return found


def test_deleting_a_project_stops_its_dev_server_and_removes_its_workspace(
    dev_server: ServerProcess,
) -> None:
    with dev_server.client(dev_server.new_key("cleanup")) as client:
        pid = client.post("/api/projects", json={"name": "short-lived"}).json()["id"]
        started = client.post(f"/api/sandbox/{pid}/dev-server")
        assert started.status_code == 200, started.text
        assert started.json()["running"] is True
        workspace = (dev_server.data_dir / "workspaces" / pid).resolve()
        assert workspace.is_dir()
        assert _processes_in(workspace), "the dev server runs in the workspace"
        assert client.delete(f"/api/projects/{pid}").status_code == 204
    # The sandbox was closed before the answer: nothing of it is left.
    assert _processes_in(workspace) == []
    assert not workspace.exists()
