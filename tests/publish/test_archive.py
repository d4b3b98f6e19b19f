"""A version's zip holds exactly that version's files."""

from __future__ import annotations

import io
import zipfile

from builder.persistence import Database, create_project, get_or_create_user, save_snapshot
from builder.publish import zip_chunks


async def test_zip_reproduces_the_version_byte_for_byte(db: Database) -> None:
    user = await get_or_create_user(db, name="alice")
    project = await create_project(db, user_id=user.id, name="Bakery", description="")
    first = {"index.html": b"<h1>1</h1>", "a/b.css": b"b{}", "img/x.bin": bytes(range(256)) * 50}
    await save_snapshot(db, project_id=project.id, changes=first)
    await save_snapshot(db, project_id=project.id, changes={"index.html": b"2", "a/b.css": None})

    chunks = [chunk async for chunk in zip_chunks(db, project_id=project.id, version=1)]
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as archive:
        assert {name: archive.read(name) for name in archive.namelist()} == first
    assert len(chunks) > 1

    latest = b"".join([c async for c in zip_chunks(db, project_id=project.id)])
    with zipfile.ZipFile(io.BytesIO(latest)) as archive:
        assert {n: archive.read(n) for n in archive.namelist()} == {
            "index.html": b"2",
            "img/x.bin": first["img/x.bin"],
        }
