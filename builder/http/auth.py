"""Authentication: API keys, checked before any route runs.

A request presents its key as ``Authorization: Bearer <key>`` or ``x-api-key: <key>``,
or, from the studio, the session cookie the key was exchanged for (plus the session's
CSRF token on state-changing methods; :mod:`builder.http.studio.session`). Keys are
``bld_`` plus 256 random bits; only their SHA-256 is stored, looked up by hash and
compared in constant time (:func:`builder.persistence.users.authenticate_api_key`).

Every path is protected unless it is in the short public list below, so a new route is
protected without anyone remembering to protect it:

* ``/`` and ``/studio/…``: the studio's page and its static files (the page asks for
  a key before it shows anything), and ``/api/sign-in``, which exchanges a key for a
  session cookie;
* ``/api/health`` and ``/api/health/ready`` (load-balancer probes);
* ``/metrics`` (guarded by ``BUILDER_METRICS_TOKEN`` when set, see
  :mod:`builder.http.metrics`);
* ``/api/integrations/{provider}/callback``: the provider sends the user's browser
  there, which has no API key; the signed, expiring, single-use OAuth state names the
  user instead (:mod:`builder.http.oauth`);
* ``/docs`` and ``/openapi.json`` only when docs are served (``BUILDER_DOCS_ENABLED``;
  off in production by default, and then ``/openapi.json`` needs a key like any route).

A missing key is 401 unless anonymous access is on (development): then the request acts
as the local user. A wrong or revoked key is 401 in every environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.types import Scope

from builder.errors import BuilderError, Forbidden, Unauthorized
from builder.http.studio.session import (
    CSRF_HEADER,
    SAFE_METHODS,
    session_cookie,
    session_signer,
)
from builder.persistence.schemas import UserPublic
from builder.persistence.users import (
    API_KEY_PREFIX,
    authenticate_api_key_hash,
    hash_api_key,
)
from builder.settings import Settings

if TYPE_CHECKING:
    from builder.http.services import Services

__all__ = ["Authenticator", "Principal", "public_path_patterns"]

_ALWAYS_PUBLIC = (
    r"/",
    r"/studio/.+",
    r"/api/sign-in",
    r"/api/health",
    r"/api/health/ready",
    r"/metrics",
    r"/api/integrations/[^/]+/callback",
)
_DOCS = (r"/docs", r"/docs/oauth2-redirect", r"/openapi\.json")
_PRINCIPALS_MAX = 1024


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling."""

    user: UserPublic
    key_hash: str | None
    """SHA-256 of the API key presented; None for the anonymous local user."""

    rate_key: str = field(init=False, compare=False)
    """What rate limits count against: the API key, or the local user."""

    def __post_init__(self) -> None:
        key = f"key:{self.key_hash[:32]}" if self.key_hash is not None else f"user:{self.user.id}"
        object.__setattr__(self, "rate_key", key)


def public_path_patterns(settings: Settings) -> list[str]:
    """Regular expressions of the paths that need no API key."""
    return [*_ALWAYS_PUBLIC, *(_DOCS if settings.serve_docs else ())]


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            text: str = value.decode("latin-1")
            return text
    return None


def _presented_key(scope: Scope) -> str | None:
    bearer: str | None = None
    header_key: str | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            bearer = credentials.strip() if scheme.lower() == "bearer" else ""
        elif name == b"x-api-key":
            header_key = value.decode("latin-1").strip()
    if bearer is not None and header_key is not None and bearer != header_key:
        return ""  # two different keys: refuse rather than pick one
    return bearer if bearer is not None else header_key


class Authenticator:
    """Who is calling: the principal of a request, or why it is refused.

    Args:
        settings: Which paths are public and whether anonymous access is on.
    """

    def __init__(self, settings: Settings) -> None:
        self._public = re.compile("^(?:" + "|".join(public_path_patterns(settings)) + ")$")
        self._anonymous = settings.anonymous_allowed
        self._sessions = session_signer(settings)
        self._principals: dict[str, Principal] = {}

    async def authenticate(self, scope: Scope) -> Principal | BuilderError | None:
        """The caller (None on a public path), or the error to answer (401, 403)."""
        if self._public.match(scope["path"]):
            return None
        services: Services = scope["app"].state.services
        key = _presented_key(scope)
        cookie = session_cookie(scope) if key is None else None
        principal: Principal | None = None
        error: BuilderError | None = None
        if key:
            key_hash = hash_api_key(key) if key.startswith(API_KEY_PREFIX) else None
            if key_hash is not None:
                user = await authenticate_api_key_hash(services.db, key_hash=key_hash)
                if user is not None:
                    principal = self._principal(user, key_hash)
        elif cookie is not None:
            principal, error = await self._from_session(scope, services, cookie)
        elif key is None and self._anonymous:
            principal = services.local_principal
        if principal is None:
            return error or Unauthorized(
                "a valid API key is required" if key is None else "invalid API key"
            )
        return principal

    def _principal(self, user: UserPublic, key_hash: str) -> Principal:
        """The principal of a key's user; the same object while the user is (near cache)."""
        kept = self._principals.get(key_hash)
        if kept is None or kept.user is not user:
            if len(self._principals) >= _PRINCIPALS_MAX:
                self._principals.clear()
            kept = self._principals[key_hash] = Principal(user=user, key_hash=key_hash)
        return kept

    async def _from_session(
        self, scope: Scope, services: Services, cookie: str
    ) -> tuple[Principal | None, BuilderError | None]:
        """The caller of a session cookie, or why it is refused."""
        session = self._sessions.verify(cookie)
        principal: Principal | None = None
        if session is not None and session.key_hash is not None:
            user = await authenticate_api_key_hash(services.db, key_hash=session.key_hash)
            if user is not None:
                principal = Principal(user=user, key_hash=session.key_hash)
        elif session is not None and self._anonymous:
            principal = Principal(user=services.local_user, key_hash=None)
        if principal is None:
            return None, Unauthorized("the session has ended; sign in again")
        if scope["method"] not in SAFE_METHODS and not self._sessions.csrf_ok(
            cookie, _header(scope, CSRF_HEADER.encode())
        ):
            return None, Forbidden(
                f"a request signed in by the session cookie needs its {CSRF_HEADER} header"
            )
        return principal, None
