"""Real PostgreSQL and Redis for tests: a database per test, a key prefix per test."""

from __future__ import annotations

import os
import uuid

import psycopg

PG_ADMIN_URL = os.environ.get(
    "BUILDER_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("BUILDER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def create_database(prefix: str = "test") -> str:
    """Create an empty database with a random name; returns its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _url_for(name)


def drop_database(url: str) -> None:
    """Drop a database made by :func:`create_database`, closing its connections."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _url_for(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)


def delete_redis_prefix(prefix: str) -> None:
    """Delete every key of the test Redis under ``prefix``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
