"""Apps that embed ``create_app()`` replace its dependencies as FastAPI documents."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from builder.http.deps import get_current_user, get_owned_project
from builder.persistence.projects import create_project
from builder.persistence.schemas import ProjectPublic, UserPublic
from builder.persistence.users import get_or_create_user
from builder.settings import Settings
from tests.http.inprocess import running_app


async def test_dependency_overrides_reach_builders_routes(
    migrated_db_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=migrated_db_url, model="scripted:demo", data_dir=tmp_path)
    stand_in = ProjectPublic(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        name="from the override",
        description="",
        starred=False,
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
        last_opened_at=None,
        sandbox_id=None,
        sandbox_url=None,
        dependencies={},
    )

    async def project() -> ProjectPublic:
        return stand_in

    async with running_app(settings) as (app, client):
        missing = await client.get(f"/api/projects/{uuid.uuid4()}")
        app.dependency_overrides[get_owned_project] = project
        replaced = await client.get(f"/api/projects/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert replaced.status_code == 200
    assert replaced.json()["name"] == "from the override"


async def test_an_override_of_the_caller_reaches_the_dependencies_built_on_it(
    migrated_db_url: str, tmp_path: Path
) -> None:
    """Replacing who calls changes whose project a route finds, through the whole tree."""
    settings = Settings(database_url=migrated_db_url, model="scripted:demo", data_dir=tmp_path)
    async with running_app(settings) as (app, client):
        db = app.state.services.db
        owner = await get_or_create_user(db, name="override-owner")
        project = await create_project(db, user_id=owner.id, name="theirs")

        async def caller() -> UserPublic:
            return owner

        as_local = await client.get(f"/api/projects/{project.id}")
        app.dependency_overrides[get_current_user] = caller
        as_owner = await client.get(f"/api/projects/{project.id}")
        listed = await client.get("/api/projects")
    assert as_local.status_code == 404
    assert (as_owner.status_code, as_owner.json()["name"]) == (200, "theirs")
    assert [item["name"] for item in listed.json()["items"]] == ["theirs"]
