"""The agent loop as a real model drives it: a recorded-style transcript replayed on the
wire by the fake OpenAI server, through ``builder run``, turn after turn.

The transcript (``transcripts/photographer.yaml``) plans, writes several files (some in
one message), gets an ``edit_file`` search wrong and corrects it after reading the file,
starts the dev server, and in a second turn changes the site as the user asks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from builder.persistence.database import plain_dsn
from tests.models.openai_server import OpenAIServer, completion
from tests.support.cli import run_builder, user_env

pytestmark = pytest.mark.slow
TRANSCRIPT = Path(__file__).parent / "transcripts" / "photographer.yaml"


def _replies(turn: dict[str, Any]) -> list[Any]:
    return [
        completion(
            reply.get("content", ""),
            tool_calls=reply.get("tool_calls"),
            usage=tuple(reply.get("usage", (1500, 80))),
        )
        for reply in turn["replies"]
    ]


def _tool_results(request: dict[str, Any]) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in request["messages"] if m["role"] == "tool"}


def test_a_replayed_transcript_builds_then_changes_the_site(
    migrated_db_url: str, tmp_path: Path
) -> None:
    turns = yaml.safe_load(TRANSCRIPT.read_text())["turns"]
    data = tmp_path / "data"
    outputs, requests = [], []
    for turn in turns:
        with OpenAIServer(*_replies(turn)) as server:
            result = run_builder(
                "run", turn["user"], "--project", "ada", cwd=tmp_path,
                env=user_env(
                    drop=("OPENAI_",),
                    BUILDER_DATA_DIR=str(data),
                    BUILDER_DATABASE_URL=migrated_db_url,
                    BUILDER_MODEL="openai:gpt-test",
                    BUILDER_MODEL_BASE_URL=server.base_url,
                    BUILDER_MODEL_API_KEY="sk-test",
                ),
            )  # fmt: skip
            assert result.returncode == 0, result.stdout + result.stderr
            # Every reply was asked for, and nothing more.
            assert len(server.requests) == len(turn["replies"])
            outputs.append(result.stdout)
            requests.append(list(server.requests))

    first, second = requests
    # The three calls of one message each ran and were answered, in order.
    after_batch = _tool_results(first[4])
    assert [k for k in after_batch if k in {"call_gallery", "call_contact", "call_style"}] == [
        "call_gallery",
        "call_contact",
        "call_style",
    ]
    # The wrong search reached the model as a tool error it could act on...
    wrong = _tool_results(first[5])["call_edit_wrong"]
    assert "search_text_not_found" in wrong or "not found" in wrong.lower()
    # ...the file it then read, and the corrected edit, applied.
    assert "Welcome to my site." in _tool_results(first[6])["call_read"]
    assert "Edited" in _tool_results(first[7])["call_edit_right"] or "✓ edit_file" in outputs[0]
    assert "Dev server running" in _tool_results(first[8])["call_serve"]
    # The plan and its progress are in the agent's context from then on.
    assert "Home page" in first[-1]["messages"][0]["content"]

    # The second turn starts from the conversation so far.
    history = [(m["role"], m.get("content")) for m in second[0]["messages"][1:]]
    assert history[0] == ("user", turns[0]["user"])
    assert history[-1] == ("user", turns[1]["user"])
    assert any(
        role == "assistant" and "portfolio is ready" in (text or "") for role, text in history
    )

    (workspace,) = (data / "workspaces").iterdir()
    index = (workspace / "index.html").read_text()
    assert "Portraits and street photography from Lisbon." in index
    assert "Welcome to my site." not in index
    assert "header { background: #111; color: #fff; }" in (workspace / "style.css").read_text()
    assert "instagram.com/ada.photo" in (workspace / "contact.html").read_text()

    with psycopg.connect(plain_dsn(migrated_db_url)) as conn:
        roles = [r for (r,) in conn.execute("SELECT role FROM messages ORDER BY seq")]
        versions = conn.execute("SELECT max(version), count(*) FROM snapshots").fetchone()
        usage_rows = conn.execute("SELECT count(*) FROM token_usage").fetchone()
    assert roles == ["user", "assistant", "user", "assistant"]
    assert versions is not None and versions[0] == versions[1] >= 5
    assert usage_rows == (sum(len(t["replies"]) for t in turns),)
