"""Liveness and readiness probes: public, not rate limited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from builder._version import __version__
from builder.http.deps import ServicesDep
from builder.http.schemas import Check, Health, Readiness
from builder.http.services import Services
from builder.models import invoke_model, load_chat_model
from builder.runs.workspace import check_sandbox_backend

router = APIRouter(prefix="/api/health", tags=["health"])

_CHECK_SECONDS = 2.0
_DB_SECONDS = 1.0
"""The database must answer within this; a frozen one then costs readiness no more."""


@router.get("", response_model=Health, summary="Liveness")
async def liveness(services: ServicesDep) -> Health:
    """The process is up (it does not look at its dependencies)."""
    return Health(
        status="ok",
        version=__version__,
        uptime_seconds=round(time.monotonic() - services.started_at, 3),
    )


async def _check(work: Awaitable[object], ok_detail: str) -> Check:
    try:
        async with asyncio.timeout(_CHECK_SECONDS):
            await work
    except Exception as exc:  # any failure means "not ready"; its kind is the detail
        return Check(ok=False, detail=f"unavailable ({type(exc).__name__})")
    return Check(ok=True, detail=ok_detail)


async def _sandbox_ready(services: Services) -> None:
    await check_sandbox_backend(services.settings, timeout=_CHECK_SECONDS)


async def _model_ready(services: Services) -> None:
    """The model is configured and its integration loads; with
    ``BUILDER_READY_MODEL_CALL`` the provider also answers a one-token request."""
    settings = services.settings
    model = load_chat_model(settings=settings)
    if settings.ready_model_call:
        probe = settings.model_copy(update={"model_retries": 0, "timeout_ai": _CHECK_SECONDS})
        await invoke_model(model.bind(max_tokens=1), "Reply with OK.", settings=probe)


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness",
    responses={503: {"model": Readiness, "description": "A dependency is down."}},
)
async def readiness(services: ServicesDep) -> JSONResponse:
    """Whether the database, Redis (when configured), the sandbox backend and the model
    are usable; 503 with the failing checks when one is not."""
    checks = {"database": await _check(services.db.ping(seconds=_DB_SECONDS), "reachable")}
    if services.redis is not None:
        checks["redis"] = await _check(services.redis.ping(), "reachable")
    checks["sandbox"] = await _check(_sandbox_ready(services), services.settings.sandbox_backend)
    checks["model"] = await _check(_model_ready(services), str(services.settings.model))
    ready = all(check.ok for check in checks.values())
    report = Readiness(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(report.model_dump(mode="json"), status_code=200 if ready else 503)
