"""Request ids, security headers, CORS and the body limit, against a real server."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from builder.http.middleware import BodySizeLimitMiddleware
from tests.http.conftest import BODY_LIMIT
from tests.http.server import ServerProcess

SECURITY = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "cross-origin-opener-policy": "same-origin",
    "content-security-policy": (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}


def test_a_well_formed_request_id_is_kept_and_a_malformed_one_replaced(
    dev_server: ServerProcess,
) -> None:
    with dev_server.client() as client:
        kept = client.get("/api/health", headers={"x-request-id": "lb-1234.abc_DEF"})
        assert kept.headers["x-request-id"] == "lb-1234.abc_DEF"
        for bad in ("short", "has space in it", "x" * 129, "semi;colon-id"):
            replaced = client.get("/api/health", headers={"x-request-id": bad})
            assert replaced.headers["x-request-id"] != bad
            assert len(replaced.headers["x-request-id"]) == 32
        fresh = {client.get("/api/health").headers["x-request-id"] for _ in range(3)}
        assert len(fresh) == 3


def test_every_answer_has_the_request_id_and_security_headers(dev_server: ServerProcess) -> None:
    with dev_server.client() as client:
        answers = [
            client.get("/api/health"),
            client.get("/api/projects/not-a-uuid"),  # 422
            client.get("/nowhere"),  # 404 from routing
            client.put("/api/health"),  # 405
            client.post("/api/projects", content=b"x" * (BODY_LIMIT + 1)),  # 413
        ]
    assert [a.status_code for a in answers] == [200, 422, 404, 405, 413]
    for answer in answers:
        assert {k: answer.headers.get(k) for k in SECURITY} == SECURITY
        assert len(answer.headers["x-request-id"]) == 32
        if answer.status_code >= 400:
            assert answer.json()["error"]["request_id"] == answer.headers["x-request-id"]
    assert "strict-transport-security" not in answers[0].headers


def test_the_request_id_is_on_the_servers_log_lines(dev_server: ServerProcess) -> None:
    with dev_server.client() as client:
        client.get("/api/health", headers={"x-request-id": "trace-me-0001"})
    assert any('"request_id": "trace-me-0001"' in line for line in dev_server.log().splitlines())


def test_production_adds_hsts_and_cors_allows_only_configured_origins(
    prod_server: ServerProcess,
) -> None:
    with prod_server.client() as client:
        health = client.get("/api/health")
        assert health.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
        preflight = {"access-control-request-method": "POST"}
        good = client.options(
            "/api/projects", headers={"origin": "https://app.example.com", **preflight}
        )
        evil = client.options(
            "/api/projects", headers={"origin": "https://evil.example", **preflight}
        )
        unauthorized = client.get("/api/projects", headers={"origin": "https://app.example.com"})
    assert good.status_code == 200
    assert good.headers["access-control-allow-origin"] == "https://app.example.com"
    assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
    assert unauthorized.status_code == 401
    assert unauthorized.headers["access-control-allow-origin"] == "https://app.example.com"


def test_docs_pages_get_a_relaxed_policy_in_development(dev_server: ServerProcess) -> None:
    with dev_server.client() as client:
        docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert (
        "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net"
        in (docs.headers["content-security-policy"])
    )


def test_a_body_over_the_limit_is_refused_by_its_content_length(dev_server: ServerProcess) -> None:
    with dev_server.client() as client:
        response = client.post(
            "/api/projects",
            content=b'{"name": "' + b"x" * BODY_LIMIT + b'"}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert response.headers["connection"] == "close"


def _chunked(size: int) -> Iterator[bytes]:
    yield b'{"name": "'
    sent = 0
    while sent < size:
        yield b"y" * 4096
        sent += 4096
    yield b'"}'


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(
    dev_server: ServerProcess,
) -> None:
    with dev_server.client() as client:
        response = client.post(
            "/api/projects",
            content=_chunked(BODY_LIMIT * 4),
            headers={"content-type": "application/json"},
        )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_a_chunked_body_under_the_limit_is_served(dev_server: ServerProcess) -> None:
    with dev_server.client() as client:
        response = client.post(
            "/api/projects",
            content=iter([b'{"name": ', b'"chunked"}']),
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 201 and response.json()["name"] == "chunked"


def test_a_lying_content_length_cannot_smuggle_a_larger_body(dev_server: ServerProcess) -> None:
    host, port = "127.0.0.1", dev_server.port
    body = b'{"name": "' + b"z" * (BODY_LIMIT * 2) + b'"}'
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/projects HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 100\r\n\r\n" + body[:100]
        )
        head = sock.recv(65536).split(b"\r\n", 1)[0]
    # The server reads exactly the declared 100 bytes: malformed JSON, not a big body.
    assert head == b"HTTP/1.1 422 Unprocessable Entity"


async def _echo_size(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads its whole body, as a route would."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


@pytest.mark.parametrize("guarded", [True, False])
async def test_without_the_limit_a_streamed_body_is_read_whole(guarded: bool) -> None:
    app = BodySizeLimitMiddleware(_echo_size, limit=1000) if guarded else _echo_size
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]

    async def stream():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"a" * 500

    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/", content=stream())
    if guarded:
        assert response.status_code == 413
    else:
        assert (response.status_code, response.text) == (200, "5000")
