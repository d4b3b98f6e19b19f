"""Downloading a version of a project's files as a zip archive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from builder.http.deps import DbDep, OwnedProject
from builder.http.errors import ERROR_RESPONSES
from builder.http.ratelimit import rate_limited
from builder.publish.archive import zip_chunks

router = APIRouter(
    prefix="/api/projects/{project_id}",
    tags=["files"],
    dependencies=[Depends(rate_limited("default"))],
    responses=ERROR_RESPONSES,
)

_MAX_VERSION = 2_147_483_647


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "The zip archive."}},
)
async def export_zip(
    project: OwnedProject,
    db: DbDep,
    version: Annotated[
        int | None, Query(ge=1, le=_MAX_VERSION, description="A version; the latest when omitted.")
    ] = None,
) -> StreamingResponse:
    """A version's files as a zip, streamed one file at a time (owner only)."""
    chunks = zip_chunks(db, project_id=project.id, version=version)
    first = await anext(chunks)  # a missing version fails here, before the response starts

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    name = f"project-{project.id}" + (f"-v{version}" if version else "")
    return StreamingResponse(
        body(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
    )
