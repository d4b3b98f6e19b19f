"""What a real OpenAI model does that a scripted one never does, seen at the wire.

Each test runs ``builder run`` against a loopback server speaking OpenAI's
chat-completions API: several tool calls in one message, arguments that are not JSON
or fail validation, a reply cut off at the output limit, a rate limit with
``Retry-After``, and a conversation longer than the model's context window.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.models.openai_server import OpenAIServer, completion, error
from tests.models.test_openai_wire import _env, _rows
from tests.support.cli import run_builder

pytestmark = pytest.mark.slow

HOME = "<!doctype html><title>Bakery</title><h1>Fresh bread</h1>\n"
ABOUT = "<!doctype html><title>About</title><h1>About us</h1>\n"


def _tool_results(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["tool_call_id"]: m for m in request["messages"] if m["role"] == "tool"}


def test_several_calls_in_one_message_and_broken_arguments_are_answered_and_fixed(
    migrated_db_url: str, tmp_path: Path
) -> None:
    replies = [
        completion(
            "Writing the pages.",
            tool_calls=[
                {
                    "id": "call_1",
                    "name": "write_file",
                    "args": {"path": "index.html", "content": HOME},
                },
                # Not JSON at all: the model must hear that, and the provider must get an
                # answer for this call id (the server refuses a conversation without one).
                {
                    "id": "call_2",
                    "name": "write_file",
                    "raw": "path=about.html content=<h1>About</h1>",
                },
                # JSON, but the required arguments are missing.
                {"id": "call_3", "name": "edit_file", "args": {"path": "index.html"}},
            ],
        ),
        completion(
            tool_calls=[
                {
                    "id": "call_4",
                    "name": "write_file",
                    "args": {"path": "about.html", "content": ABOUT},
                }
            ]
        ),
        completion("Both pages are written."),
    ]
    with OpenAIServer(*replies) as server:
        result = run_builder(
            "run",
            "A bakery site",
            "--project",
            "bakery",
            env=_env(server, migrated_db_url, tmp_path / "data"),
            cwd=tmp_path,
        )
        requests = list(server.requests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(requests) == 3
    assert all(r["stream"] is True for r in requests)  # builder run streams tokens

    # The second request carries the three calls as sent and one answer for each.
    second = requests[1]
    assistant = next(m for m in second["messages"] if m["role"] == "assistant")
    # (langchain-openai sends the parsed calls first, then the unparseable one)
    assert sorted(c["id"] for c in assistant["tool_calls"]) == ["call_1", "call_2", "call_3"]
    results = _tool_results(second)
    assert set(results) == {"call_1", "call_2", "call_3"}
    assert "index.html" in results["call_1"]["content"]
    assert "Error (invalid_arguments)" in results["call_2"]["content"]
    assert "not a valid JSON object" in results["call_2"]["content"]
    assert "Error" in results["call_3"]["content"]
    for missing in ("search", "replace"):
        assert missing in results["call_3"]["content"]
    assert "call_4" in _tool_results(requests[2])

    files = {p.name: p.read_text() for p in (tmp_path / "data").rglob("*.html")}
    assert files == {"index.html": HOME, "about.html": ABOUT}
    assert _rows(migrated_db_url, "SELECT file_count FROM snapshots ORDER BY version")[-1] == (2,)
    assert len(_rows(migrated_db_url, "SELECT step FROM token_usage")) == 3


def test_a_call_cut_off_at_the_output_limit_is_not_run_half_written(
    migrated_db_url: str, tmp_path: Path
) -> None:
    # Streamed, the cut-off arguments still parse as partial JSON; running them would
    # write half a page.
    cut = '{"path": "index.html", "content": "<!doctype html><title>Bak'
    replies = [
        completion(
            tool_calls=[{"id": "call_1", "name": "write_file", "raw": cut}],
            finish_reason="length",
        ),
        completion(
            tool_calls=[
                {
                    "id": "call_2",
                    "name": "write_file",
                    "args": {"path": "index.html", "content": HOME},
                }
            ]
        ),
        completion("Done."),
    ]
    with OpenAIServer(*replies) as server:
        result = run_builder(
            "run",
            "A bakery site",
            env=_env(server, migrated_db_url, tmp_path / "data"),
            cwd=tmp_path,
        )
        requests = list(server.requests)
    assert result.returncode == 0, result.stdout + result.stderr
    answer = _tool_results(requests[1])["call_1"]["content"]
    assert "Error (invalid_arguments)" in answer
    assert "cut off at the model's output token limit" in answer
    pages = [p.read_text() for p in (tmp_path / "data").rglob("index.html")]
    assert pages == [HOME]


def test_a_rate_limit_is_waited_out_as_retry_after_asks(
    migrated_db_url: str, tmp_path: Path
) -> None:
    replies = [error(429, "Rate limit reached", Retry_After="1"), completion("Hello!")]
    with OpenAIServer(*replies) as server:
        env = _env(server, migrated_db_url, tmp_path / "data")
        env["BUILDER_MODEL_RETRIES"] = "2"
        result = run_builder("run", "Say hello", env=env, cwd=tmp_path)
        requests = list(server.requests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(requests) == 2 and requests[0] == requests[1]
    assert "Hello!" in result.stdout
    assert _rows(migrated_db_url, "SELECT count(*) FROM token_usage") == [(1,)]


def test_a_conversation_longer_than_the_context_window_ends_the_run_saying_so(
    migrated_db_url: str, tmp_path: Path
) -> None:
    too_long = error(
        400,
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 131072 tokens.",
        code="context_length_exceeded",
    )
    with OpenAIServer(too_long) as server:
        env = _env(server, migrated_db_url, tmp_path / "data")
        env["BUILDER_MODEL_RETRIES"] = "3"
        result = run_builder("run", "A bakery site", env=env, cwd=tmp_path)
        attempts = len(server.requests)
    assert result.returncode == 1
    assert attempts == 1  # retrying the same prompt cannot help
    assert "Traceback" not in result.stdout + result.stderr
    line = result.stderr
    assert "no longer fits the model's context window" in line
    assert "BUILDER_CONTEXT_TOKEN_BUDGET" in line
    # The user's message is kept: the next run continues the conversation.
    assert _rows(migrated_db_url, "SELECT role FROM messages") == [("user",)]


def test_invalid_json_arguments_reach_the_model_as_sent(tmp_path: Path) -> None:
    """The server helper itself sends raw argument strings untouched (a guard on the fake)."""
    reply = completion(tool_calls=[{"id": "c", "name": "write_file", "raw": "{not json"}])
    call = reply.body["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["arguments"] == "{not json"
    assert json.dumps(reply.body)
