"""The project's dev server in its sandbox: status, start, stop.

Starting uses the same code as the agent's ``start_dev_server`` tool
(:func:`builder.tools.devserver.launch_dev_server`): ``npm run dev`` when package.json
has a dev script, else a static file server, and waits until it answers.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends

from builder.http.deps import OwnedProject, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.ratelimit import rate_limited
from builder.http.schemas import DevServer
from builder.persistence.projects import record_replica
from builder.preview.urls import client_preview_url
from builder.sandbox.base import ProcessInfo
from builder.sandbox.pool import SandboxPool
from builder.settings import Settings
from builder.tools.devserver import DEV_SERVER, launch_dev_server

router = APIRouter(
    prefix="/api/sandbox/{project_id}/dev-server",
    tags=["sandbox"],
    dependencies=[Depends(rate_limited("default"))],
    responses=ERROR_RESPONSES,
)

_LOG_LINES = 50


async def current_dev_server(pool: SandboxPool, project_id: str) -> ProcessInfo | None:
    """The dev server of a project's live sandbox; None when it has no live sandbox."""
    if project_id not in pool.project_ids():
        return None  # do not create a sandbox only to report that nothing runs in it
    async with pool.lease(project_id) as sandbox:
        return await sandbox.process_info(DEV_SERVER, log_lines=_LOG_LINES)


def _public(
    info: ProcessInfo | None,
    *,
    settings: Settings,
    project_id: str,
    answering: bool | None = None,
) -> DevServer:
    if info is None:
        return DevServer(
            running=False,
            command=None,
            port=None,
            preview_url=None,
            exit_code=None,
            started_at=None,
            logs=[],
        )
    return DevServer(
        running=info.running,
        command=info.command,
        port=info.port,
        preview_url=client_preview_url(settings, project_id, info) if info.running else None,
        exit_code=info.exit_code,
        started_at=datetime.fromtimestamp(info.started_at, UTC),
        logs=list(info.logs),
        answering=answering,
    )


@router.get("", response_model=DevServer)
async def status(project: OwnedProject, services: ServicesDep) -> DevServer:
    """Whether the dev server runs, its preview URL and its latest output."""
    info = await current_dev_server(services.pool, str(project.id))
    return _public(info, settings=services.settings, project_id=str(project.id))


@router.post("", response_model=DevServer)
async def start(project: OwnedProject, services: ServicesDep) -> DevServer:
    """Start (or restart) the dev server and wait until it answers or gives up."""
    async with services.pool.lease(str(project.id)) as sandbox:
        launch = await launch_dev_server(sandbox, settings=services.settings)
    if launch.info.running:  # here: other replicas forward its previews to this one
        await record_replica(
            services.db, project_id=str(project.id), replica=services.settings.advertise_url
        )
    return _public(
        launch.info,
        settings=services.settings,
        project_id=str(project.id),
        answering=launch.outcome == "answering",
    )


@router.delete("", response_model=DevServer)
async def stop(project: OwnedProject, services: ServicesDep) -> DevServer:
    """Stop the dev server (nothing happens when none runs)."""
    project_id = str(project.id)
    if project_id in services.pool.project_ids():
        async with services.pool.lease(project_id) as sandbox:
            await sandbox.stop_process(DEV_SERVER)
    info = await current_dev_server(services.pool, project_id)
    return _public(info, settings=services.settings, project_id=project_id)
