"""Apps that embed ``create_app()`` replace its dependencies as FastAPI documents."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from builder.http.deps import get_owned_project
from builder.persistence.schemas import ProjectPublic
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
