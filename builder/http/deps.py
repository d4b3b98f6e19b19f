"""FastAPI dependencies as ``Annotated`` aliases: declare what a route needs by type.

::

    @router.get("/api/projects/{project_id}")
    async def get(project: OwnedProject) -> ProjectPublic: ...

``OwnedProject`` resolves the path's ``project_id`` for the caller only: another
user's project is a 404, exactly like one that does not exist.

Every dependency is a public ``async`` function, so it runs on the event loop (no hop
to the thread pool) and an app embedding :func:`~builder.http.create_app` can replace
it as FastAPI documents: ``app.dependency_overrides[get_current_user] = ...``. Replacing
``get_current_user`` or ``get_db`` reaches ``OwnedProject`` too; the tree is kept
shallow (``get_current_user`` and ``get_db`` read the request themselves), and routes
replay it from a plan made once (:class:`~builder.http.routing.PlannedRoute`) unless
overrides are set.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Request

from builder.errors import Unauthorized
from builder.http.auth import Principal
from builder.http.services import Services
from builder.persistence.database import Database
from builder.persistence.projects import get_project
from builder.persistence.schemas import ProjectPublic, UserPublic
from builder.runs.service import RunService
from builder.runs.workspace import Workspaces
from builder.settings import Settings

__all__ = [
    "CurrentPrincipal",
    "CurrentUser",
    "DbDep",
    "OwnedProject",
    "RunsDep",
    "ServicesDep",
    "SettingsDep",
    "WorkspacesDep",
    "get_app_settings",
    "get_current_user",
    "get_db",
    "get_owned_project",
    "get_principal",
    "get_runs",
    "get_services",
    "get_workspaces",
]


async def get_services(request: Request) -> Services:
    """The running app's services."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_app_settings(services: ServicesDep) -> Settings:
    """The service's settings."""
    return services.settings


async def get_db(request: Request) -> Database:
    """The database."""
    # Straight from the app, not through get_services: one call fewer on every project
    # route.
    services: Services = request.scope["app"].state.services
    return services.db


async def get_runs(services: ServicesDep) -> RunService:
    """The runs service."""
    return services.runs


async def get_workspaces(services: ServicesDep) -> Workspaces:
    """Projects' sandboxes, dev servers and previews in this process."""
    return services.runs.workspaces


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
DbDep = Annotated[Database, Depends(get_db)]
RunsDep = Annotated[RunService, Depends(get_runs)]
WorkspacesDep = Annotated[Workspaces, Depends(get_workspaces)]


async def get_principal(request: Request) -> Principal:
    """Who is calling, as the auth middleware found it (401 when nobody)."""
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    if principal is None:
        raise Unauthorized()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_current_user(request: Request) -> UserPublic:
    """The calling user (401 when nobody)."""
    # Not through get_principal, for the same reason as get_db.
    return (await get_principal(request)).user


CurrentUser = Annotated[UserPublic, Depends(get_current_user)]


async def get_owned_project(
    project_id: Annotated[uuid.UUID, Path(description="The project's id.")],
    user: CurrentUser,
    db: DbDep,
) -> ProjectPublic:
    """The path's project, if the caller owns it (404 otherwise)."""
    return await get_project(db, user_id=user.id, project_id=project_id)


OwnedProject = Annotated[ProjectPublic, Depends(get_owned_project)]
