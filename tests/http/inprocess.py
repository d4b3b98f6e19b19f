"""The app in the test process (httpx's ASGI transport), with its lifespan running."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from builder.http import create_app
from builder.settings import Settings

__all__ = ["running_app"]


@asynccontextmanager
async def running_app(
    settings: Settings, *, customize: object = None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """``create_app(settings)`` started, and a client that calls it without a socket."""
    app = create_app(settings)
    if callable(customize):
        customize(app)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield app, client
