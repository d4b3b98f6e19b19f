"""The model factory: a chat model from a ``provider:model`` string.

``BUILDER_MODEL`` (or the ``spec`` argument) names the model:

* ``openai:gpt-4.1``, ``anthropic:claude-sonnet-4-5``, ... — any provider LangChain's
  ``init_chat_model`` knows, when its integration package is installed;
* ``openai:<model>`` with ``BUILDER_MODEL_BASE_URL`` — any OpenAI-compatible server
  (Ollama, vLLM, llama.cpp, LM Studio);
* ``scripted:<name>`` or ``scripted:<path>`` — :class:`ScriptedChatModel` replaying a
  bundled or a custom script.

Provider SDKs are built with their own retries off and the AI timeout as their request
timeout: :func:`builder.models.invoke_model` owns retries (logged, with backoff) and the
per-attempt time budget.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from langchain.chat_models import init_chat_model
from langchain_core.language_models import BaseChatModel

from builder.errors import ConfigurationError
from builder.models.script import resolve_script
from builder.models.scripted import ScriptedChatModel
from builder.settings import Settings, get_settings

__all__ = ["load_chat_model", "reads_images"]

_EXAMPLES = (
    "e.g. BUILDER_MODEL=openai:gpt-4.1, BUILDER_MODEL=anthropic:claude-sonnet-4-5, "
    "BUILDER_MODEL=openai:llama3.1 with BUILDER_MODEL_BASE_URL=http://localhost:11434/v1, "
    "or BUILDER_MODEL=scripted:demo (no provider needed)"
)

# Providers served by one of builder's extras: (integration module, extra name).
_EXTRAS: dict[str, tuple[str, str]] = {
    "openai": ("langchain_openai", "openai"),
    "azure_openai": ("langchain_openai", "openai"),
    "anthropic": ("langchain_anthropic", "anthropic"),
}

# Local OpenAI-compatible servers ignore the key, but the SDK refuses to start without one.
_PLACEHOLDER_KEY = "not-needed"


def load_chat_model(
    spec: str | None = None,
    *,
    settings: Settings | None = None,
    temperature: float | None = None,
) -> BaseChatModel:
    """A chat model for ``spec`` (default: ``settings.model``, i.e. ``BUILDER_MODEL``).

    Args:
        spec: ``provider:model`` or ``scripted:<name|path>``.
        settings: Where the base URL, API key and AI timeout come from.
        temperature: Sampling temperature; left out for models whose profile says
            they do not accept one (reasoning models).

    Returns:
        A LangChain chat model with the SDK's own retries disabled.

    Raises:
        ConfigurationError: No model is configured, the spec is malformed, the
            provider is unknown, its integration package is missing (the message
            says which extra to install), a script is invalid, or the provider's
            client refused the configuration (e.g. no API key).
    """
    settings = settings or get_settings()
    spec = (spec if spec is not None else settings.model or "").strip()
    if not spec:
        raise ConfigurationError(f"no chat model configured: set BUILDER_MODEL, {_EXAMPLES}")
    provider, sep, name = spec.partition(":")
    provider = provider.strip().lower().replace("-", "_")
    name = name.strip()
    if not sep or not provider or not name:
        raise ConfigurationError(f"BUILDER_MODEL={spec!r} is not `provider:model`; {_EXAMPLES}")
    model: BaseChatModel
    if provider == "scripted":
        model = ScriptedChatModel.from_file(resolve_script(name), model=spec)
    else:
        model = _provider_model(spec, provider, name, settings)
    if temperature is not None:
        model = _with_temperature(model, temperature)
    return model


def _provider_model(spec: str, provider: str, name: str, settings: Settings) -> BaseChatModel:
    if provider in _EXTRAS:
        module, extra = _EXTRAS[provider]
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigurationError(
                f"BUILDER_MODEL={spec!r} needs the {extra} integration: "
                f"pip install 'builder-agent[{extra}]'"
            ) from None
    kwargs: dict[str, Any] = {"timeout": settings.timeout_ai, "max_retries": 0}
    if settings.model_base_url:
        kwargs["base_url"] = settings.model_base_url
    if settings.model_api_key is not None:
        kwargs["api_key"] = settings.model_api_key.get_secret_value()
    elif provider == "openai" and settings.model_base_url and not os.environ.get("OPENAI_API_KEY"):
        kwargs["api_key"] = _PLACEHOLDER_KEY
    if provider == "openai":
        # Token budgets need usage while streaming too; langchain-openai turns it off
        # for custom base URLs, but OpenAI-compatible servers (Ollama, vLLM,
        # llama.cpp) report it.
        kwargs["stream_usage"] = True
    try:
        model: BaseChatModel = init_chat_model(name, model_provider=provider, **kwargs)
    except ImportError as exc:
        missing = getattr(exc.__cause__, "name", None) or getattr(exc, "name", None) or ""
        package = missing.split(".", 1)[0].replace("_", "-") or f"langchain-{provider}"
        raise ConfigurationError(
            f"BUILDER_MODEL={spec!r} needs the {provider} integration package, which "
            f"builder does not bundle: pip install {package}"
        ) from None
    except ValueError as exc:
        if str(exc).startswith("Unsupported"):
            raise ConfigurationError(
                f"unknown model provider {provider!r} in BUILDER_MODEL={spec!r}; use "
                f"`scripted` or a provider LangChain supports: {_supported(exc)}"
            ) from None
        raise ConfigurationError(f"cannot create chat model {spec!r}: {exc}") from None
    except Exception as exc:  # SDK clients refuse bad settings with their own errors
        detail = str(exc).rstrip(". ")
        hint = ""
        if "api_key" in detail.lower() or "api key" in detail.lower():
            hint = "; set BUILDER_MODEL_API_KEY or the provider's own key variable"
        raise ConfigurationError(f"cannot create chat model {spec!r}: {detail}{hint}") from None
    return model


def _supported(exc: ValueError) -> str:
    _, _, listed = str(exc).partition("Supported model providers are:")
    return listed.strip() or "see LangChain's init_chat_model documentation"


def _with_temperature(model: BaseChatModel, temperature: float) -> BaseChatModel:
    profile = model.profile or {}
    if profile.get("temperature") is False or "temperature" not in type(model).model_fields:
        return model
    return model.model_copy(update={"temperature": temperature})


def reads_images(model: BaseChatModel, settings: Settings) -> bool:
    """Whether the model takes images: ``BUILDER_MODEL_IMAGES`` when set, else its
    LangChain profile's ``image_inputs`` (no for a model without a profile)."""
    if settings.model_images is not None:
        return settings.model_images
    profile = getattr(model, "profile", None) or {}
    return bool(profile.get("image_inputs"))
