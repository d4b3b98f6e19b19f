"""``screenshot_preview``: the agent looks at its own preview.

Offered to models that read images (``BUILDER_MODEL_IMAGES``, else the model's
profile). The page is the project's running dev server, loaded under the same
one-origin lock as the screenshot route (:mod:`builder.http.screenshot`); the PNG is
kept with the project's other screenshots and shown to the model as an image.
"""

from __future__ import annotations

import asyncio
import contextlib

from builder.images import Image
from builder.tools.context import ToolContext
from builder.tools.devserver import DEV_SERVER
from builder.tools.output import WithImages

__all__ = ["IMAGE_TOOLS", "screenshot_preview"]


async def screenshot_preview(*, ctx: ToolContext) -> WithImages:
    """Take a screenshot of the running preview (1280x800) to see how the site looks.

    Use it after changing how pages look, to check the layout; the dev server must be
    running (start_dev_server).
    """
    from builder.http.screenshot import Screenshotter, capture_preview, store_screenshot

    server = await ctx.sandbox.process_info(DEV_SERVER)
    # One browser per call: screenshots are rare, and nothing outlives the run.
    async with contextlib.aclosing(Screenshotter(ctx.settings)) as shooter:
        url = server.preview_url if server is not None and server.running else None
        png = await capture_preview(shooter, url)
    name = await asyncio.to_thread(store_screenshot, ctx.settings, ctx.project_id, png)
    text = f"Screenshot of the preview (1280x800, saved as {name})."
    return WithImages(text, [Image("image/png", png)])


IMAGE_TOOLS = frozenset({"screenshot_preview"})
"""Tools whose results are images: offered only to models that read images."""
