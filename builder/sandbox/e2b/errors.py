"""E2B SDK calls under our time budget, with the SDK's errors mapped to builder's.

=====================================  ============================================
SDK error                              builder error
=====================================  ============================================
``SandboxNotFoundException``,          ``DependencyUnavailable("e2b")`` — the
``SandboxNotRunningException``,        sandbox expired, was killed or cannot be
``SandboxUnreachableException``        reached; the pool recreates it
``FileNotFoundException``              ``NotFound("file", path)``
``TimeoutException``                   ``OperationTimeout("sandbox")``
``InvalidArgumentException``           ``InvalidInput``
auth, rate limit, busy, network, other ``DependencyUnavailable("e2b")``
=====================================  ============================================
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import httpx
from e2b import (
    AuthenticationException,
    InvalidArgumentException,
    NotFoundException,
    RateLimitException,
    SandboxException,
    SandboxNotFoundException,
    SandboxNotRunningException,
    SandboxUnreachableException,
    ServiceBusyException,
    TimeoutException,
)

from builder.errors import (
    BuilderError,
    ConfigurationError,
    DependencyUnavailable,
    InvalidInput,
    NotFound,
    OperationTimeout,
)
from builder.settings import Settings
from builder.timeouts import with_timeout

__all__ = ["GONE", "api_key", "call_sdk", "map_sdk_error"]

T = TypeVar("T")

GONE: tuple[type[Exception], ...] = (
    SandboxNotFoundException,
    SandboxNotRunningException,
    SandboxUnreachableException,
)
"""SDK errors meaning the sandbox itself is gone (checked before ``TimeoutException``,
their base class)."""

_UNAVAILABLE: tuple[type[Exception], ...] = (
    AuthenticationException,
    RateLimitException,
    ServiceBusyException,
    httpx.TransportError,
    SandboxException,
)


async def call_sdk(work: Awaitable[T], settings: Settings, *, path: str | None = None) -> T:
    """Await an SDK call within the sandbox time budget, mapping its errors to ours.

    Args:
        work: The SDK coroutine.
        settings: Where the ``sandbox`` time budget comes from.
        path: The workspace path the call is about (for ``NotFound``).
    """
    try:
        return await with_timeout(work, "sandbox", settings=settings)
    except BuilderError:
        raise
    except Exception as exc:
        raise map_sdk_error(exc, settings, path) from exc


def map_sdk_error(exc: Exception, settings: Settings, path: str | None = None) -> BuilderError:
    """The builder error for an exception the E2B SDK raised."""
    if isinstance(exc, GONE):
        return DependencyUnavailable("e2b", f"the E2B sandbox is gone or unreachable: {exc}")
    if isinstance(exc, NotFoundException):
        return NotFound("file", path or "?")
    if isinstance(exc, TimeoutException):
        return OperationTimeout("sandbox", settings.timeout_sandbox)
    if isinstance(exc, InvalidArgumentException):
        return InvalidInput(f"{path or 'E2B'}: {exc}")
    if isinstance(exc, _UNAVAILABLE):
        return DependencyUnavailable("e2b", f"E2B: {type(exc).__name__}: {exc}")
    return DependencyUnavailable("e2b", f"E2B: unexpected {type(exc).__name__}: {exc}")


def api_key(settings: Settings) -> str:
    """The E2B API key from settings.

    Raises:
        ConfigurationError: ``BUILDER_E2B_API_KEY`` is not set.
    """
    if settings.e2b_api_key is None or not settings.e2b_api_key.get_secret_value():
        raise ConfigurationError(
            "BUILDER_SANDBOX_BACKEND is e2b but BUILDER_E2B_API_KEY is not set"
        )
    return settings.e2b_api_key.get_secret_value()
