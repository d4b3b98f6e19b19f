"""Users and API keys: hashes only, revocation, throttled last-use."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import psycopg
import pytest

from builder.cache import Cache
from builder.errors import InvalidInput, NotFound
from builder.persistence import (
    Database,
    authenticate_api_key,
    create_api_key,
    get_or_create_user,
    get_user,
    list_api_keys,
    revoke_api_key,
)
from builder.persistence.schemas import UserPublic
from builder.settings import Settings


async def test_get_or_create_user_is_idempotent_under_concurrency(db: Database) -> None:
    users = await asyncio.gather(*(get_or_create_user(db, name="carol") for _ in range(5)))

    assert len({u.id for u in users}) == 1
    assert await get_user(db, user_id=users[0].id) == users[0]
    with pytest.raises(InvalidInput):
        await get_or_create_user(db, name="  ")


async def test_a_key_authenticates_its_user_and_only_its_hash_is_stored(
    db: Database, user: UserPublic
) -> None:
    created = await create_api_key(db, user_id=user.id, name="laptop")
    key = created.key.get_secret_value()

    assert key.startswith("bld_") and len(key) >= 4 + 43
    assert created.info.prefix == key[:12]
    assert await authenticate_api_key(db, key=key) == user
    assert await authenticate_api_key(db, key=key + "x") is None
    assert await authenticate_api_key(db, key="not-a-key") is None
    with psycopg.connect(db.psycopg_url) as conn:
        stored = conn.execute("SELECT api_keys::text FROM api_keys").fetchone()
    assert stored is not None
    assert key not in stored[0]
    assert hashlib.sha256(key.encode()).hexdigest() in stored[0]


async def test_a_revoked_key_authenticates_no_one(db: Database, user: UserPublic) -> None:
    created = await create_api_key(db, user_id=user.id)
    other = await get_or_create_user(db, name="mallory")

    with pytest.raises(NotFound):
        await revoke_api_key(db, user_id=other.id, key_id=created.info.id)
    revoked = await revoke_api_key(db, user_id=user.id, key_id=created.info.id)
    again = await revoke_api_key(db, user_id=user.id, key_id=created.info.id)

    assert revoked.revoked_at is not None and again.revoked_at == revoked.revoked_at
    assert await authenticate_api_key(db, key=created.key.get_secret_value()) is None
    assert [k.id for k in await list_api_keys(db, user_id=user.id)] == [created.info.id]


async def test_last_used_is_written_at_most_once_a_minute(db: Database, user: UserPublic) -> None:
    created = await create_api_key(db, user_id=user.id)
    key = created.key.get_secret_value()

    await authenticate_api_key(db, key=key)
    (first,) = await list_api_keys(db, user_id=user.id)
    await authenticate_api_key(db, key=key)
    (second,) = await list_api_keys(db, user_id=user.id)
    with psycopg.connect(db.psycopg_url, autocommit=True) as conn:
        conn.execute("UPDATE api_keys SET last_used_at = now() - interval '2 minutes'")
    await authenticate_api_key(db, key=key)
    (third,) = await list_api_keys(db, user_id=user.id)

    assert first.last_used_at is not None
    assert second.last_used_at == first.last_used_at
    assert third.last_used_at is not None and third.last_used_at > first.last_used_at


@pytest.fixture
async def cached_db(
    migrated_db_url: str, settings: Settings, redis_url: str, redis_prefix: str
) -> AsyncIterator[Database]:
    cache = Cache(redis_url=redis_url, prefix=redis_prefix)
    database = Database(migrated_db_url, settings=settings, cache=cache)
    yield database
    await database.dispose()


async def test_authenticated_keys_are_cached_and_revoking_clears_the_cache(
    cached_db: Database,
) -> None:
    user = await get_or_create_user(cached_db, name="carol")
    new = await create_api_key(cached_db, user_id=user.id, name="ci")
    plaintext = new.key.get_secret_value()
    assert await authenticate_api_key(cached_db, key=plaintext) == user
    # Served from the cache now: the row's disappearance is not seen...
    with psycopg.connect(cached_db.psycopg_url) as conn:
        conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s", (new.info.id,))
    assert await authenticate_api_key(cached_db, key=plaintext) == user
    # ...which is why revoking goes through the service, which clears the cache.
    await revoke_api_key(cached_db, user_id=user.id, key_id=new.info.id)
    assert await authenticate_api_key(cached_db, key=plaintext) is None
