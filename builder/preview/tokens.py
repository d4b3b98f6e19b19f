"""Preview tokens: a signed, expiring, DNS-safe name for one project's preview.

A token is one DNS label (lower-case base32, 55 characters), so it can be the first
label of a wildcard host such as ``{token}.preview.example.com``. It packs::

    project id (16 bytes) ‖ expiry (4 bytes, Unix seconds) ‖ generation (4 bytes) ‖ MAC (10 bytes)

The MAC is HMAC-SHA256 (truncated to 80 bits) under a key derived from the service's
secret key. The generation is the dev server's start time, so restarting the dev server
revokes every link made for the previous one; rotating ``BUILDER_SECRET_KEY`` revokes
them all.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import time
import uuid
from dataclasses import dataclass

from builder.crypto import derived_key
from builder.settings import Settings

__all__ = ["PreviewGrant", "PreviewSigner", "preview_key"]

_MAC_BYTES = 10
_LAYOUT = struct.Struct(">16sII")
_TOKEN_CHARS = 55  # base32 of 34 bytes, padding removed


@dataclass(frozen=True, slots=True)
class PreviewGrant:
    """What a valid token grants: one project's preview until ``expires``."""

    project_id: uuid.UUID
    expires: int
    generation: int


def preview_key(settings: Settings) -> bytes:
    """The token-signing key, derived from ``BUILDER_SECRET_KEY`` (or the encryption key).

    Without either (development), a key that lives as long as the process: links then
    work only on the replica that made them, until it restarts.
    """
    return derived_key(settings, b"builder preview token v1")


class PreviewSigner:
    """Makes and checks preview tokens.

    Args:
        key: The signing key (:func:`preview_key`).
        ttl: Seconds a new token stays valid.
    """

    def __init__(self, key: bytes, *, ttl: int) -> None:
        self._key = key
        self.ttl = ttl

    def sign(
        self,
        project_id: uuid.UUID,
        *,
        generation: int,
        now: float | None = None,
        ttl: int | None = None,
    ) -> str:
        """A token for ``project_id``'s preview, valid ``ttl`` seconds (default: the signer's)."""
        expires = int(now if now is not None else time.time()) + (ttl or self.ttl)
        body = _LAYOUT.pack(project_id.bytes, expires, generation & 0xFFFFFFFF)
        raw = body + self._mac(body)
        return base64.b32encode(raw).decode("ascii").rstrip("=").lower()

    def verify(self, token: str, *, now: float | None = None) -> PreviewGrant | None:
        """The grant of a genuine, unexpired token; None for anything else."""
        if len(token) != _TOKEN_CHARS:
            return None
        try:
            raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
        except (binascii.Error, ValueError):
            return None
        body, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        project, expires, generation = _LAYOUT.unpack(body)
        if expires <= (now if now is not None else time.time()):
            return None
        return PreviewGrant(uuid.UUID(bytes=project), expires, generation)

    def hop(self, token: str) -> str:
        """The proof a replica adds when it forwards ``token``'s request to another one.

        Only holders of the signing key can make it, so a request carrying a valid one
        came from a replica: its ``X-Forwarded-*`` headers are trusted and it is never
        forwarded again.
        """
        mac = hmac.new(self._key, b"hop\x00" + token.lower().encode("ascii"), hashlib.sha256)
        return mac.hexdigest()

    def verify_hop(self, token: str, proof: str) -> bool:
        """Whether ``proof`` is :meth:`hop` of ``token``."""
        proof = proof.strip().lower()
        if not proof.isascii() or not token.isascii():
            return False
        return hmac.compare_digest(self.hop(token), proof)

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]
