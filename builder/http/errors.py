"""The one place that maps builder's errors to HTTP status codes and JSON bodies.

Every error answer, whoever produces it, has the same body::

    {"error": {"code": "not_found", "message": "project … not found", "request_id": "…"}}

``code`` is the error class's stable :attr:`~builder.errors.BuilderError.code` (or
``validation_error``, ``not_found``, ``method_not_allowed`` for FastAPI's own answers);
``details`` is added for validation errors (field locations and messages, never the
input). Server-side failures (5xx) say what failed in general terms only: the
specifics (hosts, keys, stack traces) go to the log and to Sentry under the request id.

Status codes (the first matching class decides):

* 404 ``NotFound`` (also another user's resource: never 403 for it)
* 409 ``Conflict``: ``AlreadyExists``, ``RunInProgress``, ``ConcurrentModification``,
  ``StaleWorkspace``
* 413 ``RequestTooLarge``, ``FileTooLarge``, ``ImageTooLarge``, ``QuotaExceeded``
* 422 ``InvalidInput`` and its subclasses; other ``LimitExceeded`` (token budget)
* 401 ``Unauthorized``; 403 ``Forbidden``; 429 ``RateLimited`` (with ``Retry-After``)
* 504 ``OperationTimeout`` (``LockTimeout`` included)
* 502 ``ProviderError`` (the model provider failed), ``PublishFailed`` (a git remote or a
  host refused or failed; its message says which step and why, never a credential);
  503 ``DependencyUnavailable``
* 500 ``ConfigurationError``, ``DecryptionFailed`` and anything unexpected
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from builder.errors import (
    BuilderError,
    Conflict,
    DependencyUnavailable,
    FileTooLarge,
    Forbidden,
    ImageTooLarge,
    InvalidInput,
    LimitExceeded,
    NotFound,
    OperationTimeout,
    ProviderError,
    PublishFailed,
    QuotaExceeded,
    RateLimited,
    RequestTooLarge,
    Unauthorized,
)
from builder.http.scope import request_id_of, scope_state
from builder.http.sentry import report_exception
from builder.log import get_logger

__all__ = [
    "ERROR_RESPONSES",
    "ErrorBody",
    "ErrorInfo",
    "answer_escaped_error",
    "builder_error_response",
    "error_response",
    "install_error_handlers",
    "status_for",
]

_log = get_logger("builder.http.errors")

# Most specific first: the first class an error is an instance of decides.
_STATUS: tuple[tuple[type[BuilderError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (RequestTooLarge, 413),
    (FileTooLarge, 413),
    (ImageTooLarge, 413),
    (QuotaExceeded, 413),
    (LimitExceeded, 422),
    (Unauthorized, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (OperationTimeout, 504),
    (ProviderError, 502),
    (PublishFailed, 502),
    (DependencyUnavailable, 503),
)
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ErrorInfo(BaseModel):
    """What went wrong."""

    model_config = ConfigDict(extra="forbid")

    code: str
    """Stable, machine-readable."""
    message: str
    """For people; may change."""
    request_id: str
    """Quote it when reporting a problem; it is on every log line of the request."""
    details: list[dict[str, Any]] | None = None
    """Validation errors: ``loc``, ``msg``, ``type`` of each."""


class ErrorBody(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorInfo


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _doc("No valid API key."),
    404: _doc("No such resource for this caller."),
    409: _doc("Conflicts with the current state (a run in progress)."),
    413: _doc("Request body or file too large."),
    422: _doc("Invalid input."),
    429: _doc("Rate limit reached; see Retry-After."),
    500: _doc("Unexpected error; quote the request id."),
    503: _doc("A dependency is unavailable."),
    504: _doc("An operation ran out of time."),
}
"""Error answers every protected route may give, for the OpenAPI document."""


def status_for(exc: BuilderError) -> int:
    """The HTTP status of a builder error."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def _public_message(exc: BuilderError, status: int) -> str:
    if status < 500:
        return exc.message
    if isinstance(exc, OperationTimeout):
        return f"the {exc.operation} operation timed out after {exc.seconds:g} s"
    if isinstance(exc, PublishFailed):
        return exc.message
    if isinstance(exc, ProviderError):
        where = f" (status {exc.status_code})" if exc.status_code else ""
        return f"the model provider failed{where}; retry later"
    if isinstance(exc, DependencyUnavailable):
        return f"{exc.dependency} is unavailable; retry later"
    return "internal error; quote the request id when reporting it"


def error_response(
    scope: Scope,
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    """An error answer with the standard body and this request's id."""
    info = ErrorInfo(code=code, message=message, request_id=request_id_of(scope), details=details)
    body = ErrorBody(error=info).model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


def builder_error_response(scope: Scope, exc: BuilderError) -> JSONResponse:
    """The answer for a builder error (reported to Sentry when it is a 5xx)."""
    status = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["www-authenticate"] = 'Bearer realm="builder"'
    if isinstance(exc, RateLimited):
        headers["retry-after"] = str(exc.retry_after)
    if status >= 500:
        _log.warning("http.dependency_error", code=exc.code, error=exc.message, status=status)
        if status == 500:
            report_exception(exc, scope_state(scope))
    return error_response(scope, status, exc.code, _public_message(exc, status), headers=headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]


async def _on_builder_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BuilderError)
    return builder_error_response(request.scope, exc)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(
        request.scope,
        422,
        "validation_error",
        "the request is not valid; see details",
        details=_validation_details(exc),
    )


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(
        request.scope, exc.status_code, code, message, headers=dict(exc.headers or {})
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer builder errors, validation errors and routing errors with the standard body."""
    app.add_exception_handler(BuilderError, _on_builder_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)


async def answer_escaped_error(
    scope: Scope, receive: Receive, send: Send, exc: Exception, *, answered: bool
) -> None:
    """The last resort for an exception that escaped the app: a 500 with the request id.

    The exception is logged with its traceback and sent to Sentry (when configured),
    tagged with the request id and the user; the caller sees only the request id. A
    builder error raised outside the routes (before any answer) gets the same mapping
    as inside. Nothing is re-raised: the answer has been given, and the server's own
    "exception in ASGI application" log would repeat the traceback without the
    request's context.

    Args:
        scope: The request.
        receive: Its receive channel.
        send: Its send channel.
        exc: What escaped.
        answered: Whether the response had already started (then nothing is sent).
    """
    if isinstance(exc, BuilderError) and not answered:
        await builder_error_response(scope, exc)(scope, receive, send)
        return
    _log.error("http.unexpected_error", error=type(exc).__name__, exc_info=exc)
    report_exception(exc, scope_state(scope))
    if not answered:
        response = error_response(scope, 500, "internal", "internal error; quote the request id")
        await response(scope, receive, send)
