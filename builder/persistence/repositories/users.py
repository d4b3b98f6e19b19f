"""SQL for users and API keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from builder.persistence.models import api_keys, users
from builder.persistence.repositories import AnyRow

USER_COLUMNS = (users.c.id, users.c.name, users.c.created_at)
API_KEY_COLUMNS = (
    api_keys.c.id,
    api_keys.c.user_id,
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
)


async def insert_user_if_missing(session: AsyncSession, *, name: str) -> AnyRow | None:
    """Insert a user; None when the name is taken (no error, no lock wait on the row)."""
    statement = (
        insert(users)
        .values(name=name)
        .on_conflict_do_nothing(index_elements=[users.c.name])
        .returning(*USER_COLUMNS)
    )
    return (await session.execute(statement)).first()


async def user_by_name(session: AsyncSession, *, name: str) -> AnyRow | None:
    """The user with this name."""
    return (await session.execute(select(*USER_COLUMNS).where(users.c.name == name))).first()


async def user_by_id(session: AsyncSession, *, user_id: uuid.UUID) -> AnyRow | None:
    """The user with this id."""
    return (await session.execute(select(*USER_COLUMNS).where(users.c.id == user_id))).first()


async def insert_api_key(
    session: AsyncSession, *, user_id: uuid.UUID, key_hash: str, prefix: str, name: str
) -> AnyRow:
    """Store a key's hash and display prefix."""
    statement = (
        api_keys.insert()
        .values(user_id=user_id, key_hash=key_hash, prefix=prefix, name=name)
        .returning(*API_KEY_COLUMNS)
    )
    return (await session.execute(statement)).one()


async def api_keys_of(session: AsyncSession, *, user_id: uuid.UUID) -> Sequence[AnyRow]:
    """A user's keys, newest first."""
    statement = (
        select(*API_KEY_COLUMNS)
        .where(api_keys.c.user_id == user_id)
        .order_by(api_keys.c.created_at.desc(), api_keys.c.id)
    )
    return (await session.execute(statement)).all()


async def revoke_api_key(
    session: AsyncSession, *, user_id: uuid.UUID, key_id: uuid.UUID
) -> AnyRow | None:
    """Mark a key revoked (idempotent); None when the user has no such key."""
    statement = (
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.user_id == user_id)
        .values(revoked_at=func.coalesce(api_keys.c.revoked_at, func.now()))
        .returning(*API_KEY_COLUMNS)
    )
    return (await session.execute(statement)).first()


async def api_key_by_hash(session: AsyncSession, *, key_hash: str) -> AnyRow | None:
    """A key row (with its hash and owner) by the hash of the presented key."""
    statement = (
        select(
            api_keys.c.id,
            api_keys.c.key_hash,
            api_keys.c.revoked_at,
            api_keys.c.last_used_at,
            users.c.id.label("user_id"),
            users.c.name.label("user_name"),
            users.c.created_at.label("user_created_at"),
        )
        .join(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.key_hash == key_hash)
    )
    return (await session.execute(statement)).first()


async def mark_api_key_used(
    session: AsyncSession, *, key_id: uuid.UUID, throttle: timedelta
) -> None:
    """Set ``last_used_at`` unless it was set within ``throttle`` (one write a minute)."""
    statement = (
        update(api_keys)
        .where(
            api_keys.c.id == key_id,
            (api_keys.c.last_used_at.is_(None)) | (api_keys.c.last_used_at < func.now() - throttle),
        )
        .values(last_used_at=func.now())
    )
    await session.execute(statement)
