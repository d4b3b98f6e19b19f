"""Workspace file operations: path safety against symlinks and races, compare-and-swap.

A canary file lives next to (outside) the workspace. After every test its content,
and the set of files beside it, must be exactly as they were, and no operation may
ever return its bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import builder.sandbox.workspace as workspace_module
from builder.errors import (
    BuilderError,
    ConcurrentModification,
    InvalidInput,
    NotFound,
    PathOutsideSandbox,
)
from builder.sandbox.base import FileInfo
from builder.sandbox.workspace import Workspace

CANARY = b"CANARY-outside-the-workspace-7f3a"


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A directory outside the workspace holding the canary; checked untouched afterwards."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "canary.txt").write_bytes(CANARY)
    yield directory
    assert sorted(p.name for p in directory.iterdir()) == ["canary.txt"]
    assert (directory / "canary.txt").read_bytes() == CANARY


def make_workspace(root: Path, outside: Path) -> Workspace:
    """A workspace with a file, a directory, and symlinks pointing in and out."""
    ws = Workspace(root)
    (root / "a.txt").write_bytes(b"alpha")
    (root / "sub").mkdir()
    (root / "sub" / "file.txt").write_bytes(b"inside")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "outfile").symlink_to(outside / "canary.txt")
    (root / "in").symlink_to("sub", target_is_directory=True)
    (root / "infile").symlink_to("a.txt")
    return ws


@pytest.fixture
def ws(tmp_path: Path, outside: Path) -> Workspace:
    return make_workspace(tmp_path / "ws", outside)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- ordinary use -----------------------------------------------------------------


def test_write_read_stat_list_roundtrip(ws: Workspace) -> None:
    ws.write("src/app/page.tsx", b"export default 1\n")
    assert ws.read("src/app/page.tsx") == b"export default 1\n"
    info = ws.stat("src/app/page.tsx")
    assert info is not None
    assert (info.path, info.size, info.is_dir) == ("src/app/page.tsx", 17, False)
    assert [(i.path, i.is_dir) for i in ws.list("src", recursive=True)] == [
        ("src/app", True),
        ("src/app/page.tsx", False),
    ]
    assert ws.stat("missing.txt") is None
    assert ws.stat("a.txt/below") is None
    root = ws.stat(".")
    assert root is not None and (root.path, root.is_dir) == (".", True)


def test_list_skips_node_modules_and_git_and_does_not_descend_symlinks(ws: Workspace) -> None:
    ws.write("node_modules/react/index.js", b"x" * 1000)
    ws.write(".git/HEAD", b"ref: refs/heads/main\n")
    ws.write("sub/deeper/x.css", b"body{}")
    listing = [(i.path, i.is_dir) for i in ws.list(".", recursive=True)]
    assert listing == [
        ("a.txt", False),
        ("in", False),
        ("infile", False),
        ("out", False),
        ("outfile", False),
        ("sub", True),
        ("sub/deeper", True),
        ("sub/deeper/x.css", False),
        ("sub/file.txt", False),
    ]
    assert [i.path for i in ws.list(".")] == ["a.txt", "in", "infile", "out", "outfile", "sub"]


def test_list_leaves_out_what_the_root_gitignore_lists(ws: Workspace) -> None:
    ws.write(".gitignore", b"# build output\ndist/\n.astro\n*.log\n!keep.log\n")
    for path in ("dist/index.html", "dist/assets/a.js", ".astro/types.d.ts", "src/dist/x.js"):
        ws.write(path, b"generated")
    for path in ("src/app.ts", "debug.log", "keep.log", "distant.txt"):
        ws.write(path, b"source")
    listing = {i.path for i in ws.list(".", recursive=True)} - {"a.txt", "in", "infile"}
    assert {p for p in listing if not p.startswith(("out", "sub"))} == {
        ".gitignore",
        "distant.txt",
        "keep.log",
        "src",
        "src/app.ts",
    }
    assert ws.list("dist", recursive=True) == []
    everything = {i.path for i in ws.list(".", recursive=True, include_ignored=True)}
    assert {"dist/assets/a.js", ".astro/types.d.ts", "src/dist/x.js", "debug.log"} <= everything
    assert [i.path for i in ws.list("dist", include_ignored=True)] == [
        "dist/assets",
        "dist/index.html",
    ]
    # A .gitignore that is not a regular file (a link to elsewhere) has no rules.
    ws.delete(".gitignore")
    os.symlink(ws.root / "keep.log", ws.root / ".gitignore")
    assert "dist/index.html" in {i.path for i in ws.list(".", recursive=True)}


def test_disk_usage_counts_regular_files_except_node_modules_and_git(ws: Workspace) -> None:
    before = ws.disk_usage()
    assert before == len(b"alpha") + len(b"inside")
    ws.write("node_modules/big.js", b"x" * 5000)
    ws.write(".git/objects/x", b"x" * 5000)
    ws.write("public/logo.svg", b"y" * 300)
    assert ws.disk_usage() == before + 300


def test_write_is_atomic_and_keeps_the_mode(ws: Workspace) -> None:
    ws.write("run.sh", b"#!/bin/sh\n")
    os.chmod(ws.root / "run.sh", 0o755)  # noqa: S103 - an executable script keeps its mode
    inode = (ws.root / "run.sh").stat().st_ino
    ws.write("run.sh", b"#!/bin/sh\necho hi\n")
    st = (ws.root / "run.sh").stat()
    assert (st.st_mode & 0o777, st.st_ino != inode) == (0o755, True)
    assert sorted(p.name for p in ws.root.iterdir() if p.name.startswith(".builder-")) == []


def test_delete_and_rename(ws: Workspace) -> None:
    ws.write("docs/a.md", b"# a")
    ws.rename("docs", "content/docs")
    assert ws.read("content/docs/a.md") == b"# a"
    with pytest.raises(InvalidInput, match="the target exists"):
        ws.rename("a.txt", "content/docs/a.md")
    with pytest.raises(InvalidInput, match="into itself"):
        ws.rename("content", "content/inner")
    with pytest.raises(NotFound):
        ws.rename("nope.txt", "new/nope.txt")
    assert not (ws.root / "new").exists()
    ws.delete("content")
    ws.delete("a.txt")
    assert (ws.stat("content"), ws.stat("a.txt")) == (None, None)
    with pytest.raises(NotFound):
        ws.delete("a.txt")
    with pytest.raises(InvalidInput, match="workspace root"):
        ws.delete(".")


def test_missing_files_and_wrong_kinds(ws: Workspace) -> None:
    with pytest.raises(NotFound) as caught:
        ws.read("nope/missing.txt")
    assert caught.value.resource == "file"
    with pytest.raises(NotFound):
        ws.read("missing.txt")
    with pytest.raises(InvalidInput, match="is a directory"):
        ws.read("sub")
    with pytest.raises(InvalidInput, match="is a directory"):
        ws.write("sub", b"x")
    with pytest.raises(InvalidInput, match="is a file, not a directory"):
        ws.write("a.txt/child.txt", b"x")
    os.mkfifo(ws.root / "fifo")
    with pytest.raises(InvalidInput, match="not a regular file"):
        ws.read("fifo")  # must not block waiting for a writer


# --- compare-and-swap --------------------------------------------------------------


def test_cas_write_succeeds_with_the_current_hash(ws: Workspace) -> None:
    ws.write("a.txt", b"beta", expected_sha256=sha(b"alpha"))
    ws.write("new.txt", b"n", expected_sha256="")
    assert (ws.read("a.txt"), ws.read("new.txt")) == (b"beta", b"n")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.txt", sha(b"something else")),
        ("a.txt", ""),
        ("missing.txt", sha(b"alpha")),
    ],
)
def test_cas_mismatch_raises_and_leaves_the_file(ws: Workspace, path: str, expected: str) -> None:
    with pytest.raises(ConcurrentModification) as caught:
        ws.write(path, b"overwritten", expected_sha256=expected)
    assert caught.value.path == path
    assert ws.read("a.txt") == b"alpha"
    assert ws.stat("missing.txt") is None


def test_cas_expecting_a_file_creates_no_directories(ws: Workspace) -> None:
    with pytest.raises(ConcurrentModification) as caught:
        ws.write("new/dir/x.txt", b"x", expected_sha256=sha(b"x"))
    assert (caught.value.path, ws.stat("new")) == ("new/dir/x.txt", None)


def test_cas_guard_is_what_protects_the_file(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the hash comparison bypassed, the lost update happens."""
    monkeypatch.setattr(workspace_module, "_content_matches", lambda content, expected: True)
    ws.write("a.txt", b"overwritten", expected_sha256=sha(b"something else"))
    assert ws.read("a.txt") == b"overwritten"


# --- symlinks and escapes ----------------------------------------------------------

ESCAPES: list[tuple[str, Callable[[Workspace], object]]] = [
    ("read through dir link", lambda ws: ws.read("out/canary.txt")),
    ("read file link", lambda ws: ws.read("outfile")),
    ("read inside link", lambda ws: ws.read("in/file.txt")),
    ("read inside file link", lambda ws: ws.read("infile")),
    ("write through dir link", lambda ws: ws.write("out/new.txt", b"x")),
    ("write deep through link", lambda ws: ws.write("out/d/e/new.txt", b"x")),
    ("write onto file link", lambda ws: ws.write("outfile", b"x")),
    ("cas onto file link", lambda ws: ws.write("outfile", b"x", expected_sha256=sha(CANARY))),
    ("list through link", lambda ws: ws.list("out")),
    ("list recursive through link", lambda ws: ws.list("out", recursive=True)),
    ("stat through link", lambda ws: ws.stat("out/canary.txt")),
    ("delete through link", lambda ws: ws.delete("out/canary.txt")),
    ("rename from link", lambda ws: ws.rename("out/canary.txt", "stolen.txt")),
    ("rename into link", lambda ws: ws.rename("a.txt", "out/a.txt")),
    ("open directory through link", lambda ws: os.close(ws.open_directory("out"))),
]


@pytest.mark.parametrize(("name", "operation"), ESCAPES, ids=[n for n, _ in ESCAPES])
def test_symlinks_are_refused(
    ws: Workspace, name: str, operation: Callable[[Workspace], object]
) -> None:
    with pytest.raises(PathOutsideSandbox, match="symbolic link"):
        operation(ws)
    assert not (ws.root / "stolen.txt").exists()


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "../outside/canary.txt", "a/../../outside/canary.txt", "sub\\..\\..\\x"],
)
def test_lexical_escapes_are_refused(ws: Workspace, path: str) -> None:
    for operation in (
        lambda: ws.read(path),
        lambda: ws.write(path, b"x"),
        lambda: ws.stat(path),
        lambda: ws.list(path),
        lambda: ws.delete(path),
        lambda: ws.rename("a.txt", path),
        lambda: ws.rename(path, "b.txt"),
    ):
        with pytest.raises(PathOutsideSandbox):
            operation()


def test_deleting_a_link_removes_the_link_not_the_target(ws: Workspace, outside: Path) -> None:
    ws.delete("outfile")
    ws.delete("out")
    assert (ws.stat("outfile"), ws.stat("out")) == (None, None)
    assert (outside / "canary.txt").read_bytes() == CANARY


def test_listing_describes_links_without_following(ws: Workspace) -> None:
    info = ws.stat("outfile")
    assert info is not None
    # The link itself is described (a symlink, never read), not its target.
    assert (info.path, info.is_dir, info.is_file, info.special, info.size) == (
        "outfile",
        False,
        False,
        "symlink",
        0,
    )


def test_a_symlink_swapped_in_after_the_check_is_refused(
    ws: Workspace, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory is replaced by a link between the path check and its use."""
    real_split = workspace_module.split_path

    def split_then_swap(path: str, *, allow_root: bool = False) -> tuple[str, ...]:
        parts = real_split(path, allow_root=allow_root)
        if (ws.root / "sub").is_dir() and not (ws.root / "sub").is_symlink():
            (ws.root / "sub").rename(ws.root / "sub-moved")
            (ws.root / "sub").symlink_to(outside, target_is_directory=True)
        return parts

    monkeypatch.setattr(workspace_module, "split_path", split_then_swap)
    for operation in (
        lambda: ws.read("sub/canary.txt"),
        lambda: ws.write("sub/canary.txt", b"x"),
        lambda: ws.write("sub/new.txt", b"x"),
        lambda: ws.delete("sub/canary.txt"),
        lambda: ws.list("sub"),
        lambda: ws.rename("sub/canary.txt", "got.txt"),
    ):
        with pytest.raises(PathOutsideSandbox, match="symbolic link"):
            operation()


def test_a_directory_moved_out_after_opening_is_refused(
    ws: Workspace, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_check = Workspace._check_inside

    def move_then_check(self: Workspace, fd: int, path: str) -> None:
        if (ws.root / "sub").exists():
            (ws.root / "sub").rename(outside / "moved")
        real_check(self, fd, path)

    monkeypatch.setattr(Workspace, "_check_inside", move_then_check)
    try:
        with pytest.raises(PathOutsideSandbox, match="resolves outside the workspace"):
            ws.write("sub/planted.txt", b"x")
        assert sorted(p.name for p in (outside / "moved").iterdir()) == ["file.txt"]
    finally:
        (outside / "moved").rename(ws.root / "sub")


def test_the_canary_is_reachable_when_the_safe_walk_is_bypassed(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves this suite can fail: a naive resolver that follows links leaks the canary."""

    def naive_open_dir(
        self: Workspace, parts: tuple[str, ...], *, path: str, create: bool = False
    ) -> int:
        return os.open(os.path.join(self.root, *parts), os.O_RDONLY | os.O_DIRECTORY)

    monkeypatch.setattr(Workspace, "_open_dir", naive_open_dir)
    monkeypatch.setattr(Workspace, "_check_inside", lambda self, fd, path: None)
    assert ws.read("out/canary.txt") == CANARY
    assert [i.path for i in ws.list("out")] == ["out/canary.txt"]


# --- generated paths ---------------------------------------------------------------

_NAMES = st.sampled_from(
    [
        *["..", ".", "", "a.txt", "sub", "out", "outfile", "in", "infile", "canary.txt"],
        "file.txt",
        *["\x00", "\\", "..\\..", "é", "日本", "x" * 260, "\n", "~", "node_modules", ".git"],
    ]
)
_PATHS = st.builds(
    lambda lead, names, sep: lead + sep.join(names),
    st.sampled_from(["", "/", "./", "../", "//"]),
    st.lists(_NAMES, min_size=0, max_size=6),
    st.sampled_from(["/", "/", "/", "\\", "//"]),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=_PATHS, other=_PATHS)
def test_generated_paths_never_reach_outside(
    tmp_path: Path, outside: Path, path: str, other: str
) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    ws = make_workspace(root / "ws", outside)
    results: list[object] = []
    operations: list[Callable[[], object]] = [
        lambda: ws.read(path),
        lambda: ws.stat(path),
        lambda: ws.list(path, recursive=True),
        lambda: ws.write(path, b"generated"),
        lambda: ws.write(path, b"cas", expected_sha256=sha(CANARY)),
        lambda: ws.rename(path, other),
        lambda: ws.rename(other, path),
        lambda: ws.delete(path),
        lambda: ws.disk_usage(),
    ]
    for operation in operations:
        with contextlib.suppress(BuilderError):
            results.append(operation())
    assert all(CANARY not in _as_bytes(r) for r in results)
    assert sorted(p.name for p in outside.iterdir()) == ["canary.txt"]
    assert (outside / "canary.txt").read_bytes() == CANARY
    assert not (root / "generated").exists()
    assert sorted(p.name for p in root.iterdir()) == ["ws"]


def _as_bytes(result: object) -> bytes:
    if isinstance(result, bytes):
        return result
    if isinstance(result, list):
        return b"\n".join(_as_bytes(item) for item in result)
    if isinstance(result, FileInfo):
        return result.path.encode("utf-8", "surrogateescape")
    return repr(result).encode("utf-8", "surrogateescape")


class _Vanished:
    """A directory entry whose file was removed between the scan and its stat."""

    name = ".builder-0123.tmp"

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        raise FileNotFoundError(2, "No such file or directory", self.name)


def test_listing_and_usage_skip_files_that_vanish_during_the_scan(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer's temporary file may disappear between scandir and stat."""
    real_scandir = os.scandir

    @contextlib.contextmanager
    def scandir(fd: int) -> Iterator[list[object]]:
        with real_scandir(fd) as scan:
            yield [*scan, _Vanished()]

    before = ws.disk_usage()
    monkeypatch.setattr(workspace_module.os, "scandir", scandir)
    assert ws.disk_usage() == before
    assert ".builder-0123.tmp" not in {info.path for info in ws.list(".", recursive=True)}
