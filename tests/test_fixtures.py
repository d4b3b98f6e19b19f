"""The test services themselves: a private database and Redis prefix per test."""

from __future__ import annotations

import psycopg
import redis

from tests.support.services import PG_ADMIN_URL, create_database, drop_database


def test_each_test_gets_its_own_empty_database(pg_url: str) -> None:
    name = pg_url.rsplit("/", 1)[1]
    assert name.startswith("test_")
    with psycopg.connect(pg_url.replace("+psycopg", "")) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_databases_are_dropped_afterwards() -> None:
    url = create_database()
    name = url.rsplit("/", 1)[1]
    drop_database(url)
    with psycopg.connect(PG_ADMIN_URL) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert row is None


def test_redis_prefix_is_private(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(f"{redis_prefix}k", "v")
    assert client.get(f"{redis_prefix}k") == b"v"
    assert redis_prefix.startswith("test:")
    client.close()
