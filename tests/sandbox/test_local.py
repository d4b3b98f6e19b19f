"""LocalSandbox: the protocol over a workspace directory."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from builder.errors import (
    ConcurrentModification,
    InvalidInput,
    NotFound,
    OperationTimeout,
    PathOutsideSandbox,
)
from builder.sandbox import LocalSandbox, Sandbox
from builder.sandbox.base import FileInfo
from builder.settings import Settings


@pytest.fixture
async def sandbox(settings: Settings) -> LocalSandbox:
    return LocalSandbox("proj-1", settings=settings)


async def test_identity_and_workspace_location(sandbox: LocalSandbox, settings: Settings) -> None:
    assert isinstance(sandbox, Sandbox)
    assert (sandbox.sandbox_id, sandbox.project_id) == ("local-proj-1", "proj-1")
    assert sandbox.root == (settings.data_dir / "workspaces" / "proj-1").resolve()
    assert await sandbox.health() is True
    assert await sandbox.preview_url(5173) == "http://127.0.0.1:5173/"
    with pytest.raises(InvalidInput):
        await sandbox.preview_url(0)


@pytest.mark.parametrize("project_id", ["../escape", "a/b", "", ".."])
def test_unsafe_project_ids_are_refused(settings: Settings, project_id: str) -> None:
    with pytest.raises(InvalidInput, match="project id"):
        LocalSandbox(project_id, settings=settings)
    assert not (settings.data_dir / "escape").exists()


async def test_file_operations(sandbox: LocalSandbox) -> None:
    await sandbox.write_file("src/index.html", b"<h1>hi</h1>")
    await sandbox.write_file("src/app.js", b"console.log(1)")
    assert await sandbox.read_file("src/index.html") == b"<h1>hi</h1>"
    listing = await sandbox.list_files("src")
    assert [(i.path, i.size, i.is_dir) for i in listing] == [
        ("src/app.js", 14, False),
        ("src/index.html", 11, False),
    ]
    await sandbox.rename_file("src/app.js", "src/js/app.js")
    info = await sandbox.stat("src/js/app.js")
    assert isinstance(info, FileInfo) and (info.path, info.size) == ("src/js/app.js", 14)
    assert await sandbox.disk_usage() == 25
    await sandbox.delete_file("src/js")
    assert [i.path for i in await sandbox.list_files(".", recursive=True)] == [
        "src",
        "src/index.html",
    ]
    with pytest.raises(NotFound):
        await sandbox.read_file("src/js/app.js")


async def test_compare_and_swap(sandbox: LocalSandbox) -> None:
    await sandbox.write_file("a.txt", b"one", expected_sha256="")
    with pytest.raises(ConcurrentModification):
        await sandbox.write_file("a.txt", b"two", expected_sha256="")
    with pytest.raises(ConcurrentModification):
        await sandbox.write_file("a.txt", b"two", expected_sha256=hashlib.sha256(b"x").hexdigest())
    assert await sandbox.read_file("a.txt") == b"one"
    await sandbox.write_file("a.txt", b"two", expected_sha256=hashlib.sha256(b"one").hexdigest())
    assert await sandbox.read_file("a.txt") == b"two"


async def test_escapes_are_refused(sandbox: LocalSandbox, tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_bytes(b"CANARY")
    (sandbox.root / "link").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(PathOutsideSandbox):
        await sandbox.read_file("link/canary.txt")
    with pytest.raises(PathOutsideSandbox):
        await sandbox.write_file("link/canary.txt", b"pwned")
    with pytest.raises(PathOutsideSandbox):
        await sandbox.read_file("../canary.txt")
    assert canary.read_bytes() == b"CANARY"


async def test_file_operations_run_under_the_sandbox_timeout(
    sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    release = threading.Event()

    def stuck(path: str) -> bytes:
        release.wait(10)
        return b""

    slow = LocalSandbox("proj-1", settings=settings.model_copy(update={"timeout_sandbox": 0.05}))
    monkeypatch.setattr(slow.workspace, "read", stuck)
    try:
        with pytest.raises(OperationTimeout) as caught:
            await slow.read_file("a.txt")
        assert (caught.value.operation, caught.value.seconds) == ("sandbox", 0.05)
    finally:
        release.set()
