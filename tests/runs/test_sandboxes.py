"""A project keeps its sandbox across replicas: recorded on its row, reattached by id."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from builder.errors import NotFound
from builder.persistence.database import Database
from builder.persistence.projects import create_project, get_project, project_sandbox
from builder.persistence.schemas import ProjectPublic
from builder.persistence.users import get_or_create_user
from builder.runs.sandboxes import ProjectSandboxes
from builder.settings import Settings
from tests.sandbox.fake_e2b import FakeE2B


@pytest.fixture
async def project(db: Database) -> ProjectPublic:
    user = await get_or_create_user(db, name="alice")
    return await create_project(db, user_id=user.id, name="site")


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeE2B]:
    service = FakeE2B(tmp_path / "e2b")
    yield service
    await service.shutdown()


@pytest.fixture
def e2b_settings(settings: Settings) -> Settings:
    return Settings(
        data_dir=settings.data_dir, sandbox_backend="e2b", e2b_api_key="e2b_" + "k" * 24
    )


async def test_a_second_replica_reattaches_to_the_projects_e2b_sandbox(
    db: Database, project: ProjectPublic, fake: FakeE2B, e2b_settings: Settings
) -> None:
    first = await ProjectSandboxes(db, e2b_settings, e2b_class=fake.sandbox_class)(str(project.id))
    await first.write_file("index.html", b"<p>hi</p>")
    assert await project_sandbox(db, project_id=project.id) == first.sandbox_id

    # Another replica, with a pool that never saw the project:
    second = await ProjectSandboxes(db, e2b_settings, e2b_class=fake.sandbox_class)(str(project.id))
    assert second.sandbox_id == first.sandbox_id
    assert await second.read_file("index.html") == b"<p>hi</p>"
    assert len(fake.create_calls) == 1


async def test_an_expired_sandbox_is_replaced_and_the_new_id_recorded(
    db: Database, project: ProjectPublic, fake: FakeE2B, e2b_settings: Settings
) -> None:
    first = await ProjectSandboxes(db, e2b_settings, e2b_class=fake.sandbox_class)(str(project.id))
    fake.vms[first.sandbox_id].alive = False  # E2B timed it out
    second = await ProjectSandboxes(db, e2b_settings, e2b_class=fake.sandbox_class)(str(project.id))
    assert second.sandbox_id != first.sandbox_id
    assert await project_sandbox(db, project_id=project.id) == second.sandbox_id
    assert len(fake.create_calls) == 2


async def test_local_sandboxes_are_recorded_too(
    db: Database, project: ProjectPublic, settings: Settings
) -> None:
    sandbox = await ProjectSandboxes(db, settings)(str(project.id))
    public = await get_project(db, user_id=project.user_id, project_id=project.id)
    assert public.sandbox_id == sandbox.sandbox_id == f"local-{project.id}"
    assert public.updated_at == project.updated_at  # recording is not an edit
    with pytest.raises(NotFound):  # not a project of this database
        await ProjectSandboxes(db, settings)(str(uuid.uuid4()))
