"""The gateway's proxy hygiene, against a real upstream HTTP server on loopback."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from builder.http.preview import PreviewDispatch
from builder.preview.gateway import (
    HOP_HEADER,
    Misdirected,
    PreviewGateway,
    PreviewTarget,
    token_of_host,
)
from builder.preview.tokens import PreviewGrant, PreviewSigner
from tests.http.server import free_port

PROJECT = uuid.UUID(int=1)
SIGNER = PreviewSigner(b"s" * 32, ttl=600)
LIMIT = 1024


class Upstream:
    """A dev server stand-in that records each request's headers and body size."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("transfer-encoding") == "chunked":
                    while size := int(self.rfile.readline().strip(), 16):
                        body += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                owner.seen.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "size": len(body)}
                )
                payload = b"hello from the dev server"
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(payload)))
                self.send_header("keep-alive", "timeout=5")
                self.send_header("x-dev", "1")
                if "cached" in self.path:
                    self.send_header("cache-control", "max-age=60")
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.handle_error = lambda *args: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self._server.server_port}/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


async def _api(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": b"the api"})


@asynccontextmanager
async def _client(
    target: PreviewTarget | None, *, asked: list[bool] | None = None, misdirect: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    async def resolve(grant: PreviewGrant, may_forward: bool) -> PreviewTarget | None:
        if asked is not None:
            asked.append(may_forward)
        if misdirect:
            raise Misdirected("http://10.0.0.7:8000")
        return target if grant.project_id == PROJECT else None

    gateway = PreviewGateway(signer=SIGNER, resolve=resolve, host_suffix=".preview.test")
    app = PreviewDispatch(_api, gateway=gateway, preview_port=None, body_limit=LIMIT)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield client
    finally:
        await gateway.aclose()


def _host(generation: int = 5, project: uuid.UUID = PROJECT) -> str:
    return SIGNER.sign(project, generation=generation) + ".preview.test"


async def test_headers_are_cleaned_and_forwarded(upstream: Upstream) -> None:
    host = _host()  # signed with an expiry: a second signing a second later differs
    async with _client(PreviewTarget(url=upstream.url, generation=5)) as client:
        response = await client.get(
            "/app.js?x=1",
            headers={
                "host": host,
                "authorization": "Bearer builder-key",
                "x-api-key": "builder-key",
                "cookie": "session=s",
                "connection": "keep-alive, x-secret-hop",
                "x-secret-hop": "1",
                "proxy-authorization": "Basic x",
                "x-forwarded-host": "spoofed",
                "accept": "text/javascript",
            },
        )
    assert (response.status_code, response.text) == (200, "hello from the dev server")
    assert response.headers["x-dev"] == "1" and "keep-alive" not in response.headers
    (seen,) = upstream.seen
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert seen["path"] == "/app.js?x=1" and headers["accept"] == "text/javascript"
    for dropped in ("authorization", "x-api-key", "cookie", "x-secret-hop", "proxy-authorization"):
        assert dropped not in headers, dropped
    assert headers["host"] == upstream.url.split("//")[1].rstrip("/")
    assert headers["x-forwarded-host"] == host
    assert headers["x-forwarded-proto"] == "http" and headers["x-forwarded-for"]


async def test_a_static_server_s_pages_are_never_shown_stale(
    upstream: Upstream, tmp_path: Path
) -> None:
    """python's http.server (the static sites' dev server) sends ``Last-Modified`` in
    whole seconds and no ``Cache-Control``: a page rewritten within the second it was
    shown would be revalidated as unchanged (304). The gateway tells browsers not to
    keep what a server said nothing about; what a server says is kept."""
    (tmp_path / "index.html").write_text("<h1>Open</h1>")
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    static = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    static.RequestHandlerClass.log_message = lambda *args: None  # type: ignore[method-assign]
    threading.Thread(target=static.serve_forever, daemon=True).start()
    try:
        target = PreviewTarget(url=f"http://127.0.0.1:{static.server_port}/", generation=5)
        async with _client(target) as client:
            page = await client.get("/index.html", headers={"host": _host()})
        assert (page.status_code, page.text) == (200, "<h1>Open</h1>")
        assert page.headers["last-modified"] and page.headers["cache-control"] == "no-store"
    finally:
        static.shutdown()
        static.server_close()
    async with _client(PreviewTarget(url=upstream.url, generation=5)) as client:
        said = await client.get("/cached.js", headers={"host": _host()})
    assert said.headers.get_list("cache-control") == ["max-age=60"]


async def test_request_bodies_stream_through_and_the_limit_holds(upstream: Upstream) -> None:
    async def chunks(total: int) -> Any:
        for _ in range(total // 256):
            yield b"x" * 256

    async with _client(PreviewTarget(url=upstream.url, generation=5)) as client:
        fits = await client.post("/form", headers={"host": _host()}, content=b"y" * LIMIT)
        streamed = await client.post("/form", headers={"host": _host()}, content=chunks(LIMIT))
        too_big = await client.post("/form", headers={"host": _host()}, content=chunks(LIMIT * 4))
        declared = await client.post("/form", headers={"host": _host()}, content=b"z" * 2 * LIMIT)
    assert fits.status_code == 200 and streamed.status_code == 200
    assert [seen["size"] for seen in upstream.seen[:2]] == [LIMIT, LIMIT]
    assert (too_big.status_code, declared.status_code) == (413, 413)


async def test_only_a_valid_token_for_the_running_dev_server_reaches_it(
    upstream: Upstream,
) -> None:
    async with _client(PreviewTarget(url=upstream.url, generation=5)) as client:
        stale = await client.get("/", headers={"host": _host(generation=4)})
        other = await client.get("/", headers={"host": _host(project=uuid.UUID(int=2))})
        api = await client.get("/api/health", headers={"host": "api.test"})
        nested = await client.get("/", headers={"host": "a." + _host()})
    assert [r.status_code for r in (stale, other, nested)] == [404, 404, 404]
    assert stale.text == "not found\n"
    assert api.status_code == 299  # not a preview host: the API's
    assert upstream.seen == []


async def test_a_dev_server_that_is_gone_is_a_502() -> None:
    gone = f"http://127.0.0.1:{free_port()}/"
    async with _client(PreviewTarget(url=gone, generation=5)) as client:
        response = await client.get("/", headers={"host": _host()})
    assert response.status_code == 502


async def test_a_forward_keeps_the_host_and_proves_the_hop(upstream: Upstream) -> None:
    """The next replica gets the preview host, the hop proof and no credentials."""
    host = _host()
    async with _client(PreviewTarget(url=upstream.url, generation=0, forwarded=True)) as client:
        response = await client.get(
            "/src/main.js",
            headers={"host": host, "cookie": "session=s", "x-forwarded-for": "6.6.6.6"},
        )
    assert response.status_code == 200
    (seen,) = upstream.seen
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["host"] == host and seen["path"] == "/src/main.js"
    assert SIGNER.verify_hop(host.split(".")[0], headers[HOP_HEADER])
    assert "cookie" not in headers
    assert headers["x-forwarded-for"] != "6.6.6.6"  # a browser's claim is not passed on


async def test_a_forwarded_request_is_served_here_or_nowhere(upstream: Upstream) -> None:
    """With a valid hop proof: never forwarded again; its X-Forwarded-* are trusted.
    A proof that is not the replicas' own is a bare 404."""
    host = _host()
    token = host.split(".")[0]
    asked: list[bool] = []
    elsewhere = PreviewTarget(url=upstream.url, generation=0, forwarded=True)
    async with _client(elsewhere, asked=asked) as client:
        again = await client.get("/", headers={"host": host, HOP_HEADER: SIGNER.hop(token)})
    assert again.status_code == 404 and asked == [False] and upstream.seen == []

    async with _client(PreviewTarget(url=upstream.url, generation=5), asked=asked) as client:
        hopped = await client.get(
            "/",
            headers={
                "host": host,
                HOP_HEADER: SIGNER.hop(token),
                "x-forwarded-for": "203.0.113.9",
                "x-forwarded-proto": "https",
                "x-forwarded-host": "seen.by.the.first.replica",
            },
        )
        forged = await client.get("/", headers={"host": host, HOP_HEADER: "0" * 64})
        other_key = PreviewSigner(b"x" * 32, ttl=60).hop(token)
        foreign = await client.get("/", headers={"host": host, HOP_HEADER: other_key})
    assert hopped.status_code == 200
    assert (forged.status_code, forged.text) == (404, "not found\n")
    assert foreign.status_code == 404
    (seen,) = upstream.seen
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert HOP_HEADER not in headers  # the proof never reaches a dev server
    assert headers["x-forwarded-for"].startswith("203.0.113.9, ")
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-host"] == "seen.by.the.first.replica"


async def test_forwarding_off_is_a_421_naming_the_replica() -> None:
    async with _client(None, misdirect=True) as client:
        response = await client.get("/", headers={"host": _host()})
    assert response.status_code == 421
    assert response.headers["x-builder-replica"] == "http://10.0.0.7:8000"
    assert response.text == "this preview is served by the replica at http://10.0.0.7:8000\n"


def test_hosts_and_tokens() -> None:
    assert token_of_host("abc.preview.test:443", suffix=".preview.test") == "abc"
    assert token_of_host("ABC.Preview.Test.", suffix=".preview.test") == "abc"
    assert token_of_host("preview.test", suffix=".preview.test") is None
    assert token_of_host("a.b.preview.test", suffix=".preview.test") is None
    token = SIGNER.sign(PROJECT, generation=7, now=1000, ttl=60)
    assert SIGNER.verify(token, now=1059) is not None
    assert SIGNER.verify(token, now=1060) is None  # expired
    assert SIGNER.verify(token.upper(), now=1000) is not None  # hosts are case-insensitive
    flipped = token[:10] + ("a" if token[10] != "a" else "b") + token[11:]
    assert SIGNER.verify(flipped, now=1000) is None
    assert PreviewSigner(b"t" * 32, ttl=60).verify(token, now=1000) is None
