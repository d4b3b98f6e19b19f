"""The studio's page and session against real servers: the page's policy, signing in,
the session cookie standing in for the key through the one auth layer, and CSRF."""

from __future__ import annotations

import re
import uuid

import httpx

from builder.http.studio.session import SESSION_COOKIE, session_signer
from builder.settings import Settings
from tests.http.conftest import ENCRYPTION_KEY
from tests.http.server import ServerProcess

PRODUCTION = Settings(environment="production", encryption_keys=ENCRYPTION_KEY)


def _sign_in(server: ServerProcess, key: str | None) -> tuple[str, str, httpx.Response]:
    """Sign in; returns the cookie value, the CSRF token and the response."""
    with server.client() as client:
        response = client.post("/api/sign-in", json={"api_key": key} if key else {})
    assert response.status_code == 200, response.text
    match = re.match(rf"{SESSION_COOKIE}=([^;]+);", response.headers["set-cookie"])
    assert match
    return match.group(1), response.json()["csrf_token"], response


def _cookie_client(server: ServerProcess, cookie: str) -> httpx.Client:
    # The cookie is Secure in production; a test over plain HTTP sends it by hand.
    return httpx.Client(
        base_url=server.url, headers={"cookie": f"{SESSION_COOKIE}={cookie}"}, timeout=60
    )


def test_the_page_and_its_modules_are_served_under_a_strict_policy(
    dev_server: ServerProcess,
) -> None:
    with dev_server.client() as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "style-src 'self';" in policy
        assert "unsafe" not in policy  # no inline script or style, no eval
        assert "frame-src 'none'" in policy  # this server serves no previews
        assert "frame-ancestors 'none'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        scripts = re.findall(r"<script[^>]*>", page.text)
        assert scripts and all(" src=" in tag for tag in scripts), scripts
        for path, kind in (
            ("/studio/app.js", "javascript"),
            ("/studio/project.js", "javascript"),
            ("/studio/vendor/preact.module.js", "javascript"),
            ("/studio/studio.css", "text/css"),
        ):
            asset = client.get(path)
            assert asset.status_code == 200, path
            assert kind in asset.headers["content-type"], path
            assert asset.headers["cache-control"] == "no-cache"
            assert "script-src 'self'" in asset.headers["content-security-policy"]
        packed = client.get("/studio/vendor/preact.module.js", headers={"accept-encoding": "gzip"})
        assert packed.headers["content-encoding"] == "gzip"
        assert int(packed.headers["content-length"]) < len(packed.content) / 2
        assert client.get("/studio/nothing.js").status_code == 404
        assert client.get("/studio/%2e%2e/routes.py").status_code == 404  # the module beside
        # The API keeps its own policy.
        api = client.get("/api/health").headers["content-security-policy"]
        assert api.startswith("default-src 'none'") and "script-src" not in api


def test_a_key_becomes_a_strict_cookie_the_api_accepts_with_its_csrf_token(
    prod_server: ServerProcess,
) -> None:
    key = prod_server.new_key(f"studio-{uuid.uuid4().hex[:8]}")
    cookie, csrf, response = _sign_in(prod_server, key)
    assert key not in response.headers["set-cookie"] and key not in response.text
    flags = {f.strip().lower() for f in response.headers["set-cookie"].split(";")[1:]}
    assert {"httponly", "samesite=strict", "secure", "path=/"} <= flags
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["anonymous"] is False
    assert response.json()["previews"] is False

    with _cookie_client(prod_server, cookie) as browser:
        assert browser.get("/api/projects").status_code == 200
        session = browser.get("/api/session").json()
        assert session["csrf_token"] == csrf
        assert session["user"]["name"] == response.json()["user"]["name"]

        refused = browser.post("/api/projects", json={"name": "no token"})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
        assert "x-csrf-token" in refused.json()["error"]["message"]
        wrong = browser.post(
            "/api/projects", json={"name": "wrong"}, headers={"x-csrf-token": csrf[:-2] + "AA"}
        )
        assert wrong.status_code == 403
        created = browser.post(
            "/api/projects", json={"name": "with token"}, headers={"x-csrf-token": csrf}
        )
        assert created.status_code == 201, created.text

        # A key header is its own credential: no cookie, no CSRF token needed.
        with prod_server.client(key) as client:
            assert client.post("/api/projects", json={"name": "by key"}).status_code == 201

        out = browser.delete("/api/session", headers={"x-csrf-token": csrf})
        assert out.status_code == 204
        assert "Max-Age=0" in out.headers["set-cookie"]


def test_a_forged_expired_or_anonymous_session_is_refused_in_production(
    prod_server: ServerProcess,
) -> None:
    key = prod_server.new_key(f"studio-{uuid.uuid4().hex[:8]}")
    cookie, _, _ = _sign_in(prod_server, key)
    signer = session_signer(PRODUCTION)  # the server's own signing key
    assert signer.verify(cookie) is not None
    version, subject, expires, nonce, mac = cookie.split(".")
    other = f"{version}.{'0' * 64}.{expires}.{nonce}.{mac}"
    forged_by_another_secret = session_signer(
        Settings(environment="production", secret_key="not-the-servers")
    ).issue(subject)
    for bad in (
        other,  # another key's hash under this cookie's MAC
        cookie[:-3] + "AAA",  # a broken MAC
        forged_by_another_secret,
        signer.issue(subject, now=0),  # expired in 1970
        signer.issue(None),  # the anonymous user: not in production
        "garbage",
    ):
        with _cookie_client(prod_server, bad) as browser:
            response = browser.get("/api/projects")
        assert response.status_code == 401, bad
        assert response.json()["error"]["message"] == "the session has ended; sign in again"
    with _cookie_client(prod_server, cookie) as browser:
        assert browser.get("/api/projects").status_code == 200


def test_revoking_the_key_ends_its_sessions(prod_server: ServerProcess) -> None:
    user = f"studio-{uuid.uuid4().hex[:8]}"
    cookie, _, _ = _sign_in(prod_server, prod_server.new_key(user))
    with _cookie_client(prod_server, cookie) as browser:
        assert browser.get("/api/session").status_code == 200
        prod_server.revoke_keys(user)
        assert browser.get("/api/session").status_code == 401


def test_signing_in_needs_a_valid_key_in_production_and_the_studios_own_origin(
    prod_server: ServerProcess,
) -> None:
    with prod_server.client() as client:
        for body, message in (
            ({}, "an API key is required to sign in"),
            ({"api_key": "bld_" + "x" * 40}, "invalid API key"),
        ):
            response = client.post("/api/sign-in", json=body)
            assert response.status_code == 401
            assert response.json()["error"]["message"] == message
            assert "set-cookie" not in response.headers
        key = prod_server.new_key(f"studio-{uuid.uuid4().hex[:8]}")
        cross = client.post(
            "/api/sign-in", json={"api_key": key}, headers={"origin": "https://evil.example"}
        )
        assert cross.status_code == 403 and "set-cookie" not in cross.headers
        same = client.post(
            "/api/sign-in", json={"api_key": key}, headers={"origin": prod_server.url}
        )
        assert same.status_code == 200
        assert client.post("/api/sign-in", json={"key": key}).status_code == 422


def test_development_signs_in_the_local_user_without_a_key(dev_server: ServerProcess) -> None:
    cookie, csrf, response = _sign_in(dev_server, None)
    assert response.json()["anonymous"] is True
    assert response.json()["user"]["name"] == "local"
    assert "secure" not in response.headers["set-cookie"].lower()
    with _cookie_client(dev_server, cookie) as browser:
        assert browser.post("/api/projects", json={"name": "x"}).status_code == 403
        created = browser.post("/api/projects", json={"name": "x"}, headers={"x-csrf-token": csrf})
        assert created.status_code == 201
