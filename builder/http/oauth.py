"""OAuth 2 connections to third-party providers: signed state and the code exchange.

``connect`` hands out the provider's authorize URL with a ``state`` that says who asked
and until when: ``base64url(payload).base64url(HMAC-SHA256(payload))`` where the payload
holds the user id, the provider, a random nonce and an expiry
(``BUILDER_OAUTH_STATE_SECONDS``). The HMAC key is ``BUILDER_SECRET_KEY``, or derived
with HKDF from the primary encryption key, so every replica verifies every other's
state. The callback accepts a state only if its MAC verifies (constant-time), it has
not expired, it names the provider of the callback URL, and its nonce has not been used
before: nonces are claimed once in Redis (``SET NX`` with the state's lifetime), or in
process memory without Redis.

The authorization code is exchanged at the provider's token URL with the client
credentials and the same ``redirect_uri``; tokens are stored encrypted
(:mod:`builder.persistence.integrations`) and never returned to the caller.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from cachetools import TTLCache
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis.asyncio import Redis

from builder.circuit import Circuit, Unavailable
from builder.errors import DependencyUnavailable, InvalidInput, NotFound
from builder.log import get_logger
from builder.settings import OAuthProvider, Settings

__all__ = ["OAuthTokens", "StateSigner", "exchange_code", "provider_config", "state_secret"]

_log = get_logger("builder.http.oauth")
_EXCHANGE_TIMEOUT = 15.0
_NONCES_KEPT = 100_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def state_secret(settings: Settings) -> bytes | None:
    """The state-signing key: ``BUILDER_SECRET_KEY``, else derived from the encryption key.

    None when neither is configured (development): the caller makes a random one, which
    lives as long as the process.
    """
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value().encode("utf-8")
    keys = settings.parsed_encryption_keys()
    if not keys:
        return None
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"builder oauth state v1")
    return hkdf.derive(keys[0][1])


def provider_config(settings: Settings, name: str) -> OAuthProvider:
    """The configuration of a provider.

    Raises:
        NotFound: No provider of that name is configured.
    """
    provider = settings.oauth_providers.get(name)
    if provider is None:
        raise NotFound("integration provider", name)
    return provider


@dataclass(frozen=True, slots=True)
class VerifiedState:
    """What a valid state vouches for."""

    user_id: uuid.UUID
    provider: str
    nonce: str
    expires_at: float


class StateSigner:
    """Makes and checks OAuth ``state`` values.

    Args:
        secret: The HMAC key (at least 32 bytes recommended).
        lifetime: Seconds a state stays valid.
        redis: Where nonces are claimed across replicas; None = this process only.
            Calls go through a :class:`~builder.circuit.Circuit`: while Redis is
            down, nonces are claimed in this process only.
        nonce_prefix: Prefix of the Redis keys of claimed nonces.
        redis_timeout: Bounds one claim in Redis.
        cooldown: Seconds Redis is left alone after it failed.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        lifetime: int,
        redis: Redis | None = None,
        nonce_prefix: str = "builder:oauth:nonce:",
        redis_timeout: float = 0.1,
        cooldown: float = 10.0,
    ) -> None:
        self._secret = secret
        self.lifetime = lifetime
        self._redis = redis
        self._redis_timeout = redis_timeout
        self.circuit = Circuit(cooldown, name="oauth")
        self._prefix = nonce_prefix
        self._used: TTLCache[str, bool] = TTLCache(_NONCES_KEPT, lifetime)

    def _mac(self, payload: bytes) -> hmac.HMAC:
        mac = hmac.HMAC(self._secret, hashes.SHA256())
        mac.update(payload)
        return mac

    def sign(self, *, user_id: uuid.UUID, provider: str) -> tuple[str, float]:
        """A fresh state for this user and provider, and when it expires (epoch seconds)."""
        expires = time.time() + self.lifetime
        payload = json.dumps(
            {"u": str(user_id), "p": provider, "n": secrets.token_urlsafe(16), "e": expires},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload).finalize())}", expires

    def verify(self, state: str, *, provider: str) -> VerifiedState:
        """Check a state's signature, expiry and provider (the nonce is not claimed here).

        Raises:
            InvalidInput: The state is malformed, forged, expired or for another provider.
        """
        body, _, signature = state.partition(".")
        try:
            payload, mac = _unb64(body), _unb64(signature)
        except (binascii.Error, ValueError):
            raise InvalidInput("the OAuth state is malformed") from None
        try:
            self._mac(payload).verify(mac)
        except InvalidSignature:
            raise InvalidInput("the OAuth state is not valid") from None
        data = json.loads(payload)
        if data["e"] < time.time():
            raise InvalidInput("the OAuth state has expired; connect again")
        if data["p"] != provider:
            raise InvalidInput("the OAuth state was issued for another provider")
        return VerifiedState(uuid.UUID(data["u"]), data["p"], data["n"], float(data["e"]))

    async def claim(self, verified: VerifiedState) -> None:
        """Mark the state's nonce used.

        Raises:
            InvalidInput: It was used before (a replayed callback).
        """
        ttl = max(1, int(verified.expires_at - time.time()) + 1)
        fresh: bool | None = None
        redis = self._redis
        if redis is not None:
            claimed = await self.circuit.call(
                lambda: redis.set(self._prefix + verified.nonce, "1", nx=True, ex=ttl),
                timeout=self._redis_timeout * 4,
            )
            if not isinstance(claimed, Unavailable):
                fresh = bool(claimed)
        if fresh is None:
            fresh = verified.nonce not in self._used
        self._used[verified.nonce] = True
        if not fresh:
            raise InvalidInput("the OAuth state has already been used; connect again")


def authorize_url(provider: OAuthProvider, *, state: str, redirect_uri: str) -> str:
    """The provider's authorize URL for this state and redirect URI."""
    params: dict[str, str] = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        **provider.authorize_params,
    }
    if provider.scopes:
        params["scope"] = " ".join(provider.scopes)
    separator = "&" if "?" in provider.authorize_url else "?"
    return f"{provider.authorize_url}{separator}{urlencode(params)}"


@dataclass(frozen=True, slots=True)
class OAuthTokens:
    """What the token endpoint granted."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    scope: str | None


async def exchange_code(
    name: str,
    provider: OAuthProvider,
    *,
    code: str,
    redirect_uri: str,
    client: httpx.AsyncClient | None = None,
) -> OAuthTokens:
    """Trade an authorization code for tokens at the provider's token URL.

    Raises:
        InvalidInput: The provider refused the code (expired, used, wrong redirect).
        DependencyUnavailable: The provider could not be reached or answered badly.
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret.get_secret_value(),
    }
    owned = client is None
    http = client or httpx.AsyncClient(timeout=_EXCHANGE_TIMEOUT, follow_redirects=False)
    try:
        response = await http.post(
            provider.token_url, data=form, headers={"accept": "application/json"}
        )
    except httpx.HTTPError as exc:
        raise DependencyUnavailable(
            f"oauth provider {name}", f"token request failed: {type(exc).__name__}"
        ) from exc
    finally:
        if owned:
            await http.aclose()
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
        body = parsed if isinstance(parsed, dict) else {}
    except ValueError:
        body = {}
    if 400 <= response.status_code < 500 or "error" in body:
        reason = str(body.get("error") or response.status_code)
        raise InvalidInput(f"the provider refused the authorization code ({reason})")
    token = body.get("access_token")
    if response.status_code != 200 or not isinstance(token, str) or not token:
        raise DependencyUnavailable(
            f"oauth provider {name}", f"unexpected token answer (status {response.status_code})"
        )
    expires_in = body.get("expires_in")
    expires_at = (
        datetime.now(UTC) + timedelta(seconds=float(expires_in))
        if isinstance(expires_in, int | float) or (isinstance(expires_in, str) and expires_in)
        else None
    )
    refresh = body.get("refresh_token")
    scope = body.get("scope")
    return OAuthTokens(
        access_token=token,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=expires_at,
        scope=scope if isinstance(scope, str) else None,
    )
