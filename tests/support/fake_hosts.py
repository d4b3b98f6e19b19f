"""Fake GitHub and Netlify APIs on loopback, built from their documented shapes.

Both are small threading HTTP servers that check the bearer token, answer with the
fields builder reads (and a few it does not), and record every request so tests can
look at what was sent — and for leaked secrets.

* :class:`FakeGitHub`: ``GET /user``, ``GET /repos/{owner}/{repo}``, ``POST /user/repos``
  (``201`` with the repository, ``422`` when the name is taken, ``500`` echoing the token
  for a repository named ``leaky``); a created repository
  is a real bare repository of a :class:`~tests.support.git_server.GitServer`, whose
  URL is the ``clone_url``.
* :class:`FakeNetlify`: ``POST /sites``, ``POST /sites/{id}/deploys`` with a ``files``
  map (``required`` lists the digests the account has never received),
  ``PUT /deploys/{id}/files/{path}`` (the body must hash to the digest sent for that
  path), ``GET /deploys/{id}``. A deploy becomes ``ready`` — and the site's published
  deploy — only when every required digest has arrived; ``fail_upload`` makes one path's
  upload answer 500.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.support.git_server import GitServer

__all__ = ["FakeGitHub", "FakeNetlify"]


class _JsonServer:
    def __init__(self, token: str) -> None:
        self.token = token
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                outer.requests.append(f"{self.command} {self.path}")
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    status, answer = 401, {"message": "Bad credentials"}
                else:
                    with outer.lock:
                        status, answer = outer.handle(
                            self.command, urlsplit(self.path).path, body, self.headers
                        )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _any

        self.lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def handle(
        self, method: str, path: str, body: bytes, headers: Any
    ) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"


class FakeGitHub(_JsonServer):
    """GitHub's REST API for one user, ``alice`` (id 42), whose repositories live on
    ``git``."""

    def __init__(self, token: str, git: GitServer) -> None:
        super().__init__(token)
        self.git = git
        self.repos: dict[str, dict[str, Any]] = {}

    def _repo(self, owner: str, name: str, private: bool) -> dict[str, Any]:
        full = f"{owner}/{name}"
        return {
            "id": len(self.repos) + 1000,
            "name": name,
            "full_name": full,
            "private": private,
            "owner": {"login": owner, "id": 42, "type": "User"},
            "html_url": f"https://github.test/{full}",
            "clone_url": self.git.url(f"{owner}-{name}.git"),
            "default_branch": "main",
        }

    def handle(
        self, method: str, path: str, body: bytes, headers: Any
    ) -> tuple[int, dict[str, Any]]:
        if method == "GET" and path == "/user":
            return 200, {"login": "alice", "id": 42, "name": "Alice Baker", "email": None}
        if method == "GET" and path.startswith("/repos/"):
            full = path.removeprefix("/repos/")
            if full in self.repos:
                return 200, self.repos[full]
            return 404, {"message": "Not Found", "documentation_url": "https://docs.test"}
        if method == "POST" and path == "/user/repos":
            request = json.loads(body)
            full = f"alice/{request['name']}"
            if request["name"] == "leaky":  # a careless server that echoes the credential
                return 500, {"message": f"internal error for token {self.token}"}
            if full in self.repos:
                return 422, {
                    "message": "Repository creation failed.",
                    "errors": [
                        {
                            "resource": "Repository",
                            "code": "custom",
                            "field": "name",
                            "message": "name already exists on this account",
                        }
                    ],
                }
            self.repos[full] = self._repo("alice", request["name"], request.get("private", False))
            return 201, self.repos[full]
        return 404, {"message": "Not Found"}


class FakeNetlify(_JsonServer):
    """Netlify's deploy API (under ``/api/v1``) for one account."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.blobs: dict[str, bytes] = {}
        self.sites: dict[str, dict[str, Any]] = {}
        self.deploys: dict[str, dict[str, Any]] = {}
        self.uploads: list[str] = []
        self.fail_upload: str | None = None

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v1"

    def served(self, site_id: str) -> dict[str, bytes]:
        """The files the site's published deploy serves."""
        deploy = self.deploys[self.sites[site_id]["published_deploy"]]
        return {path.lstrip("/"): self.blobs[sha] for path, sha in deploy["files"].items()}

    def _deploy(self, deploy: dict[str, Any]) -> dict[str, Any]:
        site = self.sites[deploy["site_id"]]
        return {
            "id": deploy["id"],
            "site_id": deploy["site_id"],
            "state": deploy["state"],
            "required": sorted(deploy["required"]),
            "ssl_url": site["ssl_url"],
            "url": site["url"],
            "deploy_ssl_url": f"https://{deploy['id']}--{site['name']}.netlify.test",
        }

    def handle(
        self, method: str, path: str, body: bytes, headers: Any
    ) -> tuple[int, dict[str, Any]]:
        parts = path.removeprefix("/api/v1/").split("/", 3)
        if method == "POST" and parts == ["sites"]:
            name = json.loads(body or b"{}").get("name") or f"site-{len(self.sites) + 1}"
            site_id = str(uuid.uuid4())
            self.sites[site_id] = {
                "id": site_id,
                "name": name,
                "url": f"http://{name}.netlify.test",
                "ssl_url": f"https://{name}.netlify.test",
                "admin_url": f"https://app.netlify.test/sites/{name}",
                "published_deploy": None,
            }
            return 201, {k: v for k, v in self.sites[site_id].items() if k != "published_deploy"}
        if method == "POST" and len(parts) == 3 and parts[0] == "sites" and parts[2] == "deploys":
            if parts[1] not in self.sites:
                return 404, {"code": 404, "message": "Not Found"}
            files = json.loads(body)["files"]
            deploy = {
                "id": uuid.uuid4().hex[:24],
                "site_id": parts[1],
                "files": files,
                "required": {sha for sha in files.values() if sha not in self.blobs},
                "state": "uploading",
            }
            self.deploys[deploy["id"]] = deploy
            self._maybe_ready(deploy)
            return 200, self._deploy(deploy)
        if method == "PUT" and len(parts) == 4 and parts[0] == "deploys" and parts[2] == "files":
            deploy = self.deploys[parts[1]]
            file_path = "/" + unquote(parts[3])
            self.uploads.append(file_path)
            if file_path == "/" + (self.fail_upload or ""):
                return 500, {"code": 500, "message": "Internal Server Error"}
            sha = deploy["files"].get(file_path)
            if sha is None or hashlib.sha1(body).hexdigest() != sha:  # noqa: S324
                return 422, {"code": 422, "message": f"{file_path}: content does not match"}
            if headers.get("Content-Type") != "application/octet-stream":
                return 415, {"code": 415, "message": "expected application/octet-stream"}
            self.blobs[sha] = body
            deploy["required"].discard(sha)
            self._maybe_ready(deploy)
            return 200, {"id": sha, "path": file_path, "sha": sha, "size": len(body)}
        if method == "GET" and len(parts) == 2 and parts[0] == "deploys":
            return 200, self._deploy(self.deploys[parts[1]])
        return 404, {"code": 404, "message": "Not Found"}

    def _maybe_ready(self, deploy: dict[str, Any]) -> None:
        if not deploy["required"]:
            deploy["state"] = "ready"
            self.sites[deploy["site_id"]]["published_deploy"] = deploy["id"]
