"""A read-through cache: Redis when configured, an in-process TTL LRU otherwise.

Values are JSON. Every entry has a kind, and each kind its own time to live
(``project``, ``messages``, ``api_key`` — see ``BUILDER_CACHE_TTL_*``).

**Invalidation by scope tokens.** An entry read with :meth:`Cache.lookup` is stored
under a key that includes the current random token of each scope it depends on (for
example ``project:<id>`` and ``user:<id>:projects``). A write calls
:meth:`Cache.invalidate` on those scopes, which replaces their tokens: every entry built
before the write becomes unreachable at once, however many pages there were. The token
is read *before* the database is, so a reader racing a writer can only store its stale
value under a token that is already dead.

**Redis down.** Redis calls have tight connect and command timeouts
(``BUILDER_REDIS_TIMEOUT``) and no client-side retries. The first failure opens a
small circuit breaker (:class:`~builder.circuit.Circuit`): for
``BUILDER_CACHE_COOLDOWN_SECONDS`` every call goes straight to the in-process fallback
without touching the network; then one call probes Redis (half-open) and success closes
the circuit. Invalidations made while Redis
was unreachable are remembered and replayed on Redis before it is used again, so a
recovering Redis never serves what this process invalidated meanwhile.
"""

from __future__ import annotations

import builtins
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from cachetools import TLRUCache
from redis.asyncio import Redis

from builder.circuit import UNAVAILABLE, Circuit, Unavailable, redis_options
from builder.settings import Settings

__all__ = ["Cache", "CacheKind", "CacheLookup"]

CacheKind = Literal["project", "messages", "api_key"]
T = TypeVar("T")
_MAX_MISSED = 10_000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """The result of :meth:`Cache.lookup`; pass it to :meth:`Cache.store` on a miss."""

    kind: CacheKind
    key: str
    """The storage key, including the scope tokens read before the lookup."""
    hit: bool
    value: Any


class Cache:
    """JSON values in Redis, or in an in-process TTL LRU while Redis is absent or down.

    Args:
        redis_url: Redis URL; None = in-process only (a single node).
        prefix: Prefix of every Redis key.
        ttls: Seconds each kind of entry lives.
        lru_size: Entries the in-process fallback holds.
        timeout: Seconds one Redis connect or command may take.
        cooldown: Seconds the fallback is used after a Redis failure before retrying.
    """

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        prefix: str = "builder:",
        ttls: Mapping[CacheKind, int] | None = None,
        lru_size: int = 500,
        timeout: float = 0.1,
        cooldown: float = 10.0,
    ) -> None:
        self.prefix = f"{prefix}cache:"
        self.ttls: dict[CacheKind, int] = {
            "project": 300,
            "messages": 120,
            "api_key": 30,
        }
        self.ttls.update(ttls or {})
        self._token_ttl = 2 * max(self.ttls.values())
        self.timeout = timeout
        self.circuit = Circuit(cooldown, name="cache")
        self._local: TLRUCache[str, tuple[float, str]] = TLRUCache(
            maxsize=lru_size, ttu=lambda _key, value, now: now + value[0]
        )
        self._redis: Redis | None = None
        if redis_url is not None:
            self._redis = Redis.from_url(
                redis_url,
                **redis_options(timeout),
            )
        self._missed_scopes: builtins.set[str] = builtins.set()
        self._missed_keys: builtins.set[str] = builtins.set()
        self._missed_overflow = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Cache:
        """A cache configured by ``BUILDER_REDIS_*`` and ``BUILDER_CACHE_*``."""
        return cls(
            redis_url=settings.redis_url,
            prefix=settings.redis_key_prefix,
            ttls={
                "project": settings.cache_ttl_project,
                "messages": settings.cache_ttl_messages,
                "api_key": settings.cache_ttl_api_key,
            },
            lru_size=settings.cache_lru_size,
            timeout=settings.redis_timeout,
            cooldown=settings.cache_cooldown_seconds,
        )

    @property
    def backend(self) -> Literal["redis", "memory"]:
        """Where the next call would go: ``redis`` or the in-process ``memory``."""
        if self._redis is None or self.circuit.state == "open":
            return "memory"
        return "redis"

    # --- plain entries ---------------------------------------------------------------
    async def get(self, kind: CacheKind, key: str) -> Any | None:
        """The cached value, or None."""
        raw = await self._get_raw(self._key(kind, key))
        return None if raw is None else json.loads(raw)

    async def set(self, kind: CacheKind, key: str, value: Any) -> None:
        """Cache a JSON-serialisable value for its kind's TTL."""
        await self._set_raw(self._key(kind, key), self.ttls[kind], json.dumps(value))

    async def delete(self, kind: CacheKind, key: str) -> None:
        """Remove an entry."""
        full = self._key(kind, key)
        self._local.pop(full, None)
        done = await self._call(lambda redis: redis.delete(full))
        if done is UNAVAILABLE and self._redis is not None:
            self._remember(self._missed_keys, full)

    # --- entries that depend on scopes -------------------------------------------------
    async def lookup(self, kind: CacheKind, key: str, *, scopes: Sequence[str]) -> CacheLookup:
        """Look an entry up under the current tokens of ``scopes``.

        Call this *before* reading the database, and :meth:`store` the value read on a
        miss: a write that invalidates a scope in between makes the stored value
        unreachable instead of stale.
        """
        tokens = await self._tokens(scopes)
        full = self._key(kind, f"{key}@{'.'.join(tokens)}")
        raw = await self._get_raw(full)
        return CacheLookup(kind, full, raw is not None, None if raw is None else json.loads(raw))

    async def store(self, lookup: CacheLookup, value: Any) -> None:
        """Cache ``value`` under the key (and tokens) of an earlier :meth:`lookup`."""
        await self._set_raw(lookup.key, self.ttls[lookup.kind], json.dumps(value))

    async def invalidate(self, *scopes: str) -> None:
        """Make every entry that depends on any of ``scopes`` unreachable."""
        if not scopes:
            return
        fresh = {self._scope_key(scope): secrets.token_hex(8) for scope in scopes}
        for key, token in fresh.items():
            self._local[key] = (self._token_ttl, token)

        async def replace(redis: Redis) -> None:
            async with redis.pipeline(transaction=False) as pipe:
                for key, token in fresh.items():
                    pipe.set(key, token, ex=self._token_ttl)
                await pipe.execute()

        if await self._call(replace) is UNAVAILABLE and self._redis is not None:
            for scope in scopes:
                self._remember(self._missed_scopes, scope)

    async def aclose(self) -> None:
        """Close the Redis connections."""
        if self._redis is not None:
            await self._redis.aclose()

    # --- internals ---------------------------------------------------------------------
    def _key(self, kind: CacheKind, key: str) -> str:
        return f"{self.prefix}{kind}:{key}"

    def _scope_key(self, scope: str) -> str:
        return f"{self.prefix}scope:{scope}"

    def _remember(self, missed: builtins.set[str], item: str) -> None:
        if len(missed) >= _MAX_MISSED:
            self._missed_overflow = True
        else:
            missed.add(item)

    async def _tokens(self, scopes: Sequence[str]) -> list[str]:
        keys = [self._scope_key(scope) for scope in scopes]
        if not keys:
            return []

        async def read_or_create(redis: Redis) -> list[str]:
            found: list[bytes | str | None] = await redis.mget(keys)
            tokens: list[str] = []
            for key, token in zip(keys, found, strict=True):
                if token is None:
                    # NX: when two readers race, both end up with the winner's token.
                    await redis.set(key, secrets.token_hex(8), ex=self._token_ttl, nx=True)
                    token = await redis.get(key)
                tokens.append(_text(token) if token is not None else secrets.token_hex(8))
            return tokens

        remote = await self._call(read_or_create)
        if not isinstance(remote, Unavailable):
            return remote
        tokens = []
        for key in keys:
            entry = self._local.get(key)
            if entry is None:
                entry = (self._token_ttl, secrets.token_hex(8))
                self._local[key] = entry
            tokens.append(entry[1])
        return tokens

    async def _get_raw(self, key: str) -> str | None:
        remote = await self._call(lambda redis: redis.get(key))
        if isinstance(remote, Unavailable):
            entry = self._local.get(key)
            return None if entry is None else entry[1]
        return None if remote is None else _text(remote)

    async def _set_raw(self, key: str, ttl: int, raw: str) -> None:
        if await self._call(lambda redis: redis.set(key, raw, ex=ttl)) is UNAVAILABLE:
            self._local[key] = (ttl, raw)

    async def _call(self, operation: Callable[[Redis], Awaitable[T]]) -> T | Unavailable:
        redis = self._redis
        if redis is None:
            return UNAVAILABLE
        # The socket timeouts bound each read and connect; the circuit's timeout bounds
        # the whole call (a connect plus the handshake plus the command).
        return await self.circuit.call(
            lambda: operation(redis),
            timeout=self.timeout * 4,
            before_probe=lambda: self._replay(redis),
            # A fresh local view for each outage: entries left from an earlier one may
            # have been invalidated on Redis by other replicas since.
            on_open=self._local.clear,
        )

    async def _replay(self, redis: Redis) -> None:
        """Apply the invalidations this process made while Redis was unreachable."""
        if self._missed_overflow:
            async for key in redis.scan_iter(match=f"{self.prefix}*", count=1000):
                await redis.unlink(key)
        elif self._missed_scopes or self._missed_keys:
            async with redis.pipeline(transaction=False) as pipe:
                for scope in self._missed_scopes:
                    pipe.set(self._scope_key(scope), secrets.token_hex(8), ex=self._token_ttl)
                for key in self._missed_keys:
                    pipe.delete(key)
                await pipe.execute()
        self._missed_scopes.clear()
        self._missed_keys.clear()
        self._missed_overflow = False
