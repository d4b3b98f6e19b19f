"""The preview gateway: a reverse proxy from a preview URL to its project's dev server.

It is a plain ASGI app. HTTP goes through one shared :class:`httpx.AsyncClient`,
streamed both ways (the request body is read from ASGI as the upstream consumes it,
the response body is relayed chunk by chunk). A WebSocket upgrade (Vite's or Next's
hot reload) is opened upstream with the ``websockets`` client, offering the browser's
subprotocols, and frames are relayed both ways until either side closes.

Only the project's own dev server is ever a target: the target comes from the
project's sandbox (the internal URL the sandbox reports), never from the request.
Anything without a valid token, or whose dev server does not run, is a bare 404.

**Forwarding.** When the dev server runs on another replica, the target is that
replica's gateway (its advertised URL, from the database, never from the request):
the request goes there through the same code, Host unchanged, with a hop proof
(:meth:`~builder.preview.tokens.PreviewSigner.hop`) that the receiving replica
checks. It checks the token again, trusts the hop's ``X-Forwarded-*`` headers and
never forwards the request a second time, so replicas cannot loop and the hop is no
open proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from starlette.types import Message, Receive, Scope, Send
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from builder.log import get_logger
from builder.preview.tokens import PreviewGrant, PreviewSigner

__all__ = [
    "HOP_HEADER",
    "Misdirected",
    "PreviewGateway",
    "PreviewTarget",
    "TargetResolver",
    "token_of_host",
]

HOP_HEADER = "x-builder-preview-hop"
"""Carries the forwarding replica's hop proof; never passed on to a dev server."""

_log = get_logger("builder.preview.gateway")

# RFC 9110 §7.6.1: never forwarded by a proxy (plus Host, which names the upstream).
# Content-Length is kept: a body streams through with the length it was announced with.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        HOP_HEADER,
    }
)
# The service's own credentials never reach a preview.
_CREDENTIALS = frozenset({"authorization", "x-api-key", "cookie"})
_WS_OWN = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)


@dataclass(frozen=True, slots=True)
class PreviewTarget:
    """Where a project's preview is served from right now.

    Attributes:
        url: The dev server's internal base URL (``http://127.0.0.1:5173/``, an E2B host).
        generation: The dev server's start time (whole seconds); tokens name it.
        forwarded: The target is another replica's gateway, not a dev server: the
            request is relayed with its Host unchanged and that replica checks it again.
    """

    url: str
    generation: int
    forwarded: bool = False


TargetResolver = Callable[[PreviewGrant, bool], Awaitable[PreviewTarget | None]]
"""Finds the dev server a grant names, ``(grant, may_forward)``: a dev server of this
replica, else (when ``may_forward``) the gateway of the replica that runs it; None when
there is none (answered 404). Raises :class:`Misdirected` when forwarding is off."""


class Misdirected(Exception):
    """The preview is served by another replica and forwarding is off (answered 421).

    Attributes:
        where: That replica's advertised URL.
    """

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


def token_of_host(host: str, *, suffix: str) -> str | None:
    """The token label of ``host`` when it is ``<token><suffix>`` (port ignored), else None."""
    name = _host_name(host)
    if not name.endswith(suffix) or name == suffix.lstrip("."):
        return None
    label = name[: -len(suffix)]
    return label if label and "." not in label else None


class PreviewGateway:
    """ASGI app serving previews: ``<token><host suffix>`` → the project's dev server.

    Args:
        signer: Checks tokens.
        resolve: Finds the project's dev server (or the replica that holds it).
        host_suffix: What follows the token label in the preview host, e.g.
            ``.preview.example.com``.
        timeout: Seconds to connect, and between bytes of a response.
    """

    def __init__(
        self,
        *,
        signer: PreviewSigner,
        resolve: TargetResolver,
        host_suffix: str,
        timeout: float = 30.0,
    ) -> None:
        self.signer = signer
        self.resolve = resolve
        self.host_suffix = host_suffix
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The shared upstream client (made on first use, closed by :meth:`aclose`)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                trust_env=False,  # the target is ours; never through an environment proxy
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            )
        return self._client

    async def aclose(self) -> None:
        """Close upstream connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def is_preview_host(self, scope: Scope) -> bool:
        """Whether the request's Host is under the preview domain (any token, valid or not)."""
        return _host_name(_header(scope, b"host") or "").endswith(self.host_suffix)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return
        routed = None
        try:
            routed = await self._target(scope)
        except Misdirected as exc:
            await _plain(
                send,
                scope,
                421,
                f"this preview is served by the replica at {exc.where}\n",
                headers=[(b"x-builder-replica", exc.where.encode("latin-1"))],
            )
            return
        if routed is None:
            await _not_found(scope, receive, send)
            return
        target, hop = routed
        if scope["type"] == "http":
            await self._http(scope, receive, send, target, hop)
        else:
            await self._websocket(scope, receive, send, target, hop)

    async def _target(self, scope: Scope) -> tuple[PreviewTarget, _Hop] | None:
        token = token_of_host(_header(scope, b"host") or "", suffix=self.host_suffix)
        grant = self.signer.verify(token) if token else None
        if token is None or grant is None:
            return None
        proof = _header(scope, HOP_HEADER.encode())
        came_forwarded = proof is not None
        if came_forwarded and not self.signer.verify_hop(token, proof or ""):
            return None  # a hop proof that is not ours
        target = await self.resolve(grant, not came_forwarded)
        if target is None:
            return None
        if target.forwarded:
            if came_forwarded:
                return None  # never forwarded twice: replicas cannot loop
            return target, _Hop(outgoing=self.signer.hop(token), incoming=False)
        if target.generation != grant.generation:
            return None
        return target, _Hop(outgoing=None, incoming=came_forwarded)

    # --- HTTP -------------------------------------------------------------------
    async def _http(
        self, scope: Scope, receive: Receive, send: Send, target: PreviewTarget, hop: _Hop
    ) -> None:
        url = _upstream_url(target.url, scope)
        headers = _forward_headers(scope, hop)
        has_body = _header(scope, b"content-length") not in (None, "0") or (
            _header(scope, b"transfer-encoding") is not None
        )
        request = self.client.build_request(
            scope["method"],
            url,
            headers=headers,
            content=_request_body(receive) if has_body else None,
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException:
            await _plain(send, scope, 504, "the preview's dev server did not answer in time\n")
            return
        except httpx.HTTPError as exc:
            _log.info("preview.upstream_failed", url=url, error=str(exc))
            await _plain(send, scope, 502, "the preview's dev server is not reachable\n")
            return
        try:
            out = [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in response.headers.multi_items()
                if name.lower() not in _HOP_BY_HOP
            ]
            if "cache-control" not in response.headers:
                # A preview shows the files as they are now. A server that says nothing
                # about caching (python's http.server) answers a revalidation by its
                # files' mtime in whole seconds: a file rewritten within the second it
                # was shown would stay stale in the browser.
                out.append((b"cache-control", b"no-store"))
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": out}
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.HTTPError as exc:
            _log.info("preview.upstream_broke", url=url, error=str(exc))
        finally:
            await response.aclose()

    # --- WebSocket --------------------------------------------------------------
    async def _websocket(
        self, scope: Scope, receive: Receive, send: Send, target: PreviewTarget, hop: _Hop
    ) -> None:
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        url = _upstream_url(target.url, scope)
        url = "ws" + url[4:] if url.startswith("http") else url
        headers = [
            (name, value)
            for name, value in _forward_headers(scope, hop)
            if name.lower() not in _WS_OWN and name.lower() not in ("origin", "host")
        ]
        where: dict[str, object] = {}
        if target.forwarded:
            # The handshake names the preview host (the other replica routes on it) and
            # the connection goes to the other replica's address.
            split = urlsplit(url)
            where = {"host": split.hostname, "port": split.port or _default_port(split.scheme)}
            if split.scheme == "wss":
                where["server_hostname"] = split.hostname
            url = f"{split.scheme}://{_header(scope, b'host') or split.netloc}{_path(scope)}"
        offered = list(scope.get("subprotocols") or [])
        try:
            upstream = await ws_connect(
                url,
                additional_headers=headers,
                subprotocols=offered or None,
                open_timeout=self.timeout,
                max_size=None,
                compression=None,
                proxy=None,
                user_agent_header=None,
                **where,  # type: ignore[arg-type]
            )
        except InvalidStatus as exc:
            await send(
                {
                    "type": "websocket.close",
                    "code": 1008 if exc.response.status_code == 404 else 1011,
                }
            )
            return
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            _log.info("preview.ws_upstream_failed", url=url, error=str(exc))
            await send({"type": "websocket.close", "code": 1011})
            return
        async with upstream:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
            await _relay(upstream, receive, send)


async def _relay(upstream: object, receive: Receive, send: Send) -> None:
    from websockets.asyncio.client import ClientConnection

    assert isinstance(upstream, ClientConnection)

    async def down() -> None:  # dev server → browser
        try:
            async for message in upstream:
                if isinstance(message, str):
                    await send({"type": "websocket.send", "text": message})
                else:
                    await send({"type": "websocket.send", "bytes": message})
        except ConnectionClosed:
            pass
        code = upstream.close_code or 1000
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code if code != 1006 else 1011})

    async def up() -> None:  # browser → dev server
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                data = message.get("text")
                try:
                    await upstream.send(data if data is not None else message.get("bytes") or b"")
                except ConnectionClosed:
                    return
            elif message["type"] == "websocket.disconnect":
                await upstream.close(message.get("code", 1000))
                return

    tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- helpers --------------------------------------------------------------------
def _host_name(host: str) -> str:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name.lower().rstrip(".")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


@dataclass(frozen=True, slots=True)
class _Hop:
    outgoing: str | None
    """The hop proof to send: the request goes to another replica."""
    incoming: bool
    """The request came from another replica with a valid proof."""


def _default_port(scheme: str) -> int:
    return 443 if scheme in ("https", "wss") else 80


def _path(scope: Scope) -> str:
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string") or b""
    text = bytes(path).decode("latin-1")
    return text + ("?" + query.decode("latin-1") if query else "")


def _upstream_url(base: str, scope: Scope) -> str:
    split = urlsplit(base)
    return f"{split.scheme}://{split.netloc}{_path(scope)}"


def _forward_headers(scope: Scope, hop: _Hop) -> list[tuple[str, str]]:
    """The request's headers for the next hop: hop-by-hop and credential headers
    dropped, ``X-Forwarded-*`` set (passed on from a replica's hop, else made here), the
    Host kept when the next hop is another replica's gateway."""
    connection_tokens = {
        token.strip().lower() for token in (_header(scope, b"connection") or "").split(",")
    }
    keep_host = hop.outgoing is not None
    headers: list[tuple[str, str]] = []
    prior: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = bytes(raw_name).decode("latin-1").lower()
        value = bytes(raw_value).decode("latin-1")
        if name.startswith("x-forwarded-"):
            prior.setdefault(name, value)
            continue
        dropped = name in _HOP_BY_HOP or name in connection_tokens or name in _CREDENTIALS
        if dropped and not (keep_host and name == "host"):
            continue
        headers.append((name, value))
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    host = _header(scope, b"host") or ""
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    if hop.incoming:  # a replica's: what it saw of the browser is what counts
        chain = prior.get("x-forwarded-for")
        headers += [
            ("x-forwarded-for", f"{chain}, {peer}" if chain else peer),
            ("x-forwarded-host", prior.get("x-forwarded-host", host)),
            ("x-forwarded-proto", prior.get("x-forwarded-proto", scheme)),
        ]
    else:  # the browser's own claims are not trusted
        headers += [
            ("x-forwarded-for", peer),
            ("x-forwarded-host", host),
            ("x-forwarded-proto", scheme),
        ]
    if hop.outgoing is not None:
        headers.append((HOP_HEADER, hop.outgoing))
    return headers


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _plain(
    send: Send,
    scope: Scope,
    status: int,
    text: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await receive()
    await _plain(send, scope, 404, "not found\n")
