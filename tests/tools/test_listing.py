"""list_files, get_project_structure, search_files."""

from __future__ import annotations

import asyncio
import threading

import pytest

from builder.sandbox.local import LocalSandbox
from builder.tools import listing
from builder.tools.context import ToolContext
from tests.tools.conftest import Caller


@pytest.fixture
async def site(sandbox: LocalSandbox) -> None:
    await sandbox.write_file("index.html", b"<h1>Home</h1>\n<a href='about.html'>About</a>\n")
    await sandbox.write_file("about.html", b"<h1>About us</h1>\n")
    await sandbox.write_file("css/site.css", b"h1 { color: red; }\n")
    await sandbox.write_file("img/logo.png", b"\x89PNG\xff" * 10)
    await sandbox.write_file("node_modules/x/index.js", b"h1")


@pytest.mark.usefixtures("site")
async def test_list_files(call: Caller) -> None:
    assert await call("list_files") == (
        "2 files, 2 directories under .:\nabout.html (18 B)\ncss/\nimg/\nindex.html (45 B)"
    )
    assert await call("list_files", path="css", recursive=True) == (
        "1 file, 0 directories under css:\ncss/site.css (19 B)"
    )


@pytest.mark.usefixtures("site")
async def test_project_structure(call: Caller) -> None:
    assert await call("get_project_structure") == (
        "4 files, 132 B\n"
        ".\n"
        "  about.html (18 B)\n"
        "  css/\n"
        "    site.css (19 B)\n"
        "  img/\n"
        "    logo.png (50 B)\n"
        "  index.html (45 B)"
    )


@pytest.mark.usefixtures("site")
async def test_project_structure_with_contents_stays_in_budget(
    call: Caller, ctx: ToolContext
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"tool_output_chars": 280})
    result = await call("get_project_structure", include_contents=True)
    assert len(result) <= 280
    assert result.endswith(
        "\n--- about.html ---\n<h1>About us</h1>\n\n--- css/site.css ---\nh1 { color: red; }\n"
        "\n\n(contents left out: index.html, img/logo.png)"
    )


@pytest.mark.usefixtures("site")
async def test_search_regex_literal_and_none(call: Caller) -> None:
    assert await call("search_files", pattern=r"<h1>\w+</h1>") == (
        "1 match for regex '<h1>\\\\w+</h1>':\nindex.html:1: <h1>Home</h1>"
    )
    assert await call("search_files", pattern="h1 {", path="css") == (
        "1 match for regex 'h1 {':\ncss/site.css:1: h1 { color: red; }"
    )
    assert await call("search_files", pattern="nothing here") == (
        "No match for regex 'nothing here' under .."
    )
    assert "does not exist" in await call.error("search_files", pattern="x", path="nope")


async def test_an_invalid_regex_is_searched_as_text(call: Caller, sandbox: LocalSandbox) -> None:
    await sandbox.write_file("app.js", b"start();\nrender(app);\n")
    assert await call("search_files", pattern="render(", path="app.js") == (
        "1 match for text 'render(':\napp.js:2: render(app);"
    )


async def test_search_results_are_bounded(call: Caller, sandbox: LocalSandbox) -> None:
    await sandbox.write_file("many.txt", b"hit\n" * (listing.MAX_MATCHES + 7))
    result = await call("search_files", pattern="hit")
    lines = result.splitlines()
    assert lines[0] == f"{listing.MAX_MATCHES + 7} matches for regex 'hit':"
    assert lines[1:3] == ["many.txt:1: hit", "many.txt:2: hit"]
    assert len(lines) == listing.MAX_MATCHES + 2
    assert lines[-1] == "(… 7 more matches; narrow the pattern or the path)"


async def test_empty_directory(call: Caller, sandbox: LocalSandbox) -> None:
    await sandbox.write_file("keep/.gitkeep", b"")
    await sandbox.delete_file("keep/.gitkeep")
    assert await call("list_files", path="keep") == "keep is empty."


async def test_a_catastrophic_regex_cannot_stall_the_server(
    call: Caller, sandbox: LocalSandbox
) -> None:
    # "(a+)+$" backtracks exponentially in Python's engine: on this 48-byte line it
    # would run for days, holding the event loop. RE2 answers in linear time. The
    # search runs on its own thread, so a stall fails the test instead of hanging it.
    await sandbox.write_file("evil.txt", b"a" * 47 + b"!\naaaa\n")
    answers: list[str] = []

    def search() -> None:
        answers.append(asyncio.run(call("search_files", pattern="(a+)+$", path="evil.txt")))

    worker = threading.Thread(target=search, daemon=True)
    worker.start()
    await asyncio.to_thread(worker.join, 120)
    assert answers == ["1 match for regex '(a+)+$':\nevil.txt:2: aaaa"]
