"""The system prompt and the helper tasks, with the scripted model and over real HTTP."""

from __future__ import annotations

import pytest

from builder.errors import InvalidInput, ProviderError
from builder.models import (
    WEB_BUILDER_SYSTEM_PROMPT,
    ScriptedChatModel,
    generate_title,
    improve_prompt,
)
from builder.models.prompts import clean_improved_prompt, clean_title
from builder.settings import Settings
from tests.models.openai_server import OpenAIServer, completion, error
from tests.models.test_demo_script import TOOLS

API_KEY = "sk-test-0123456789abcdefghij"


def _server_settings(server: OpenAIServer) -> Settings:
    return Settings(
        model="openai:test-model",
        model_base_url=server.base_url,
        model_api_key=API_KEY,
        model_retry_max_wait=0.05,
    )


def test_the_system_prompt_names_every_builtin_tool() -> None:
    missing = [name for name in TOOLS if name not in WEB_BUILDER_SYSTEM_PROMPT]
    assert missing == []


async def test_scripted_demo_answers_both_tasks_from_its_script() -> None:
    settings = Settings(model="scripted:demo")
    assert await generate_title("a site for my bakery", settings=settings) == (
        "Harbor Lane Bakery website"
    )
    improved = await improve_prompt("a site for my bakery", settings=settings)
    assert improved.startswith("Build a small static website for Harbor Lane Bakery")
    assert improved == improved.strip()


async def test_a_script_without_task_replies_answers_from_the_input() -> None:
    model = ScriptedChatModel(script={"turns": []})
    assert await generate_title("  portfolio for a jazz trio  ", model=model) == (
        "Portfolio for a jazz trio"
    )
    improved = await improve_prompt("portfolio for a jazz trio", model=model)
    assert improved.splitlines()[:3] == ["portfolio for a jazz trio.", "", "Requirements:"]


@pytest.mark.parametrize("helper", [generate_title, improve_prompt])
async def test_input_length_is_checked_before_any_model_call(helper: object) -> None:
    model = ScriptedChatModel(script={"turns": []})
    with pytest.raises(InvalidInput) as caught:
        await helper("x" * 4001, model=model)  # type: ignore[operator]
    assert str(caught.value) == "text is 4,001 characters; the limit is 4,000"
    with pytest.raises(InvalidInput, match="must not be empty"):
        await helper(" \n ", model=model)  # type: ignore[operator]
    assert await helper("x" * 4000, model=model)  # type: ignore[operator]


async def test_title_over_http_is_asked_at_temperature_zero_and_cleaned() -> None:
    answer = completion('Title: "Harbor Lane Bakery."\nA warm, friendly bakery site.')
    with OpenAIServer(error(500, "hiccup"), answer) as server:
        title = await generate_title("a bakery site", settings=_server_settings(server))
    assert title == "Harbor Lane Bakery"
    assert len(server.requests) == 2  # the 500 was retried
    sent = server.requests[-1]
    assert sent["temperature"] == 0
    assert sent["messages"][0]["role"] == "system"
    assert sent["messages"][0]["content"].startswith("# task: generate_title\n")
    assert sent["messages"][1] == {"role": "user", "content": "a bakery site"}


async def test_improved_prompt_over_http_is_unfenced_and_bounded() -> None:
    fenced = "```text\nBuild a bakery site with three pages.\n```"
    with OpenAIServer(completion(fenced), completion("word " * 2000)) as server:
        settings = _server_settings(server)
        assert await improve_prompt("bakery", settings=settings) == (
            "Build a bakery site with three pages."
        )
        long = await improve_prompt("bakery", settings=settings)
    assert len(long) <= 6000 and long.endswith("word") and long == long.strip()
    assert server.requests[0]["messages"][0]["content"].startswith("# task: improve_prompt\n")


async def test_a_refused_helper_call_is_a_provider_error() -> None:
    with OpenAIServer(error(401, "bad key")) as server, pytest.raises(ProviderError) as caught:
        await generate_title("bakery", settings=_server_settings(server))
    assert caught.value.status_code == 401
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ("Harbor Lane Bakery", "Harbor Lane Bakery"),
        ("  “Harbor Lane Bakery”  ", "Harbor Lane Bakery"),
        ("**Project title:** Harbor Lane!", "Harbor Lane"),
        ("# Bakery\n\nSecond line", "Bakery"),
        (
            "A " + "very " * 20 + "long title",
            "A very very very very very very very very very very very",
        ),
        ("", "Bakery site for me"),
        ('""', "Bakery site for me"),
    ],
)
def test_clean_title(raw: str, title: str) -> None:
    cleaned = clean_title(raw, fallback_from="bakery site for me")
    assert cleaned == title
    assert len(cleaned) <= 60 and "\n" not in cleaned


def test_clean_improved_prompt() -> None:
    assert clean_improved_prompt("  \n Build it. \n", fallback="x") == "Build it."
    assert clean_improved_prompt("   ", fallback="the request") == "the request"
