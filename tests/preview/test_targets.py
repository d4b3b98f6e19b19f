"""Where a valid preview link leads from each replica: its own dev server, the replica
recorded as running it, or nowhere; for local and E2B sandboxes alike."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from builder.persistence.database import Database
from builder.persistence.projects import create_project, project_replica, record_replica
from builder.persistence.users import get_or_create_user
from builder.preview.gateway import Misdirected, PreviewTarget
from builder.preview.tokens import PreviewGrant
from builder.runs.sandboxes import ProjectSandboxes
from builder.runs.workspace import preview_target
from builder.sandbox.pool import SandboxPool
from builder.settings import Settings
from builder.tools.devserver import DEV_SERVER
from tests.sandbox.fake_e2b import FakeE2B

A, B = "http://10.0.0.1:8000", "http://10.0.0.2:8000"


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeE2B]:
    service = FakeE2B(tmp_path / "e2b")
    yield service
    await service.shutdown()


def _replica(settings: Settings, advertise: str, **changes: object) -> Settings:
    return settings.model_copy(update={"advertise_url": advertise, **changes})


async def _pool(db: Database, settings: Settings, fake: FakeE2B) -> SandboxPool:
    return SandboxPool.from_settings(
        settings, factory=ProjectSandboxes(db, settings, e2b_class=fake.sandbox_class)
    )


@pytest.mark.parametrize("backend", ["local-unconfined", "e2b"])
async def test_the_replica_running_the_dev_server_serves_it_and_the_others_forward(
    db: Database, settings: Settings, fake: FakeE2B, backend: str
) -> None:
    base = settings.model_copy(
        update={"sandbox_backend": backend, "e2b_api_key": SecretStr("e2b_" + "k" * 24)}
    )
    on_a, on_b = _replica(base, A), _replica(base, B)
    pool_a, pool_b = await _pool(db, on_a, fake), await _pool(db, on_b, fake)
    user = await get_or_create_user(db, name="alice")
    project = await create_project(db, user_id=user.id, name="site")
    key = str(project.id)
    try:
        async with pool_a.lease(key) as sandbox:
            info = await sandbox.start_process(DEV_SERVER, "sleep 60", port=4173)
        await record_replica(db, project_id=key, replica=A)
        grant = PreviewGrant(project.id, int(time.time()) + 60, int(info.started_at))

        # A goes to its dev server: the local port, or the E2B host every replica reaches.
        here = await preview_target(pool_a, db, on_a, grant, may_forward=True)
        assert here == PreviewTarget(url=info.preview_url or "", generation=grant.generation)
        if backend == "e2b":
            assert here.url.startswith("https://4173-") and here.url.endswith(".e2b.app/")
        else:
            assert here.url == "http://127.0.0.1:4173/"
        # A link made for an earlier dev server leads nowhere, even to another replica.
        stale = PreviewGrant(project.id, grant.expires, grant.generation - 1)
        assert await preview_target(pool_a, db, on_a, stale, may_forward=True) is None

        # B, which has not got the project's sandbox, forwards to A (and opens nothing).
        there = await preview_target(pool_b, db, on_b, grant, may_forward=True)
        assert there == PreviewTarget(url=A + "/", generation=grant.generation, forwarded=True)
        assert key not in pool_b.project_ids()
        # ...but never a request that has already been forwarded once,
        assert await preview_target(pool_b, db, on_b, grant, may_forward=False) is None
        # and with forwarding off it names A instead.
        off = _replica(base, B, preview_forward=False)
        with pytest.raises(Misdirected) as misdirected:
            await preview_target(pool_b, db, off, grant, may_forward=True)
        assert misdirected.value.where == A
        # A replica recorded as the runner that has not got the sandbox (it restarted)
        # does not forward to itself.
        assert await preview_target(pool_b, db, on_a, grant, may_forward=True) is None
    finally:
        await pool_a.close()
        await pool_b.close()


async def test_a_replica_without_an_advertised_url_clears_the_record(db: Database) -> None:
    user = await get_or_create_user(db, name="alice")
    project = await create_project(db, user_id=user.id, name="site")
    await record_replica(db, project_id=str(project.id), replica=A)
    assert await project_replica(db, project_id=project.id) == A
    await record_replica(db, project_id=str(project.id), replica=None)
    assert await project_replica(db, project_id=project.id) is None
    # Not a project of this database: nothing to record, nothing raised.
    await record_replica(db, project_id="thread-of-an-app", replica=A)
    await record_replica(db, project_id=str(uuid.uuid4()), replica=A)
    assert await project_replica(db, project_id=uuid.uuid4()) is None
