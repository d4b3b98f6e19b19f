"""Rate limits per API key, shared through Redis, with an in-process fallback.

Three tiers, each a moving window (``limits``' ``MovingWindowRateLimiter``: no burst
at window edges): ``chat`` (``BUILDER_RATE_LIMIT_CHAT``), ``prompt`` (the prompt
helpers, ``BUILDER_RATE_LIMIT_PROMPT``) and ``default`` (everything else,
``BUILDER_RATE_LIMIT_DEFAULT``). Counts are kept per API key (per user for the
anonymous local user, per client address on the public OAuth callback); health
probes and ``/metrics`` are not limited.

Every limited response carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (seconds until the window frees a request); a refusal is 429 with
``Retry-After``.

With ``BUILDER_REDIS_URL`` the counts live in Redis, so every replica enforces the same
limit. A busy key does not cost a Redis round trip per request: a replica reserves
requests in the shared window ahead of use (a *lease*, at most 1 % of the limit and 64
requests, held at most one second) and admits the reserved ones locally. Reserving
counts them at once, so replicas together never admit more than the limit; a lease
starts at one request and doubles only while the key uses up its leases, so a key that
is not busy is counted exactly, one request at a time. Redis calls have the cache's
tight timeouts and no retries, behind the cache's :class:`~builder.circuit.Circuit`:
after a failure the limiter counts in process memory for
``BUILDER_CACHE_COOLDOWN_SECONDS`` (each replica then allows the full limit on its own),
and a request never waits on a Redis that does not answer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

from builder.circuit import REDIS_ERRORS, Circuit, redis_options
from builder.errors import ConfigurationError, RateLimited
from builder.http.scope import scope_state
from builder.settings import Settings

__all__ = ["Decision", "RateLimiter", "Tier", "rate_limited"]

Tier = Literal["chat", "prompt", "default"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request against its limit."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    """Seconds until the window has room again."""
    backend: Literal["redis", "memory"]


LEASE_SECONDS = 1.0
"""Longest a replica holds requests it reserved in the shared window."""
_LEASE_MAX = 64
_LEASE_SHARE = 100
_MAX_LEASES = 100_000
"""Keys with a lease beyond which idle ones are forgotten at once, not once a second."""
"""A lease is at most 1/_LEASE_SHARE of the limit (and _LEASE_MAX requests)."""


@dataclass(slots=True)
class _Lease:
    """Requests of one key and tier reserved in Redis and not yet admitted."""

    size: int = 0
    left: int = 0
    expires: float = 0.0
    remaining: int = 0
    """What the shared window had left after the reservation."""
    reset_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def next_size(self, now: float, cap: int) -> int:
        """Double while the key uses up its leases in time; else what it last used."""
        if self.size == 0 or now >= self.expires + LEASE_SECONDS:
            return 1
        used_up_in_time = self.left == 0 and now < self.expires
        wanted = self.size * 2 if used_up_in_time else self.size - self.left
        # Never ask for more than half of what the window had left.
        return max(1, min(wanted, cap, self.remaining // 2))


def _parse(name: str, value: str) -> RateLimitItem:
    try:
        return parse(value)
    except ValueError:
        raise ConfigurationError(
            f"BUILDER_RATE_LIMIT_{name.upper()}={value!r} is not a rate like `20/minute`"
        ) from None


class RateLimiter:
    """Moving-window limits in Redis (when configured) or in process memory.

    Args:
        settings: The tiers, the Redis URL, prefix, timeout and cool-down.
    """

    def __init__(self, settings: Settings) -> None:
        self.tiers: dict[Tier, RateLimitItem] = {
            "chat": _parse("chat", settings.rate_limit_chat),
            "prompt": _parse("prompt", settings.rate_limit_prompt),
            "default": _parse("default", settings.rate_limit_default),
        }
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._timeout = settings.redis_timeout
        self.circuit = Circuit(settings.cache_cooldown_seconds, name="ratelimit")
        self._pool: ConnectionPool | None = None
        self._redis: MovingWindowRateLimiter | None = None
        if settings.redis_url is not None:
            self._pool = ConnectionPool.from_url(
                settings.redis_url,
                **redis_options(settings.redis_timeout),
            )
            options: dict[str, Any] = {"connection_pool": self._pool}
            storage = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                key_prefix=f"{settings.redis_key_prefix}ratelimit",
                wrap_exceptions=True,
                **options,
            )
            self._redis = MovingWindowRateLimiter(storage)
        self._leases: dict[tuple[Tier, str], _Lease] = {}
        self._next_sweep = 0.0

    async def check(self, tier: Tier, identity: str) -> Decision:
        """Count one request of ``identity`` against ``tier``; says whether it may go on."""
        item = self.tiers[tier]
        if self._redis is not None and self.circuit.state != "open":
            now = time.monotonic()
            lease = self._leases.get((tier, identity))
            if lease is None:
                self._sweep(now)
                lease = self._leases[(tier, identity)] = _Lease()
            if lease.left > 0 and now < lease.expires:
                return self._take(item, lease)
            async with lease.lock:
                # Another request may have reserved while this one waited.
                if lease.left == 0 or time.monotonic() >= lease.expires:
                    limiter = self._redis
                    reserved = await self.circuit.call(
                        lambda: self._reserve(limiter, item, tier, identity, lease),
                        timeout=self._timeout * 4,
                        errors=(StorageError, *REDIS_ERRORS),
                    )
                else:
                    reserved = None
                if isinstance(reserved, Decision):
                    return reserved
                if reserved is None:
                    return self._take(item, lease)
        return await self._decide(self._memory, item, tier, identity, 1)

    def _sweep(self, now: float) -> None:
        """Forget the leases of keys idle for a while (at most every lease period)."""
        if now < self._next_sweep and len(self._leases) < _MAX_LEASES:
            return
        self._next_sweep = now + LEASE_SECONDS
        for key, lease in list(self._leases.items()):
            if now >= lease.expires + 2 * LEASE_SECONDS and not lease.lock.locked():
                del self._leases[key]

    @staticmethod
    def _take(item: RateLimitItem, lease: _Lease) -> Decision:
        lease.left -= 1
        reset = max(1, math.ceil(lease.reset_at - time.time()))
        return Decision(True, item.amount, lease.remaining + lease.left, reset, "redis")

    async def _reserve(
        self,
        limiter: MovingWindowRateLimiter,
        item: RateLimitItem,
        tier: Tier,
        identity: str,
        lease: _Lease,
    ) -> Decision | None:
        """Reserve a lease in Redis: the decision when it is refused, else None."""
        now = time.monotonic()
        size = lease.next_size(now, max(1, min(_LEASE_MAX, item.amount // _LEASE_SHARE)))
        decision = await self._decide(limiter, item, tier, identity, size, "redis")
        if not decision.allowed and size > 1:
            size = 1
            decision = await self._decide(limiter, item, tier, identity, size, "redis")
        if not decision.allowed:
            lease.size, lease.left, lease.remaining = 0, 0, 0
            return decision
        lease.size, lease.left = size, size
        lease.expires = now + LEASE_SECONDS
        lease.remaining = decision.remaining
        lease.reset_at = time.time() + decision.reset_seconds
        return None

    @staticmethod
    async def _decide(
        limiter: MovingWindowRateLimiter,
        item: RateLimitItem,
        tier: Tier,
        identity: str,
        cost: int,
        backend: Literal["redis", "memory"] = "memory",
    ) -> Decision:
        # The tier is part of the key: two tiers with the same rate share `limits`'
        # key for that rate, and would otherwise count against each other.
        allowed = await limiter.hit(item, tier, identity, cost=cost)
        stats = await limiter.get_window_stats(item, tier, identity)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, item.amount, max(0, stats.remaining), reset, backend)

    async def aclose(self) -> None:
        """Close the Redis connections."""
        if self._pool is not None:
            await self._pool.disconnect()


def rate_limited(tier: Tier) -> Callable[[Request], Awaitable[None]]:
    """A route dependency that counts the request against ``tier`` (429 when over)."""

    async def dependency(request: Request) -> None:
        scope = request.scope
        services = scope["app"].state.services
        state = scope_state(scope)
        principal = state.get("principal")
        if principal is not None:
            identity = principal.rate_key
        else:
            client = scope.get("client")
            identity = f"ip:{client[0] if client else 'unknown'}"
        decision = await services.limiter.check(tier, identity)
        state.setdefault("response_headers", []).extend(
            (
                (b"x-ratelimit-limit", str(decision.limit).encode()),
                (b"x-ratelimit-remaining", str(decision.remaining).encode()),
                (b"x-ratelimit-reset", str(decision.reset_seconds).encode()),
            )
        )
        if not decision.allowed:
            services.metrics.rate_limited(tier)
            raise RateLimited(
                retry_after=decision.reset_seconds, limit=str(services.limiter.tiers[tier])
            )

    dependency.__name__ = f"rate_limit_{tier}"
    return dependency
