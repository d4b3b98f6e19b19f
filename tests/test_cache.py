"""The cache: Redis, an in-process fallback, scope tokens, and a circuit breaker."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

import builder
from builder.cache import Cache, CacheKind
from builder.circuit import Circuit
from builder.settings import Settings
from tests.support.listener import Listener, via


async def test_memory_cache_round_trips_json() -> None:
    cache = Cache()

    await cache.set("messages", "k", {"a": [1, "two"]})

    assert await cache.get("messages", "k") == {"a": [1, "two"]}
    await cache.delete("messages", "k")
    assert await cache.get("messages", "k") is None
    assert cache.backend == "memory"


async def test_redis_holds_values_under_the_prefix_with_the_kinds_ttl(
    redis_url: str, redis_prefix: str
) -> None:
    settings = Settings(redis_url=redis_url, redis_key_prefix=redis_prefix, cache_ttl_messages=77)
    cache = Cache.from_settings(settings)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await cache.set("messages", "page", [1, 2])

        key = f"{redis_prefix}cache:messages:page"
        assert json.loads(await raw.get(key)) == [1, 2]
        assert 70 <= await raw.ttl(key) <= 77
        assert cache.backend == "redis"
    finally:
        await cache.aclose()
        await raw.aclose()


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_invalidating_a_scope_hides_entries_stored_before(
    backend: str, redis_url: str, redis_prefix: str
) -> None:
    cache = Cache(redis_url=redis_url if backend == "redis" else None, prefix=redis_prefix)
    try:
        lookup = await cache.lookup("project", "list", scopes=["user:1"])
        assert not lookup.hit
        await cache.store(lookup, ["old"])
        assert (await cache.lookup("project", "list", scopes=["user:1"])).value == ["old"]

        # A reader that looked up before a write stores what it read afterwards...
        racing = await cache.lookup("project", "list", scopes=["user:1"])
        await cache.invalidate("user:1")
        await cache.store(racing, ["stale"])

        # ...under a dead token: the next reader misses instead of seeing it.
        after = await cache.lookup("project", "list", scopes=["user:1"])
        assert (after.hit, after.value) == (False, None)
        assert (await cache.lookup("project", "other", scopes=["user:2"])).hit is False
    finally:
        await cache.aclose()


def test_the_circuit_opens_on_failure_and_probes_after_the_cooldown() -> None:
    now = [100.0]
    circuit = Circuit(10, clock=lambda: now[0])

    assert circuit.allow()
    circuit.record_failure()
    assert (circuit.state, circuit.allow()) == ("open", False)
    now[0] += 10
    assert (circuit.allow(), circuit.state) == (True, "half_open")
    assert circuit.allow() is False  # one probe at a time
    circuit.record_failure()
    assert (circuit.state, circuit.openings) == ("open", 2)
    now[0] += 10
    assert circuit.allow()
    circuit.record_success()
    assert (circuit.state, circuit.allow()) == ("closed", True)


async def test_a_port_where_nothing_listens_falls_back_at_once(redis_url: str) -> None:
    listener = Listener()
    await listener.start()
    await listener.stop()  # now nothing listens on this port
    cache = Cache(redis_url=via(redis_url, listener.port), timeout=0.1, cooldown=60)
    try:
        await cache.set("project", "p", {"name": "kept locally"})
        assert await cache.get("project", "p") == {"name": "kept locally"}
        assert (cache.backend, cache.circuit.openings) == ("memory", 1)
    finally:
        await cache.aclose()


async def test_a_listener_that_never_answers_costs_one_timeout(redis_url: str) -> None:
    hole = Listener()
    await hole.start()
    cache = Cache(redis_url=via(redis_url, hole.port), timeout=0.1, cooldown=60)
    try:
        durations = []
        for i in range(20):
            started = time.perf_counter()
            await cache.set("project", f"k{i}", i)
            assert await cache.get("project", f"k{i}") == i
            durations.append(time.perf_counter() - started)

        # Only the first call reached the network; the open circuit spared the rest.
        assert (hole.connections, cache.circuit.openings) == (1, 1)
        assert max(durations) < 1.0
    finally:
        await cache.aclose()
        await hole.stop()


async def test_redis_is_used_again_after_it_recovers(redis_url: str, redis_prefix: str) -> None:
    real = urlsplit(redis_url)
    proxy = Listener(target=(real.hostname or "127.0.0.1", real.port or 6379))
    await proxy.start()
    cache = Cache(redis_url=via(redis_url, proxy.port), prefix=redis_prefix, cooldown=0.2)
    try:
        before = await cache.lookup("project", "page", scopes=["user:9"])
        await cache.store(before, ["before the outage"])

        await proxy.stop()
        await cache.invalidate("user:9")  # made while Redis is unreachable
        assert cache.backend == "memory"
        assert (await cache.lookup("project", "page", scopes=["user:9"])).hit is False

        await proxy.start()
        await asyncio.sleep(0.3)  # past the cooldown: the next call probes Redis
        after = await cache.lookup("project", "page", scopes=["user:9"])
        await cache.set("messages", "back", "on redis")

        assert cache.circuit.state == "closed" and cache.backend == "redis"
        # The invalidation was replayed on Redis: the pre-outage page is unreachable.
        assert (after.hit, after.value) == (False, None)
        raw = aioredis.Redis.from_url(redis_url)
        try:
            assert await raw.get(f"{redis_prefix}cache:messages:back") == b'"on redis"'
        finally:
            await raw.aclose()
    finally:
        await cache.aclose()
        await proxy.stop()


def test_every_cache_kind_has_a_user() -> None:
    """A kind nobody caches would be a TTL setting that does nothing."""
    sources = "\n".join(
        path.read_text()
        for path in Path(builder.__file__).parent.rglob("*.py")
        if path.name != "cache.py"
    )
    unused = [
        kind
        for kind in get_args(CacheKind)
        if not re.search(rf'cache\.(lookup|get|set)\(\s*"{kind}"', sources)
    ]
    assert unused == []


class _RoundTrips:
    """Counts what a Redis client sends: one packed send is one round trip."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = aioredis.connection.AbstractConnection.send_packed_command

        async def counted(connection: Any, command: Any, check_health: bool = True) -> None:
            self.count += 1
            await original(connection, command, check_health)

        monkeypatch.setattr(aioredis.connection.AbstractConnection, "send_packed_command", counted)

    def since(self, start: int) -> int:
        return self.count - start


async def test_a_scoped_lookup_is_one_round_trip(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips = _RoundTrips(monkeypatch)
    cache = Cache(redis_url=redis_url, prefix=redis_prefix)
    try:
        first = await cache.lookup("project", "p", scopes=["project:1", "user:1:projects"])
        await cache.store(first, {"name": "a"})
        start = trips.count
        again = await cache.lookup("project", "p", scopes=["project:1", "user:1:projects"])
        assert (again.hit, again.value, trips.since(start)) == (True, {"name": "a"}, 1)
        start = trips.count
        await cache.invalidate("user:1:projects")
        assert trips.since(start) == 1
        after = await cache.lookup("project", "p", scopes=["project:1", "user:1:projects"])
        assert (after.hit, after.value) == (False, None)
    finally:
        await cache.aclose()


async def _until(condition: Callable[[], Awaitable[bool]], seconds: float) -> float:
    """Seconds until ``condition()`` holds; fails after ``seconds``."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < seconds, "not within the bound"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_near_copies_cost_no_round_trip_and_a_broadcast_drops_them_everywhere(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes' caches: an invalidation by either reaches the other's near copies.

    The near copies live 60 s here: only the broadcast can make the revocation visible
    within the 2 s the test allows.
    """
    trips = _RoundTrips(monkeypatch)
    one = Cache(redis_url=redis_url, prefix=redis_prefix, near_seconds=60)
    two = Cache(redis_url=redis_url, prefix=redis_prefix, near_seconds=60)
    try:
        async with one.listening(), two.listening():

            async def subscribed() -> bool:
                return one.near_active and two.near_active

            await _until(subscribed, 5)
            miss = await one.lookup("api_key", "h", scopes=["api_keys"])
            await one.store(miss, {"user": "alice"})
            start = trips.count
            hits = [await one.lookup("api_key", "h", scopes=["api_keys"]) for _ in range(3)]
            assert [h.value for h in hits] == [{"user": "alice"}] * 3
            assert trips.since(start) == 0
            # A project is read through Redis every time, never from a near copy.
            project = await one.lookup("project", "p", scopes=["project:1"])
            await one.store(project, {"name": "a"})
            start = trips.count
            assert (await one.lookup("project", "p", scopes=["project:1"])).hit
            assert trips.since(start) == 1

            await two.invalidate("api_keys")

            async def dropped() -> bool:
                return not (await one.lookup("api_key", "h", scopes=["api_keys"])).hit

            await _until(dropped, 2)
    finally:
        await one.aclose()
        await two.aclose()


async def test_without_the_subscription_nothing_is_answered_from_memory(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips = _RoundTrips(monkeypatch)
    cache = Cache(redis_url=redis_url, prefix=redis_prefix, near_seconds=60)
    try:
        miss = await cache.lookup("api_key", "h", scopes=["api_keys"])
        await cache.store(miss, {"user": "alice"})
        start = trips.count
        assert (await cache.lookup("api_key", "h", scopes=["api_keys"])).hit
        assert (cache.near_active, trips.since(start)) == (False, 1)
    finally:
        await cache.aclose()
