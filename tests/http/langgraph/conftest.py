"""A real ``builder serve`` for the LangGraph API tests: scripted model, two users.

The script's turns, by the number of user messages in a conversation: the first
writes ``index.html`` and answers; the second is slow (eight file writes, each model
call delayed) for cancelling, rejecting and queueing; the third is the first again; the
fourth fails like a provider refusing the request; then it starts over. Where a
conversation is in the script depends only on its own messages, so tests sharing the
server do not disturb each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from builder.persistence.database import Database
from builder.settings import Settings
from tests.http.server import ServerProcess
from tests.support.database import clone_database
from tests.support.scripts import call, write_script
from tests.support.services import delete_redis_prefix, drop_database

PAGE = "<h1>Hello</h1>\n"
SLOW_FILES = 8
SLOW_DELAY = 0.4
DEFAULT_LIMIT = 100_000
CHAT_LIMIT = 90_000
"""Rate limits told apart: runs are created in the chat tier."""
PAGE_SHA = hashlib.sha256(PAGE.encode()).hexdigest()
GRAPH = "web_builder"
ASSISTANT_ID = "466cf4a5-9fd5-5a65-9f15-4d0d4157a639"
"""uuid5 of the graph id in the official server's namespace."""
TURN = {"fast": 0, "slow": 1, "fast_again": 2, "failing": 3}
"""The script's turns: a conversation with n user messages is at turn n - 1."""


def lg_script(directory: Path) -> str:
    """The scripted model spec the server runs."""
    fast = [
        {
            "content": "I'll write the page.",
            "tool_calls": [call("write_file", path="index.html", content=PAGE)],
        },
        {"content": "The page is ready."},
    ]
    slow = [
        *(
            {
                "content": f"Writing file {i}.",
                "tool_calls": [call("write_file", path=f"f{i}.txt", content=f"{i}\n")],
                "delay_s": SLOW_DELAY,
            }
            for i in range(SLOW_FILES)
        ),
        {"content": "All written."},
    ]
    failing = [
        {
            "content": "Never seen.",
            "error": {"status_code": 400, "message": "scripted refusal", "times": 1},
        }
    ]
    return write_script(directory, [fast, slow, fast, failing], after_last_turn="cycle")


@dataclass(frozen=True)
class LangGraphServer:
    """The server and an API key for each of two users."""

    process: ServerProcess
    alice: str
    bob: str

    @property
    def url(self) -> str:
        """Its base URL."""
        return self.process.url


@contextlib.contextmanager
def langgraph_server(
    tmp_path_factory: pytest.TempPathFactory, template: str, **env: str
) -> Iterator[LangGraphServer]:
    """A server on its own copy of the database: keys required, generous rate limits,
    the script above; ``env`` adds or overrides variables."""
    url = clone_database(template)
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    spec = lg_script(tmp_path_factory.mktemp("script"))
    process = ServerProcess(
        database_url=url,
        data_dir=tmp_path_factory.mktemp("lg-server") / "data",
        redis_prefix=prefix,
        env={
            "BUILDER_ENVIRONMENT": "development",
            "BUILDER_ALLOW_ANONYMOUS": "false",
            "BUILDER_MODEL": spec,
            "BUILDER_RATE_LIMIT_DEFAULT": f"{DEFAULT_LIMIT}/minute",
            "BUILDER_RATE_LIMIT_CHAT": f"{CHAT_LIMIT}/minute",
            # The page is a fragment and these tests follow the protocol step by step:
            # the end-of-turn check (tests/graphs/test_check.py) stays out of them.
            "BUILDER_CHECK_ROUNDS": "0",
            **env,
        },
    )
    try:
        process.start()
        yield LangGraphServer(process, process.new_key("alice"), process.new_key("bob"))
    finally:
        process.stop()
        drop_database(url)
        delete_redis_prefix(prefix)


@pytest.fixture(scope="session")
def lg_server(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: str
) -> Iterator[LangGraphServer]:
    """The server most LangGraph API tests share."""
    with langgraph_server(tmp_path_factory, migrated_template) as server:
        yield server


def user_input(message: str) -> dict[str, Any]:
    """A run's input with one user message."""
    return {"messages": [{"role": "user", "content": message}]}


def earlier_turns(count: int = TURN["failing"]) -> dict[str, Any]:
    """A state update adding ``count`` user messages, so the next turn is turn ``count``.

    Each call's messages are unique: the scripted model raises a scripted error once per
    conversation, and the conversations of different tests must differ.
    """
    tag = uuid.uuid4().hex[:8]
    return {"messages": [{"role": "user", "content": f"earlier {i} {tag}"} for i in range(count)]}


async def sql(server: LangGraphServer, statement: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of a query on the server's database."""
    process = server.process
    db = Database(process.database_url, settings=Settings(data_dir=process.data_dir))

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        rows = await session.execute(text(statement), params)
        return [dict(row._mapping) for row in rows.all()] if rows.returns_rows else []

    try:
        return await db.run(work)
    finally:
        await db.dispose()


@pytest.fixture
async def alice(lg_server: LangGraphServer) -> AsyncIterator[LangGraphClient]:
    """The official async client, as the user alice."""
    async with get_client(url=lg_server.url, api_key=lg_server.alice) as client:
        yield client


@pytest.fixture
async def bob(lg_server: LangGraphServer) -> AsyncIterator[LangGraphClient]:
    """The official async client, as the user bob."""
    async with get_client(url=lg_server.url, api_key=lg_server.bob) as client:
        yield client


@pytest.fixture
def alice_sync(lg_server: LangGraphServer) -> Iterator[SyncLangGraphClient]:
    """The official sync client, as the user alice."""
    with get_sync_client(url=lg_server.url, api_key=lg_server.alice) as client:
        yield client
