"""Downloading a version of a project's files, or its build output, as an archive."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from builder.http.deps import DbDep, OwnedProject, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.ratelimit import rate_limited
from builder.publish.archive import FORMATS, archive_chunks
from builder.publish.source import FileSource, VersionFiles, latest_build

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
    responses={
        200: {
            "content": {"application/zip": {}, "application/gzip": {}},
            "description": "The archive.",
        }
    },
)
async def export_archive(
    project: OwnedProject,
    db: DbDep,
    services: ServicesDep,
    version: Annotated[
        int | None, Query(ge=1, le=_MAX_VERSION, description="A version; the latest when omitted.")
    ] = None,
    format: Annotated[Literal["zip", "tar.gz"], Query(description="The archive's format.")] = "zip",
    built: Annotated[
        bool,
        Query(
            description="Export the build output (dist/) made in the project's sandbox from "
            "the latest version, instead of the stored files; 422 for a project that does "
            "not build."
        ),
    ] = False,
) -> StreamingResponse:
    """A version's files (or its build output) as an archive, streamed one file at a time
    (owner only)."""
    stack = contextlib.AsyncExitStack()
    try:
        files: FileSource
        if built:
            sandbox = await stack.enter_async_context(
                services.runs.workspaces.sandbox(str(project.id))
            )
            version, files = await latest_build(
                db, sandbox, project_id=project.id, version=version, settings=services.settings
            )
        else:
            files = VersionFiles(db, project_id=project.id, version=version)
        chunks = archive_chunks(files, format=format)
        first = await anext(chunks)  # a missing version fails here, before the response starts
    except BaseException:
        await stack.aclose()
        raise

    async def body() -> AsyncIterator[bytes]:
        async with stack:  # the sandbox stays leased until its files are sent
            yield first
            async for chunk in chunks:
                yield chunk

    media_type, extension = FORMATS[format]
    name = f"project-{project.id}" + (f"-v{version}" if version else "")
    name += "-dist" if built else ""
    return StreamingResponse(
        body(),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}{extension}"'},
    )
