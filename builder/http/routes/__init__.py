"""The API's routes, one module per resource; :data:`ROUTERS` is every one of them.

The LangGraph-compatible API's routers (:mod:`builder.http.langgraph`) are included.
"""

from __future__ import annotations

from fastapi import APIRouter

from builder.http import langgraph
from builder.http.routes import (
    chat,
    devserver,
    export,
    files,
    health,
    integrations,
    messages,
    projects,
    prompts,
    publish,
    screenshot,
)

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    projects.router,
    messages.router,
    files.router,
    export.router,
    publish.router,
    chat.router,
    prompts.router,
    screenshot.router,
    integrations.router,
    devserver.router,
    *langgraph.ROUTERS,
)
