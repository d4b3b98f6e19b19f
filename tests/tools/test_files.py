"""write_file, read_file, batch_write_files, delete_file, rename_file; limits and quota."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from builder.errors import FileTooLarge, InvalidInput, QuotaExceeded
from builder.sandbox.local import LocalSandbox
from builder.settings import Settings
from builder.tools import files, workspace_files
from builder.tools.context import ToolContext
from builder.tools.workspace_files import file_lock_key
from tests.tools.conftest import Caller


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def snapshot(sandbox: LocalSandbox) -> dict[str, bytes]:
    """Every file of the workspace and its bytes."""
    entries = await sandbox.list_files(".", recursive=True)
    return {e.path: await sandbox.read_file(e.path) for e in entries if not e.is_dir}


@pytest.fixture
def small_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_write_bytes": 100, "project_quota_bytes": 250})


@pytest.fixture
def small_ctx(ctx: ToolContext, small_settings: Settings) -> ToolContext:
    ctx.settings = small_settings
    return ctx


async def test_write_file_creates_then_updates_and_records_hashes(
    call: Caller, ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    assert await call("write_file", path="./site//index.html", content="<h1>a</h1>\n") == (
        "Created site/index.html (11 bytes, 1 line)."
    )
    assert await call("write_file", path="site/index.html", content="é\nb") == (
        "Updated site/index.html (4 bytes, 2 lines)."
    )
    assert await snapshot(sandbox) == {"site/index.html": "é\nb".encode()}
    assert ctx.effects.files == {"site/index.html": sha("é\nb".encode())}


async def test_read_file_numbers_lines_in_a_window(call: Caller, sandbox: LocalSandbox) -> None:
    await sandbox.write_file("a.txt", "".join(f"line {n}\n" for n in range(1, 11)).encode())
    assert await call("read_file", path="a.txt", offset=3, limit=2) == (
        "a.txt: lines 3-4 of 10; read on with offset=5\n     3\tline 3\n     4\tline 4"
    )
    assert await call("read_file", path="a.txt", offset=9) == (
        "a.txt: lines 9-10 of 10\n     9\tline 9\n    10\tline 10"
    )
    assert "offset 11 is past the end of a.txt (10 lines)" in await call.error(
        "read_file", path="a.txt", offset=11
    )
    assert "offset" in await call.error("read_file", path="a.txt", offset=0)


async def test_read_file_binary_empty_and_missing(call: Caller, sandbox: LocalSandbox) -> None:
    await sandbox.write_file("logo.png", b"\x89PNG\xff\x00")
    await sandbox.write_file("empty.txt", b"")
    assert await call("read_file", path="logo.png") == (
        "logo.png is a binary file (6 bytes); it cannot be shown as text."
    )
    assert await call("read_file", path="empty.txt") == "empty.txt is empty."
    assert (
        await call.error("read_file", path="nope.txt")
        == "Error (not_found): file nope.txt not found"
    )
    assert "path_outside_sandbox" in await call.error("read_file", path="../etc/passwd")


async def test_oversized_write_is_refused_and_nothing_changes(
    call: Caller, small_ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    await sandbox.write_file("a.txt", b"old")
    message = await call.error("write_file", path="a.txt", content="x" * 101)
    assert message.startswith("Error (file_too_large): a.txt is 101 bytes (101 bytes)")
    assert await snapshot(sandbox) == {"a.txt": b"old"}
    assert small_ctx.effects.files == {}


async def test_quota_counts_replaced_bytes(
    call: Caller, small_ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    await sandbox.write_file("a.txt", b"a" * 100)
    await sandbox.write_file("b.txt", b"b" * 100)
    # Replacing a.txt's 100 bytes with 100 bytes keeps the project at 200 of 250.
    await call("write_file", path="a.txt", content="c" * 100)
    with pytest.raises(QuotaExceeded) as caught:
        await files.write_file("c.txt", "d" * 60, ctx=small_ctx)
    assert (caught.value.size, caught.value.limit, caught.value.path) == (260, 250, "c.txt")
    assert await snapshot(sandbox) == {"a.txt": b"c" * 100, "b.txt": b"b" * 100}


async def test_without_the_limit_check_the_oversized_write_lands(
    small_ctx: ToolContext, sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The guard removed: the same write as above now changes the file.
    async def no_check(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(workspace_files, "check_write_limits", no_check)
    await files.write_file("a.txt", "x" * 101, ctx=small_ctx)
    assert await snapshot(sandbox) == {"a.txt": b"x" * 101}


async def test_a_shrinking_write_is_allowed_over_quota(
    small_ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    await sandbox.write_file("a.txt", b"a" * 100)
    await sandbox.write_file("b.txt", b"b" * 100)
    await sandbox.write_file("c.txt", b"c" * 100)
    await sandbox.write_file("e.txt", b"e" * 100)  # 400 of 250: over quota already
    await files.write_file("a.txt", "short", ctx=small_ctx)  # 305: still over, but smaller
    with pytest.raises(QuotaExceeded):
        await files.write_file("d.txt", "more", ctx=small_ctx)


async def test_batch_writes_all_files(
    call: Caller, ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    await sandbox.write_file("index.html", b"old")
    result = await call(
        "batch_write_files",
        files=[
            {"path": "index.html", "content": "<p>new</p>\n"},
            {"path": "css/site.css", "content": "p {}\n"},
        ],
    )
    assert result == (
        "Wrote 2 files (16 bytes):\n"
        "- index.html (updated, 11 bytes, 1 line)\n"
        "- css/site.css (created, 5 bytes, 1 line)"
    )
    assert await snapshot(sandbox) == {"index.html": b"<p>new</p>\n", "css/site.css": b"p {}\n"}
    assert ctx.effects.files == {
        "index.html": sha(b"<p>new</p>\n"),
        "css/site.css": sha(b"p {}\n"),
    }


@pytest.mark.parametrize(
    ("batch", "error"),
    [
        (
            [{"path": "a.txt", "content": "ok"}, {"path": "b.txt", "content": "x" * 101}],
            FileTooLarge,
        ),
        (
            [{"path": "a.txt", "content": "y" * 90}, {"path": "b.txt", "content": "z" * 90}],
            QuotaExceeded,
        ),
        ([{"path": "a.txt", "content": "1"}, {"path": "./a.txt", "content": "2"}], InvalidInput),
    ],
)
async def test_refused_batch_writes_nothing(
    small_ctx: ToolContext,
    sandbox: LocalSandbox,
    batch: list[dict[str, str]],
    error: type[Exception],
) -> None:
    await sandbox.write_file("a.txt", b"before")
    await sandbox.write_file("keep.txt", b"k" * 90)
    with pytest.raises(error):
        await files.batch_write_files([files.FileContent(**f) for f in batch], ctx=small_ctx)
    assert await snapshot(sandbox) == {"a.txt": b"before", "keep.txt": b"k" * 90}
    assert small_ctx.effects.files == {}


async def test_batch_failing_midway_restores_the_files_it_wrote(
    ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    await sandbox.write_file("a.txt", b"before")
    await sandbox.write_file("blocker", b"a file, so blocker/x.txt cannot be created")
    batch = [
        files.FileContent(path="a.txt", content="after"),
        files.FileContent(path="new.txt", content="new"),
        files.FileContent(path="blocker/x.txt", content="fails"),
    ]
    with pytest.raises(InvalidInput):
        await files.batch_write_files(batch, ctx=ctx)
    assert await snapshot(sandbox) == {
        "a.txt": b"before",
        "blocker": b"a file, so blocker/x.txt cannot be created",
    }
    assert ctx.effects.files == {}


async def test_delete_file_and_directory(
    call: Caller, ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    for path in ("a.txt", "img/x.png", "img/sub/y.png"):
        await sandbox.write_file(path, b"1")
    assert await call("delete_file", path="a.txt") == "Deleted a.txt."
    assert await call("delete_file", path="img") == "Deleted directory img (2 files)."
    assert await snapshot(sandbox) == {}
    assert ctx.effects.files == {"a.txt": None, "img/sub/y.png": None, "img/x.png": None}
    assert (
        await call.error("delete_file", path="a.txt") == "Error (not_found): file a.txt not found"
    )


async def test_rename_file_and_directory(
    call: Caller, ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    await sandbox.write_file("a.txt", b"A")
    await sandbox.write_file("src/x.js", b"X")
    assert await call("rename_file", path="a.txt", new_path="docs/b.txt") == (
        "Renamed file a.txt → docs/b.txt."
    )
    assert await call("rename_file", path="src", new_path="lib") == (
        "Renamed directory (1 files) src → lib."
    )
    assert await snapshot(sandbox) == {"docs/b.txt": b"A", "lib/x.js": b"X"}
    assert ctx.effects.files == {
        "a.txt": None,
        "docs/b.txt": sha(b"A"),
        "src/x.js": None,
        "lib/x.js": sha(b"X"),
    }
    assert "Error (invalid_input)" in await call.error("rename_file", path="lib", new_path="docs")


async def test_file_lock_key_is_canonical(ctx: ToolContext) -> None:
    assert file_lock_key(ctx, "./a//b/../c.txt") == "file:local-project-1:a/c.txt"


# --- the quota's running total ----------------------------------------------------------


@pytest.fixture
def counted_ctx(small_ctx: ToolContext, sandbox: LocalSandbox) -> ToolContext:
    """A run's context: the quota checks a running total; walks are counted."""
    small_ctx.disk = workspace_files.DiskUsage()
    walk = sandbox.disk_usage
    small_ctx.walks = 0  # type: ignore[attr-defined]

    async def counted() -> int:
        small_ctx.walks += 1  # type: ignore[attr-defined]
        return await walk()

    sandbox.disk_usage = counted  # type: ignore[method-assign]
    return small_ctx


async def test_the_running_total_refuses_what_the_walk_would(
    counted_ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    await sandbox.write_file("a.txt", b"a" * 100)
    await files.write_file("b.txt", "b" * 100, ctx=counted_ctx)  # the walk: 100, then 200
    await files.write_file("b.txt", "b" * 90, ctx=counted_ctx)  # 190, counted
    with pytest.raises(QuotaExceeded) as caught:
        await files.write_file("c.txt", "c" * 61, ctx=counted_ctx)
    assert (caught.value.size, counted_ctx.walks) == (251, 1)  # type: ignore[attr-defined]
    await files.write_file("c.txt", "c" * 60, ctx=counted_ctx)  # exactly 250
    assert await sandbox.disk_usage() == 250


async def test_deletes_free_room_in_the_running_total(
    counted_ctx: ToolContext, sandbox: LocalSandbox, call: Caller
) -> None:
    call.ctx = counted_ctx
    await files.write_file("a.txt", "a" * 100, ctx=counted_ctx)
    await files.write_file("b.txt", "b" * 100, ctx=counted_ctx)
    await counted_ctx.files.delete("a.txt")  # counted: 100 left
    await files.write_file("c.txt", "c" * 100, ctx=counted_ctx)
    assert counted_ctx.walks == 1  # type: ignore[attr-defined]
    await sandbox.write_file("d/e.txt", b"e" * 50)  # not through the tools: not counted
    await call("delete_file", path="d")  # a directory: walked again next time
    await files.write_file("f.txt", "f" * 50, ctx=counted_ctx)
    assert counted_ctx.walks == 2  # type: ignore[attr-defined]
    with pytest.raises(QuotaExceeded) as caught:
        await files.write_file("g.txt", "g" * 1, ctx=counted_ctx)
    assert caught.value.size == 251


async def test_a_failed_write_and_a_restore_are_walked_again(
    counted_ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    await files.write_file("a.txt", "a" * 100, ctx=counted_ctx)
    with pytest.raises(Exception, match="changed"):
        await counted_ctx.files.write("a.txt", "x" * 100, expected_sha256=sha(b"other"))
    # A restore writes the workspace from outside the run: the run's total is forgotten.
    await sandbox.write_file("restored.txt", b"r" * 140)
    counted_ctx.disk.forget()  # type: ignore[union-attr]
    with pytest.raises(QuotaExceeded) as caught:
        await files.write_file("b.txt", "b" * 20, ctx=counted_ctx)
    assert (caught.value.size, counted_ctx.walks) == (260, 2)  # type: ignore[attr-defined]


async def test_a_stale_total_without_forgetting_lets_the_quota_be_passed(
    counted_ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    # Why commands and restores must forget the total: a change it did not count
    # is invisible to the quota.
    await files.write_file("a.txt", "a" * 100, ctx=counted_ctx)
    await sandbox.write_file("made-by-a-command.txt", b"m" * 100)
    await files.write_file("b.txt", "b" * 100, ctx=counted_ctx)
    assert await sandbox.disk_usage() == 300  # over the quota of 250
