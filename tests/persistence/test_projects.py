"""Projects: owner scoping, cursor pages starred first, updates, cache invalidation."""

from __future__ import annotations

import uuid

import pytest

from builder.cache import Cache
from builder.errors import AlreadyExists, InvalidInput, NotFound
from builder.persistence import (
    Database,
    create_project,
    delete_project,
    get_or_create_user,
    get_project,
    list_projects,
    open_project,
    save_snapshot,
    set_starred,
    update_project,
)
from builder.persistence.schemas import ProjectPublic, ProjectUpdate, UserPublic


async def test_another_users_project_is_not_found(
    db: Database, project: ProjectPublic, user: UserPublic
) -> None:
    other = await get_or_create_user(db, name="eve")

    assert await get_project(db, user_id=user.id, project_id=project.id) == project
    for attempt in (
        get_project(db, user_id=other.id, project_id=project.id),
        update_project(
            db, user_id=other.id, project_id=project.id, changes=ProjectUpdate(name="x")
        ),
        set_starred(db, user_id=other.id, project_id=project.id, starred=True),
        delete_project(db, user_id=other.id, project_id=project.id),
    ):
        with pytest.raises(NotFound) as caught:
            await attempt
        assert caught.value.message == f"project {project.id} not found"
    assert (await list_projects(db, user_id=other.id)).items == []


async def test_pages_list_starred_first_then_most_recent(db: Database, user: UserPublic) -> None:
    made = [await create_project(db, user_id=user.id, name=f"p{i}") for i in range(7)]
    await set_starred(db, user_id=user.id, project_id=made[2].id, starred=True)
    await set_starred(db, user_id=user.id, project_id=made[5].id, starred=True)

    names: list[str] = []
    cursor = None
    while True:
        page = await list_projects(db, user_id=user.id, limit=3, cursor=cursor)
        names += [p.name for p in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert names == ["p5", "p2", "p6", "p4", "p3", "p1", "p0"]
    with pytest.raises(InvalidInput):
        await list_projects(db, user_id=user.id, cursor="garbage")


async def test_update_changes_only_the_given_fields(
    db: Database, project: ProjectPublic, user: UserPublic
) -> None:
    updated = await update_project(
        db,
        user_id=user.id,
        project_id=project.id,
        changes=ProjectUpdate(description="New", dependencies={"react": "^19"}),
    )

    assert updated.model_dump(exclude={"updated_at"}) == {
        **project.model_dump(exclude={"updated_at"}),
        "description": "New",
        "dependencies": {"react": "^19"},
    }
    assert updated.updated_at > project.updated_at
    with pytest.raises(ValueError, match="user_id"):
        ProjectUpdate.model_validate({"user_id": str(uuid.uuid4())})


async def test_a_sandbox_belongs_to_one_project(db: Database, user: UserPublic) -> None:
    first = await create_project(db, user_id=user.id, name="one")
    second = await create_project(db, user_id=user.id, name="two")
    await update_project(
        db, user_id=user.id, project_id=first.id, changes=ProjectUpdate(sandbox_id="sbx-1")
    )

    with pytest.raises(AlreadyExists):
        await update_project(
            db, user_id=user.id, project_id=second.id, changes=ProjectUpdate(sandbox_id="sbx-1")
        )


async def test_create_for_a_missing_user_and_empty_names_are_refused(db: Database) -> None:
    with pytest.raises(NotFound):
        await create_project(db, user_id=uuid.uuid4(), name="orphan")
    with pytest.raises(ValueError, match="name"):
        await create_project(db, user_id=uuid.uuid4(), name="")


async def test_cached_reads_see_every_write(migrated_db_url: str, settings: object) -> None:
    db = Database(migrated_db_url, cache=Cache(lru_size=100))
    try:
        user = await get_or_create_user(db, name="cached")
        project = await create_project(db, user_id=user.id, name="v1")
        assert (await get_project(db, user_id=user.id, project_id=project.id)).name == "v1"
        assert [p.name for p in (await list_projects(db, user_id=user.id)).items] == ["v1"]

        await update_project(
            db, user_id=user.id, project_id=project.id, changes=ProjectUpdate(name="v2")
        )
        assert (await get_project(db, user_id=user.id, project_id=project.id)).name == "v2"
        assert [p.name for p in (await list_projects(db, user_id=user.id)).items] == ["v2"]

        opened = await open_project(db, user_id=user.id, project_id=project.id)
        listed = (await list_projects(db, user_id=user.id)).items[0]
        assert listed.last_opened_at == opened.last_opened_at is not None

        await save_snapshot(db, project_id=project.id, changes={"a.txt": b"a"})
        fresh = await get_project(db, user_id=user.id, project_id=project.id)
        assert fresh.updated_at > opened.updated_at

        other = await get_or_create_user(db, name="other")
        with pytest.raises(NotFound):
            await get_project(db, user_id=other.id, project_id=project.id)

        await delete_project(db, user_id=user.id, project_id=project.id)
        with pytest.raises(NotFound):
            await get_project(db, user_id=user.id, project_id=project.id)
        assert (await list_projects(db, user_id=user.id)).items == []
    finally:
        await db.dispose()


async def test_without_invalidation_the_cache_would_serve_stale_data(
    migrated_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The guard above, removed: writes stop invalidating, reads keep the old name.
    db = Database(migrated_db_url, cache=Cache(lru_size=100))
    try:
        user = await get_or_create_user(db, name="stale")
        project = await create_project(db, user_id=user.id, name="old")
        await get_project(db, user_id=user.id, project_id=project.id)

        async def skip(*scopes: str) -> None:
            return None

        monkeypatch.setattr(db.cache, "invalidate", skip)
        await update_project(
            db, user_id=user.id, project_id=project.id, changes=ProjectUpdate(name="new")
        )

        assert (await get_project(db, user_id=user.id, project_id=project.id)).name == "old"
    finally:
        await db.dispose()
