"""Real model paths through ``builder serve``: a person's chat request reaches a loopback
server speaking the provider's wire format, its tokens stream back as they arrive, and
the site, the versions, the messages and the usage are kept.

The same providers are driven through ``builder run`` in ``test_openai_wire.py`` and
``test_anthropic_wire.py``; here the path is ``POST /api/projects/{id}/chat`` (SSE) of a
real server process, plus a prompt helper, which calls the model without streaming.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph_sdk import get_sync_client

from builder.persistence.database import plain_dsn
from tests.http.server import ServerProcess
from tests.http.sse import SseEvent, read_events
from tests.models.anthropic_server import AnthropicServer, message
from tests.models.openai_server import OpenAIServer, completion
from tests.support.cli import run_builder, user_env

pytestmark = pytest.mark.slow

PAGE = "<!doctype html><title>Bakery</title><h1>Fresh bread every morning</h1>\n"
DONE = "The bakery's home page is ready in index.html, with today's bread on it."


@pytest.fixture
def serve(migrated_db_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[Any]:
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        server = ServerProcess(
            database_url=migrated_db_url,
            data_dir=tmp_path / "data",
            redis_prefix=redis_prefix,
            env={"BUILDER_MODEL_RETRIES": "0", **env},
        )
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


def _chat(server: ServerProcess, prompt: str) -> tuple[str, list[SseEvent]]:
    with server.client(server.new_key("alice")) as client:
        pid = client.post("/api/projects", json={"name": "bakery"}).json()["id"]
        with client.stream("POST", f"/api/projects/{pid}/chat", json={"prompt": prompt}) as r:
            assert r.status_code == 200, r.read()
            events = list(read_events(r))
        page = client.get(f"/api/projects/{pid}/files/index.html")
    assert events[-1].data["status"] == "success", events[-1].data
    assert page.status_code == 200 and page.json()["content"] == PAGE, page.text
    return pid, events


def _rows(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(plain_dsn(db_url)) as conn:
        return [tuple(row) for row in conn.execute(sql)]


def _kept(db_url: str) -> None:
    """The version, the conversation and each model call's usage, in the database."""
    assert _rows(db_url, "SELECT version, file_count FROM snapshots") == [(1, 1)]
    messages = _rows(db_url, "SELECT role, content FROM messages ORDER BY seq")
    # The stored reply ends with the end-of-turn check's verdict (the site checker's).
    verdict = (
        "The automatic check passed: (site checker) Checked 1 page under .: no problems found."
    )
    assert messages == [("user", "A bakery site"), ("assistant", f"{DONE}\n\n{verdict}")]
    assert len(_rows(db_url, "SELECT id FROM token_usage")) == 2


def test_chat_through_builder_serve_with_openai_streams_tokens_and_writes_the_site(
    serve: Any, migrated_db_url: str
) -> None:
    replies = [
        completion(
            "I'll write the home page.",
            tool_calls=[
                {
                    "id": "call_1",
                    "name": "write_file",
                    "args": {"path": "index.html", "content": PAGE},
                },
            ],
            usage=(900, 60),
        ),
        completion(DONE, usage=(1000, 20)),
        completion("A warm bakery site with a daily bread list and opening hours."),
    ]
    with OpenAIServer(*replies) as provider:
        server = serve(
            BUILDER_MODEL="openai:gpt-test",
            BUILDER_MODEL_BASE_URL=provider.base_url,
            BUILDER_MODEL_API_KEY="sk-test-key",
        )
        _, events = _chat(server, "A bakery site")
        # A prompt helper asks for one whole answer: the non-streamed request.
        with server.client(server.new_key("bob")) as client:
            improved = client.post("/api/improve-prompt", json={"prompt": "bakery"})
        requests = list(provider.requests)

    assert improved.status_code == 200, improved.text
    first, second, helper = requests
    assert first["stream"] is True and not helper.get("stream")
    assert first["model"] == "gpt-test"
    assert {t["function"]["name"] for t in first["tools"]} >= {"write_file", "edit_file"}
    tool_result = second["messages"][-1]
    assert tool_result["role"] == "tool" and tool_result["tool_call_id"] == "call_1"
    # The reply reaches the client as it is generated: many token events, in order.
    tokens = [e.data["text"] for e in events if e.event == "token"]
    assert len(tokens) > 5
    assert DONE in "".join(tokens)
    _kept(migrated_db_url)


def test_chat_through_builder_serve_with_anthropic_streams_tokens_and_writes_the_site(
    serve: Any, migrated_db_url: str
) -> None:
    replies = [
        message(
            "I'll write the home page.",
            tool_uses=[
                {
                    "id": "toolu_1",
                    "name": "write_file",
                    "input": {"path": "index.html", "content": PAGE},
                }
            ],
            usage=(1200, 80),
            cache=(1100, 0),
        ),
        message(DONE, usage=(60, 15), cache=(0, 1100)),
    ]
    with AnthropicServer(*replies) as provider:
        server = serve(
            BUILDER_MODEL="anthropic:claude-test",
            BUILDER_MODEL_BASE_URL=provider.base_url,
            BUILDER_MODEL_API_KEY="sk-ant-test",
        )
        _, events = _chat(server, "A bakery site")
        requests = list(provider.requests)

    first, second = requests
    assert first["model"] == "claude-test" and first["stream"] is True
    assert first["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    result_turn = second["messages"][-1]
    assert result_turn["role"] == "user"
    assert result_turn["content"][0]["type"] == "tool_result"
    assert result_turn["content"][0]["tool_use_id"] == "toolu_1"
    tokens = [e.data["text"] for e in events if e.event == "token"]
    assert len(tokens) > 1
    assert DONE in "".join(tokens)
    _kept(migrated_db_url)
    cached = _rows(
        migrated_db_url,
        "SELECT cache_read_tokens, cache_write_tokens FROM token_usage ORDER BY step",
    )
    assert cached == [(0, 1100), (1100, 0)]


def test_a_local_openai_compatible_server_needs_only_its_url(
    migrated_db_url: str, tmp_path: Path
) -> None:
    """Ollama, vLLM, llama.cpp and LM Studio: ``openai:<model>`` and the server's URL."""
    replies = [
        completion(
            tool_calls=[
                {
                    "id": "call_1",
                    "name": "write_file",
                    "args": {"path": "index.html", "content": PAGE},
                }
            ],
        ),
        completion(DONE),
    ]
    with OpenAIServer(*replies) as provider:
        env = user_env(
            drop=("OPENAI_",),
            BUILDER_DATA_DIR=str(tmp_path / "data"),
            BUILDER_DATABASE_URL=migrated_db_url,
            BUILDER_MODEL="openai:llama3.1",
            # As docs/operations.md shows it for Ollama: http://localhost:11434/v1
            BUILDER_MODEL_BASE_URL=provider.base_url.replace("127.0.0.1", "localhost"),
        )
        result = run_builder("run", "A bakery site", "--project", "bakery", env=env, cwd=tmp_path)
        requests = list(provider.requests)
        headers = list(provider.headers)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r["model"] for r in requests] == ["llama3.1", "llama3.1"]
    # No key was configured; such servers ignore the placeholder the client must send.
    assert headers[0]["authorization"] == "Bearer not-needed"
    assert [p.read_text() for p in (tmp_path / "data").rglob("index.html")] == [PAGE]


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_B64 = base64.b64encode(PNG).decode()
REPLY = "A bakery page with the warm colours of your photo, coming right up."


def _langgraph_turn(server: ServerProcess, modes: list[str]) -> list[Any]:
    """One run through the LangGraph API: a user message with a photo (OpenAI-style
    data URL and LangChain's standard block), streamed in ``modes``."""

    content = [
        {"type": "text", "text": "A bakery site like this photo"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image", "base64": PNG_B64, "mime_type": "image/png"},
    ]
    with get_sync_client(url=server.url, api_key=server.new_key("carol")) as client:
        thread = client.threads.create()
        return list(
            client.runs.stream(
                thread["thread_id"],
                "web_builder",
                input={"messages": [{"role": "user", "content": content}]},
                stream_mode=modes,  # type: ignore[arg-type]
            )
        )


def _tokens_per_message(parts: list[Any]) -> dict[str, list[str]]:
    """The text of each AI message's ``messages-tuple`` chunks, by message id."""
    tokens: dict[str, list[str]] = {}
    for part in parts:
        if part.event == "messages":
            chunk, _meta = part.data
            if chunk["type"] == "AIMessageChunk" and isinstance(chunk["content"], str):
                if chunk["content"]:
                    tokens.setdefault(chunk["id"], []).append(chunk["content"])
            elif chunk["type"] == "AIMessageChunk":
                text = "".join(b.get("text", "") for b in chunk["content"] if isinstance(b, dict))
                if text:
                    tokens.setdefault(chunk["id"], []).append(text)
    return tokens


@pytest.mark.parametrize("provider_kind", ["openai", "anthropic"])
def test_the_langgraph_api_streams_tokens_and_passes_images_with_each_provider(
    serve: Any, provider_kind: str
) -> None:
    """``messages-tuple`` and ``messages`` stream each assistant message in several
    token events, and the images of the input reach the model in its provider's format."""
    provider: OpenAIServer | AnthropicServer
    if provider_kind == "openai":
        provider = OpenAIServer(completion(REPLY))
        model = "openai:gpt-test"
    else:
        provider = AnthropicServer(message(REPLY))
        model = "anthropic:claude-test"
    with provider:
        server = serve(
            BUILDER_MODEL=model,
            BUILDER_MODEL_BASE_URL=provider.base_url,
            BUILDER_MODEL_API_KEY="sk-test-key",
        )
        tuples = _langgraph_turn(server, ["messages-tuple"])
        partials = _langgraph_turn(server, ["messages"])
        requests = list(provider.requests)

    # messages-tuple: every assistant message arrives in several chunks that add up to it.
    (pieces,) = _tokens_per_message(tuples).values()
    assert len(pieces) > 3 and "".join(pieces) == REPLY
    # messages: the message grows, partial by partial, to the whole reply.
    grown = [
        p.data[0]["content"]
        for p in partials
        if p.event == "messages/partial" and p.data[0]["type"] == "AIMessageChunk"
    ]
    texts = [g if isinstance(g, str) else "".join(b.get("text", "") for b in g) for g in grown]
    texts = [t for t in texts if t]
    assert len(set(texts)) > 3 and texts[-1] == REPLY
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))

    first = requests[0]
    user = next(m for m in first["messages"] if m["role"] == "user")
    if provider_kind == "openai":
        url = {"url": f"data:image/png;base64,{PNG_B64}"}
        assert user["content"] == [
            {"type": "text", "text": "A bakery site like this photo"},
            {"type": "image_url", "image_url": url},
            {"type": "image_url", "image_url": url},
        ]
    else:
        source = {"type": "base64", "media_type": "image/png", "data": PNG_B64}
        assert user["content"] == [
            {"type": "text", "text": "A bakery site like this photo"},
            {"type": "image", "source": source},
            {"type": "image", "source": source},
        ]
