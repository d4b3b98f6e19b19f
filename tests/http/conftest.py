"""Real ``builder serve`` processes shared by the HTTP tests.

Each server has its own migrated database, Redis key prefix and data directory, and
runs the scripted demo model. Tests make their own users and keys, so they can share
a server.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import pytest

from tests.http.oauth_provider import FakeOAuthProvider
from tests.http.server import ServerProcess
from tests.support.database import clone_database
from tests.support.fake_hosts import FakeNetlify
from tests.support.services import delete_redis_prefix, drop_database

ENCRYPTION_KEY = "k1:" + base64.b64encode(b"k" * 32).decode()
BODY_LIMIT = 64 * 1024
IMAGE_LIMIT = 4096


def _serve(
    tmp_path_factory: pytest.TempPathFactory,
    template: str,
    env: dict[str, str],
    args: tuple[str, ...] = (),
) -> Iterator[ServerProcess]:
    url = clone_database(template)
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    server = ServerProcess(
        database_url=url,
        data_dir=tmp_path_factory.mktemp("server") / "data",
        redis_prefix=prefix,
        env=env,
        args=args,
    )
    try:
        yield server.start()
    finally:
        server.stop()
        drop_database(url)
        delete_redis_prefix(prefix)


@pytest.fixture(scope="session")
def oauth_provider() -> Iterator[FakeOAuthProvider]:
    """The fake OAuth provider the development server is configured with."""
    provider = FakeOAuthProvider().start()
    yield provider
    provider.stop()


NETLIFY_TOKEN = "nfp-http-test-4c1e"


@pytest.fixture(scope="session")
def netlify() -> Iterator[FakeNetlify]:
    """The fake Netlify API the development server deploys to."""
    with FakeNetlify(NETLIFY_TOKEN) as fake:
        yield fake


@pytest.fixture(scope="session")
def dev_server(
    tmp_path_factory: pytest.TempPathFactory,
    migrated_template: str,
    oauth_provider: FakeOAuthProvider,
    netlify: FakeNetlify,
) -> Iterator[ServerProcess]:
    """Development: anonymous access on, docs on, generous rate limits."""
    env = {
        "BUILDER_ENVIRONMENT": "development",
        "BUILDER_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "BUILDER_RATE_LIMIT_DEFAULT": "100000/minute",
        "BUILDER_RATE_LIMIT_CHAT": "100000/minute",
        "BUILDER_RATE_LIMIT_PROMPT": "100000/minute",
        "BUILDER_MAX_REQUEST_BYTES": str(BODY_LIMIT),
        "BUILDER_MAX_IMAGE_BYTES": str(IMAGE_LIMIT),
        "BUILDER_OAUTH_PROVIDERS": json.dumps({"testhub": oauth_provider.provider_config()}),
        "BUILDER_OAUTH_STATE_SECONDS": "60",
        "BUILDER_NETLIFY_API_URL": netlify.api_url,
    }
    yield from _serve(tmp_path_factory, migrated_template, env)


@pytest.fixture(scope="session")
def prod_server(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: str
) -> Iterator[ServerProcess]:
    """Production: keys required, docs off, HSTS."""
    env = {
        "BUILDER_ENVIRONMENT": "production",
        "BUILDER_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "BUILDER_CORS_ORIGINS": "https://app.example.com",
        "BUILDER_RATE_LIMIT_DEFAULT": "100000/minute",
        "BUILDER_RATE_LIMIT_CHAT": "100000/minute",
        "BUILDER_RATE_LIMIT_PROMPT": "100000/minute",
        "BUILDER_OAUTH_PROVIDERS": json.dumps(
            {
                "testhub": {
                    "client_id": "c",
                    "client_secret": "s3cr3t-value",
                    "authorize_url": "http://127.0.0.1:9/authorize",
                    "token_url": "http://127.0.0.1:9/token",
                }
            }
        ),
    }
    yield from _serve(tmp_path_factory, migrated_template, env)


@pytest.fixture(scope="session")
def limited_server(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: str
) -> Iterator[ServerProcess]:
    """Development with tiny rate limits."""
    env = {
        "BUILDER_RATE_LIMIT_DEFAULT": "3/minute",
        "BUILDER_RATE_LIMIT_PROMPT": "2/minute",
        "BUILDER_RATE_LIMIT_CHAT": "1/minute",
    }
    yield from _serve(tmp_path_factory, migrated_template, env)
