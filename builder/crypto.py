"""Encryption of secrets at rest: AES-256-GCM envelopes with a rotating keyring.

An envelope is a short ASCII string::

    v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>

* a fresh random 96-bit nonce for every encryption;
* the key id says which key of the keyring decrypts it, so keys can rotate;
* associated data (for example ``"user-42:github:access_token"``) binds the
  ciphertext to its owner and purpose: moved to another row or field, it fails to
  decrypt instead of revealing a secret that belongs elsewhere.

The keyring has one primary key (new encryptions) and any number of older keys that
still decrypt. :meth:`Keyring.reencrypt` moves an envelope to the primary key.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from builder.errors import ConfigurationError, DecryptionFailed
from builder.settings import Settings

__all__ = ["Keyring", "derived_key", "generate_key"]

_VERSION = "v1"
_NONCE_BYTES = 12
_TAG_BYTES = 16


def derived_key(settings: Settings, purpose: bytes) -> bytes:
    """A 32-byte key for one purpose (``b"builder preview token v1"``), derived with HKDF.

    The master is ``BUILDER_SECRET_KEY``, else the primary encryption key. Without either
    (development) it is a random master that lives as long as the process: whatever it
    signs is then honoured only by the process that signed it, until it restarts.
    """
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        master = settings.secret_key.get_secret_value().encode("utf-8")
    else:
        keys = settings.parsed_encryption_keys()
        master = keys[0][1] if keys else _PROCESS_MASTER
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose)
    return hkdf.derive(master)


_PROCESS_MASTER = os.urandom(32)


def generate_key() -> str:
    """A new random 256-bit key, base64-encoded (for ``BUILDER_ENCRYPTION_KEYS``)."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")


class Keyring:
    """AES-256-GCM keys by id; the first is primary.

    Args:
        keys: ``(key_id, 32-byte key)`` pairs, primary first.

    Raises:
        ConfigurationError: No keys, a key that is not 32 bytes, or a bad key id.
    """

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        self._keys: dict[str, AESGCM] = {}
        self._primary: str | None = None
        for key_id, raw in keys:
            if not key_id or "." in key_id or not key_id.isascii():
                raise ConfigurationError(f"encryption key id {key_id!r} must be ASCII without '.'")
            if len(raw) != 32:
                raise ConfigurationError(
                    f"encryption key {key_id!r} is {len(raw)} bytes; AES-256 needs 32"
                )
            if key_id in self._keys:
                raise ConfigurationError(f"encryption key id {key_id!r} appears twice")
            self._keys[key_id] = AESGCM(raw)
            self._primary = self._primary or key_id
        if self._primary is None:
            raise ConfigurationError(
                "no encryption key configured; set BUILDER_ENCRYPTION_KEYS=id:<base64 32 bytes> "
                "(generate one with `builder secrets generate-key`)"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """The keyring configured by ``BUILDER_ENCRYPTION_KEYS``.

        Raises:
            ConfigurationError: The setting is missing or malformed.
        """
        return cls(settings.parsed_encryption_keys())

    @property
    def primary_key_id(self) -> str:
        """The id of the key new envelopes are encrypted with."""
        assert self._primary is not None
        return self._primary

    @property
    def key_ids(self) -> list[str]:
        """Every key id, primary first."""
        return list(self._keys)

    def encrypt(self, plaintext: str | bytes, *, aad: str) -> str:
        """Encrypt with the primary key, binding the result to ``aad``.

        Args:
            plaintext: The secret.
            aad: Associated data naming the owner and purpose, e.g. ``"u1:github:access"``.

        Returns:
            An ASCII envelope.
        """
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self.primary_key_id].encrypt(nonce, data, aad.encode("utf-8"))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{_VERSION}.{self.primary_key_id}.{body}"

    def decrypt(self, envelope: str, *, aad: str) -> bytes:
        """Decrypt and authenticate an envelope.

        Raises:
            DecryptionFailed: Malformed envelope, unknown key id, tampered bytes, a wrong
                key, or associated data that differs from the one it was sealed with.
        """
        key_id, nonce, sealed = self._parse(envelope)
        cipher = self._keys.get(key_id)
        if cipher is None:
            raise DecryptionFailed(key_id, f"no key with id {key_id!r} in the keyring")
        try:
            return cipher.decrypt(nonce, sealed, aad.encode("utf-8"))
        except InvalidTag:
            raise DecryptionFailed(key_id) from None

    def decrypt_text(self, envelope: str, *, aad: str) -> str:
        """:meth:`decrypt`, decoded as UTF-8."""
        return self.decrypt(envelope, aad=aad).decode("utf-8")

    def reencrypt(self, envelope: str, *, aad: str) -> str:
        """The same secret sealed with the primary key (unchanged if it already is)."""
        if self.key_id_of(envelope) == self.primary_key_id:
            return envelope
        return self.encrypt(self.decrypt(envelope, aad=aad), aad=aad)

    @staticmethod
    def key_id_of(envelope: str) -> str:
        """The id of the key an envelope was sealed with."""
        return Keyring._parse(envelope)[0]

    @staticmethod
    def _parse(envelope: str) -> tuple[str, bytes, bytes]:
        version, _, rest = envelope.partition(".")
        key_id, _, body = rest.partition(".")
        if version != _VERSION or not key_id or not body:
            raise DecryptionFailed(None, "not a builder encryption envelope")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise DecryptionFailed(key_id, "envelope body is not base64") from None
        if len(raw) < _NONCE_BYTES + _TAG_BYTES:
            raise DecryptionFailed(key_id, "envelope is truncated")
        return key_id, raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
