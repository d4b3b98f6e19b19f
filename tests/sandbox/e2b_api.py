"""A loopback server answering E2B's REST API call that readiness makes.

``GET /v2/sandboxes`` answers ``[]`` for the accepted key (header ``X-API-KEY``) and
E2B's 401 error body for any other; every request's path and key are recorded.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["E2BApiServer"]


class E2BApiServer:
    """Use as a context manager; ``url`` is what ``E2B_API_URL`` should be."""

    def __init__(self, *, accepted_key: str) -> None:
        self.accepted_key = accepted_key
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                key = self.headers.get("X-API-KEY")
                server.requests.append((self.path, key))
                if not self.path.startswith("/v2/sandboxes"):
                    self._send(404, {"code": 404, "message": "not found"})
                elif key != server.accepted_key:
                    self._send(401, {"code": 401, "message": "Invalid API key"})
                else:
                    self._send(200, [])

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> E2BApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
