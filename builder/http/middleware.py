"""What every request gets on its way in: its id, the security headers, the body limit.

:class:`~builder.http.edge.Edge` applies them (with the metrics, the last resort for
errors, CORS and authentication) in one ASGI layer; :class:`BodySizeLimitMiddleware` is
also a pure ASGI middleware of its own (the preview gateway uses it).
"""

from __future__ import annotations

import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from builder.errors import RequestTooLarge
from builder.http.errors import error_response

__all__ = [
    "REQUEST_ID_HEADER",
    "BodySizeLimitMiddleware",
    "SecurityHeaders",
    "new_request_id",
    "refuse_too_large",
    "studio_csp",
    "well_formed_id",
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


def well_formed_id(value: bytes) -> str | None:
    """An incoming ``x-request-id`` worth keeping (8-128 of ``A-Z a-z 0-9 . _ -``), or None.

    A proxy's id is kept so that it follows the request; anything else is replaced.
    """
    return value.decode() if _WELL_FORMED_ID.match(value) else None


def new_request_id() -> str:
    """A fresh random request id."""
    return secrets.token_hex(16)


class SecurityHeaders:
    """The browser security headers of a response, by path.

    ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``,
    ``Referrer-Policy: no-referrer``, a ``Permissions-Policy`` that turns off powerful
    features, and a Content-Security-Policy of ``default-src 'none'`` (JSON needs
    nothing) relaxed only for the ``/docs`` page and, with :func:`studio_csp`, for the
    studio (``/`` and ``/studio/…``). In production
    ``Strict-Transport-Security`` tells browsers to use HTTPS for a year.

    Args:
        hsts: Add ``Strict-Transport-Security``.
        preview_origin: The preview origin the studio may frame (None: previews off).
    """

    def __init__(self, *, hsts: bool, preview_origin: str | None = None) -> None:
        common = [
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if hsts:
            common.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        self._api = (*common, (b"content-security-policy", _API_CSP))
        self._docs = (*common, (b"content-security-policy", _DOCS_CSP))
        self._studio = (*common, (b"content-security-policy", studio_csp(preview_origin)))

    def for_path(self, path: str) -> tuple[tuple[bytes, bytes], ...]:
        """The headers to add to the response to a request for ``path``."""
        if path in _DOCS_PATHS:
            return self._docs
        if path == "/" or path.startswith("/studio/"):
            return self._studio
        return self._api


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
        await refuse_too_large(scope, receive, send, size, self.limit)


async def refuse_too_large(
    scope: Scope, receive: Receive, send: Send, size: int, limit: int
) -> None:
    """Answer 413 for a body of ``size`` bytes over ``limit`` (and close the connection)."""
    exc = RequestTooLarge(size=size, limit=limit)
    response = error_response(scope, 413, exc.code, exc.message, headers={"connection": "close"})
    await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
