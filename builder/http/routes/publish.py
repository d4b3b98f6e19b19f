"""Publishing a project version: push it to a git remote or GitHub, deploy it to a host.

Only the project's owner can publish (another user's project is a 404); requests count
against the default rate limit. A publish runs while the request waits and answers the
publication: ``ready`` with its link, or an error that says which step failed (502
``publish_failed``), recorded all the same.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from builder.http.deps import CurrentUser, DbDep, OwnedProject, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.ratelimit import rate_limited
from builder.http.schemas import PublishBody, PublisherInfoOut, PublishState
from builder.persistence.publishing import list_publications, list_publish_targets
from builder.persistence.schemas import PublicationPublic
from builder.plugins import get_publisher_registry
from builder.publish.service import publish_version

router = APIRouter(
    tags=["publish"],
    dependencies=[Depends(rate_limited("default"))],
    responses=ERROR_RESPONSES,
)

PublisherName = Annotated[
    str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", description="A registered publisher.")
]


@router.get("/api/publishers", response_model=list[PublisherInfoOut])
async def publishers(user: CurrentUser) -> list[PublisherInfoOut]:
    """Where a project can be published, and which options each publisher keeps secret."""
    return [
        PublisherInfoOut(
            name=info.name,
            description=info.description,
            plugin=info.plugin,
            builds=info.publisher.wants_build,
            secret_options=list(info.publisher.secret_options),
        )
        for info in get_publisher_registry()
    ]


@router.get("/api/projects/{project_id}/publish", response_model=PublishState)
async def state(project: OwnedProject, db: DbDep) -> PublishState:
    """The project's targets (never their credentials) and latest publications."""
    return PublishState(
        targets=await list_publish_targets(db, project_id=project.id),
        publications=await list_publications(db, project_id=project.id, limit=20),
    )


@router.post("/api/projects/{project_id}/publish/{publisher}", response_model=PublicationPublic)
async def publish(
    publisher: PublisherName,
    body: PublishBody,
    project: OwnedProject,
    user: CurrentUser,
    services: ServicesDep,
) -> PublicationPublic:
    """Publish a version (the latest by default) and answer the publication."""
    return await publish_version(
        services.db,
        services.settings,
        registry=get_publisher_registry(),
        user=user,
        project=project,
        publisher=publisher,
        version=body.version,
        options=body.options,
        open_sandbox=lambda: services.runs.workspaces.sandbox(str(project.id)),
    )
