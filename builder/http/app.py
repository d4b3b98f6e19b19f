"""The FastAPI application: ``create_app()``.

Every request first meets :class:`~builder.http.edge.Edge`, one pure ASGI layer that
does, in this order: the request id (bound to every log line, echoed on every response,
errors, 413 and 429 included, with the rate-limit headers), the security headers, the
metrics (by route template and final status), the last resort for errors (a 500 with
the request id, logged and sent to Sentry), CORS (``BUILDER_CORS_ORIGINS``; even a 401
or 413 carries CORS headers, and preflights need no key), the body limit (413 before
the body is read) and authentication (the caller, or 401).

Outside all of them, :class:`~builder.http.preview.PreviewDispatch` sends requests for a
preview (on the preview listener, or for a preview host) to the preview gateway, so
they meet none of the API's layers and the API never serves a preview.

Then the route's dependencies: the rate limit of its group (429), the caller's
project (404 for anyone else's), and the request model (422). Routes are
:class:`~builder.http.routing.PlannedRoute`: a simple dependency tree is planned once
instead of solved per request. Builder errors raised
anywhere below are answered by the one mapping in :mod:`builder.http.errors`.
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute

from builder._version import __version__
from builder.http.edge import Edge
from builder.http.errors import ERROR_RESPONSES, install_error_handlers
from builder.http.metrics import Metrics, metrics_router
from builder.http.preview import PreviewDispatch, make_gateway
from builder.http.ratelimit import rate_limited
from builder.http.routes import ROUTERS
from builder.http.routing import PlannedRoute
from builder.http.services import Services
from builder.http.studio import routes as studio
from builder.preview.urls import preview_origin
from builder.settings import Settings, get_settings

__all__ = ["create_app"]

YOUNG_COLLECTION_ALLOCATIONS = 20_000
"""Allocations between two collections of the youngest generation in a served process
(Python's default: 700)."""


def _tune_collector() -> None:
    """Tune the garbage collector of a process that has started serving.

    What the service loaded to start (modules, the graph, the tools) lives as long as
    the process: it is frozen out of the collector's passes (:func:`gc.freeze`), so a
    full collection under load walks only what requests and runs made. And a model
    step allocates thousands of short-lived objects: collecting the youngest
    generation every :data:`YOUNG_COLLECTION_ALLOCATIONS` allocations rather than every
    700 promotes fewer of them to older generations, which then seldom fill up enough
    for a full collection.
    """
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, middle, oldest)


_DESCRIPTION = (
    "Build and edit web sites with an AI agent. Authenticate with "
    "`Authorization: Bearer <key>` or `x-api-key: <key>`; errors are "
    '`{"error": {"code", "message", "request_id"}}`. See docs/api.md.'
)


def create_app(settings: Settings | None = None, *, tune_collector: bool = False) -> FastAPI:
    """The HTTP service as an ASGI app.

    Nothing is opened here: the database, Redis, the runs service and the sandbox pool
    are opened when the app starts (its lifespan) and closed when it stops.

    Args:
        settings: Defaults to :func:`~builder.settings.get_settings`.
        tune_collector: Once started, tune Python's garbage collector for a process
            that serves until it exits (``builder serve``; see :func:`_tune_collector`).
            Left off for an app embedded in another program, whose objects are not all
            there to stay and whose collector is its own.
    """
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Services.open(settings, metrics=metrics) as services:
            app.state.services = services
            if tune_collector:
                _tune_collector()
            try:
                yield
            finally:
                if gateway is not None:
                    await gateway.aclose()

    app = FastAPI(
        title="builder",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        debug=False,
    )
    install_error_handlers(app)
    for router in (metrics_router(), *ROUTERS, studio.router):
        _add_routes(app, router)
    app.router.routes.append(studio.static_mount())
    _add_openapi_routes(app, settings)
    # Everything a request meets before its route is one layer (builder.http.edge).
    app.add_middleware(
        Edge, settings=settings, metrics=metrics, preview_origin=preview_origin(settings)
    )
    gateway = make_gateway(settings, lambda: app.state.services)
    if gateway is not None:
        app.add_middleware(
            PreviewDispatch,
            gateway=gateway,
            preview_port=settings.preview_port,
            body_limit=settings.max_request_bytes,
        )
    return app


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """Add a router's routes to the app, each rebuilt for this app.

    ``APIRouter`` has already given each route its full path, dependencies and
    documented responses. Rebuilding each route with the app as its
    ``dependency_overrides_provider`` makes the app's ``dependency_overrides`` reach
    it (FastAPI reads the provider when it builds a route's handler), gives every app
    routes of its own, and keeps the route table flat: ``app.routes`` and
    ``scope["route"]`` show every route with its full template (metrics labels, the
    route-table tests).
    """
    for route in router.routes:
        if isinstance(route, APIRoute):
            fields = {
                name: getattr(route, name)
                for name in _ROUTE_FIELDS
                if name not in {"path", "endpoint"} and hasattr(route, name)
            }
            # A plain APIRoute becomes a PlannedRoute: the same route, its dependency
            # tree planned once instead of solved per request.
            cls = PlannedRoute if type(route) is APIRoute else type(route)
            route = cls(
                route.path, route.endpoint, **(fields | {"dependency_overrides_provider": app})
            )
        app.router.routes.append(route)


_ROUTE_FIELDS = [name for name in inspect.signature(APIRoute.__init__).parameters if name != "self"]
"""What an :class:`APIRoute` is built from (each kept as an attribute of the same name)."""


def _add_openapi_routes(app: FastAPI, settings: Settings) -> None:
    """``/openapi.json`` always (public only with docs on); ``/docs`` when docs are on."""

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(app.openapi())

    dependencies: list[Any] = [] if settings.serve_docs else [Depends(rate_limited("default"))]
    app.add_api_route(
        "/openapi.json",
        openapi,
        include_in_schema=False,
        dependencies=dependencies,
        responses=ERROR_RESPONSES,
    )
    if settings.serve_docs:

        async def docs(request: Request) -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title="builder API")

        app.add_api_route("/docs", docs, include_in_schema=False)
