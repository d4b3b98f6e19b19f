"""Projects: list (starred first), create, read, update, delete, star."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from builder.errors import RunInProgress
from builder.http.deps import CurrentUser, DbDep, OwnedProject, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.ratelimit import rate_limited
from builder.http.schemas import ProjectCreateBody, ProjectListItem, ProjectUpdateBody
from builder.http.screenshot import screenshots_dir
from builder.http.thumbnails import latest_thumbnail
from builder.persistence.projects import (
    delete_project,
    list_projects,
    open_project,
    set_starred,
    update_project,
)
from builder.persistence.schemas import Page, ProjectPublic, ProjectSummary, ProjectUpdate
from builder.starters import create_project

router = APIRouter(
    prefix="/api/projects",
    tags=["projects"],
    dependencies=[Depends(rate_limited("default"))],
    responses=ERROR_RESPONSES,
)

Limit = Annotated[int, Query(ge=1, le=200, description="Most items on the page.")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
]


Search = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=r"^[^\x00]*$",
        description="Only projects whose name contains this (any case).",
    ),
]


@router.get("", response_model=Page[ProjectListItem])
async def list_(
    user: CurrentUser,
    db: DbDep,
    services: ServicesDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    q: Search = None,
) -> Page[ProjectListItem]:
    """The caller's projects, starred first, then the most recently updated, each with
    its thumbnails (``GET /api/projects/{id}/thumbnails/{name}``) when it has any."""
    page = await list_projects(db, user_id=user.id, limit=limit, cursor=cursor, query=q)
    settings = services.settings

    def with_thumbnails(items: list[ProjectSummary]) -> list[ProjectListItem]:
        return [
            ProjectListItem(
                **item.model_dump(),
                thumbnail=latest_thumbnail(screenshots_dir(settings, str(item.id))),
            )
            for item in items
        ]

    items = await asyncio.to_thread(with_thumbnails, page.items)
    return Page[ProjectListItem](items=items, next_cursor=page.next_cursor)


@router.post("", status_code=201, response_model=ProjectPublic)
async def create(body: ProjectCreateBody, user: CurrentUser, db: DbDep) -> ProjectPublic:
    """Create a project, optionally from a starter (its files become version 1)."""
    return await create_project(
        db, user_id=user.id, name=body.name, description=body.description, starter=body.starter
    )


@router.get("/{project_id}", response_model=ProjectPublic)
async def read(project: OwnedProject) -> ProjectPublic:
    """One project."""
    return project


@router.post("/{project_id}/open", response_model=ProjectPublic)
async def open_(project: OwnedProject, user: CurrentUser, db: DbDep) -> ProjectPublic:
    """Record that the caller opened the project now (its `last_opened_at`)."""
    return await open_project(db, user_id=user.id, project_id=project.id)


@router.patch("/{project_id}", response_model=ProjectPublic)
async def update(
    project: OwnedProject, body: ProjectUpdateBody, user: CurrentUser, db: DbDep
) -> ProjectPublic:
    """Change a project's name or description."""
    changes = ProjectUpdate(**body.model_dump(exclude_unset=True))
    return await update_project(db, user_id=user.id, project_id=project.id, changes=changes)


@router.delete("/{project_id}", status_code=204)
async def delete(project: OwnedProject, user: CurrentUser, services: ServicesDep) -> Response:
    """Delete a project with its messages and versions (409 while a run is in progress)."""
    async with services.runs.project_idle(project.id, queued_too=True) as held:
        if not held:
            raise RunInProgress(project.id)
        await delete_project(services.db, user_id=user.id, project_id=project.id)
    await services.runs.workspaces.discard(str(project.id))
    return Response(status_code=204)


@router.put("/{project_id}/star", response_model=ProjectPublic)
async def star(project: OwnedProject, user: CurrentUser, db: DbDep) -> ProjectPublic:
    """Star a project (starred projects are listed first)."""
    return await set_starred(db, user_id=user.id, project_id=project.id, starred=True)


@router.delete("/{project_id}/star", response_model=ProjectPublic)
async def unstar(project: OwnedProject, user: CurrentUser, db: DbDep) -> ProjectPublic:
    """Unstar a project."""
    return await set_starred(db, user_id=user.id, project_id=project.id, starred=False)
