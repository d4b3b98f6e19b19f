"""What the preview gateway adds per proxied request and per HMR (WebSocket) message.

Two uvicorn processes on loopback: a stand-in dev server (``GET /`` answers a 2 KiB
page; ``/hmr`` echoes WebSocket messages, as Vite's HMR socket carries small JSON
messages), and the preview gateway (:class:`builder.preview.gateway.PreviewGateway`,
the same object ``builder serve`` mounts) whose resolver points at it. One client
measures sequential round trips, alternating rounds between *direct* (to the dev
server) and *gateway* (the signed ``<token>.localhost`` host on the gateway), so both
see the same machine load. Run ``python -m bench.preview_gateway``; the table goes into
docs/benchmarks.md between the ``bench:preview_gateway`` markers.
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

    target = PreviewTarget(url=os.environ["UPSTREAM"], generation=1)

    async def resolve(grant: PreviewGrant, may_forward: bool) -> PreviewTarget | None:
        return target if grant.project_id == PROJECT else None

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

    up_port, gw_port = _port(), _port()
    upstream = _serve("upstream_app", up_port, {})
    gateway = _serve("gateway_app", gw_port, {"UPSTREAM": f"http://127.0.0.1:{up_port}/"})
    host = PreviewSigner(KEY, ttl=3600).sign(PROJECT, generation=1) + f".localhost:{gw_port}"
    samples: dict[str, dict[str, list[float]]] = {
        "request": {"direct": [], "gateway": []},
        "hmr": {"direct": [], "gateway": []},
    }
    try:
        for _ in range(ROUNDS):
            samples["request"]["direct"].append(await _http(f"http://127.0.0.1:{up_port}/", None))
            samples["request"]["gateway"].append(await _http(f"http://127.0.0.1:{gw_port}/", host))
            samples["hmr"]["direct"].append(await _ws(f"ws://127.0.0.1:{up_port}/hmr", None))
            samples["hmr"]["gateway"].append(await _ws(f"ws://127.0.0.1:{gw_port}/hmr", host))
    finally:
        for process in (upstream, gateway):
            process.terminate()
            process.wait(10)
    return samples


def main() -> None:
    samples = asyncio.run(measure())
    rows = []
    for kind, label in (("request", "HTTP GET (2 KiB page)"), ("hmr", "HMR message round trip")):
        direct = statistics.median(samples[kind]["direct"]) * 1000
        gateway = statistics.median(samples[kind]["gateway"]) * 1000
        rows.append(
            f"| {label} | {direct:.3f} ms | {gateway:.3f} ms | "
            f"+{gateway - direct:.3f} ms | {gateway / direct:.2f}× |"
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
            "| round trip | direct to the dev server | through the gateway | added "
            "| gateway ÷ direct |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    write_section(NAME, body)
    print(body)


if __name__ == "__main__":
    main()
