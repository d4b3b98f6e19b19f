"""A small OAuth 2 provider for tests: issues codes and exchanges them for tokens.

It runs in the test process under uvicorn (on a thread) and records every token
request, so tests can check what the service sent: client credentials, redirect URI
and code.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.http.server import free_port

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "FakeOAuthProvider"]

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-client-secret-1f9c2e"


@dataclass
class FakeOAuthProvider:
    """Codes it issued, token requests it received, and its URLs."""

    port: int = field(default_factory=free_port)
    codes: dict[str, str] = field(default_factory=dict)
    """code → the redirect URI it was issued for."""
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def issue_code(self, redirect_uri: str) -> str:
        """What the authorize page would hand the user's browser after consent."""
        code = secrets.token_urlsafe(12)
        self.codes[code] = redirect_uri
        return code

    async def _token(self, request: Request) -> JSONResponse:
        raw = parse_qs((await request.body()).decode(), keep_blank_values=True)
        form = {name: values[0] for name, values in raw.items()}
        self.token_requests.append(form)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        code = str(form.get("code"))
        if self.codes.pop(code, None) != form.get("redirect_uri"):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse(
            {
                "access_token": f"at-{code}",
                "refresh_token": f"rt-{code}",
                "expires_in": 3600,
                "scope": "repo",
                "token_type": "bearer",
            }
        )

    def start(self) -> FakeOAuthProvider:
        app = Starlette(routes=[Route("/token", self._token, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def provider_config(self) -> dict[str, Any]:
        """The ``BUILDER_OAUTH_PROVIDERS`` entry for this provider."""
        return {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "authorize_url": f"{self.url}/authorize",
            "token_url": f"{self.url}/token",
            "scopes": ["repo", "read:user"],
        }
