"""load_chat_model: spec parsing, provider settings, scripted models and clear errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI

from builder.errors import ConfigurationError
from builder.models import ScriptedChatModel, bundled_script_names, load_chat_model
from builder.settings import Settings

KEY = "sk-test-0123456789abcdefghij"


def test_no_model_configured_names_the_variable_with_examples() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_chat_model(settings=Settings())
    message = str(caught.value)
    assert message.startswith("no chat model configured: set BUILDER_MODEL")
    assert "openai:gpt-4.1" in message and "scripted:demo" in message
    assert "BUILDER_MODEL_BASE_URL=http://localhost:11434/v1" in message


@pytest.mark.parametrize("spec", ["gpt-4.1", "openai:", ":gpt-4.1", "  "])
def test_a_spec_without_provider_and_model_is_refused(spec: str) -> None:
    with pytest.raises(ConfigurationError, match=r"not `provider:model`|no chat model"):
        load_chat_model(spec, settings=Settings())


def test_the_model_comes_from_builder_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDER_MODEL", "scripted:demo")
    model = load_chat_model()
    assert isinstance(model, ScriptedChatModel)
    assert model.model_name == "scripted:demo"


def test_openai_model_gets_base_url_key_timeout_and_no_sdk_retries() -> None:
    settings = Settings(model_base_url="http://127.0.0.1:9/v1", model_api_key=KEY, timeout_ai=42)
    model = load_chat_model("openai:llama3.1:8b", settings=settings)
    assert isinstance(model, ChatOpenAI)
    assert model.openai_api_key is not None
    assert {
        "model": model.model_name,
        "base_url": model.openai_api_base,
        "api_key": model.openai_api_key.get_secret_value(),  # type: ignore[union-attr]
        "timeout": model.request_timeout,
        "max_retries": model.max_retries,
        "stream_usage": model.stream_usage,
        "temperature": model.temperature,
    } == {
        "model": "llama3.1:8b",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": KEY,
        "timeout": 42,
        "max_retries": 0,
        "stream_usage": True,
        "temperature": None,
    }


def test_a_local_server_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = Settings(model_base_url="http://127.0.0.1:11434/v1")
    model = load_chat_model("openai:llama3.1", settings=settings)
    assert isinstance(model, ChatOpenAI)
    assert model.openai_api_key.get_secret_value() == "not-needed"  # type: ignore[union-attr]


def test_a_missing_key_for_a_hosted_provider_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="set BUILDER_MODEL_API_KEY"):
        load_chat_model("openai:gpt-4.1", settings=Settings())


def test_anthropic_model_gets_key_timeout_and_no_sdk_retries() -> None:
    model = load_chat_model("anthropic:claude-sonnet-4-5", settings=Settings(model_api_key=KEY))
    assert isinstance(model, ChatAnthropic)
    assert (
        model.model,
        model.anthropic_api_key.get_secret_value(),
        model.default_request_timeout,
        model.max_retries,
    ) == ("claude-sonnet-4-5", KEY, 60, 0)


def test_temperature_is_set_only_where_the_model_accepts_it() -> None:
    settings = Settings(model_api_key=KEY)
    plain = load_chat_model("openai:gpt-4.1", settings=settings, temperature=0)
    reasoning = load_chat_model("openai:gpt-5", settings=settings, temperature=0)
    assert isinstance(plain, ChatOpenAI) and isinstance(reasoning, ChatOpenAI)
    assert (plain.temperature, reasoning.temperature) == (0, None)


def test_an_unknown_provider_is_named() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_chat_model("frobnicate:model-1", settings=Settings())
    message = str(caught.value)
    assert message.startswith("unknown model provider 'frobnicate' in BUILDER_MODEL=")
    assert "anthropic" in message and "openai" in message


def test_a_missing_extra_says_which_one_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_anthropic", None)
    with pytest.raises(ConfigurationError) as caught:
        load_chat_model("anthropic:claude-sonnet-4-5", settings=Settings(model_api_key=KEY))
    assert str(caught.value) == (
        "BUILDER_MODEL='anthropic:claude-sonnet-4-5' needs the anthropic integration: "
        "pip install 'builder-agent[anthropic]'"
    )


def test_a_provider_outside_the_extras_names_its_package() -> None:
    assert importlib.util.find_spec("langchain_groq") is None  # not a builder dependency
    with pytest.raises(ConfigurationError) as caught:
        load_chat_model("groq:llama-3.3-70b", settings=Settings(model_api_key=KEY))
    assert str(caught.value).endswith("pip install langchain-groq")


def test_scripted_names_a_bundled_script() -> None:
    assert "demo" in bundled_script_names()
    model = load_chat_model("scripted:demo", settings=Settings())
    assert isinstance(model, ScriptedChatModel)
    assert model.script.turns and model.script.tasks.generate_title


def test_scripted_names_a_json_or_yaml_file(tmp_path: Path) -> None:
    script = {"turns": [{"responses": [{"content": "from a file"}]}]}
    (tmp_path / "one.json").write_text(json.dumps(script))
    (tmp_path / "two.yaml").write_text("turns:\n  - responses:\n      - content: from a file\n")
    for name in ("one.json", "two.yaml"):
        model = load_chat_model(f"scripted:{tmp_path / name}", settings=Settings())
        assert model.invoke("hi").content == "from a file"


def test_scripted_errors_name_the_script() -> None:
    with pytest.raises(ConfigurationError, match=r"no bundled chat script named 'nope'; bundled: "):
        load_chat_model("scripted:nope", settings=Settings())
    with pytest.raises(ConfigurationError, match=r"cannot read chat script missing\.yaml"):
        load_chat_model("scripted:missing.yaml", settings=Settings())
