"""Restoring versions into a sandbox reproduces every file byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.persistence import Database, create_project, get_or_create_user, save_snapshot, tree
from builder.persistence.files import restore_snapshot
from builder.persistence.schemas import FileEntry, ProjectPublic
from builder.sandbox.local import LocalSandbox
from builder.settings import Settings

# Directory names never double as file names, so every model is a valid file tree.
_DIRS = ["", "src/", "src/lib/", "assets/"]
_NAMES = ["index.html", "app.js", "logo.png", "notes.txt", "data.bin"]
_paths = st.builds(lambda d, n: d + n, st.sampled_from(_DIRS), st.sampled_from(_NAMES))
_content = st.binary(max_size=300)
_ops = st.one_of(
    st.tuples(st.just("write"), _paths, _content),
    st.tuples(st.just("delete"), st.integers(min_value=0), st.just(b"")),
    st.tuples(st.just("rename"), st.integers(min_value=0), _paths),
)


async def _sandbox_files(sandbox: LocalSandbox) -> dict[str, bytes]:
    listing = await sandbox.list_files(".", recursive=True)
    return {info.path: await sandbox.read_file(info.path) for info in listing if not info.is_dir}


def _apply(model: dict[str, bytes], op: tuple[str, object, object]) -> dict[str, bytes | None]:
    kind, first, second = op
    if kind == "write":
        assert isinstance(first, str) and isinstance(second, bytes)
        model[first] = second
        return {first: second}
    if not model:
        return {}
    assert isinstance(first, int)
    old = sorted(model)[first % len(model)]
    if kind == "delete":
        del model[old]
        return {old: None}
    assert isinstance(second, str)
    if second == old:
        return {}
    data = model.pop(old)
    model[second] = data
    return {old: None, second: data}


async def _scenario(url: str, data_dir: Path, ops: list[tuple[str, object, object]]) -> None:
    db = Database(url, settings=Settings(data_dir=data_dir))
    try:
        user = await get_or_create_user(db, name="prop")
        project = await create_project(db, user_id=user.id, name=uuid.uuid4().hex)
        model: dict[str, bytes] = {}
        expected: dict[int, dict[str, bytes]] = {}
        for op in ops:
            changes = _apply(model, op)
            saved = await save_snapshot(db, project_id=project.id, changes=changes)
            if saved is not None:
                expected[saved.version] = dict(model)
        assert sorted(expected) == list(range(1, len(expected) + 1))
        sandbox = LocalSandbox(str(project.id), settings=db.settings)
        for version in [*sorted(expected, reverse=True), *sorted(expected)]:
            files = expected[version]
            restored = await restore_snapshot(
                db, project_id=project.id, sandbox=sandbox, version=version
            )
            want = {p: FileEntry(hashlib.sha256(b).hexdigest(), len(b)) for p, b in files.items()}
            assert restored == want
            assert await tree(db, project_id=project.id, version=version) == want
            assert await _sandbox_files(sandbox) == files
        await sandbox.close()
    finally:
        await db.dispose()


# One database for all examples (each example makes its own project): hypothesis warns
# about function-scoped fixtures being shared across examples, which is intended here.
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(_ops, min_size=1, max_size=12))
def test_restoring_any_version_reproduces_its_files(
    migrated_db_url: str, tmp_path: Path, ops: list[tuple[str, object, object]]
) -> None:
    asyncio.run(_scenario(migrated_db_url, tmp_path, ops))


async def test_restore_replaces_a_directory_with_a_file_and_keeps_node_modules(
    db: Database, project: ProjectPublic
) -> None:
    sandbox = LocalSandbox(str(project.id), settings=db.settings)
    await save_snapshot(db, project_id=project.id, changes={"page": b"a file", "x.txt": b"x"})
    await sandbox.write_file("page/old.html", b"was a directory")
    await sandbox.write_file("stale/deep/file.txt", b"not in the version")
    await sandbox.write_file("node_modules/pkg/index.js", b"installed")

    await restore_snapshot(db, project_id=project.id, sandbox=sandbox)

    assert await _sandbox_files(sandbox) == {"page": b"a file", "x.txt": b"x"}
    assert await sandbox.read_file("node_modules/pkg/index.js") == b"installed"
    assert await sandbox.stat("stale") is None
    await sandbox.close()


async def test_build_output_is_not_saved_and_a_restore_keeps_it(
    db: Database, project: ProjectPublic
) -> None:
    """What the root .gitignore lists (build output) is left out of the workspace's
    manifest, and a restore neither deletes it nor the ignored files a tool wrote."""
    from builder.graphs.saving import scan_workspace
    from builder.sandbox.ignore import ignored_writes

    sandbox = LocalSandbox(str(project.id), settings=db.settings)
    await save_snapshot(
        db, project_id=project.id, changes={".gitignore": b"dist\n.astro/\n", "src/a.ts": b"a"}
    )
    await restore_snapshot(db, project_id=project.id, sandbox=sandbox)
    await sandbox.write_file("dist/index.html", b"built")
    await sandbox.write_file(".astro/settings.json", b"{}")
    await sandbox.write_file("src/b.ts", b"b")

    assert sorted(await scan_workspace(sandbox)) == [".gitignore", "src/a.ts", "src/b.ts"]
    changes = {"dist/index.html": "sha", "dist": None, ".astro/settings.json": "s", "src/b.ts": "s"}
    assert await ignored_writes(sandbox, changes) == {"dist/index.html", ".astro/settings.json"}
    await restore_snapshot(db, project_id=project.id, sandbox=sandbox)
    assert await sandbox.read_file("dist/index.html") == b"built"
    assert await sandbox.read_file(".astro/settings.json") == b"{}"
    assert await sandbox.stat("src/b.ts") is None  # not ignored, not in the version
    await sandbox.close()
