"""A screenshot of the project's own preview."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from builder.http.deps import OwnedProject, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.ratelimit import rate_limited
from builder.http.routes.devserver import current_dev_server
from builder.http.screenshot import capture_preview, store_screenshot

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
    directory (``screenshots/<project id>/``).
    """
    info = await current_dev_server(services.pool, str(project.id))
    image = await capture_preview(services.screenshotter, info)
    name = await asyncio.to_thread(store_screenshot, services.settings, str(project.id), image)
    return Response(image, media_type="image/png", headers={"x-screenshot": name})
