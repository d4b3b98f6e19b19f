"""Integrations: tokens encrypted and bound to their owner; rotation re-seals them."""

from __future__ import annotations

import os

import psycopg
import pytest

from builder.crypto import Keyring
from builder.errors import DecryptionFailed, NotFound
from builder.persistence import (
    Database,
    delete_integration,
    get_integration_tokens,
    get_or_create_user,
    list_integrations,
    reencrypt_all,
    refresh_integration_tokens,
    store_integration,
)
from builder.persistence.schemas import UserPublic

OLD_KEY = os.urandom(32)
OLD = Keyring([("old", OLD_KEY)])


def _raw_rows(db: Database) -> list[str]:
    with psycopg.connect(db.psycopg_url) as conn:
        return [row[0] for row in conn.execute("SELECT integrations::text FROM integrations")]


async def test_tokens_are_never_stored_in_plaintext(db: Database, user: UserPublic) -> None:
    await store_integration(
        db,
        user_id=user.id,
        provider="github",
        access_token="gho_secret_access",
        refresh_token="ghr_secret_refresh",
        scope="repo",
        keyring=OLD,
    )

    (raw,) = _raw_rows(db)
    tokens = await get_integration_tokens(db, user_id=user.id, provider="github", keyring=OLD)

    assert "gho_secret_access" not in raw and "ghr_secret_refresh" not in raw
    assert tokens.access_token.get_secret_value() == "gho_secret_access"
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.get_secret_value() == "ghr_secret_refresh"
    assert [
        (i.provider, i.key_id, i.scope) for i in await list_integrations(db, user_id=user.id)
    ] == [("github", "old", "repo")]


async def test_a_token_moved_to_another_user_does_not_decrypt(
    db: Database, user: UserPublic
) -> None:
    other = await get_or_create_user(db, name="mallory")
    await store_integration(db, user_id=user.id, provider="github", access_token="a1", keyring=OLD)
    await store_integration(db, user_id=other.id, provider="github", access_token="b1", keyring=OLD)
    with psycopg.connect(db.psycopg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE integrations SET access_token = "
            "(SELECT access_token FROM integrations WHERE user_id = %s) WHERE user_id = %s",
            (user.id, other.id),
        )

    with pytest.raises(DecryptionFailed):
        await get_integration_tokens(db, user_id=other.id, provider="github", keyring=OLD)


async def test_refresh_replaces_tokens_and_keeps_the_refresh_token(
    db: Database, user: UserPublic
) -> None:
    await store_integration(
        db, user_id=user.id, provider="vercel", access_token="a1", refresh_token="r1", keyring=OLD
    )
    await refresh_integration_tokens(
        db, user_id=user.id, provider="vercel", access_token="a2", keyring=OLD
    )

    tokens = await get_integration_tokens(db, user_id=user.id, provider="vercel", keyring=OLD)
    assert tokens.access_token.get_secret_value() == "a2"
    assert tokens.refresh_token is not None and tokens.refresh_token.get_secret_value() == "r1"
    with pytest.raises(NotFound):
        await refresh_integration_tokens(
            db, user_id=user.id, provider="gitlab", access_token="x", keyring=OLD
        )

    await delete_integration(db, user_id=user.id, provider="vercel")
    with pytest.raises(NotFound):
        await get_integration_tokens(db, user_id=user.id, provider="vercel", keyring=OLD)


async def test_reencrypt_all_moves_every_token_to_the_primary_key(
    db: Database, user: UserPublic
) -> None:
    for i in range(5):
        await store_integration(
            db,
            user_id=user.id,
            provider=f"p{i}",
            access_token=f"a{i}",
            refresh_token=f"r{i}",
            keyring=OLD,
        )
    new_key = os.urandom(32)
    rotated = Keyring([("new", new_key), ("old", OLD_KEY)])

    assert await reencrypt_all(db, rotated, batch_size=2) == 5
    assert await reencrypt_all(db, rotated) == 0
    only_new = Keyring([("new", new_key)])
    for i in range(5):
        tokens = await get_integration_tokens(
            db, user_id=user.id, provider=f"p{i}", keyring=only_new
        )
        assert tokens.access_token.get_secret_value() == f"a{i}"
    assert {i.key_id for i in await list_integrations(db, user_id=user.id)} == {"new"}
