"""Users and API keys.

An API key is ``bld_`` followed by 43 URL-safe characters (256 random bits). Only its
SHA-256 is stored; the plaintext is returned once, by :func:`create_api_key`. Keys are
looked up by that hash and compared in constant time; a revoked key authenticates no
one. ``last_used_at`` is written at most once a minute per key, so authentication does
not turn every request into a write.

With a cache, an authenticated key is remembered for ``BUILDER_CACHE_TTL_API_KEY``
seconds (only its hash is a cache key). Revoking any key invalidates every cached key at
once — through Redis for every replica; a replica that cannot reach Redis keeps its own
entries until they expire. ``last_used_at`` then counts cache misses only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from builder.errors import InvalidInput, NotFound
from builder.persistence.database import Database
from builder.persistence.repositories import users as repo
from builder.persistence.schemas import ApiKeyPublic, NewApiKey, UserPublic

__all__ = [
    "API_KEY_PREFIX",
    "authenticate_api_key",
    "authenticate_api_key_hash",
    "create_api_key",
    "get_or_create_user",
    "get_user",
    "hash_api_key",
    "list_api_keys",
    "revoke_api_key",
]

API_KEY_PREFIX = "bld_"
_KEY_BYTES = 32
_DISPLAY_CHARS = len(API_KEY_PREFIX) + 8
_LAST_USED_THROTTLE = timedelta(minutes=1)
_KEYS_SCOPE = "api_keys"


def hash_api_key(key: str) -> str:
    """The stored form of a key: SHA-256 hex of the whole key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


async def get_or_create_user(db: Database, *, name: str) -> UserPublic:
    """The user with this name, created if it does not exist (safe under concurrency).

    Raises:
        InvalidInput: The name is empty.
    """
    if not name.strip():
        raise InvalidInput("a user name must not be empty")

    async def work(session: AsyncSession) -> Any:
        row = await repo.insert_user_if_missing(session, name=name)
        return row or await repo.user_by_name(session, name=name)

    return UserPublic.model_validate(await db.run(work))


async def get_user(db: Database, *, user_id: uuid.UUID) -> UserPublic:
    """A user by id.

    Raises:
        NotFound: No such user.
    """

    async def work(session: AsyncSession) -> Any:
        return await repo.user_by_id(session, user_id=user_id)

    row = await db.run(work)
    if row is None:
        raise NotFound("user", user_id)
    return UserPublic.model_validate(row)


async def create_api_key(db: Database, *, user_id: uuid.UUID, name: str = "") -> NewApiKey:
    """Create an API key for a user; the result holds the only copy of the plaintext.

    Raises:
        NotFound: No such user.
    """
    key = API_KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)

    async def work(session: AsyncSession) -> Any:
        return await repo.insert_api_key(
            session,
            user_id=user_id,
            key_hash=hash_api_key(key),
            prefix=key[:_DISPLAY_CHARS],
            name=name,
        )

    info = ApiKeyPublic.model_validate(await db.run(work))
    return NewApiKey.model_validate({"key": key, "info": info})


async def list_api_keys(db: Database, *, user_id: uuid.UUID) -> list[ApiKeyPublic]:
    """A user's API keys (revoked ones included), newest first."""

    async def work(session: AsyncSession) -> Any:
        return await repo.api_keys_of(session, user_id=user_id)

    return [ApiKeyPublic.model_validate(row) for row in await db.run(work)]


async def revoke_api_key(db: Database, *, user_id: uuid.UUID, key_id: uuid.UUID) -> ApiKeyPublic:
    """Revoke one of a user's keys (revoking twice keeps the first time).

    Raises:
        NotFound: The user has no such key (another user's key included).
    """

    async def work(session: AsyncSession) -> Any:
        return await repo.revoke_api_key(session, user_id=user_id, key_id=key_id)

    row = await db.run(work)
    if row is None:
        raise NotFound("api key", key_id)
    if db.cache is not None:
        await db.cache.invalidate(_KEYS_SCOPE)
    return ApiKeyPublic.model_validate(row)


async def authenticate_api_key(db: Database, *, key: str) -> UserPublic | None:
    """The user a presented key belongs to; None for an unknown or revoked key."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    return await authenticate_api_key_hash(db, key_hash=hash_api_key(key))


_VALIDATED: dict[str, tuple[Any, UserPublic]] = {}
"""Per key hash, the cached value last validated and its user (models are frozen)."""
_VALIDATED_MAX = 1024


def _user_of(key_hash: str, value: Any) -> UserPublic:
    """The user of a cached entry, validated once per entry object.

    A near copy is the same object on every request until it is dropped (a revocation
    drops it at once), so its validated user is kept beside it and reused.
    """
    kept = _VALIDATED.get(key_hash)
    if kept is not None and kept[0] is value:
        return kept[1]
    user = UserPublic.model_validate(value)
    if len(_VALIDATED) >= _VALIDATED_MAX:
        _VALIDATED.clear()
    _VALIDATED[key_hash] = (value, user)
    return user


async def authenticate_api_key_hash(db: Database, *, key_hash: str) -> UserPublic | None:
    """The user of the key with this hash; None for an unknown or revoked key.

    For credentials that stand for a key without carrying it (the studio's signed
    session cookie): revoking the key ends them too.
    """
    presented = key_hash
    lookup = None
    if db.cache is not None:
        lookup = await db.cache.lookup("api_key", presented, scopes=[_KEYS_SCOPE])
        if lookup.hit:
            return _user_of(presented, lookup.value)

    async def work(session: AsyncSession) -> Any:
        row = await repo.api_key_by_hash(session, key_hash=presented)
        if row is None or not hmac.compare_digest(row.key_hash, presented):
            return None
        if row.revoked_at is not None:
            return None
        await repo.mark_api_key_used(session, key_id=row.id, throttle=_LAST_USED_THROTTLE)
        return row

    row = await db.run(work)
    if row is None:
        return None
    user = UserPublic(id=row.user_id, name=row.user_name, created_at=row.user_created_at)
    if db.cache is not None and lookup is not None:
        await db.cache.store(lookup, user.model_dump(mode="json"))
    return user
