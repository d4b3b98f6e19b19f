"""``builder export`` as a user runs it: a real process writing the archive file."""

from __future__ import annotations

import io
import tarfile
import uuid
import zipfile
from pathlib import Path

from builder.persistence import Database, create_project, get_or_create_user, save_snapshot
from tests.support.cli import run_builder, user_env


async def test_export_writes_the_version_and_fails_in_one_line(
    db: Database, migrated_db_url: str, tmp_path: Path
) -> None:
    user = await get_or_create_user(db, name="local")
    project = await create_project(db, user_id=user.id, name="bakery")
    first = {"index.html": b"<h1>1</h1>", "css/site.css": b"body{}"}
    await save_snapshot(db, project_id=project.id, changes=first)
    await save_snapshot(db, project_id=project.id, changes={"index.html": b"<h1>2</h1>"})
    env = user_env(BUILDER_DATABASE_URL=migrated_db_url, BUILDER_DATA_DIR=str(tmp_path / "d"))
    _export_as_a_user(env, tmp_path, first=first, project_id=str(project.id))


def _export_as_a_user(
    env: dict[str, str], tmp_path: Path, *, first: dict[str, bytes], project_id: str
) -> None:
    done = run_builder("export", "bakery", "--version", "1", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wrote bakery-v1.zip (2 files" in done.stdout
    with zipfile.ZipFile(tmp_path / "bakery-v1.zip") as archive:
        assert {n: archive.read(n) for n in archive.namelist()} == first

    tar = run_builder("export", project_id, "-o", "site.tar.gz", env=env, cwd=tmp_path)
    assert tar.returncode == 0, tar.stdout + tar.stderr
    data = (tmp_path / "site.tar.gz").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        names = archive.getnames()
        assert archive.extractfile("index.html").read() == b"<h1>2</h1>"  # type: ignore[union-attr]
    assert sorted(names) == ["css/site.css", "index.html"]

    missing = run_builder("export", "bakery", "--version", "7", env=env, cwd=tmp_path)
    assert missing.returncode == 2
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "not found" in lines[0] and "version 7" in lines[0], lines
    assert not list(tmp_path.glob("*.part"))
    nobody = run_builder("export", str(uuid.uuid4()), env=env, cwd=tmp_path)
    assert nobody.returncode == 2 and "project" in nobody.stderr
    static = run_builder("export", "bakery", "--built", env=env, cwd=tmp_path)
    assert static.returncode == 2
    assert "does not build (no package.json)" in static.stderr
