"""edit_file: exact unique matches, literal replacement, compare-and-swap, limits."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from builder.errors import ConcurrentModification, FileTooLarge, SearchTextNotUnique
from builder.sandbox.local import LocalSandbox
from builder.tools import edits
from builder.tools.context import ToolContext
from tests.tools.conftest import Caller

PAGE = """<html>
  <head>
    <title>Home</title>
  </head>
  <body>
    <h1 class="title">Welcome</h1>
    <p>First</p>
    <p>Second</p>
    <p>First</p>
  </body>
</html>
"""


class ChangedBehindItsBack:
    """A sandbox where someone else writes the file right after the editor reads it.

    Args:
        inner: The real sandbox.
        change: The content the other writer puts there.
        keep_cas: False drops ``expected_sha256`` from writes (the guard removed).
    """

    def __init__(self, inner: LocalSandbox, change: bytes, *, keep_cas: bool = True) -> None:
        self._inner = inner
        self._change = change
        self._keep_cas = keep_cas

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def read_file(self, path: str) -> bytes:
        data = await self._inner.read_file(path)
        await self._inner.write_file(path, self._change)
        return data

    async def write_file(
        self, path: str, data: bytes, *, expected_sha256: str | None = None
    ) -> None:
        await self._inner.write_file(
            path, data, expected_sha256=expected_sha256 if self._keep_cas else None
        )


@pytest.fixture
async def page(sandbox: LocalSandbox) -> str:
    await sandbox.write_file("index.html", PAGE.encode())
    return "index.html"


async def test_edit_replaces_the_unique_occurrence(
    call: Caller, ctx: ToolContext, sandbox: LocalSandbox, page: str
) -> None:
    result = await call(
        "edit_file", path=page, search="<p>Second</p>", replace="<p>2</p>\n    <p>3</p>"
    )
    assert result == "Edited index.html at line 8: 1 line replaced by 2 (164 → 172 bytes)."
    expected = PAGE.replace("<p>Second</p>", "<p>2</p>\n    <p>3</p>").encode()
    assert await sandbox.read_file(page) == expected
    assert ctx.effects.files == {page: hashlib.sha256(expected).hexdigest()}


@pytest.mark.parametrize("replacement", ["$1", r"\1", "$&", r"\g<0>", r"\\n", "$$", r"\0"])
async def test_replacement_is_literal(
    call: Caller, sandbox: LocalSandbox, page: str, replacement: str
) -> None:
    await call("edit_file", path=page, search="Welcome", replace=f"<{replacement}>")
    assert await sandbox.read_file(page) == PAGE.replace("Welcome", f"<{replacement}>").encode()


async def test_search_text_not_found_shows_the_closest_lines(call: Caller, page: str) -> None:
    message = await call.error(
        "edit_file", path=page, search='<h1 class="title">Welcome!</h1>\n<p>First</p>', replace="x"
    )
    assert message == (
        "Error (search_text_not_found): the search text does not occur in index.html; "
        "the closest text is at lines 6-7:\n"
        '     6\t    <h1 class="title">Welcome</h1>\n'
        "     7\t    <p>First</p>\n"
        "Copy the text exactly (whitespace and indentation included), or read the file again."
    )


async def test_search_text_not_found_with_nothing_similar(call: Caller, page: str) -> None:
    message = await call.error("edit_file", path=page, search="zzzzqqqq", replace="x")
    assert "nothing similar is in the file" in message


async def test_search_text_not_unique_gives_count_and_lines(
    ctx: ToolContext, sandbox: LocalSandbox, page: str
) -> None:
    with pytest.raises(SearchTextNotUnique) as caught:
        await edits.edit_file(page, "<p>First</p>", "x", ctx=ctx)
    assert caught.value.message == (
        "the search text occurs 2 times in index.html (at lines 7, 9); include more "
        "surrounding text so it matches once"
    )
    assert (caught.value.count, caught.value.lines) == (2, [7, 9])
    assert await sandbox.read_file(page) == PAGE.encode()


async def test_change_behind_its_back_is_reported_not_overwritten(
    ctx: ToolContext, sandbox: LocalSandbox, page: str
) -> None:
    theirs = PAGE.replace("Home", "Their title").encode()
    ctx.sandbox = ChangedBehindItsBack(sandbox, theirs)  # type: ignore[assignment]
    with pytest.raises(ConcurrentModification) as caught:
        await edits.edit_file(page, "Welcome", "Hello", ctx=ctx)
    assert caught.value.path == page
    assert await sandbox.read_file(page) == theirs
    assert ctx.effects.files == {}


async def test_without_compare_and_swap_the_other_change_is_lost(
    ctx: ToolContext, sandbox: LocalSandbox, page: str
) -> None:
    # The guard removed: the same interleaving silently overwrites the other writer.
    theirs = PAGE.replace("Home", "Their title").encode()
    ctx.sandbox = ChangedBehindItsBack(sandbox, theirs, keep_cas=False)  # type: ignore[assignment]
    await edits.edit_file(page, "Welcome", "Hello", ctx=ctx)
    assert await sandbox.read_file(page) == PAGE.replace("Welcome", "Hello").encode()


async def test_concurrent_modification_is_an_error_result_for_the_model(
    call: Caller, ctx: ToolContext, sandbox: LocalSandbox, page: str
) -> None:
    ctx.sandbox = ChangedBehindItsBack(sandbox, b"theirs")  # type: ignore[assignment]
    assert await call.error("edit_file", path=page, search="Welcome", replace="Hi") == (
        "Error (concurrent_modification): index.html changed while it was being edited; "
        "read it again and retry"
    )


async def test_edit_respects_the_write_limit(
    ctx: ToolContext, sandbox: LocalSandbox, page: str
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"max_write_bytes": 200})
    with pytest.raises(FileTooLarge):
        await edits.edit_file(page, "Welcome", "W" * 100, ctx=ctx)
    assert await sandbox.read_file(page) == PAGE.encode()


async def test_edit_rejects_empty_search_binary_and_missing_files(
    call: Caller, sandbox: LocalSandbox, page: str
) -> None:
    await sandbox.write_file("logo.png", b"\x89PNG\xff")
    assert "search is empty" in await call.error("edit_file", path=page, search="", replace="x")
    assert "binary file" in await call.error("edit_file", path="logo.png", search="P", replace="x")
    assert "not_found" in await call.error("edit_file", path="nope.html", search="a", replace="b")


async def test_concurrent_edits_in_one_process_all_land(
    ctx: ToolContext, sandbox: LocalSandbox
) -> None:

    await sandbox.write_file("list.md", b"<!-- end -->\n")

    async def add(n: int) -> None:
        await edits.edit_file("list.md", "<!-- end -->", f"item {n}\n<!-- end -->", ctx=ctx)

    await asyncio.gather(*(add(n) for n in range(40)))
    lines = (await sandbox.read_file("list.md")).decode().splitlines()
    assert sorted(lines[:-1]) == sorted(f"item {n}" for n in range(40))
    assert lines[-1] == "<!-- end -->"


def test_closest_lines() -> None:
    text = "alpha\n  beta gamma\ndelta\n"
    assert edits.closest_lines(text, "beta gama\ndelta") == (2, ["  beta gamma", "delta"])
    assert edits.closest_lines(text, "zzzzzz") is None
