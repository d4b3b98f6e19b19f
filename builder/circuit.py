"""A circuit breaker for the optional Redis, shared by the cache, rate limits and run fan-out.

Redis is an accelerator: when it fails, each user of it falls back (to process memory,
or to the local stream) instead of paying a timeout on every call. :class:`Circuit`
decides when to try Redis again, :meth:`Circuit.call` runs one guarded call, and
:func:`redis_options` gives every client the same tight timeouts and no retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from builder.log import get_logger

__all__ = ["REDIS_ERRORS", "UNAVAILABLE", "Circuit", "Unavailable", "redis_options"]

T = TypeVar("T")
_log = get_logger("builder.circuit")

REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
"""What a Redis call raises when Redis is down, slow or unreachable."""


class Unavailable:
    """Marker: the dependency could not be used for this call."""


UNAVAILABLE = Unavailable()


def redis_options(timeout: float) -> dict[str, Any]:
    """Client options for a Redis behind a circuit: tight timeouts, one attempt per call."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # One attempt per call: the circuit breaker, not retries, handles outages.
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }


class Circuit:
    """A three-state circuit breaker guarding calls to one dependency.

    * ``closed``: calls go through; a failure opens the circuit.
    * ``open``: calls are refused until ``cooldown`` seconds after the failure.
    * ``half_open``: the first call after the cooldown is let through as a probe and
      every other call is refused while it runs; its success closes the circuit, its
      failure (or cancellation) opens it for another cooldown.

    A single failure opens it: for a cache, one timeout already costs more than the
    fallback, and a dependency that just failed is likely to fail again.

    Args:
        cooldown: Seconds the circuit stays open.
        name: Prefix of the log events (``<name>.redis_unavailable`` when it opens,
            ``<name>.redis_recovered`` when it closes again).
        clock: Monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        cooldown: float,
        *,
        name: str = "redis",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cooldown = cooldown
        self.name = name
        self._clock = clock
        self.state: Literal["closed", "open", "half_open"] = "closed"
        self._reopen_at = 0.0
        self.openings = 0
        """How many times the circuit has opened (closed or half-open → open)."""

    def allow(self) -> bool:
        """Whether a call may go to the dependency now (and, if so, take the probe)."""
        if self.state == "closed":
            return True
        if self.state == "open" and self._clock() >= self._reopen_at:
            self.state = "half_open"
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: close the circuit."""
        self.state = "closed"

    def record_failure(self) -> None:
        """A call failed: open the circuit for one cooldown."""
        self.state = "open"
        self._reopen_at = self._clock() + self.cooldown
        self.openings += 1

    def succeeded(self) -> None:
        """Record a success, logging the recovery when the circuit was not closed."""
        if self.state != "closed":
            _log.info(f"{self.name}.redis_recovered")
        self.record_success()

    def failed(self, exc: BaseException) -> bool:
        """Record a failure; True (and one warning) when it opened a closed circuit."""
        was_closed = self.state == "closed"
        self.record_failure()
        if was_closed:
            _log.warning(
                f"{self.name}.redis_unavailable",
                error=type(exc).__name__,
                detail=str(exc)[:200],
                cooldown_s=self.cooldown,
            )
        return was_closed

    async def call(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        timeout: float,
        errors: tuple[type[BaseException], ...] = REDIS_ERRORS,
        before_probe: Callable[[], Awaitable[None]] | None = None,
        on_open: Callable[[], None] | None = None,
    ) -> T | Unavailable:
        """Run ``operation`` if the circuit allows it, within ``timeout`` seconds.

        Args:
            operation: The call to the dependency.
            timeout: Bounds the whole call (the client's socket timeouts bound each read).
            errors: What counts as the dependency failing.
            before_probe: Awaited first when this call is the half-open probe.
            on_open: Called when a failure opens a closed circuit.

        Returns:
            What ``operation`` returns, or :data:`UNAVAILABLE` when the circuit refused
            the call or the call failed.
        """
        if not self.allow():
            return UNAVAILABLE
        probing = self.state == "half_open"
        try:
            async with asyncio.timeout(timeout):
                if probing and before_probe is not None:
                    await before_probe()
                result = await operation()
        except errors as exc:
            if self.failed(exc) and on_open is not None:
                on_open()
            return UNAVAILABLE
        except asyncio.CancelledError:
            if probing:
                self.record_failure()
            raise
        self.succeeded()
        return result
