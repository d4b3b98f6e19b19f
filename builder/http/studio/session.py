"""The studio's session cookie and its CSRF token.

Signing in turns an API key into a cookie the browser keeps and scripts cannot read
(``HttpOnly``, ``SameSite=Strict``, ``Secure`` in production). The cookie never holds
the key itself, only what the service already looks keys up by, signed::

    v1.<subject>.<expires>.<nonce>.<MAC>

The subject is the SHA-256 of the API key (``local`` for the anonymous local user of
a development server), the MAC HMAC-SHA256 under a key derived from the service's
secret key. Every request re-checks the key, so revoking it ends its sessions at once;
rotating ``BUILDER_SECRET_KEY`` ends every session.

A request authenticated by the cookie and not by a key header must carry the
session's CSRF token in ``x-csrf-token`` for every state-changing method: a page on
another site can make the browser send the cookie, but cannot read the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from starlette.requests import cookie_parser
from starlette.types import Scope

from builder.crypto import derived_key
from builder.settings import Settings

__all__ = [
    "CSRF_HEADER",
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "SESSION_SECONDS",
    "Session",
    "SessionSigner",
    "clear_cookie_header",
    "session_cookie",
    "session_signer",
    "set_cookie_header",
]

SESSION_COOKIE = "builder_session"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 7 * 24 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOCAL = "local"
_SUBJECT = re.compile(r"^(?:[0-9a-f]{64}|local)$")


@dataclass(frozen=True, slots=True)
class Session:
    """A genuine, unexpired session."""

    key_hash: str | None
    """SHA-256 of the API key signed in with; None for the anonymous local user."""
    expires: int


class SessionSigner:
    """Issues and checks session cookies and their CSRF tokens.

    Args:
        key: The signing key (:func:`session_signer` derives it).
        ttl: Seconds a new session lasts.
    """

    def __init__(self, key: bytes, *, ttl: int = SESSION_SECONDS) -> None:
        self._key = key
        self.ttl = ttl

    def issue(self, key_hash: str | None, *, now: float | None = None) -> str:
        """A new session's cookie value for the key with ``key_hash`` (None: local user)."""
        subject = key_hash or _LOCAL
        expires = int(now if now is not None else time.time()) + self.ttl
        body = f"v1.{subject}.{expires}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._mac(b'session', body)}"

    def verify(self, value: str, *, now: float | None = None) -> Session | None:
        """The session of a genuine, unexpired cookie value; None for anything else."""
        body, _, mac = value.rpartition(".")
        parts = body.split(".")
        if len(parts) != 4 or parts[0] != "v1" or not _SUBJECT.match(parts[1]):
            return None
        if not hmac.compare_digest(mac, self._mac(b"session", body)):
            return None
        if not parts[2].isdigit() or int(parts[2]) <= (now if now is not None else time.time()):
            return None
        return Session(None if parts[1] == _LOCAL else parts[1], int(parts[2]))

    def csrf_token(self, value: str) -> str:
        """The CSRF token of the session with this cookie value."""
        return self._mac(b"csrf", value)

    def csrf_ok(self, value: str, presented: str | None) -> bool:
        """Whether ``presented`` is the session's CSRF token."""
        return presented is not None and hmac.compare_digest(presented, self.csrf_token(value))

    def _mac(self, purpose: bytes, body: str) -> str:
        digest = hmac.new(self._key, purpose + b"\0" + body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def session_signer(settings: Settings) -> SessionSigner:
    """The signer of these settings' sessions."""
    return SessionSigner(derived_key(settings, b"builder studio session v1"))


def session_cookie(scope: Scope) -> str | None:
    """The session cookie a request carries, if any."""
    for name, value in scope["headers"]:
        if name == b"cookie":
            found = cookie_parser(value.decode("latin-1")).get(SESSION_COOKIE)
            if found:
                return found
    return None


def set_cookie_header(value: str, *, secure: bool, max_age: int = SESSION_SECONDS) -> str:
    """The ``Set-Cookie`` value that stores a session."""
    flags = "; Secure" if secure else ""
    return f"{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{flags}"


def clear_cookie_header(*, secure: bool) -> str:
    """The ``Set-Cookie`` value that removes the session."""
    return set_cookie_header("", secure=secure, max_age=0)
