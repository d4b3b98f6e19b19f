"""SQL for integrations (OAuth tokens, stored as encrypted envelopes)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from builder.persistence.models import integrations
from builder.persistence.repositories import AnyRow

PUBLIC_COLUMNS = (
    integrations.c.id,
    integrations.c.user_id,
    integrations.c.provider,
    integrations.c.key_id,
    integrations.c.expires_at,
    integrations.c.scope,
    integrations.c.created_at,
    integrations.c.updated_at,
)
TOKEN_COLUMNS = (
    integrations.c.provider,
    integrations.c.access_token,
    integrations.c.refresh_token,
    integrations.c.expires_at,
    integrations.c.scope,
)


def _of(user_id: uuid.UUID, provider: str) -> Any:
    return (integrations.c.user_id == user_id) & (integrations.c.provider == provider)


async def upsert_integration(session: AsyncSession, *, values: Mapping[str, Any]) -> AnyRow:
    """Insert a user's integration with a provider, or replace its tokens."""
    statement = insert(integrations).values(**values)
    replaced = {k: statement.excluded[k] for k in values if k not in {"user_id", "provider"}}
    upsert = statement.on_conflict_do_update(
        index_elements=[integrations.c.user_id, integrations.c.provider],
        set_={**replaced, "updated_at": func.now()},
    ).returning(*PUBLIC_COLUMNS)
    return (await session.execute(upsert)).one()


async def update_tokens(
    session: AsyncSession, *, user_id: uuid.UUID, provider: str, values: Mapping[str, Any]
) -> AnyRow | None:
    """Replace an existing integration's tokens."""
    statement = (
        update(integrations)
        .where(_of(user_id, provider))
        .values(**values, updated_at=func.now())
        .returning(*PUBLIC_COLUMNS)
    )
    return (await session.execute(statement)).first()


async def integration_tokens(
    session: AsyncSession, *, user_id: uuid.UUID, provider: str
) -> AnyRow | None:
    """The encrypted tokens of an integration."""
    return (await session.execute(select(*TOKEN_COLUMNS).where(_of(user_id, provider)))).first()


async def integrations_of(session: AsyncSession, *, user_id: uuid.UUID) -> Sequence[AnyRow]:
    """A user's integrations, without tokens."""
    statement = (
        select(*PUBLIC_COLUMNS)
        .where(integrations.c.user_id == user_id)
        .order_by(integrations.c.provider)
    )
    return (await session.execute(statement)).all()


async def delete_integration(session: AsyncSession, *, user_id: uuid.UUID, provider: str) -> bool:
    """Forget an integration."""
    statement = delete(integrations).where(_of(user_id, provider)).returning(integrations.c.id)
    return (await session.execute(statement)).first() is not None


async def stale_batch(
    session: AsyncSession, *, primary_key_id: str, limit: int
) -> Sequence[AnyRow]:
    """Up to ``limit`` rows not sealed with the primary key, locked, skipping locked ones."""
    statement = (
        select(
            integrations.c.id,
            integrations.c.user_id,
            integrations.c.provider,
            integrations.c.access_token,
            integrations.c.refresh_token,
        )
        .where(integrations.c.key_id != primary_key_id)
        .order_by(integrations.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(statement)).all()


async def set_envelopes(
    session: AsyncSession, *, integration_id: uuid.UUID, values: Mapping[str, Any]
) -> None:
    """Store re-encrypted envelopes (the secret is unchanged, so ``updated_at`` is too)."""
    await session.execute(
        update(integrations).where(integrations.c.id == integration_id).values(**values)
    )
