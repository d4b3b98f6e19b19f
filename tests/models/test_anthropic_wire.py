"""The Anthropic path as the provider sees it: ``builder run`` against a loopback server
speaking the Messages API and its event stream, with assertions on what it received."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from builder.persistence.database import plain_dsn
from builder.plugins import get_tool_registry
from builder.tools.screenshot import IMAGE_TOOLS
from tests.models.anthropic_server import AnthropicServer, message
from tests.support.cli import run_builder, user_env

pytestmark = pytest.mark.slow

PAGE = "<!doctype html><title>Bakery</title><h1>Fresh bread</h1>\n"


def _rows(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(plain_dsn(db_url)) as conn:
        return [tuple(row) for row in conn.execute(sql)]


def test_builder_run_with_anthropic_writes_the_site(migrated_db_url: str, tmp_path: Path) -> None:
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
        message("The bakery's home page is ready.", usage=(60, 15), cache=(0, 1100)),
    ]
    with AnthropicServer(*replies) as server:
        env = user_env(
            drop=("ANTHROPIC_",),
            BUILDER_DATA_DIR=str(tmp_path / "data"),
            BUILDER_DATABASE_URL=migrated_db_url,
            BUILDER_MODEL="anthropic:claude-test",
            BUILDER_MODEL_BASE_URL=server.base_url,
            BUILDER_MODEL_API_KEY="sk-ant-test",
            BUILDER_MODEL_RETRIES="0",
        )
        result = run_builder("run", "A bakery site", "--project", "bakery", env=env, cwd=tmp_path)
        requests = list(server.requests)
        headers = list(server.headers)
    assert result.returncode == 0, result.stdout + result.stderr

    assert len(requests) == 2
    first, second = requests
    assert first["model"] == "claude-test"
    # The key, in whichever header this SDK version sends it.
    assert "sk-ant-test" in (headers[0].get("x-api-key"), headers[0].get("authorization", "")[7:])
    assert first["stream"] is True
    # Every tool with its schema in Anthropic's format; the last one carries the
    # cache breakpoint, so the definitions are cached with it.
    names = [tool["name"] for tool in first["tools"]]
    assert names == [n for n in get_tool_registry().names() if n not in IMAGE_TOOLS]
    write = next(tool for tool in first["tools"] if tool["name"] == "write_file")
    assert write["input_schema"]["required"] == ["path", "content"]
    assert write["input_schema"]["properties"]["path"]["description"]
    assert first["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in tool for tool in first["tools"][:-1])
    # The fixed system prompt is a cached block; the project's state follows it.
    system = first["system"]
    assert system[0]["cache_control"] == {"type": "ephemeral"}
    assert "## Current project state" in system[1]["text"]
    assert first["messages"] == [{"role": "user", "content": "A bakery site"}]
    # The tool result goes back as a tool_result block of a user turn.
    assistant, result_turn = second["messages"][1], second["messages"][2]
    use = next(block for block in assistant["content"] if block["type"] == "tool_use")
    assert (use["id"], use["name"], use["input"]) == (
        "toolu_1",
        "write_file",
        {"path": "index.html", "content": PAGE},
    )
    tool_result = result_turn["content"][0]
    assert (result_turn["role"], tool_result["type"], tool_result["tool_use_id"]) == (
        "user",
        "tool_result",
        "toolu_1",
    )
    assert "index.html" in json.dumps(tool_result["content"])

    assert "✓ write_file" in result.stdout
    assert [p.read_text() for p in (tmp_path / "data").rglob("index.html")] == [PAGE]
    assert _rows(migrated_db_url, "SELECT version FROM snapshots") == [(1,)]
    usage = _rows(
        migrated_db_url,
        "SELECT model, completion_tokens, cache_write_tokens, cache_read_tokens "
        "FROM token_usage ORDER BY step",
    )
    # The provider's cache report is kept: written on the first step, read on the next.
    assert usage == [("claude-test", 80, 1100, 0), ("claude-test", 15, 0, 1100)]
