"""A real model path, as the provider sees it: ``builder run`` against a loopback server
speaking OpenAI's chat-completions API, with assertions on the requests it received."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from builder.graphs import tool_specs
from builder.persistence.database import plain_dsn
from builder.plugins import get_tool_registry
from builder.tools.screenshot import IMAGE_TOOLS
from tests.models.openai_server import OpenAIServer, completion, error
from tests.support.cli import run_builder, user_env

pytestmark = pytest.mark.slow

PAGE = "<!doctype html><title>Portfolio</title><h1>Ada's photos</h1>\n"


def _env(server: OpenAIServer, db_url: str, data_dir: Path) -> dict[str, str]:
    return user_env(
        drop=("OPENAI_",),
        BUILDER_DATA_DIR=str(data_dir),
        BUILDER_DATABASE_URL=db_url,
        BUILDER_MODEL="openai:gpt-test",
        BUILDER_MODEL_BASE_URL=server.base_url,
        BUILDER_MODEL_API_KEY="sk-test-key",
        BUILDER_MODEL_RETRIES="0",
    )


def _rows(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(plain_dsn(db_url)) as conn:
        return [tuple(row) for row in conn.execute(sql)]


def test_builder_run_with_openai_writes_the_site(migrated_db_url: str, tmp_path: Path) -> None:
    replies = [
        completion(
            "I'll write the home page.",
            tool_calls=[
                {
                    "id": "call_1",
                    "name": "write_file",
                    "args": {"path": "index.html", "content": PAGE},
                }
            ],
            usage=(900, 60),
        ),
        completion("Your portfolio home page is ready in index.html.", usage=(1000, 20)),
    ]
    with OpenAIServer(*replies) as server:
        result = run_builder(
            "run",
            "A portfolio site for a photographer",
            "--project",
            "portfolio",
            env=_env(server, migrated_db_url, tmp_path / "data"),
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        requests = list(server.requests)
        headers = list(server.headers)

    # What the provider received: the model, every tool with its langchain-core
    # schema, and on the second call the tool result in OpenAI's format.
    assert len(requests) == 2
    first, second = requests
    assert first["model"] == "gpt-test"
    assert headers[0]["authorization"] == "Bearer sk-test-key"
    # gpt-test has no model profile: it is not known to read images, so the tool that
    # answers with a screenshot is left out.
    assert first["tools"] == [
        spec
        for spec in tool_specs(get_tool_registry())
        if spec["function"]["name"] not in IMAGE_TOOLS
    ]
    sent = {tool["function"]["name"] for tool in first["tools"]}
    assert {"write_file", "edit_file", "run_command", "start_dev_server"} <= sent
    roles = [m["role"] for m in first["messages"]]
    assert roles == ["system", "user"]
    assert first["messages"][1]["content"] == "A portfolio site for a photographer"
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]
    call = second["messages"][2]["tool_calls"][0]
    assert call["id"] == "call_1" and call["function"]["name"] == "write_file"
    assert json.loads(call["function"]["arguments"]) == {"path": "index.html", "content": PAGE}
    tool_result = second["messages"][3]
    assert tool_result["tool_call_id"] == "call_1"
    assert "index.html" in tool_result["content"]

    # What the user got: the file in the workspace, a saved version, the messages and
    # the token usage of both model calls.
    assert "✓ write_file" in result.stdout
    assert "Your portfolio home page is ready" in result.stdout
    workspaces = list((tmp_path / "data").rglob("index.html"))
    assert [p.read_text() for p in workspaces] == [PAGE]
    snapshots = _rows(migrated_db_url, "SELECT version, file_count FROM snapshots ORDER BY version")
    assert snapshots == [(1, 1)]
    messages = _rows(migrated_db_url, "SELECT role, content FROM messages ORDER BY seq")
    assert messages[0] == ("user", "A portfolio site for a photographer")
    assert messages[-1][0] == "assistant"
    assert "Your portfolio home page is ready" in messages[-1][1]
    usage = _rows(
        migrated_db_url,
        "SELECT model, prompt_tokens, completion_tokens FROM token_usage ORDER BY step",
    )
    assert usage == [("gpt-test", 900, 60), ("gpt-test", 1000, 20)]


def test_a_refused_key_is_one_clear_line_and_no_retry(migrated_db_url: str, tmp_path: Path) -> None:
    with OpenAIServer(error(401, "Incorrect API key provided")) as server:
        env = _env(server, migrated_db_url, tmp_path / "data")
        env["BUILDER_MODEL_RETRIES"] = "3"
        result = run_builder("run", "A bakery site", env=env, cwd=tmp_path)
        attempts = len(server.requests)

    assert result.returncode == 1
    assert attempts == 1  # a refused key is not retried
    assert "Traceback" not in result.stdout + result.stderr
    assert (
        "error (provider_error): the openai API refused the API key (HTTP 401): set "
        "BUILDER_MODEL_API_KEY or OPENAI_API_KEY to a valid key" in result.stderr
    )
    # The whole story, traceback included, is in the log file the message names.
    log = tmp_path / "data" / "logs" / "builder.log"
    assert f"full log: {log}" in result.stderr
    assert "Traceback" in log.read_text()


# A real 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_builder_run_sends_the_attached_images(migrated_db_url: str, tmp_path: Path) -> None:
    (tmp_path / "sketch.png").write_bytes(PNG)
    (tmp_path / "notes.txt").write_text("not an image")
    with OpenAIServer(completion("I see the sketch.")) as server:
        env = _env(server, migrated_db_url, tmp_path / "data")
        result = run_builder(
            "run", "Like this sketch", "--image", "sketch.png", "-i", "sketch.png",
            env=env, cwd=tmp_path,
        )  # fmt: skip
        refused = run_builder("run", "Like this", "--image", "notes.txt", env=env, cwd=tmp_path)
        requests = list(server.requests)

    assert result.returncode == 0, result.stdout + result.stderr
    url = {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}
    assert requests[0]["messages"][1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Like this sketch"},
            {"type": "image_url", "image_url": url},
            {"type": "image_url", "image_url": url},
        ],
    }
    # A file that is not an image: one line, no run, no traceback.
    assert refused.returncode != 0 and len(requests) == 1
    assert "Traceback" not in refused.stdout + refused.stderr
    assert "notes.txt is not a PNG, JPEG, WebP or GIF image" in refused.stderr
