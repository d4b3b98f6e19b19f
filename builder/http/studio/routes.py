"""The studio's page, its static files, and signing in and out.

* ``GET /``: the single page (``static/index.html``); everything else it needs is a
  module or stylesheet under ``/studio/``, served from the package with revalidation.
* ``POST /api/sign-in``: exchange an API key (or nothing, when anonymous access is on)
  for the session cookie; answers who signed in and the session's CSRF token.
* ``GET /api/session``: who the cookie (or key) stands for, and the CSRF token.
* ``DELETE /api/session``: sign out (the cookie is removed).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field, SecretStr
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from builder.errors import Forbidden, Unauthorized
from builder.http.deps import CurrentPrincipal, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.ratelimit import rate_limited
from builder.http.schemas import RequestBody
from builder.http.studio.session import (
    clear_cookie_header,
    session_cookie,
    session_signer,
    set_cookie_header,
)
from builder.persistence.schemas import UserPublic
from builder.persistence.users import authenticate_api_key, hash_api_key
from builder.preview.urls import preview_template
from builder.settings import Settings

__all__ = ["STATIC_DIR", "router", "static_mount"]

STATIC_DIR = Path(__file__).parent / "static"
_NO_CACHE = {"cache-control": "no-cache"}

router = APIRouter(tags=["studio"], responses=ERROR_RESPONSES)


class SignInBody(RequestBody):
    """What signing in takes."""

    api_key: SecretStr | None = Field(
        default=None,
        max_length=200,
        description="An API key; omitted: the local user, when anonymous access is on.",
    )


class SessionUser(BaseModel):
    """Who is signed in."""

    id: uuid.UUID
    name: str


class SessionInfo(BaseModel):
    """The signed-in user and what the studio needs to act for them."""

    user: SessionUser
    anonymous: bool
    """The anonymous local user of a development server."""
    csrf_token: str | None
    """Send as ``x-csrf-token`` with every state-changing request (None without a cookie)."""
    previews: bool
    """Whether previews are served from their own origin (the studio can frame them)."""


def _info(
    settings: Settings, user: UserPublic, *, anonymous: bool, csrf: str | None
) -> dict[str, Any]:
    info = SessionInfo(
        user=SessionUser(id=user.id, name=user.name),
        anonymous=anonymous,
        csrf_token=csrf,
        previews=preview_template(settings) is not None,
    )
    return info.model_dump(mode="json")


def _same_origin(request: Request) -> bool:
    """Whether a browser's ``Origin`` (when it sent one) is this service's own."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The studio."""
    return FileResponse(STATIC_DIR / "index.html", headers=_NO_CACHE)


@router.post(
    "/api/sign-in",
    response_model=SessionInfo,
    dependencies=[Depends(rate_limited("default"))],
)
async def sign_in(body: SignInBody, request: Request, services: ServicesDep) -> JSONResponse:
    """Exchange an API key for the studio's session cookie (HttpOnly, SameSite=Strict)."""
    settings = services.settings
    if not _same_origin(request):
        raise Forbidden("signing in is only possible from the studio's own origin")
    key = body.api_key.get_secret_value().strip() if body.api_key is not None else ""
    if key:
        user = await authenticate_api_key(services.db, key=key)
        if user is None:
            raise Unauthorized("invalid API key")
        key_hash: str | None = hash_api_key(key)
    elif settings.anonymous_allowed:
        user, key_hash = services.local_user, None
    else:
        raise Unauthorized("an API key is required to sign in")
    signer = session_signer(settings)
    cookie = signer.issue(key_hash)
    return JSONResponse(
        _info(settings, user, anonymous=key_hash is None, csrf=signer.csrf_token(cookie)),
        headers={
            "set-cookie": set_cookie_header(cookie, secure=settings.is_production),
            "cache-control": "no-store",
        },
    )


@router.get(
    "/api/session", response_model=SessionInfo, dependencies=[Depends(rate_limited("default"))]
)
async def session(
    principal: CurrentPrincipal, request: Request, services: ServicesDep
) -> JSONResponse:
    """Who is signed in, and the session's CSRF token."""
    cookie = session_cookie(request.scope)
    signer = session_signer(services.settings)
    csrf = signer.csrf_token(cookie) if cookie and signer.verify(cookie) else None
    return JSONResponse(
        _info(services.settings, principal.user, anonymous=principal.key_hash is None, csrf=csrf),
        headers={"cache-control": "no-store"},
    )


@router.delete("/api/session", status_code=204, dependencies=[Depends(rate_limited("default"))])
async def sign_out(principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Sign out: the session cookie is removed from the browser."""
    return Response(
        status_code=204,
        headers={"set-cookie": clear_cookie_header(secure=services.settings.is_production)},
    )


class _StudioFiles(StaticFiles):
    """The studio's files, revalidated on every load (they are not named by content)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("cache-control", "no-cache")
        return response


def static_mount() -> Mount:
    """``/studio/…``: the studio's modules, styles and vendored libraries, gzipped."""
    files = _StudioFiles(directory=STATIC_DIR)
    return Mount("/studio", app=GZipMiddleware(files, minimum_size=512), name="studio")
