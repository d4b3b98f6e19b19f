"""FastAPI dependencies as ``Annotated`` aliases: declare what a route needs by type.

::

    @router.get("/api/projects/{project_id}")
    async def get(project: OwnedProject) -> ProjectPublic: ...

``OwnedProject`` resolves the path's ``project_id`` for the caller only: another
user's project is a 404, exactly like one that does not exist.
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
from builder.sandbox.pool import SandboxPool
from builder.settings import Settings

__all__ = [
    "CurrentPrincipal",
    "CurrentUser",
    "DbDep",
    "OwnedProject",
    "PoolDep",
    "RunsDep",
    "ServicesDep",
    "SettingsDep",
]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


def _settings(services: ServicesDep) -> Settings:
    return services.settings


def _db(services: ServicesDep) -> Database:
    return services.db


def _runs(services: ServicesDep) -> RunService:
    return services.runs


def _pool(services: ServicesDep) -> SandboxPool:
    return services.pool


SettingsDep = Annotated[Settings, Depends(_settings)]
DbDep = Annotated[Database, Depends(_db)]
RunsDep = Annotated[RunService, Depends(_runs)]
PoolDep = Annotated[SandboxPool, Depends(_pool)]


def _principal(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise Unauthorized()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


def _user(principal: CurrentPrincipal) -> UserPublic:
    return principal.user


CurrentUser = Annotated[UserPublic, Depends(_user)]


async def _owned_project(
    project_id: Annotated[uuid.UUID, Path(description="The project's id.")],
    user: CurrentUser,
    db: DbDep,
) -> ProjectPublic:
    return await get_project(db, user_id=user.id, project_id=project_id)


OwnedProject = Annotated[ProjectPublic, Depends(_owned_project)]
