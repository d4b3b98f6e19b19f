"""OAuth integrations: connect, the provider's callback, list, disconnect.

The callback is the one route that takes no API key: the provider sends the user's
browser there, and the signed, expiring, single-use ``state`` names the user instead
(:mod:`builder.http.oauth`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from builder.http.deps import CurrentUser, DbDep, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.oauth import authorize_url, exchange_code, provider_config
from builder.http.ratelimit import rate_limited
from builder.http.schemas import ConnectResult, TokenBody
from builder.http.services import Services
from builder.persistence.integrations import (
    delete_integration,
    list_integrations,
    store_integration,
)
from builder.persistence.schemas import IntegrationPublic

router = APIRouter(
    prefix="/api/integrations",
    tags=["integrations"],
    dependencies=[Depends(rate_limited("default"))],
    responses=ERROR_RESPONSES,
)

Provider = Annotated[
    str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="A configured provider.")
]


def _redirect_uri(services: Services, request: Request, provider: str) -> str:
    base = services.settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/api/integrations/{provider}/callback"


@router.get("", response_model=list[IntegrationPublic])
async def list_(user: CurrentUser, db: DbDep) -> list[IntegrationPublic]:
    """The caller's connected providers (never their tokens)."""
    return await list_integrations(db, user_id=user.id)


@router.post("/{provider}/connect", response_model=ConnectResult)
async def connect(
    provider: Provider, request: Request, user: CurrentUser, services: ServicesDep
) -> ConnectResult:
    """The provider's authorize URL, with a state valid for this user for a few minutes."""
    config = provider_config(services.settings, provider)
    services.require_keyring()  # refuse before the user grants access we could not store
    state, expires = services.signer.sign(user_id=user.id, provider=provider)
    url = authorize_url(
        config, state=state, redirect_uri=_redirect_uri(services, request, provider)
    )
    return ConnectResult(authorize_url=url, expires_at=datetime.fromtimestamp(expires, UTC))


@router.get("/{provider}/callback", response_model=IntegrationPublic)
async def callback(
    provider: Provider,
    request: Request,
    services: ServicesDep,
    code: Annotated[str, Query(min_length=1, max_length=2048)],
    state: Annotated[str, Query(min_length=1, max_length=2048)],
) -> IntegrationPublic:
    """Where the provider sends the user back: checks the state, stores the tokens."""
    config = provider_config(services.settings, provider)
    keyring = services.require_keyring()
    verified = services.signer.verify(state, provider=provider)
    await services.signer.claim(verified)
    tokens = await exchange_code(
        provider,
        config,
        code=code,
        redirect_uri=_redirect_uri(services, request, provider),
    )
    return await store_integration(
        services.db,
        user_id=verified.user_id,
        provider=provider,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at,
        scope=tokens.scope,
        keyring=keyring,
    )


@router.put("/{provider}/token", response_model=IntegrationPublic)
async def set_token(
    provider: Provider, body: TokenBody, user: CurrentUser, services: ServicesDep
) -> IntegrationPublic:
    """Store a personal access token for a provider (e.g. Netlify's), encrypted, instead
    of connecting through OAuth. The token is never shown again."""
    return await store_integration(
        services.db,
        user_id=user.id,
        provider=provider,
        access_token=body.access_token,
        keyring=services.require_keyring(),
    )


@router.delete("/{provider}", status_code=204)
async def disconnect(provider: Provider, user: CurrentUser, db: DbDep) -> Response:
    """Forget the caller's tokens for a provider."""
    await delete_integration(db, user_id=user.id, provider=provider)
    return Response(status_code=204)
