"""File snapshots: content-addressed blobs, delta entries, versions per project."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import psycopg
import pytest

from builder.errors import AlreadyExists, NotFound, PathOutsideSandbox, StaleWorkspace
from builder.persistence import (
    Database,
    create_project,
    diff_snapshots,
    get_snapshot,
    list_snapshots,
    read_file,
    save_snapshot,
    tree,
)
from builder.persistence.repositories import projects as project_repo
from builder.persistence.repositories import snapshots as snapshot_repo
from builder.persistence.schemas import FileEntry, ProjectPublic, UserPublic
from builder.persistence.snapshots import save_step, step_save


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _counts(db: Database) -> dict[str, int]:
    with psycopg.connect(db.psycopg_url) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("blobs", "snapshots", "snapshot_entries")
        }


async def test_save_then_read_every_version(db: Database, project: ProjectPublic) -> None:
    first = await save_snapshot(
        db, project_id=project.id, changes={"index.html": b"<h1>1</h1>", "a/b.css": b"b{}"}
    )
    second = await save_snapshot(
        db, project_id=project.id, changes={"index.html": b"<h1>2</h1>", "a/b.css": None}
    )

    assert first is not None and second is not None
    assert (first.version, first.parent_version, first.file_count, first.changed_paths) == (
        1,
        None,
        2,
        2,
    )
    assert (second.version, second.parent_version, second.file_count, second.total_bytes) == (
        2,
        1,
        1,
        10,
    )
    assert await tree(db, project_id=project.id, version=1) == {
        "a/b.css": FileEntry(_sha(b"b{}"), 3),
        "index.html": FileEntry(_sha(b"<h1>1</h1>"), 10),
    }
    assert await tree(db, project_id=project.id) == {
        "index.html": FileEntry(_sha(b"<h1>2</h1>"), 10)
    }
    assert await read_file(db, project_id=project.id, path="index.html", version=1) == b"<h1>1</h1>"
    assert await read_file(db, project_id=project.id, path="./index.html") == b"<h1>2</h1>"
    with pytest.raises(NotFound):
        await read_file(db, project_id=project.id, path="a/b.css")
    with pytest.raises(NotFound):
        await tree(db, project_id=project.id, version=3)
    assert (await get_snapshot(db, project_id=project.id, version=2)).id == second.id


async def test_a_project_without_versions_has_an_empty_tree(
    db: Database, project: ProjectPublic
) -> None:
    assert await tree(db, project_id=project.id) == {}
    with pytest.raises(NotFound):
        await read_file(db, project_id=project.id, path="index.html")


async def test_nothing_changed_means_no_version(db: Database, project: ProjectPublic) -> None:
    await save_snapshot(db, project_id=project.id, changes={"a.txt": b"same"})

    again = await save_snapshot(
        db, project_id=project.id, changes={"a.txt": b"same", "missing.txt": None}
    )

    assert again is None
    assert [s.version for s in (await list_snapshots(db, project_id=project.id)).items] == [1]


async def test_saving_after_editing_k_files_writes_only_what_changed(
    db: Database, project: ProjectPublic
) -> None:
    files = {f"src/file{i}.txt": f"content {i}".encode() for i in range(200)}
    await save_snapshot(db, project_id=project.id, changes=files)
    before = _counts(db)

    edits = {
        "src/file1.txt": b"edited 1",
        "src/file2.txt": b"edited 2",
        "src/file3.txt": b"content 4",  # same bytes as file4: no new blob
        "src/file5.txt": None,
        "src/new.txt": b"edited 1",  # same bytes as the first edit: one blob for both
    }
    saved = await save_snapshot(db, project_id=project.id, changes=edits)
    after = _counts(db)

    assert saved is not None and saved.changed_paths == 5
    assert {k: after[k] - before[k] for k in after} == {
        "blobs": 2,
        "snapshots": 1,
        "snapshot_entries": 5,
    }


async def test_identical_content_is_stored_once_across_projects(
    db: Database, project: ProjectPublic, user: UserPublic
) -> None:
    other = await create_project(db, user_id=user.id, name="Other")
    logo = b"\x89PNG" + bytes(range(256)) * 40

    await save_snapshot(db, project_id=project.id, changes={"logo.png": logo})
    await save_snapshot(db, project_id=other.id, changes={"img/logo.png": logo})
    await save_snapshot(db, project_id=project.id, changes={"copy.png": logo, "logo.png": None})

    assert _counts(db)["blobs"] == 1
    assert await read_file(db, project_id=other.id, path="img/logo.png") == logo


async def test_a_step_save_stores_any_bytes_as_they_are(
    db: Database, project: ProjectPublic
) -> None:
    logo = b"\x89PNG\x00" + bytes(range(256)) * 40 + b"\\x00{},\"'"
    save = step_save(
        project_id=project.id,
        changes={"logo.png": logo, "index.html": b"<h1>Hi</h1>"},
        base_version=None,
        idempotency_key="run-1:1",
    )

    row = await save_step(db, save)

    assert save.outcome(row) == 1
    assert await read_file(db, project_id=project.id, path="logo.png") == logo
    assert await read_file(db, project_id=project.id, path="index.html") == b"<h1>Hi</h1>"


async def test_an_idempotency_key_returns_the_first_save(
    db: Database, project: ProjectPublic
) -> None:
    first = await save_snapshot(
        db, project_id=project.id, changes={"a.txt": b"1"}, run_id="run-1", idempotency_key="r1:3"
    )
    rerun = await save_snapshot(
        db, project_id=project.id, changes={"a.txt": b"other"}, idempotency_key="r1:3"
    )

    assert rerun == first
    assert await read_file(db, project_id=project.id, path="a.txt") == b"1"


async def test_concurrent_saves_get_consecutive_versions(
    db: Database, project: ProjectPublic
) -> None:
    saves = [
        save_snapshot(db, project_id=project.id, changes={f"f{i}.txt": str(i).encode()})
        for i in range(8)
    ]

    saved = await asyncio.gather(*saves)

    assert sorted(s.version for s in saved if s is not None) == list(range(1, 9))
    assert len(await tree(db, project_id=project.id)) == 8


async def test_without_the_project_lock_concurrent_saves_collide(
    db: Database, project: ProjectPublic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The guard above, removed: both transactions read the same latest version.
    barrier = asyncio.Barrier(2)
    head = snapshot_repo.head

    async def no_lock(session: object, *, project_id: uuid.UUID) -> uuid.UUID:
        return project.user_id

    async def head_then_wait(session: object, **kwargs: object) -> object:
        rows = await head(session, **kwargs)  # type: ignore[arg-type]
        await barrier.wait()
        return rows

    monkeypatch.setattr(project_repo, "lock_project", no_lock)
    monkeypatch.setattr(snapshot_repo, "head", head_then_wait)

    results = await asyncio.gather(
        save_snapshot(db, project_id=project.id, changes={"a.txt": b"a"}),
        save_snapshot(db, project_id=project.id, changes={"b.txt": b"b"}),
        return_exceptions=True,
    )

    assert sorted(type(r).__name__ for r in results) == ["AlreadyExists", "SnapshotPublic"]
    assert any(isinstance(r, AlreadyExists) for r in results)


async def test_a_failure_between_writes_leaves_nothing_behind(
    db: Database, project: ProjectPublic, monkeypatch: pytest.MonkeyPatch
) -> None:
    insert_version = snapshot_repo.insert_version

    async def written_then_fail(*args: object, **kwargs: object) -> None:
        await insert_version(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(snapshot_repo, "insert_version", written_then_fail)

    with pytest.raises(RuntimeError, match="disk on fire"):
        await save_snapshot(db, project_id=project.id, changes={"a.txt": b"new content"})

    assert _counts(db) == {"blobs": 0, "snapshots": 0, "snapshot_entries": 0}


async def test_unsafe_paths_are_refused(db: Database, project: ProjectPublic) -> None:
    with pytest.raises(PathOutsideSandbox):
        await save_snapshot(db, project_id=project.id, changes={"../etc/passwd": b"x"})
    with pytest.raises(PathOutsideSandbox):
        await save_snapshot(db, project_id=project.id, changes={"/abs": b"x"})


async def test_saving_to_a_missing_project_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound) as caught:
        await save_snapshot(db, project_id=uuid.uuid4(), changes={"a.txt": b"x"})
    assert caught.value.resource == "project"


async def test_a_missing_message_is_not_found(db: Database, project: ProjectPublic) -> None:
    with pytest.raises(NotFound) as caught:
        await save_snapshot(
            db, project_id=project.id, changes={"a.txt": b"x"}, message_id=uuid.uuid4()
        )
    assert caught.value.resource == "message"


async def test_versions_page_newest_first(db: Database, project: ProjectPublic) -> None:
    for i in range(5):
        await save_snapshot(db, project_id=project.id, changes={"a.txt": str(i).encode()})

    first = await list_snapshots(db, project_id=project.id, limit=2)
    second = await list_snapshots(db, project_id=project.id, limit=2, cursor=first.next_cursor)
    last = await list_snapshots(db, project_id=project.id, limit=2, cursor=second.next_cursor)

    assert [s.version for s in first.items + second.items + last.items] == [5, 4, 3, 2, 1]
    assert last.next_cursor is None


async def test_diff_lists_changes_with_a_text_patch(db: Database, project: ProjectPublic) -> None:
    await save_snapshot(
        db,
        project_id=project.id,
        changes={"a.txt": b"one\ntwo\n", "gone.txt": b"bye\n", "img.bin": b"\0\1"},
    )
    await save_snapshot(
        db,
        project_id=project.id,
        changes={"a.txt": b"one\n2\n", "gone.txt": None, "new.txt": b"hi\n", "img.bin": b"\0\2"},
    )

    diff = await diff_snapshots(db, project_id=project.id, from_version=1, to_version=2)

    assert (diff.added, diff.removed, diff.modified, diff.truncated) == (
        ["new.txt"],
        ["gone.txt"],
        ["a.txt", "img.bin"],
        False,
    )
    assert diff.patch == (
        "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+2\n"
        "--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"
        "Binary files a/img.bin and b/img.bin differ\n"
        "--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+hi\n"
    )
    bounded = await diff_snapshots(
        db, project_id=project.id, from_version=1, to_version=2, max_patch_chars=60
    )
    assert (
        bounded.truncated
        and bounded.patch == "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+2\n"
    )


async def test_a_save_on_a_base_that_is_not_the_latest_is_refused(
    db: Database, project: ProjectPublic
) -> None:
    first = await save_snapshot(db, project_id=project.id, changes={"a": b"1"}, base_version=0)
    assert first is not None and first.version == 1
    second = await save_snapshot(db, project_id=project.id, changes={"a": b"2"}, base_version=1)
    assert second is not None and second.version == 2
    with pytest.raises(StaleWorkspace) as refused:
        await save_snapshot(db, project_id=project.id, changes={"b": b"stale"}, base_version=1)
    assert (refused.value.base_version, refused.value.latest_version) == (1, 2)
    assert [s.version for s in (await list_snapshots(db, project_id=project.id)).items] == [2, 1]
