"""Links a confined command makes stay harmless for every file tool.

Inside the sandbox ``ln -s`` can name any path: ``/etc/passwd``, a sibling workspace
(``../proj-other``, which is a real directory next to this one on the host), or the
data directory by its host path. The links resolve on the host, where the file tools
run, so each tool must refuse them (or act on the link itself) and never read, write
or delete what they point at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.sandbox.local import LocalSandbox
from builder.sandbox.local.confine import bwrap_status
from builder.settings import Settings
from tests.tools.conftest import Caller

pytestmark = pytest.mark.skipif(
    bwrap_status()[0] is None, reason=f"confinement unavailable: {bwrap_status()[1]}"
)

OTHER = "other-workspace-canary"
DATA = "data-dir-canary"
LINKS = ["passwd", "other.txt", "otherdir", "data", "datafile"]


@pytest.fixture
async def linked(sandbox: LocalSandbox, settings: Settings) -> dict[str, Path]:
    """Canaries outside the workspace and links to them, made by a confined command."""
    assert sandbox.confinement is not None
    other = settings.data_dir / "workspaces" / "proj-other"
    other.mkdir(parents=True)
    (other / "secret.txt").write_text(OTHER)
    (settings.data_dir / "canary.txt").write_text(DATA)
    result = await sandbox.exec(
        "ln -s /etc/passwd passwd && ln -s ../proj-other/secret.txt other.txt && "
        f"ln -s ../proj-other otherdir && ln -s {settings.data_dir} data && "
        f"ln -s {settings.data_dir}/canary.txt datafile && echo linked"
    )
    assert result.stdout == "linked\n", result.stderr
    await sandbox.write_file("index.html", b"<h1>mine</h1>\n")
    return {"other": other / "secret.txt", "data": settings.data_dir / "canary.txt"}


def test_the_links_reach_the_canaries_when_followed(
    linked: dict[str, Path], sandbox: LocalSandbox
) -> None:
    """The twin: followed on the host, as a naive file tool would, every link leaks."""
    assert (sandbox.root / "other.txt").read_text() == OTHER
    assert (sandbox.root / "otherdir" / "secret.txt").read_text() == OTHER
    assert (sandbox.root / "data" / "canary.txt").read_text() == DATA
    assert (sandbox.root / "datafile").read_text() == DATA
    assert _leaks((sandbox.root / "passwd").read_text())


def _untouched(canaries: dict[str, Path]) -> None:
    assert canaries["other"].read_text() == OTHER
    assert canaries["data"].read_text() == DATA
    assert Path("/etc/passwd").read_text().startswith("root:")


def _leaks(text: str) -> bool:
    return OTHER in text or DATA in text or "root:x:0:0" in text


@pytest.mark.parametrize(
    "path", ["passwd", "other.txt", "otherdir/secret.txt", "data/canary.txt", "datafile"]
)
async def test_read_file_refuses_every_link(
    call: Caller, linked: dict[str, Path], path: str
) -> None:
    error = await call.error("read_file", path=path)
    assert "symbolic link" in error and not _leaks(error)


@pytest.mark.parametrize(
    "path", ["passwd", "other.txt", "otherdir/secret.txt", "otherdir/new.txt", "data/new.txt"]
)
async def test_writes_and_edits_never_go_through_a_link(
    call: Caller, linked: dict[str, Path], path: str, settings: Settings
) -> None:
    assert "symbolic link" in await call.error("write_file", path=path, content="pwned")
    assert "symbolic link" in await call.error(
        "edit_file", path=path, search=OTHER, replace="pwned"
    )
    error = await call.error("batch_write_files", files=[{"path": path, "content": "pwned"}])
    assert "symbolic link" in error
    _untouched(linked)
    assert not (settings.data_dir / "workspaces" / "proj-other" / "new.txt").exists()
    assert not (settings.data_dir / "new.txt").exists()


async def test_delete_and_rename_act_on_the_link_never_its_target(
    call: Caller, linked: dict[str, Path], sandbox: LocalSandbox
) -> None:
    assert "symbolic link" in await call.error("delete_file", path="otherdir/secret.txt")
    assert "symbolic link" in await call.error(
        "rename_file", path="data/canary.txt", new_path="stolen.txt"
    )
    assert "symbolic link" in await call.error(
        "rename_file", path="index.html", new_path="otherdir/index.html"
    )
    for link in LINKS:
        await call("delete_file", path=link)
        assert not (sandbox.root / link).is_symlink()
    _untouched(linked)
    assert not (sandbox.root / "stolen.txt").exists()


async def test_listings_and_searches_name_links_without_reading_them(
    call: Caller, linked: dict[str, Path]
) -> None:
    listing = await call("list_files", path=".", recursive=True)
    for link in LINKS:
        assert f"{link} (symlink: not read, not saved)" in listing
    outputs = [
        listing,
        await call("get_project_structure", include_contents=True),
        await call("analyze_project_state", include_file_contents=True),
        await call("search_files", pattern="canary|root:x"),
    ]
    assert not any(_leaks(output) for output in outputs)
    assert "symbolic link" in await call.error("list_files", path="otherdir")
    for link in ("data", "otherdir"):
        searched = await call.message("search_files", pattern="canary", path=link)
        assert not _leaks(str(searched.content))
    _untouched(linked)
