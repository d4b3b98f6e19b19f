"""AES-256-GCM envelopes: round trips, tampering, wrong keys and owners, rotation."""

from __future__ import annotations

import base64

import pytest

from builder.crypto import Keyring, generate_key
from builder.errors import ConfigurationError, DecryptionFailed
from builder.settings import Settings

AAD = "user-1:github:access_token"


def _key(fill: bytes) -> bytes:
    return fill * 32


@pytest.fixture
def ring() -> Keyring:
    return Keyring([("k1", _key(b"a"))])


def _tamper(envelope: str, index: int) -> str:
    version, key_id, body = envelope.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[index] ^= 0x01
    return f"{version}.{key_id}.{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"


def test_round_trip(ring: Keyring) -> None:
    envelope = ring.encrypt("gho_secret_token", aad=AAD)
    assert envelope.startswith("v1.k1.") and "gho_secret_token" not in envelope
    assert ring.decrypt_text(envelope, aad=AAD) == "gho_secret_token"
    assert ring.decrypt(ring.encrypt(b"\x00\xff", aad=AAD), aad=AAD) == b"\x00\xff"


def test_every_encryption_uses_a_fresh_nonce(ring: Keyring) -> None:
    envelopes = {ring.encrypt("same", aad=AAD) for _ in range(50)}
    nonces = {base64.urlsafe_b64decode(e.split(".")[2] + "==")[:12] for e in envelopes}
    assert len(envelopes) == len(nonces) == 50


def test_tampering_with_any_byte_fails(ring: Keyring) -> None:
    envelope = ring.encrypt("secret value", aad=AAD)
    total = len(base64.urlsafe_b64decode(envelope.split(".")[2] + "=="))
    # nonce (0-11), ciphertext (12-23), tag (last 16): every single byte is checked
    for index in range(total):
        with pytest.raises(DecryptionFailed):
            ring.decrypt(_tamper(envelope, index), aad=AAD)


def test_wrong_key_fails() -> None:
    envelope = Keyring([("k1", _key(b"a"))]).encrypt("s", aad=AAD)
    with pytest.raises(DecryptionFailed) as info:
        Keyring([("k1", _key(b"b"))]).decrypt(envelope, aad=AAD)
    assert info.value.key_id == "k1"


def test_swapped_associated_data_fails(ring: Keyring) -> None:
    envelope = ring.encrypt("s", aad="user-1:github:access_token")
    for other in (
        "user-2:github:access_token",
        "user-1:gitlab:access_token",
        "user-1:github:refresh_token",
    ):
        with pytest.raises(DecryptionFailed):
            ring.decrypt(envelope, aad=other)


@pytest.mark.parametrize(
    "envelope",
    ["", "v2.k1.AAAA", "v1..AAAA", "v1.k1.", "v1.k1.@@@@", "v1.k1.AAAA", "plaintext"],
)
def test_malformed_envelopes_fail_clearly(ring: Keyring, envelope: str) -> None:
    with pytest.raises(DecryptionFailed):
        ring.decrypt(envelope, aad=AAD)


def test_unknown_key_id_names_it(ring: Keyring) -> None:
    envelope = Keyring([("k9", _key(b"z"))]).encrypt("s", aad=AAD)
    with pytest.raises(DecryptionFailed, match="k9"):
        ring.decrypt(envelope, aad=AAD)


def test_rotation_keeps_old_ciphertexts_readable_and_reencrypt_moves_them() -> None:
    old_ring = Keyring([("old", _key(b"o"))])
    envelope = old_ring.encrypt("token", aad=AAD)
    rotated = Keyring([("new", _key(b"n")), ("old", _key(b"o"))])
    assert rotated.primary_key_id == "new" and rotated.key_ids == ["new", "old"]
    assert rotated.decrypt_text(envelope, aad=AAD) == "token"
    moved = rotated.reencrypt(envelope, aad=AAD)
    assert Keyring.key_id_of(moved) == "new"
    assert rotated.decrypt_text(moved, aad=AAD) == "token"
    assert rotated.reencrypt(moved, aad=AAD) == moved
    with pytest.raises(DecryptionFailed):  # the old key alone cannot read the moved secret
        old_ring.decrypt(moved, aad=AAD)
    with pytest.raises(DecryptionFailed):  # reencrypt authenticates before moving
        rotated.reencrypt(_tamper(envelope, 20), aad=AAD)


def test_keyring_from_settings_and_generated_keys() -> None:
    settings = Settings(encryption_keys=f"a:{generate_key()},b:{generate_key()}")
    ring = Keyring.from_settings(settings)
    assert ring.primary_key_id == "a"
    assert ring.decrypt_text(ring.encrypt("x", aad=AAD), aad=AAD) == "x"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "no encryption key configured"),
        ([("k1", b"short")], "needs 32"),
        ([("k.1", _key(b"a"))], "without '.'"),
        ([("k1", _key(b"a")), ("k1", _key(b"b"))], "appears twice"),
    ],
)
def test_missing_or_malformed_keys_are_configuration_errors(
    keys: list[tuple[str, bytes]], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Keyring(keys)


def test_missing_setting_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="BUILDER_ENCRYPTION_KEYS"):
        Keyring.from_settings(Settings())
