"""The API's one ASGI layer: everything every request goes through before its route.

One function call and one wrapped ``send`` per request, in this order (each concern's
rules live in its own module; this layer only puts them together):

1. the request id (:mod:`builder.http.middleware`): a well-formed incoming
   ``x-request-id`` or a new one, bound to every log line of the request and echoed on
   every response, errors included, with the headers other components registered with
   :func:`~builder.http.scope.add_response_header` (the rate-limit headers);
2. the browser security headers (:class:`~builder.http.middleware.SecurityHeaders`);
3. the metrics (:meth:`~builder.http.metrics.Metrics.observe_request`): count and time
   by method, route template and final status;
4. the last resort for errors (:func:`~builder.http.errors.answer_escaped_error`):
   anything that escaped the app is a 500 with the request id, logged and sent to
   Sentry (a builder error raised outside the routes gets its usual answer);
5. CORS (Starlette's ``CORSMiddleware``, ``BUILDER_CORS_ORIGINS``) for requests that
   carry an ``Origin``, so even a 401 or 413 has CORS headers a browser can read and
   preflights need no key; other requests only get ``Vary: Origin``, as it would add;
6. the body limit (:mod:`builder.http.middleware`): 413 before the body is read when
   ``Content-Length`` is over it, or as soon as a streamed body passes it;
7. authentication (:class:`~builder.http.auth.Authenticator`): the caller, or 401.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from builder.errors import BuilderError
from builder.http.auth import Authenticator
from builder.http.errors import answer_escaped_error, builder_error_response
from builder.http.metrics import Metrics
from builder.http.middleware import (
    REQUEST_ID_HEADER,
    BodySizeLimitMiddleware,
    SecurityHeaders,
    new_request_id,
    refuse_too_large,
    well_formed_id,
)
from builder.log import bind_context, reset_context
from builder.settings import Settings

__all__ = ["CORS_EXPOSED_HEADERS", "Edge"]

CORS_EXPOSED_HEADERS = (
    "x-request-id",
    "x-run-id",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    # The LangGraph SDK reads a new run's URL from these.
    "content-location",
    "location",
)
_BODYLESS = frozenset({"GET", "HEAD"})


class Edge:
    """Request id, security headers, metrics, errors, CORS, body limit, authentication.

    Args:
        app: The routes (FastAPI's router stack).
        settings: CORS origins, the body limit, HSTS, the preview origin, which paths
            are public and whether anonymous access is on.
        metrics: Where requests are counted.
        preview_origin: The preview origin the studio may frame (None: previews off).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        metrics: Metrics,
        preview_origin: str | None = None,
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._headers = SecurityHeaders(hsts=settings.is_production, preview_origin=preview_origin)
        self._limit = settings.max_request_bytes
        self._auth = Authenticator(settings)
        self._streamed = BodySizeLimitMiddleware(self._authenticated, limit=self._limit)
        self._cors = CORSMiddleware(
            self._guarded,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["authorization", "x-api-key", "content-type", "x-request-id"],
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id: str | None = None
        origin = False
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                request_id = well_formed_id(value)
            elif name == b"origin":
                origin = True
        if request_id is None:
            request_id = new_request_id()
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        extra = [*self._headers.for_path(scope["path"]), (REQUEST_ID_HEADER, request_id.encode())]
        status = 0

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if not origin:
                    _vary_origin(headers)
                headers += extra
                headers += state.get("response_headers", ())
                message = {**message, "headers": headers}
            await send(message)

        tokens = bind_context(request_id=request_id)
        try:
            if origin:
                await self._cors(scope, receive, edge_send)
            else:
                await self._guarded(scope, receive, edge_send)
        except Exception as exc:
            await answer_escaped_error(scope, receive, edge_send, exc, answered=status != 0)
        finally:
            reset_context(tokens)
            route = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", None)
            self._metrics.observe_request(
                scope["method"],
                template or "unmatched",
                status or 500,
                time.perf_counter() - started,
            )

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The body limit, then authentication, then the app."""
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and declared > self._limit:
            await refuse_too_large(scope, receive, send, declared, self._limit)
        elif declared is None and (chunked or scope["method"] not in _BODYLESS):
            await self._streamed(scope, receive, send)  # counted as it is read
        else:
            await self._authenticated(scope, receive, send)

    async def _authenticated(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = await self._auth.authenticate(scope)
        if isinstance(outcome, BuilderError):
            await builder_error_response(scope, outcome)(scope, receive, send)
            return
        if outcome is not None:
            scope["state"]["principal"] = outcome
        await self.app(scope, receive, send)


def _vary_origin(headers: list[tuple[bytes, bytes]]) -> None:
    """Add ``Origin`` to the response's ``Vary``, as the CORS middleware would."""
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            headers[index] = (name, value + b", Origin")
            return
    headers.append((b"vary", b"Origin"))
