"""Retry policies (tenacity) for transient failures.

Two policies, both with exponential backoff and full jitter:

* :func:`db_retry` — transient database errors: serialization failure (SQLSTATE
  40001), deadlock (40P01), connection exceptions (class 08) and a server
  shutting down or restarting (57P01-57P03).
* :func:`provider_retry` — model-provider rate limits (429) and server errors (5xx),
  and network errors talking to the provider.

Every retry is logged as ``retry.attempt`` (warning) and every final give-up as
``retry.gave_up`` (error): those events are what alerting keys on. Anything not
transient is raised at once, never retried.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import tenacity
from tenacity import RetryCallState

from builder.log import get_logger

__all__ = [
    "async_db_attempts",
    "db_retry",
    "db_retry_after_first",
    "is_retryable_provider_error",
    "is_transient_db_error",
    "provider_retry",
]

F = TypeVar("F", bound=Callable[..., Any])

# 40001 serialization failure, 40P01 deadlock; 57P01-57P03: the server is shutting
# down or restarting, which a new connection survives.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03"}
_log = get_logger("builder.retry")


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, also when wrapped by SQLAlchemy."""
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def is_transient_db_error(exc: BaseException) -> bool:
    """Whether a database error is worth retrying (40001, 40P01, 57P0x, class 08)."""
    state = _sqlstate(exc)
    if state is not None:
        return state in _TRANSIENT_SQLSTATES or state.startswith("08")
    # A dropped connection has no SQLSTATE; psycopg raises OperationalError for it.
    import psycopg

    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        if isinstance(candidate, psycopg.OperationalError) and _sqlstate(candidate) is None:
            return True
    return bool(getattr(exc, "connection_invalidated", False))


def _status_code(exc: BaseException) -> int | None:
    for attr in ("status_code", "status", "http_status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def is_retryable_provider_error(exc: BaseException) -> bool:
    """Whether a model-provider error is a rate limit, a 5xx or a network failure."""
    status = _status_code(exc)
    if status is not None:
        return status == 429 or status >= 500
    import httpx

    if isinstance(exc, (httpx.TransportError, ConnectionError)):
        return True
    # SDKs (openai, anthropic) name these classes the same way without a shared base.
    return type(exc).__name__ in {"APIConnectionError", "APITimeoutError", "RateLimitError"}


def _log_attempt(policy: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        _log.warning(
            "retry.attempt",
            policy=policy,
            attempt=state.attempt_number,
            sleep_s=round(state.upcoming_sleep, 3),
            error=type(exc).__name__ if exc else None,
            detail=str(exc)[:300] if exc else None,
            target=getattr(state.fn, "__qualname__", None),
        )

    return before_sleep


def _give_up(policy: str) -> Callable[[RetryCallState], Any]:
    def callback(state: RetryCallState) -> Any:
        exc = state.outcome.exception() if state.outcome else None
        _log.error(
            "retry.gave_up",
            policy=policy,
            attempts=state.attempt_number,
            error=type(exc).__name__ if exc else None,
            detail=str(exc)[:300] if exc else None,
            target=getattr(state.fn, "__qualname__", None),
        )
        assert state.outcome is not None
        return state.outcome.result()  # re-raises the last error

    return callback


def _policy(
    name: str,
    predicate: Callable[[BaseException], bool],
    *,
    attempts: int,
    initial: float,
    maximum: float,
) -> dict[str, Any]:
    return {
        "retry": tenacity.retry_if_exception(predicate),
        "stop": tenacity.stop_after_attempt(attempts),
        "wait": tenacity.wait_random_exponential(multiplier=initial, max=maximum),
        "before_sleep": _log_attempt(name),
        "retry_error_callback": _give_up(name),
        "reraise": True,
    }


def db_retry(*, attempts: int = 4, initial: float = 0.05, maximum: float = 2.0) -> Callable[[F], F]:
    """A decorator (sync or async) retrying transient database errors.

    Only use it around a whole transaction: a retried statement inside a failed
    transaction would fail again.
    """
    decorator: Callable[[F], F] = tenacity.retry(
        **_policy("db", is_transient_db_error, attempts=attempts, initial=initial, maximum=maximum)
    )
    return decorator


def db_retry_after_first(
    *, attempts: int = 4, initial: float = 0.05, maximum: float = 2.0
) -> Callable[[F], F]:
    """:func:`db_retry` for an async function on a hot path: the first attempt runs
    bare, and the retry policy is set up only once it failed with a transient error.

    Only use it around a whole, idempotent transaction (as :func:`db_retry`).
    """

    def decorate(fn: F) -> F:
        retried = db_retry(attempts=attempts, initial=initial, maximum=maximum)(fn)

        @functools.wraps(fn)
        async def first_bare(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                if not is_transient_db_error(exc):
                    raise
            return await retried(*args, **kwargs)

        return cast(F, first_bare)

    return decorate


def provider_retry(*, attempts: int = 5, initial: float = 0.5, maximum: float = 20.0) -> Any:
    """A decorator (sync or async) retrying provider rate limits, 5xx and network errors."""
    return tenacity.retry(
        **_policy(
            "provider",
            is_retryable_provider_error,
            attempts=attempts,
            initial=initial,
            maximum=maximum,
        )
    )


def async_db_attempts(
    *, attempts: int = 4, initial: float = 0.05, maximum: float = 2.0
) -> tenacity.AsyncRetrying:
    """An ``async for attempt in ...: with attempt:`` loop with the database policy."""
    return tenacity.AsyncRetrying(
        **_policy("db", is_transient_db_error, attempts=attempts, initial=initial, maximum=maximum)
    )
