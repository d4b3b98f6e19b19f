"""What the preview gateway adds per proxied request and per HMR (WebSocket) message.

Three uvicorn processes on loopback: a stand-in dev server (``GET /`` answers a 2 KiB
page; ``/hmr`` echoes WebSocket messages, as Vite's HMR socket carries small JSON
messages), the preview gateway (:class:`builder.preview.gateway.PreviewGateway`, the
same object ``builder serve`` mounts) whose resolver points at it, and a second gateway
playing the replica that does not run the dev server: its resolver forwards every
request to the first one, hop proof included. One client measures sequential round
trips, alternating rounds between *direct* (to the dev server), *gateway* (the signed
``<token>.localhost`` host on the gateway) and *forwarded* (the same host on the second
gateway), so all see the same machine load. Run ``python -m bench.preview_gateway``; the
table goes into docs/benchmarks.md between the ``bench:preview_gateway`` markers.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid

import httpx
from websockets.asyncio.client import connect

from bench.report import write_section

NAME = "preview_gateway"
ROUNDS = 5
REQUESTS = 300
MESSAGES = 500
PROJECT = uuid.UUID(int=7)
KEY = b"b" * 32


def upstream_app() -> object:
    """The stand-in dev server (uvicorn factory)."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    page = "<!doctype html>" + "x" * 2048

    async def index(request: object) -> HTMLResponse:
        return HTMLResponse(page)

    async def hmr(ws: WebSocket) -> None:
        await ws.accept(subprotocol="vite-hmr")
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await ws.send_text(await ws.receive_text())

    return Starlette(routes=[Route("/", index), WebSocketRoute("/hmr", hmr)])


def gateway_app() -> object:
    """The gateway, resolving every valid token to the dev server on ``$UPSTREAM``."""
    import os

    from builder.preview.gateway import PreviewGateway, PreviewTarget
    from builder.preview.tokens import PreviewGrant, PreviewSigner

    forward = os.environ.get("FORWARD_TO")
    if forward:  # the replica that does not run the dev server
        target = PreviewTarget(url=forward, generation=1, forwarded=True)
    else:
        target = PreviewTarget(url=os.environ["UPSTREAM"], generation=1)

    async def resolve(grant: PreviewGrant, may_forward: bool) -> PreviewTarget | None:
        if grant.project_id != PROJECT or (target.forwarded and not may_forward):
            return None
        return target

    return PreviewGateway(
        signer=PreviewSigner(KEY, ttl=3600), resolve=resolve, host_suffix=".localhost"
    )


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(factory: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    import os

    command = [sys.executable, "-m", "uvicorn", "--factory", f"bench.preview_gateway:{factory}"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, env={**os.environ, **env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{factory} did not start")


async def _http(url: str, host: str | None) -> float:
    headers = {"host": host} if host else {}
    async with httpx.AsyncClient(headers=headers) as client:
        await client.get(url)
        started = time.perf_counter()
        for _ in range(REQUESTS):
            (await client.get(url)).raise_for_status()
        return (time.perf_counter() - started) / REQUESTS


async def _ws(url: str, host: str | None) -> float:
    # Through the gateway: the URL names the preview host, the socket goes to loopback.
    if host:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        url, where = f"ws://{host}/hmr", {"host": "127.0.0.1", "port": port}
    else:
        where = {}
    async with connect(url, subprotocols=["vite-hmr"], **where) as ws:  # type: ignore[list-item, arg-type]
        message = '{"type":"update","updates":[{"path":"/main.js","timestamp":1}]}'
        await ws.send(message)
        await ws.recv()
        started = time.perf_counter()
        for _ in range(MESSAGES):
            await ws.send(message)
            await ws.recv()
        return (time.perf_counter() - started) / MESSAGES


async def measure() -> dict[str, dict[str, list[float]]]:
    """Median-ready samples: seconds per round trip, by kind and path."""
    from builder.preview.tokens import PreviewSigner

    up_port, gw_port, fw_port = _port(), _port(), _port()
    upstream = _serve("upstream_app", up_port, {})
    gateway = _serve("gateway_app", gw_port, {"UPSTREAM": f"http://127.0.0.1:{up_port}/"})
    forwarder = _serve("gateway_app", fw_port, {"FORWARD_TO": f"http://127.0.0.1:{gw_port}/"})
    token = PreviewSigner(KEY, ttl=3600).sign(PROJECT, generation=1)
    ports = {"direct": up_port, "gateway": gw_port, "forwarded": fw_port}
    samples: dict[str, dict[str, list[float]]] = {
        "request": {path: [] for path in ports},
        "hmr": {path: [] for path in ports},
    }
    try:
        for _ in range(ROUNDS):
            for path, port in ports.items():
                host = None if path == "direct" else f"{token}.localhost:{port}"
                samples["request"][path].append(await _http(f"http://127.0.0.1:{port}/", host))
                samples["hmr"][path].append(await _ws(f"ws://127.0.0.1:{port}/hmr", host))
    finally:
        for process in (upstream, gateway, forwarder):
            process.terminate()
            process.wait(10)
    return samples


def main() -> None:
    samples = asyncio.run(measure())
    rows = []
    for kind, label in (("request", "HTTP GET (2 KiB page)"), ("hmr", "HMR message round trip")):
        direct, gateway, forwarded = (
            statistics.median(samples[kind][path]) * 1000
            for path in ("direct", "gateway", "forwarded")
        )
        rows.append(
            f"| {label} | {direct:.3f} ms | {gateway:.3f} ms | {gateway / direct:.2f}× "
            f"| {forwarded:.3f} ms | {forwarded / direct:.2f}× | +{forwarded - gateway:.3f} ms |"
        )
    body = "\n".join(
        [
            "## Preview gateway",
            "",
            f"Sequential round trips on loopback, median of {ROUNDS} alternating rounds "
            f"({REQUESTS} requests / {MESSAGES} messages each); {platform.machine()}, "
            f"{platform.python_implementation()} {platform.python_version()}. "
            "Command: `python -m bench.preview_gateway`.",
            "",
            "| round trip | direct to the dev server | through the gateway | gateway ÷ direct "
            "| forwarded by another replica | forwarded ÷ direct | the forward adds |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            "*Forwarded* is a second gateway relaying to the first (the hop a replica "
            "makes for a dev server another replica runs), with the hop proof checked; in "
            "`builder serve` the forwarding replica also reads the project's row (one "
            "primary-key query) per request, which this measurement leaves out.",
        ]
    )
    write_section(NAME, body)
    print(body)


if __name__ == "__main__":
    main()
