"""What a run costs in money, and a budget in money, with the fake OpenAI server."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.models.pricing import call_cost, price_for
from builder.settings import ModelPrice
from tests.models.openai_server import OpenAIServer, completion
from tests.support.cli import run_builder, user_env


def test_cached_input_is_priced_as_the_provider_prices_it() -> None:
    sonnet = price_for("anthropic:claude-sonnet-4-0", {})
    assert sonnet is not None
    # 10,000 input tokens of which 8,000 read from the cache and 1,000 written to it.
    usage = {
        "input_tokens": 10_000,
        "output_tokens": 500,
        "cache_read_tokens": 8_000,
        "cache_write_tokens": 1_000,
    }
    expected = (1_000 * 3.0 + 8_000 * 0.3 + 1_000 * 3.75 + 500 * 15.0) / 1e6
    assert call_cost(usage, sonnet) == pytest.approx(expected)
    # An override wins over the built-in table; an unknown model has no price.
    mine = ModelPrice(input=1, output=1)
    assert price_for("openai:gpt-4.1", {"gpt-4.1": mine}) == mine
    assert price_for("openai:unknown-model", {}) is None


def _write(n: int) -> dict[str, object]:
    return {"id": f"call_{n}", "name": "write_file",
            "args": {"path": f"p{n}.html", "content": f"<p>{n}</p>\n"}}  # fmt: skip


def _run(tmp_path: Path, db_url: str, project: str, **env: str) -> tuple[str, int]:
    """``builder run`` against a fresh fake server: (its output, the model calls made)."""
    steps = [completion(tool_calls=[_write(n)], usage=(10_000, 1_000)) for n in range(5)]
    with OpenAIServer(*steps, completion("Done.", usage=(10_000, 1_000))) as server:
        result = run_builder(
            "run", "A site", "--project", project, cwd=tmp_path,
            env=user_env(
                drop=("OPENAI_",),
                **{
                    "BUILDER_DATABASE_URL": db_url,
                    "BUILDER_DATA_DIR": str(tmp_path / project),
                    "BUILDER_MODEL": "openai:gpt-4.1",
                    "BUILDER_MODEL_BASE_URL": server.base_url,
                    "BUILDER_MODEL_API_KEY": "sk-test",
                    # The pages are fragments: the end-of-turn check would ask for fixes.
                    "BUILDER_CHECK_ROUNDS": "0",
                    **env,
                },
            ),
        )  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode == 0 or "error" in output, output
        return output if result.returncode == 0 else f"exit {result.returncode}: {output}", len(
            server.requests
        )


@pytest.mark.slow
def test_builder_run_prints_the_cost_and_stops_at_a_budget_in_money(
    migrated_db_url: str, tmp_path: Path
) -> None:
    # Each call: 10,000 in at $2/M + 1,000 out at $8/M = $0.028.
    output, calls = _run(tmp_path, migrated_db_url, "full")
    assert calls == 6 and "$0.1680" in output, output

    # A budget of 5 cents: the third call would start at $0.056 spent, so it is not made.
    output, calls = _run(tmp_path, migrated_db_url, "capped", BUILDER_RUN_COST_BUDGET="0.05")
    assert calls == 2, output
    assert "cost_budget" in output and "$0.0560" in output

    # A budget needs a price: a model without one is refused in one clear line.
    output, calls = _run(
        tmp_path, migrated_db_url, "unpriced",
        BUILDER_MODEL="openai:house-model", BUILDER_RUN_COST_BUDGET="0.05",
    )  # fmt: skip
    assert output.startswith("exit") and calls == 0
    assert "BUILDER_MODEL_PRICES" in output and "Traceback" not in output
