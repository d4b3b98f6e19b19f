"""A screenshot of the project's own preview, and the thumbnails made from the newest."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import FileResponse, Response

from builder.http.deps import OwnedProject, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.ratelimit import rate_limited
from builder.http.screenshot import capture_preview, screenshots_dir, store_screenshot
from builder.http.thumbnails import CACHE_FOREVER, thumbnail_path, try_make_thumbnails

router = APIRouter(
    prefix="/api/projects/{project_id}",
    tags=["sandbox"],
    dependencies=[Depends(rate_limited("default"))],
    responses=ERROR_RESPONSES,
)


@router.post(
    "/screenshot",
    response_class=Response,
    responses={200: {"description": "A PNG of the preview.", "content": {"image/png": {}}}},
)
async def screenshot(project: OwnedProject, services: ServicesDep) -> Response:
    """Screenshot the preview of the project's running dev server (409 when none runs).

    Only the preview's own origin is loaded; the PNG is also kept under the data
    directory (``screenshots/<project id>/``), and becomes the project's thumbnails.
    """
    info = await services.runs.workspaces.dev_server(str(project.id))
    url = info.preview_url if info is not None and info.running else None
    image = await capture_preview(services.screenshotter, url)
    name = await asyncio.to_thread(store_screenshot, services.settings, str(project.id), image)
    folder = screenshots_dir(services.settings, str(project.id))
    await asyncio.to_thread(try_make_thumbnails, folder, image)
    return Response(image, media_type="image/png", headers={"x-screenshot": name})


@router.get(
    "/thumbnails/{name}",
    response_class=FileResponse,
    responses={200: {"description": "A WebP thumbnail.", "content": {"image/webp": {}}}},
)
async def thumbnail(
    name: Annotated[str, Path(max_length=40, description="`<hash>-<width>.webp`, as listed.")],
    project: OwnedProject,
    services: ServicesDep,
) -> FileResponse:
    """A thumbnail of the project's newest screenshot; named by its content, so it is
    cached for a year."""
    path = thumbnail_path(screenshots_dir(services.settings, str(project.id)), name)
    return FileResponse(path, media_type="image/webp", headers={"cache-control": CACHE_FOREVER})
