"""Rate limits: per key and tier, 429 with headers, shared through Redis, memory fallback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from builder.http.ratelimit import LEASE_SECONDS, Decision, RateLimiter
from builder.settings import Settings
from tests.http.server import ServerProcess, free_port


def test_the_default_tier_refuses_the_fourth_request_with_headers(
    limited_server: ServerProcess,
) -> None:
    key = limited_server.new_key("limited-a")
    with limited_server.client(key) as client:
        answers = [client.get("/api/projects") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert {a.headers["x-ratelimit-limit"] for a in answers} == {"3"}
    refused = answers[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["retry-after"] == refused.headers["x-ratelimit-reset"]
    assert refused.json()["error"] == {
        "code": "rate_limited",
        "message": "rate limit 3 per 1 minute exceeded; "
        f"retry in {refused.headers['retry-after']} s",
        "request_id": refused.headers["x-request-id"],
    }


def test_each_key_and_each_tier_has_its_own_count(limited_server: ServerProcess) -> None:
    first = limited_server.new_key("limited-b")
    second = limited_server.new_key("limited-b")
    with limited_server.client(first) as client:
        assert [client.get("/api/projects").status_code for _ in range(4)][-1] == 429
        # The prompt tier is counted apart from the default one.
        prompts = [
            client.post("/api/generate-title", json={"prompt": "a bakery"}).status_code
            for _ in range(3)
        ]
        assert prompts == [200, 200, 429]
    with limited_server.client(second) as client:
        assert client.get("/api/projects").status_code == 200


def test_health_probes_are_not_limited(limited_server: ServerProcess) -> None:
    with limited_server.client() as client:
        answers = [client.get("/api/health") for _ in range(10)]
    assert {a.status_code for a in answers} == {200}
    assert all("x-ratelimit-limit" not in a.headers for a in answers)


def test_refusals_are_counted_in_the_metrics(limited_server: ServerProcess) -> None:
    key = limited_server.new_key("limited-c")
    with limited_server.client(key) as client:
        for _ in range(4):
            client.get("/api/projects")
        metrics = client.get("/metrics").text
    line = next(
        x
        for x in metrics.splitlines()
        if x.startswith('builder_rate_limited_total{tier="default"}')
    )
    assert float(line.split()[-1]) >= 1


def _settings(tmp_path: Path, redis_url: str | None, prefix: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        redis_url=redis_url,
        redis_key_prefix=prefix,
        rate_limit_default="2/minute",
        redis_timeout=0.2,
        cache_cooldown_seconds=30,
    )


async def test_replicas_share_counts_through_redis(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    one = RateLimiter(_settings(tmp_path, redis_url, redis_prefix))
    two = RateLimiter(_settings(tmp_path, redis_url, redis_prefix))
    try:
        decisions = [
            await one.check("default", "key:a"),
            await two.check("default", "key:a"),
            await one.check("default", "key:a"),
        ]
    finally:
        await one.aclose()
        await two.aclose()
    assert [(d.allowed, d.backend) for d in decisions] == [
        (True, "redis"),
        (True, "redis"),
        (False, "redis"),
    ]


async def test_without_redis_sharing_each_process_would_allow_the_full_limit(
    tmp_path: Path,
) -> None:
    """What Redis prevents: two in-memory limiters each allow the whole limit."""
    one = RateLimiter(_settings(tmp_path, None, "x:"))
    two = RateLimiter(_settings(tmp_path, None, "x:"))
    allowed = [
        (await limiter.check("default", "key:a")).allowed for limiter in (one, two, one, two)
    ]
    assert allowed == [True, True, True, True]


async def test_a_dead_redis_falls_back_to_memory_without_waiting(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    limiter = RateLimiter(_settings(tmp_path, dead, "x:"))
    try:
        decisions = [await limiter.check("default", "key:a") for _ in range(3)]
    finally:
        await limiter.aclose()
    assert [(d.allowed, d.backend) for d in decisions] == [
        (True, "memory"),
        (True, "memory"),
        (False, "memory"),
    ]
    # One failed call opened the circuit; the later ones never touched the network.
    assert limiter.circuit.state == "open" and limiter.circuit.openings == 1


async def test_tiers_with_the_same_rate_count_apart(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """`chat` and `default` set to one rate must not throttle each other."""
    same = {"rate_limit_chat": "2/minute", "rate_limit_default": "2/minute"}
    for url in (redis_url, None):
        settings = _settings(tmp_path, url, redis_prefix).model_copy(update=same)
        limiter = RateLimiter(settings)
        try:
            default = [(await limiter.check("default", "key:t")).allowed for _ in range(3)]
            chat = [(await limiter.check("chat", "key:t")).allowed for _ in range(3)]
        finally:
            await limiter.aclose()
        assert (default, chat) == ([True, True, False], [True, True, False]), url


async def test_leases_let_busy_keys_skip_redis_and_never_exceed_the_limit_together(
    tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas hammer one key: what they admit together stays within the limit.

    Every admitted request was reserved in the shared window first (the window holds at
    least as many entries as were admitted), while most requests were admitted from a
    lease without a Redis call.
    """
    reservations = 0
    hit = MovingWindowRateLimiter.hit

    async def counted(self: MovingWindowRateLimiter, *args: Any, **kwargs: Any) -> bool:
        nonlocal reservations
        if not isinstance(self.storage, MemoryStorage):
            reservations += 1
        return await hit(self, *args, **kwargs)

    monkeypatch.setattr(MovingWindowRateLimiter, "hit", counted)
    settings = _settings(tmp_path, redis_url, redis_prefix).model_copy(
        update={"rate_limit_default": "1280/minute"}
    )
    one, two = RateLimiter(settings), RateLimiter(settings)

    async def hammer(limiter: RateLimiter, times: int) -> list[Decision]:
        return [await limiter.check("default", "key:busy") for _ in range(times)]

    try:
        first, second = await asyncio.gather(hammer(one, 600), hammer(two, 600))
        reserved_while_under = reservations
        third, fourth = await asyncio.gather(hammer(one, 100), hammer(two, 100))
    finally:
        await one.aclose()
        await two.aclose()
    under, over = first + second, third + fourth
    raw = aioredis.Redis.from_url(redis_url)
    try:
        keys = await raw.keys(f"{redis_prefix}ratelimit*")
        counted_in_redis = sum([await raw.llen(key) for key in keys])
    finally:
        await raw.aclose()
    assert {d.backend for d in under + over} == {"redis"}
    assert all(d.allowed for d in under)
    assert reserved_while_under < len(under) / 4
    # Leases are at most 1 % of the limit: what one replica reserved and did not use
    # before the other ran out is at most a lease each.
    admitted = len(under) + sum(d.allowed for d in over)
    assert 1280 - 2 * 12 <= admitted <= counted_in_redis <= 1280


async def test_a_key_that_is_not_busy_is_counted_one_request_at_a_time(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    settings = _settings(tmp_path, redis_url, redis_prefix).model_copy(
        update={"rate_limit_default": "1280/minute"}
    )
    limiter = RateLimiter(settings)
    try:
        remaining = [(await limiter.check("default", "key:calm")).remaining]
        for _ in range(2):
            await asyncio.sleep(LEASE_SECONDS * 1.1)  # the lease has expired
            remaining.append((await limiter.check("default", "key:calm")).remaining)
    finally:
        await limiter.aclose()
    assert remaining == [1279, 1278, 1277]
