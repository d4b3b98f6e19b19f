"""Small HTTP servers that record what was asked of them (for origin-blocking tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["RecordingServer"]

Page = tuple[int, dict[str, str], bytes]


class RecordingServer:
    """Serves ``pages`` (path → status, headers, body) and records every path requested.

    Args:
        pages: What to answer; other paths get a 1x1 transparent PNG (or 404).
    """

    def __init__(self, pages: Callable[[str], Page | None] | None = None) -> None:
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                page = pages(self.path) if pages else None
                status, headers, body = page or (404, {}, b"")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
