"""The lexical path rules shared by every sandbox."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder.errors import InvalidInput, PathOutsideSandbox
from builder.sandbox.paths import (
    check_process_name,
    check_project_id,
    join_parts,
    split_path,
)


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("a.txt", ("a.txt",)),
        ("src/app/page.tsx", ("src", "app", "page.tsx")),
        ("./src//app/", ("src", "app")),
        ("a/b/../c", ("a", "c")),
        ("a/./b/./.", ("a", "b")),
        ("é/日本.txt", ("é", "日本.txt")),
        ("..a/b..", ("..a", "b..")),
    ],
)
def test_split_path_normalizes(path: str, parts: tuple[str, ...]) -> None:
    assert split_path(path) == parts


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/etc/passwd", "is absolute; paths are relative to the workspace"),
        ("//etc/passwd", "is absolute; paths are relative to the workspace"),
        ("..", "climbs above the workspace root"),
        ("../x", "climbs above the workspace root"),
        ("a/../../x", "climbs above the workspace root"),
        ("a/b/../../../x", "climbs above the workspace root"),
        ("a\x00b", "contains a NUL byte"),
        ("a\\..\\..\\x", "contains a backslash; use / as the separator"),
        ("..\\x", "contains a backslash; use / as the separator"),
        ("~/x", "starts with ~; paths are relative to the workspace"),
    ],
)
def test_split_path_refuses_escapes(path: str, reason: str) -> None:
    with pytest.raises(PathOutsideSandbox) as caught:
        split_path(path)
    assert (caught.value.path, caught.value.reason) == (path, reason)


@pytest.mark.parametrize(
    "path",
    ["", ".", "./", "a/..", "x" * 256, "a/" * 2100, "a\nb", "bad\udcffname", "tab\there"],
)
def test_split_path_refuses_malformed(path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        split_path(path)
    assert type(caught.value) is InvalidInput


def test_split_path_root_when_allowed() -> None:
    assert [split_path(p, allow_root=True) for p in ("", ".", "a/..")] == [(), (), ()]
    assert [join_parts(()), join_parts(("a", "b"))] == [".", "a/b"]


def test_split_path_refuses_non_strings() -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        split_path(b"a.txt")  # type: ignore[arg-type]


_COMPONENTS = st.sampled_from(
    ["..", ".", "", "a", "b", "é", "\x00", "\\", "..\\..", "~", "x" * 300, "\n", "\udc80"]
)


@given(st.lists(_COMPONENTS, max_size=8), st.sampled_from(["", "/", "./", "../"]))
def test_split_path_never_yields_an_escaping_component(parts: list[str], lead: str) -> None:
    path = lead + "/".join(parts)
    try:
        result = split_path(path, allow_root=True)
    except InvalidInput:  # PathOutsideSandbox is an InvalidInput
        return
    assert all(p not in ("", ".", "..") and "/" not in p for p in result)
    assert all("\x00" not in p and "\\" not in p for p in result)
    assert not path.startswith("/")


@pytest.mark.parametrize("good", ["p1", "Project-1.2_x", "a" * 128])
def test_project_id_accepts(good: str) -> None:
    assert check_project_id(good) == good


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "-x", ".hidden", "a" * 129, "a b", "é"])
def test_project_id_refuses(bad: str) -> None:
    with pytest.raises(InvalidInput, match="project id"):
        check_project_id(bad)


@pytest.mark.parametrize("bad", ["", "dev server", "../x", "x" * 65])
def test_process_name_refuses(bad: str) -> None:
    with pytest.raises(InvalidInput, match="process name"):
        check_process_name(bad)
