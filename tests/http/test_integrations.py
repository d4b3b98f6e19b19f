"""OAuth integrations against a provider the test runs: the whole flow and its guards."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import redis.asyncio as aioredis

from builder.circuit import redis_options
from builder.crypto import Keyring
from builder.errors import InvalidInput
from builder.http.oauth import StateSigner, VerifiedState, state_secret
from builder.persistence.database import Database
from builder.persistence.integrations import get_integration_tokens
from builder.persistence.users import get_or_create_user
from builder.settings import Settings
from tests.http.conftest import ENCRYPTION_KEY
from tests.http.oauth_provider import CLIENT_ID, CLIENT_SECRET, FakeOAuthProvider
from tests.http.server import ServerProcess
from tests.support.listener import Listener, via


def _connect(client: object, provider: str = "testhub") -> dict[str, list[str]]:
    answer = client.post(f"/api/integrations/{provider}/connect")  # type: ignore[attr-defined]
    assert answer.status_code == 200, answer.text
    return parse_qs(urlsplit(answer.json()["authorize_url"]).query)


def test_connect_callback_list_and_disconnect(
    dev_server: ServerProcess, oauth_provider: FakeOAuthProvider
) -> None:
    key = dev_server.new_key("oauth-user")
    with dev_server.client(key) as client:
        query = _connect(client)
        redirect_uri = f"{dev_server.url}/api/integrations/testhub/callback"
        assert (query["client_id"], query["redirect_uri"], query["scope"]) == (
            [CLIENT_ID],
            [redirect_uri],
            ["repo read:user"],
        )
        code = oauth_provider.issue_code(redirect_uri)
    # The provider sends the user's browser back: no API key on this request.
    with dev_server.client() as browser:
        stored = browser.get(
            "/api/integrations/testhub/callback", params={"code": code, "state": query["state"][0]}
        )
    assert stored.status_code == 200, stored.text
    assert stored.json()["provider"] == "testhub"
    assert "access_token" not in stored.text
    assert oauth_provider.token_requests[-1] == {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }

    async def tokens(db: Database) -> tuple[str, str | None]:
        user = await get_or_create_user(db, name="oauth-user")
        keyring = Keyring.from_settings(Settings(encryption_keys=ENCRYPTION_KEY))
        found = await get_integration_tokens(
            db, user_id=user.id, provider="testhub", keyring=keyring
        )
        refresh = found.refresh_token.get_secret_value() if found.refresh_token else None
        return found.access_token.get_secret_value(), refresh

    assert dev_server.run(tokens) == (f"at-{code}", f"rt-{code}")
    with dev_server.client(key) as client:
        listed = client.get("/api/integrations").json()
        assert [i["provider"] for i in listed] == ["testhub"]
        assert client.delete("/api/integrations/testhub").status_code == 204
        assert client.get("/api/integrations").json() == []
        assert client.delete("/api/integrations/testhub").status_code == 404


def _callback(server: ServerProcess, state: str, code: str = "whatever") -> tuple[int, str]:
    with server.client() as browser:
        answer = browser.get(
            "/api/integrations/testhub/callback", params={"code": code, "state": state}
        )
    return answer.status_code, answer.json()["error"]["message"]


def test_a_replayed_state_is_refused(
    dev_server: ServerProcess, oauth_provider: FakeOAuthProvider
) -> None:
    with dev_server.client(dev_server.new_key("oauth-replay")) as client:
        state = _connect(client)["state"][0]
    redirect_uri = f"{dev_server.url}/api/integrations/testhub/callback"
    first = oauth_provider.issue_code(redirect_uri)
    with dev_server.client() as browser:
        ok = browser.get(
            "/api/integrations/testhub/callback", params={"code": first, "state": state}
        )
    assert ok.status_code == 200
    second = oauth_provider.issue_code(redirect_uri)
    assert _callback(dev_server, state, second) == (
        422,
        "the OAuth state has already been used; connect again",
    )


def test_a_tampered_state_is_refused(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("oauth-tamper")) as client:
        state = _connect(client)["state"][0]
    body, _, mac = state.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["u"] = str(uuid.uuid4())  # claim to be someone else
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    assert _callback(dev_server, f"{forged}.{mac}") == (422, "the OAuth state is not valid")
    assert _callback(dev_server, "garbage") == (422, "the OAuth state is not valid")


def test_a_state_for_another_provider_or_an_unknown_provider_is_refused(
    dev_server: ServerProcess,
) -> None:
    with dev_server.client(dev_server.new_key("oauth-other")) as client:
        state = _connect(client)["state"][0]
        assert client.post("/api/integrations/nohub/connect").status_code == 404
    with dev_server.client() as browser:
        other = browser.get(
            "/api/integrations/nohub/callback", params={"code": "c", "state": state}
        )
    assert other.status_code == 404


def test_a_code_the_provider_refuses_is_invalid_input(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("oauth-badcode")) as client:
        state = _connect(client)["state"][0]
    assert _callback(dev_server, state, "never-issued") == (
        422,
        "the provider refused the authorization code (invalid_grant)",
    )


async def test_an_expired_state_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, encryption_keys=ENCRYPTION_KEY)
    secret = state_secret(settings)
    assert secret is not None
    signer = StateSigner(secret, lifetime=30)
    state, _ = signer.sign(user_id=uuid.uuid4(), provider="testhub")
    later = StateSigner(secret, lifetime=30)
    later_time = time.time() + 31
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("builder.http.oauth.time.time", lambda: later_time)
        with pytest.raises(InvalidInput, match="expired"):
            later.verify(state, provider="testhub")
    verified = signer.verify(state, provider="testhub")
    assert isinstance(verified, VerifiedState) and verified.provider == "testhub"


def test_the_signing_key_follows_the_configuration(tmp_path: Path) -> None:
    derived = state_secret(Settings(data_dir=tmp_path, encryption_keys=ENCRYPTION_KEY))
    explicit = state_secret(
        Settings(data_dir=tmp_path, encryption_keys=ENCRYPTION_KEY, secret_key="s" * 40)
    )
    assert derived is not None and len(derived) == 32
    assert derived != base64.b64decode(ENCRYPTION_KEY.split(":")[1])  # derived, not the key
    assert explicit == b"s" * 40
    assert state_secret(Settings(data_dir=tmp_path)) is None


async def test_nonce_claims_skip_a_redis_that_does_not_answer(redis_url: str) -> None:
    """The OAuth nonce store is behind the circuit breaker like every Redis user."""
    hole = Listener()
    await hole.start()
    client = aioredis.Redis.from_url(via(redis_url, hole.port), **redis_options(0.1))
    signer = StateSigner(b"k" * 32, lifetime=30, redis=client, redis_timeout=0.1, cooldown=60)
    try:
        for _ in range(5):
            state, _ = signer.sign(user_id=uuid.uuid4(), provider="testhub")
            await signer.claim(signer.verify(state, provider="testhub"))
        # One attempt reached the dead store; the open circuit spared the other four.
        assert (hole.connections, signer.circuit.openings) == (1, 1)
    finally:
        await client.aclose()
        await hole.stop()
