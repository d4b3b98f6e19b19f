"""Pure ASGI middleware on every request: request id, security headers, body limit.

Pure ASGI (no ``BaseHTTPMiddleware``): each layer is one function call and a wrapped
``send``, with no extra task or body buffering per request. The whole stack, outermost
first, is listed in :func:`builder.http.app.create_app`.
"""

from __future__ import annotations

import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from builder.errors import RequestTooLarge
from builder.http.errors import error_response
from builder.http.scope import scope_state
from builder.log import bound_context

__all__ = [
    "BodySizeLimitMiddleware",
    "RequestIdMiddleware",
    "SecurityHeadersMiddleware",
    "studio_csp",
]

REQUEST_ID_HEADER = b"x-request-id"
_WELL_FORMED_ID = re.compile(rb"^[A-Za-z0-9._-]{8,128}$")

# Docs pages load Swagger UI's script and styles from a CDN and run inline script.
_API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
    b"frame-ancestors 'none'; base-uri 'none'"
)
_DOCS_PATHS = ("/docs", "/docs/oauth2-redirect")


def studio_csp(preview_origin: str | None) -> bytes:
    """The studio's policy: its own modules and styles only, previews framed from their origin.

    No inline script or style, no eval, nothing from another origin; the only frame
    allowed is a preview on the preview origin (none when previews are off).
    """
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src 'self'; frame-src {preview_origin or chr(39) + 'none' + chr(39)}; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ).encode()


class RequestIdMiddleware:
    """Give every request an id, log with it, and echo it on every response.

    A well-formed incoming ``x-request-id`` (8-128 characters of ``A-Z a-z 0-9 . _ -``)
    is kept, so a proxy's id follows the request; anything else is replaced by a new
    random id. The id is bound to every log line written while the request runs and
    stored in ``request.state.request_id``. Headers other components registered with
    :func:`~builder.http.scope.add_response_header` (rate-limit headers) are added here
    too, so they reach every response, errors included.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or secrets.token_hex(16)
        state = scope_state(scope)
        state["request_id"] = request_id
        encoded = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((REQUEST_ID_HEADER, encoded))
                headers.extend(state.get("response_headers", ()))
                message = {**message, "headers": headers}
            await send(message)

        with bound_context(request_id=request_id):
            await self.app(scope, receive, send_with_id)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            return value.decode() if _WELL_FORMED_ID.match(value) else None
    return None


class SecurityHeadersMiddleware:
    """Add browser security headers to every response.

    ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``,
    ``Referrer-Policy: no-referrer``, a ``Permissions-Policy`` that turns off powerful
    features, and a Content-Security-Policy of ``default-src 'none'`` (JSON needs
    nothing) relaxed only for the ``/docs`` page and, with :func:`studio_csp`, for the
    studio (``/`` and ``/studio/…``). In production
    ``Strict-Transport-Security`` tells browsers to use HTTPS for a year.

    Args:
        app: The wrapped app.
        hsts: Add ``Strict-Transport-Security``.
        preview_origin: The preview origin the studio may frame (None: previews off).
    """

    def __init__(self, app: ASGIApp, *, hsts: bool, preview_origin: str | None = None) -> None:
        self.app = app
        common = [
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if hsts:
            common.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        self._api = [*common, (b"content-security-policy", _API_CSP)]
        self._docs = [*common, (b"content-security-policy", _DOCS_CSP)]
        self._studio = [*common, (b"content-security-policy", studio_csp(preview_origin))]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in _DOCS_PATHS:
            extra = self._docs
        elif path == "/" or path.startswith("/studio/"):
            extra = self._studio
        else:
            extra = self._api

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _BodyTooLarge(Exception):
    """Raised into the app when a streamed body passes the limit."""


class BodySizeLimitMiddleware:
    """Answer 413 for request bodies over ``limit`` bytes without buffering them.

    A ``Content-Length`` over the limit is refused before the app runs and before any
    of the body is read. A body without one (chunked) is counted as the app reads it;
    the read that crosses the limit fails, and whatever the app then answers is
    replaced by the 413, so at most ``limit`` bytes plus one chunk are ever held.

    Args:
        app: The wrapped app.
        limit: Most bytes a request body may have.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, receive, send, declared)
            return
        received = 0
        exceeded = False
        answered = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if not exceeded:
                await send(message)
            elif not answered:
                answered = True
                await self._refuse(scope, receive, send, received)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            if not answered:
                await self._refuse(scope, receive, send, received)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        exc = RequestTooLarge(size=size, limit=self.limit)
        response = error_response(
            scope, 413, exc.code, exc.message, headers={"connection": "close"}
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
