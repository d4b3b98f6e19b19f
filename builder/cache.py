"""A read-through cache: Redis when configured, an in-process TTL LRU otherwise.

Values are JSON. Every entry has a kind, and each kind its own time to live
(``project``, ``messages``, ``api_key`` — see ``BUILDER_CACHE_TTL_*``).

**Invalidation by scope tokens.** An entry read with :meth:`Cache.lookup` is stored
with the current random token of each scope it depends on (for example
``project:<id>`` and ``user:<id>:projects``). A write calls :meth:`Cache.invalidate` on
those scopes, which replaces their tokens: every entry built before the write no longer
matches and is a miss at once, however many pages there were. The tokens are read
*before* the database is, so a reader racing a writer can only store its stale value
with a token that is already dead. A lookup is one Redis round trip (``MGET`` of the
scope tokens and the entry); a scope seen for the first time costs one more.

**Near copies.** Inside :meth:`Cache.listening` (``builder serve`` opens it), a process
subscribes to the invalidations every process publishes and answers ``api_key`` entries,
read on every authenticated request, from its own memory for up to
``BUILDER_CACHE_NEAR_SECONDS``. An invalidation (revoking a key) reaches every
subscribed process at once; the time limit bounds a copy's staleness if a broadcast is
lost, and nothing is answered from memory while the subscription is down.

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

import asyncio
import builtins
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from cachetools import TLRUCache, TTLCache
from redis.asyncio import Redis

from builder.circuit import REDIS_ERRORS, UNAVAILABLE, Circuit, Unavailable, redis_options
from builder.log import get_logger
from builder.settings import Settings

__all__ = ["Cache", "CacheKind", "CacheLookup"]

CacheKind = Literal["project", "messages", "api_key"]
T = TypeVar("T")
_MAX_MISSED = 10_000
_NEAR_KINDS: frozenset[CacheKind] = frozenset({"api_key"})
"""Kinds a subscribed process may answer from its own memory (read on every request)."""
_log = get_logger("builder.cache")
_FOLLOW_ERRORS: tuple[type[BaseException], ...] = (*REDIS_ERRORS, ValueError)
"""A lost subscription, or a message that is not a JSON list of scopes."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """The result of :meth:`Cache.lookup`; pass it to :meth:`Cache.store` on a miss."""

    kind: CacheKind
    key: str
    """The storage key."""
    hit: bool
    value: Any
    stamp: str = ""
    """The scope tokens read before the database was, stored with the value."""
    scopes: tuple[str, ...] = ()
    generation: int = 0
    """The cache's invalidation count when the lookup began (for the near copy)."""


class Cache:
    """JSON values in Redis, or in an in-process TTL LRU while Redis is absent or down.

    Args:
        redis_url: Redis URL; None = in-process only (a single node).
        prefix: Prefix of every Redis key.
        ttls: Seconds each kind of entry lives.
        lru_size: Entries the in-process fallback holds.
        timeout: Seconds one Redis connect or command may take.
        cooldown: Seconds the fallback is used after a Redis failure before retrying.
        near_seconds: Longest a near copy is trusted (see :meth:`listening`); 0 = none.
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
        near_seconds: float = 0.0,
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
        self._subscriber: Redis | None = None
        if redis_url is not None:
            self._redis = Redis.from_url(
                redis_url,
                **redis_options(timeout),
            )
            # Waits for messages, so no command timeout; pings to find a dead link.
            self._subscriber = Redis.from_url(
                redis_url,
                **(redis_options(timeout) | {"socket_timeout": None}),
            )
        self.channel = f"{self.prefix}invalidated"
        """Where every process publishes the scopes it invalidates."""
        self._near_seconds = near_seconds
        self._near: TTLCache[str, tuple[tuple[str, ...], CacheLookup]] = TTLCache(
            maxsize=lru_size, ttl=max(near_seconds, 0.001)
        )
        self._listening = False
        self._generation = 0
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
            near_seconds=settings.cache_near_seconds,
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
        """Look an entry up under the current tokens of ``scopes`` (one Redis round trip).

        Call this *before* reading the database, and :meth:`store` the value read on a
        miss: a write that invalidates a scope in between makes the stored value
        unreachable instead of stale.
        """
        full = self._key(kind, f"{key}@")  # "@": apart from the plain entries' keys
        generation = self._generation
        if self._listening and kind in _NEAR_KINDS:
            near = self._near.get(full)
            if near is not None:
                return near[1]
        stamp, raw = await self._read(full, scopes)
        hit, value = False, None
        if raw is not None:
            stored, _, body = raw.partition("\n")
            if stored == stamp:
                hit, value = True, json.loads(body)
                self._keep_near(kind, full, tuple(scopes), value, generation)
        return CacheLookup(kind, full, hit, value, stamp, tuple(scopes), generation)

    async def store(self, lookup: CacheLookup, value: Any) -> None:
        """Cache ``value`` under the key (and tokens) of an earlier :meth:`lookup`."""
        raw = f"{lookup.stamp}\n{json.dumps(value)}"
        await self._set_raw(lookup.key, self.ttls[lookup.kind], raw)
        self._keep_near(lookup.kind, lookup.key, lookup.scopes, value, lookup.generation)

    async def invalidate(self, *scopes: str) -> None:
        """Make every entry that depends on any of ``scopes`` unreachable, on every replica."""
        if not scopes:
            return
        fresh = {self._scope_key(scope): secrets.token_hex(8) for scope in scopes}
        for key, token in fresh.items():
            self._local[key] = (self._token_ttl, token)
        self._forget_near(scopes)

        async def replace(redis: Redis) -> None:
            async with redis.pipeline(transaction=False) as pipe:
                for key, token in fresh.items():
                    pipe.set(key, token, ex=self._token_ttl)
                pipe.publish(self.channel, json.dumps(scopes))
                await pipe.execute()

        if await self._call(replace) is UNAVAILABLE and self._redis is not None:
            for scope in scopes:
                self._remember(self._missed_scopes, scope)

    @asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        """Keep near copies (``api_key`` entries) while subscribed to invalidations.

        Inside, a task follows the invalidations every process publishes; while it is
        subscribed, ``api_key`` lookups are answered from process memory for up to
        ``near_seconds`` and dropped as soon as an invalidation of their scope arrives.
        Whenever the subscription is down nothing is answered from a near copy, and
        every near copy is dropped when it comes back (broadcasts may have been missed).
        Without Redis or with ``near_seconds`` 0 this does nothing.
        """
        if self._redis is None or self._near_seconds <= 0:
            yield
            return
        task = asyncio.create_task(self._follow(), name="cache-invalidations")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._listening = False
            self._near.clear()

    @property
    def near_active(self) -> bool:
        """Whether lookups may be answered from near copies now (subscribed)."""
        return self._listening

    async def aclose(self) -> None:
        """Close the Redis connections."""
        if self._redis is not None:
            await self._redis.aclose()
        if self._subscriber is not None:
            await self._subscriber.aclose()

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

    async def _read(self, full: str, scopes: Sequence[str]) -> tuple[str, str | None]:
        """The current tokens of ``scopes`` (created when missing) and the raw entry."""
        keys = [self._scope_key(scope) for scope in scopes]

        async def read(redis: Redis) -> tuple[list[str], bytes | str | None]:
            found: list[bytes | str | None] = await redis.mget([*keys, full])
            raw = found.pop()
            missing = [key for key, token in zip(keys, found, strict=True) if token is None]
            if missing:
                # NX: when two readers race, both end up with the winner's token.
                async with redis.pipeline(transaction=False) as pipe:
                    for key in missing:
                        pipe.set(key, secrets.token_hex(8), ex=self._token_ttl, nx=True)
                        pipe.get(key)
                    replies = await pipe.execute()
                created = dict(zip(missing, replies[1::2], strict=True))
                found = [created.get(key, token) for key, token in zip(keys, found, strict=True)]
            tokens = [_text(t) if t is not None else secrets.token_hex(8) for t in found]
            return tokens, raw

        remote = await self._call(read)
        if not isinstance(remote, Unavailable):
            tokens, raw = remote
            return ".".join(tokens), None if raw is None else _text(raw)
        local_tokens = []
        for key in keys:
            entry = self._local.get(key)
            if entry is None:
                entry = (self._token_ttl, secrets.token_hex(8))
                self._local[key] = entry
            local_tokens.append(entry[1])
        local = self._local.get(full)
        return ".".join(local_tokens), None if local is None else local[1]

    def _keep_near(
        self,
        kind: CacheKind,
        full: str,
        scopes: tuple[str, ...],
        value: Any,
        generation: int,
    ) -> None:
        # An invalidation seen since the lookup began may postdate what was read.
        if self._listening and kind in _NEAR_KINDS and generation == self._generation:
            # The hit itself is kept: answering from the near copy builds nothing.
            self._near[full] = (scopes, CacheLookup(kind, full, True, value, "", scopes))

    def _forget_near(self, scopes: Sequence[str]) -> None:
        self._generation += 1
        gone = set(scopes)
        for key, (depends, _value) in list(self._near.items()):
            if gone.intersection(depends):
                self._near.pop(key, None)

    async def _follow(self) -> None:
        """Follow the invalidation channel until cancelled, resubscribing after failures."""
        assert self._subscriber is not None
        while True:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await asyncio.wait_for(pubsub.subscribe(self.channel), self.timeout * 4)
                self._near.clear()
                self._generation += 1
                self._listening = True
                while True:
                    message = await pubsub.get_message(timeout=self._near_seconds)
                    if message is None:
                        await asyncio.wait_for(pubsub.ping(), self.timeout * 4)
                    elif message["type"] == "message":
                        self._forget_near(json.loads(message["data"]))
            except _FOLLOW_ERRORS as exc:
                if self._listening:
                    _log.warning("cache.invalidations_lost", error=type(exc).__name__)
                self._listening = False
                self._near.clear()
            finally:
                self._listening = False
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
            await asyncio.sleep(self.circuit.cooldown)

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
