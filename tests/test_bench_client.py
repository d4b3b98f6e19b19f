"""The capacity benchmark's HTTP client against a real uvicorn server.

The benchmark's figures are only as good as its client's reading of the stream: this
checks that it sees every event of a server-sent stream written in pieces that cut
events (and line ends) apart, and that one connection carries request after request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from bench.h11client import Connection
from tests.http.server import free_port


async def _project(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["id"], "auth": request.headers["authorization"]})


async def _chat(request: Request) -> EventSourceResponse:
    body = await request.json()

    async def events() -> AsyncIterator[dict[str, str]]:
        yield {"event": "queued", "data": '{"position": 0}'}
        yield {"event": "message", "data": f"you said {body['prompt']}\nsecond line"}
        yield {"event": "run_finished", "data": '{"status": "success", "steps": 3}'}

    return EventSourceResponse(events())


async def _pieces(_: Request) -> StreamingResponse:
    text = (
        b"event: a\r\ndata: 1\r\n\r\n: a comment\r\n\r\nevent: b\r\ndata: 2\r\n\r\n"
        b"event: c\r\ndata:  indented\r\n\r\n"  # only the first space is the separator
    )

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(text), 3):  # cuts events, and CR from LF
            yield text[i : i + 3]

    return StreamingResponse(chunks(), media_type="text/event-stream")


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    app = Starlette(
        routes=[
            Route("/projects/{id}", _project),
            Route("/chat", _chat, methods=["POST"]),
            Route("/pieces", _pieces),
        ]
    )
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None)
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    instance.should_exit = True
    thread.join(timeout=10)


def test_one_connection_carries_a_request_then_an_event_stream_then_another(server: int) -> None:
    async def scenario() -> None:
        connection = Connection("127.0.0.1", server, {"authorization": "Bearer k"})
        await connection.open()
        try:
            response, body = await connection.request("GET", "/projects/p1")
            assert response.status == 200
            assert body == b'{"id":"p1","auth":"Bearer k"}'
            response, events = await connection.events(
                "POST", "/chat", json_body={"prompt": "hello"}
            )
            assert response.status == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            seen = [(event.event, event.data) async for event in events]
            assert seen == [
                ("queued", '{"position": 0}'),
                ("message", "you said hello\nsecond line"),
                ("run_finished", '{"status": "success", "steps": 3}'),
            ]
            response, body = await connection.request("GET", "/projects/p2")
            assert (response.status, body) == (200, b'{"id":"p2","auth":"Bearer k"}')
        finally:
            await connection.close()

    asyncio.run(scenario())


def test_events_cut_anywhere_by_the_network_are_put_back_together(server: int) -> None:
    async def scenario() -> list[tuple[str, str]]:
        connection = Connection("127.0.0.1", server)
        await connection.open()
        try:
            _, events = await connection.events("GET", "/pieces")
            return [(event.event, event.data) async for event in events]
        finally:
            await connection.close()

    assert asyncio.run(scenario()) == [("a", "1"), ("b", "2"), ("c", " indented")]
