"""Messages: append in order, page both ways, clear."""

from __future__ import annotations

import uuid

import pytest

from builder.cache import Cache
from builder.errors import InvalidInput, NotFound
from builder.persistence import (
    Database,
    append_message,
    append_messages,
    clear_messages,
    create_project,
    get_or_create_user,
    list_messages,
)
from builder.persistence.schemas import MessageCreate, ProjectPublic


async def test_pages_forwards_and_backwards(db: Database, project: ProjectPublic) -> None:
    await append_messages(
        db,
        project_id=project.id,
        messages=[MessageCreate(role="user", content=f"m{i}") for i in range(5)],
    )

    forward, cursor = [], None
    while True:
        page = await list_messages(db, project_id=project.id, limit=2, cursor=cursor)
        forward += [m.content for m in page.items]
        if not (cursor := page.next_cursor):
            break
    latest = await list_messages(db, project_id=project.id, limit=2, newest_first=True)
    older = await list_messages(
        db, project_id=project.id, limit=2, newest_first=True, cursor=latest.next_cursor
    )

    assert forward == ["m0", "m1", "m2", "m3", "m4"]
    assert [m.content for m in latest.items + older.items] == ["m4", "m3", "m2", "m1"]
    with pytest.raises(InvalidInput):
        await list_messages(db, project_id=project.id, cursor=latest.next_cursor)


async def test_a_message_keeps_its_parts_and_model(db: Database, project: ProjectPublic) -> None:
    parts = [{"type": "tool_call", "name": "write_file", "args": {"path": "a"}}]

    stored = await append_message(
        db, project_id=project.id, role="assistant", content="done", parts=parts, model="m:1"
    )

    (listed,) = (await list_messages(db, project_id=project.id)).items
    assert listed == stored
    assert (stored.role, stored.content, stored.parts, stored.model) == (
        "assistant",
        "done",
        parts,
        "m:1",
    )


async def test_bad_roles_and_missing_projects_are_refused(db: Database) -> None:
    with pytest.raises(InvalidInput):
        await append_message(db, project_id=uuid.uuid4(), role="wizard")
    with pytest.raises(NotFound) as caught:
        await append_message(db, project_id=uuid.uuid4(), role="user", content="hi")
    assert caught.value.resource == "project"


async def test_cached_pages_follow_appends_and_clears(migrated_db_url: str) -> None:
    db = Database(migrated_db_url, cache=Cache())
    try:
        user = await get_or_create_user(db, name="u")
        project = await create_project(db, user_id=user.id, name="p")
        await append_message(db, project_id=project.id, role="user", content="one")
        assert len((await list_messages(db, project_id=project.id)).items) == 1

        await append_message(db, project_id=project.id, role="assistant", content="two")
        assert len((await list_messages(db, project_id=project.id)).items) == 2

        assert await clear_messages(db, project_id=project.id) == 2
        assert (await list_messages(db, project_id=project.id)).items == []
    finally:
        await db.dispose()
