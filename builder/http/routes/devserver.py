"""The project's dev server in its sandbox: status, start, stop.

Through the runs service's :class:`~builder.runs.workspace.Workspaces`. Starting uses the
same code as the agent's ``start_dev_server`` tool: ``npm run dev`` when package.json has
a dev script, else a static file server, and waits until it answers.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends

from builder.http.deps import OwnedProject, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.ratelimit import rate_limited
from builder.http.schemas import DevServer
from builder.preview.urls import client_preview_url
from builder.runs.workspace import ProcessInfo, hot_reloads
from builder.settings import Settings

router = APIRouter(
    prefix="/api/sandbox/{project_id}/dev-server",
    tags=["sandbox"],
    dependencies=[Depends(rate_limited("default"))],
    responses=ERROR_RESPONSES,
)


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
        hot_reload=info.running and hot_reloads(info.command),
    )


@router.get("", response_model=DevServer)
async def status(project: OwnedProject, services: ServicesDep) -> DevServer:
    """Whether the dev server runs, its preview URL and its latest output."""
    info = await services.runs.workspaces.dev_server(str(project.id))
    return _public(info, settings=services.settings, project_id=str(project.id))


@router.post("", response_model=DevServer)
async def start(project: OwnedProject, services: ServicesDep) -> DevServer:
    """Start (or restart) the dev server and wait until it answers or gives up."""
    launch = await services.runs.workspaces.start_dev_server(str(project.id))
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
    info = await services.runs.workspaces.stop_dev_server(project_id)
    return _public(info, settings=services.settings, project_id=project_id)
