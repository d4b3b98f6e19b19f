"""A user's OAuth integrations; tokens are encrypted at rest.

Each token is sealed with :class:`~builder.crypto.Keyring` and bound, as associated
data, to ``"<user id>:<provider>:access_token"`` (or ``refresh_token``): an envelope
copied to another row or field fails to decrypt. The plaintext never reaches the
database. :func:`reencrypt_all` moves every envelope to the keyring's primary key after
a key rotation.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from builder.crypto import Keyring
from builder.errors import NotFound
from builder.persistence.database import Database
from builder.persistence.repositories import integrations as repo
from builder.persistence.schemas import IntegrationPublic, IntegrationTokens

__all__ = [
    "delete_integration",
    "get_integration_tokens",
    "list_integrations",
    "reencrypt_all",
    "refresh_integration_tokens",
    "store_integration",
]


def _aad(user_id: uuid.UUID, provider: str, field: str) -> str:
    return f"{user_id}:{provider}:{field}"


def _sealed(
    keyring: Keyring,
    user_id: uuid.UUID,
    provider: str,
    access_token: str,
    refresh_token: str | None,
) -> dict[str, Any]:
    return {
        "access_token": keyring.encrypt(access_token, aad=_aad(user_id, provider, "access_token")),
        "refresh_token": None
        if refresh_token is None
        else keyring.encrypt(refresh_token, aad=_aad(user_id, provider, "refresh_token")),
        "key_id": keyring.primary_key_id,
    }


async def store_integration(
    db: Database,
    *,
    user_id: uuid.UUID,
    provider: str,
    access_token: str,
    keyring: Keyring,
    refresh_token: str | None = None,
    expires_at: datetime | None = None,
    scope: str | None = None,
) -> IntegrationPublic:
    """Connect (or reconnect) a user to a provider, replacing any earlier tokens.

    Raises:
        NotFound: No such user.
        InvalidInput: An empty provider name.
    """
    values = {
        "user_id": user_id,
        "provider": provider,
        "expires_at": expires_at,
        "scope": scope,
        **_sealed(keyring, user_id, provider, access_token, refresh_token),
    }

    async def work(session: AsyncSession) -> Any:
        return await repo.upsert_integration(session, values=values)

    return IntegrationPublic.model_validate(await db.run(work))


async def refresh_integration_tokens(
    db: Database,
    *,
    user_id: uuid.UUID,
    provider: str,
    access_token: str,
    keyring: Keyring,
    refresh_token: str | None = None,
    expires_at: datetime | None = None,
) -> IntegrationPublic:
    """Replace the tokens of an existing integration after a refresh.

    Args:
        db: The database.
        user_id: The owner.
        provider: The provider.
        access_token: The new access token.
        keyring: Seals the tokens.
        refresh_token: The new refresh token; None keeps the current one (providers
            often return none on refresh).
        expires_at: When the new access token expires.

    Raises:
        NotFound: The user has no integration with this provider.
    """
    sealed = _sealed(keyring, user_id, provider, access_token, refresh_token)
    if refresh_token is None:
        del sealed["refresh_token"]

    async def work(session: AsyncSession) -> Any:
        current = await repo.integration_tokens(session, user_id=user_id, provider=provider)
        if current is None:
            return None
        values = {**sealed, "expires_at": expires_at}
        if refresh_token is None and current.refresh_token is not None:
            # The kept refresh token must be readable with the key recorded in key_id.
            values["refresh_token"] = keyring.reencrypt(
                current.refresh_token, aad=_aad(user_id, provider, "refresh_token")
            )
        return await repo.update_tokens(session, user_id=user_id, provider=provider, values=values)

    row = await db.run(work)
    if row is None:
        raise NotFound("integration", provider)
    return IntegrationPublic.model_validate(row)


async def get_integration_tokens(
    db: Database, *, user_id: uuid.UUID, provider: str, keyring: Keyring
) -> IntegrationTokens:
    """An integration's tokens, decrypted.

    Raises:
        NotFound: The user has no integration with this provider.
        DecryptionFailed: The keyring cannot open the envelopes (missing key, tampering).
    """

    async def work(session: AsyncSession) -> Any:
        return await repo.integration_tokens(session, user_id=user_id, provider=provider)

    row = await db.run(work)
    if row is None:
        raise NotFound("integration", provider)
    refresh = row.refresh_token
    return IntegrationTokens.model_validate(
        {
            "provider": row.provider,
            "access_token": keyring.decrypt_text(
                row.access_token, aad=_aad(user_id, provider, "access_token")
            ),
            "refresh_token": None
            if refresh is None
            else keyring.decrypt_text(refresh, aad=_aad(user_id, provider, "refresh_token")),
            "expires_at": row.expires_at,
            "scope": row.scope,
        }
    )


async def list_integrations(db: Database, *, user_id: uuid.UUID) -> list[IntegrationPublic]:
    """A user's integrations, without tokens."""

    async def work(session: AsyncSession) -> Any:
        return await repo.integrations_of(session, user_id=user_id)

    return [IntegrationPublic.model_validate(row) for row in await db.run(work)]


async def delete_integration(db: Database, *, user_id: uuid.UUID, provider: str) -> None:
    """Disconnect a user from a provider.

    Raises:
        NotFound: The user has no integration with this provider.
    """

    async def work(session: AsyncSession) -> bool:
        return await repo.delete_integration(session, user_id=user_id, provider=provider)

    if not await db.run(work):
        raise NotFound("integration", provider)


async def reencrypt_all(db: Database, keyring: Keyring, *, batch_size: int = 100) -> int:
    """Re-seal every token not sealed with the keyring's primary key.

    Runs in batches of one transaction each, skipping rows another process holds, so it
    can run beside the service. Returns how many integrations were re-sealed.

    Raises:
        DecryptionFailed: A token cannot be opened with any key of the keyring (the
            batch is rolled back; earlier batches stay done).
    """

    async def batch(session: AsyncSession) -> int:
        rows = await repo.stale_batch(
            session, primary_key_id=keyring.primary_key_id, limit=batch_size
        )
        for row in rows:
            values: dict[str, Any] = {
                "access_token": keyring.reencrypt(
                    row.access_token, aad=_aad(row.user_id, row.provider, "access_token")
                ),
                "key_id": keyring.primary_key_id,
            }
            if row.refresh_token is not None:
                values["refresh_token"] = keyring.reencrypt(
                    row.refresh_token, aad=_aad(row.user_id, row.provider, "refresh_token")
                )
            await repo.set_envelopes(session, integration_id=row.id, values=values)
        return len(rows)

    total = 0
    while done := await db.run(batch):
        total += done
    return total
