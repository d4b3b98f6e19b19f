"""A real ``builder serve`` process for tests, on a free port, with its own database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from builder.cache import Cache
from builder.persistence.database import Database
from builder.persistence.users import create_api_key, get_or_create_user, revoke_api_key
from builder.settings import Settings
from tests.support.services import REDIS_URL

__all__ = ["ServerProcess", "free_port"]

_START_SECONDS = 60


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """``python -m builder serve`` in a subprocess, stopped with SIGINT.

    Args:
        database_url: The (migrated) database it serves from.
        data_dir: Its data directory; the log goes to ``server.log`` beside it.
        redis_prefix: Its private Redis key prefix.
        env: More ``BUILDER_*`` variables.
        args: More ``builder serve`` options.
        host: The loopback address it listens on (``127.0.0.2`` plays another machine).
    """

    def __init__(
        self,
        *,
        database_url: str,
        data_dir: Path,
        redis_prefix: str,
        env: Mapping[str, str] = {},
        args: tuple[str, ...] = (),
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.database_url = database_url
        self.data_dir = data_dir
        self.redis_prefix = redis_prefix
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        variables = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("BUILDER_") or k.startswith("BUILDER_TEST_")
        }
        variables.pop("PROMETHEUS_MULTIPROC_DIR", None)
        variables.update(
            {
                "BUILDER_DATABASE_URL": database_url,
                "BUILDER_REDIS_URL": REDIS_URL,
                "BUILDER_REDIS_KEY_PREFIX": redis_prefix,
                "BUILDER_MODEL": "scripted:demo",
                "BUILDER_DATA_DIR": str(data_dir),
                "BUILDER_LOG_FORMAT": "json",
                **env,
            }
        )
        self.env = variables
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        """Start and wait until ``/api/health`` answers.

        Raises:
            RuntimeError: It exited or did not answer in time (with its log).
        """
        with self.log_path.open("ab") as log:  # a restart appends
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "builder", "serve"),
                    *("--host", self.host, "--port", str(self.port), *self.args),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def stop(self) -> int | None:
        """Interrupt it and wait for it to exit; returns its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        """Everything it has written so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        """An HTTP client for it, sending ``key`` as a bearer token when given."""
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    # --- data set up directly in its database ---------------------------------------
    def run(self, work: Any) -> Any:
        """Run ``await work(db)`` against the server's database and Redis cache.

        Sharing the server's cache is what makes a change here (a revoked key, a renamed
        project) visible to the server at once, as it is for ``builder keys revoke``.
        """

        async def main() -> Any:
            db = Database(
                self.database_url,
                settings=Settings(data_dir=self.data_dir),
                cache=Cache(redis_url=REDIS_URL, prefix=self.redis_prefix),
            )
            try:
                return await work(db)
            finally:
                await db.dispose()

        return asyncio.run(main())

    def new_key(self, user: str) -> str:
        """A fresh API key for ``user`` (created if new)."""

        async def work(db: Database) -> str:
            owner = await get_or_create_user(db, name=user)
            made = await create_api_key(db, user_id=owner.id, name="test")
            return made.key.get_secret_value()

        result: str = self.run(work)
        return result

    def revoke_keys(self, user: str) -> None:
        """Revoke every key of ``user``."""

        async def work(db: Database) -> None:
            from builder.persistence.users import list_api_keys

            owner = await get_or_create_user(db, name=user)
            for key in await list_api_keys(db, user_id=owner.id):
                await revoke_api_key(db, user_id=owner.id, key_id=key.id)

        self.run(work)
