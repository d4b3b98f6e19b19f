"""Unexpected errors reach Sentry tagged with the request and user, with secrets masked.

Sentry's own HTTP transport posts envelopes to a DSN that points at a small HTTP
server run by the test.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sentry_sdk
from fastapi import FastAPI

from builder.http import sentry
from builder.settings import Settings
from tests.http.inprocess import running_app

CANARY = "canary-secret-7d1f0e9a"


class _Collector(BaseHTTPRequestHandler):
    envelopes: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.envelopes.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sentry_endpoint() -> Iterator[tuple[str, list[bytes]]]:
    """A DSN pointing at a local collector, and the envelopes it receives."""
    _Collector.envelopes = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://publickey@127.0.0.1:{server.server_port}/1", _Collector.envelopes
    finally:
        sentry_sdk.get_client().close(timeout=2)  # its connections too
        sentry_sdk.init(dsn=None)  # stop reporting for the rest of the test process
        sentry._enabled = False
        server.shutdown()
        server.server_close()


def _events(envelopes: list[bytes]) -> list[dict[str, Any]]:
    events = []
    for envelope in envelopes:
        lines = envelope.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header).get("type") == "event":
                events.append(json.loads(payload))
    return events


def _crash(app: FastAPI) -> None:
    async def crash() -> None:
        token = CANARY  # a local variable Sentry would capture with the frame
        raise RuntimeError(f"failed with api_key={token}")

    app.add_api_route("/api/test/crash", crash)


async def test_an_unexpected_error_is_reported_tagged_and_scrubbed(
    sentry_endpoint: tuple[str, list[bytes]], migrated_db_url: str, tmp_path: Path
) -> None:
    dsn, envelopes = sentry_endpoint
    settings = Settings(
        database_url=migrated_db_url,
        model="scripted:demo",
        data_dir=tmp_path,
        sentry_dsn=dsn,
        secret_key=CANARY,
    )
    async with running_app(settings, customize=_crash) as (app, client):
        response = await client.get("/api/test/crash", headers={"x-request-id": "sentry-req-01"})
        local = app.state.services.local_user
        sentry_sdk.flush(timeout=10)
    assert response.status_code == 500
    events = _events(envelopes)
    assert len(events) == 1
    event = events[0]
    assert event["tags"]["request_id"] == "sentry-req-01"
    assert event["tags"]["user_id"] == str(local.id)
    assert event["exception"]["values"][0]["type"] == "RuntimeError"
    assert CANARY not in json.dumps(event)
    assert "user" not in event or "ip_address" not in event.get("user", {})


async def test_without_a_dsn_nothing_is_initialised(tmp_path: Path) -> None:
    assert sentry.init_sentry(Settings(data_dir=tmp_path)) is False
    assert sentry.sentry_enabled() is False
