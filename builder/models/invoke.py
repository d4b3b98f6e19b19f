"""One model call, with builder's time budget and retry policy.

:func:`invoke_model` is how builder calls a chat model. Each attempt runs under the AI
time budget (``BUILDER_TIMEOUT_AI``); the provider retry policy
(:func:`builder.retry.provider_retry`) retries rate limits (429), server errors (5xx)
and network failures with exponential backoff and jitter, waiting at least what the
provider's ``Retry-After`` asks for (capped by ``BUILDER_MODEL_RETRY_MAX_WAIT``), at
most ``BUILDER_MODEL_RETRIES`` times. An attempt that runs out of time is retried once:
a hung request is often a fluke, a second one in a row rarely is. What finally fails
is raised as :class:`~builder.errors.ProviderError` (with the provider's status code)
or :class:`~builder.errors.OperationTimeout`.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import tenacity
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.tools import BaseTool
from tenacity import RetryCallState

from builder.errors import BuilderError, OperationTimeout, ProviderError
from builder.log import get_logger, timed
from builder.retry import is_retryable_provider_error, provider_retry
from builder.settings import Settings, get_settings
from builder.timeouts import with_timeout

__all__ = ["invoke_model", "retry_after_seconds"]

_log = get_logger("builder.models")
_BACKOFF_INITIAL = 0.5


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The wait a provider asked for in ``retry-after-ms`` / ``Retry-After``, if any."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _WaitForProvider(tenacity.wait.wait_base):
    """Exponential backoff with jitter, but never less than the provider's Retry-After."""

    def __init__(self, maximum: float) -> None:
        self._maximum = maximum
        self._backoff = tenacity.wait_random_exponential(multiplier=_BACKOFF_INITIAL, max=maximum)

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = self._backoff(retry_state)
        outcome = retry_state.outcome
        asked = retry_after_seconds(outcome.exception() if outcome and outcome.failed else None)
        return min(self._maximum, max(backoff, asked or 0.0))


class _FirstTimeout(tenacity.retry_base):
    """Retry the first :class:`OperationTimeout` of one call, no later one."""

    def __init__(self) -> None:
        self._seen = False

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is None or not outcome.failed or self._seen:
            return False
        if isinstance(outcome.exception(), OperationTimeout):
            self._seen = True
            return True
        return False


def _status_code(exc: BaseException) -> int | None:
    value = getattr(exc, "status_code", None)
    return value if isinstance(value, int) else None


_KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
"""The variable each provider's SDK reads its key from when BUILDER_MODEL_API_KEY is unset."""


def _provider_name(model: Runnable[Any, Any]) -> str | None:
    while isinstance(model, RunnableBinding):  # e.g. a model with tools already bound
        model = model.bound
    if isinstance(model, BaseChatModel):
        return str(model._get_ls_params().get("ls_provider") or model._llm_type)
    return None


_CONTEXT_TOO_LONG = ("context_length_exceeded", "maximum context length", "prompt is too long")


def _context_too_long(exc: BaseException) -> bool:
    """Whether a provider's 400 says the prompt exceeds the model's context window."""
    code = getattr(exc, "code", None)
    text = f"{code} {exc}".lower()
    return any(marker in text for marker in _CONTEXT_TOO_LONG)


async def _retried(
    attempt: Callable[[], Awaitable[Any]], first: Exception, settings: Settings
) -> Any:
    """Go on with a model call whose first attempt raised ``first``, under the provider
    retry policy (which may find ``first`` not worth retrying and raise it)."""
    failed = [first]

    async def again() -> Any:
        if failed:
            raise failed.pop()
        return await attempt()

    call = provider_retry(
        attempts=settings.model_retries + 1,
        initial=_BACKOFF_INITIAL,
        maximum=settings.model_retry_max_wait,
    )(again).retry_with(
        retry=tenacity.retry_if_exception(is_retryable_provider_error) | _FirstTimeout(),
        wait=_WaitForProvider(settings.model_retry_max_wait),
    )
    return await call()


async def invoke_model(
    model: Runnable[LanguageModelInput, Any],
    messages: LanguageModelInput,
    *,
    settings: Settings | None = None,
    tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool] | None = None,
    config: RunnableConfig | None = None,
) -> AIMessage:
    """Call ``model`` once, with the AI time budget per attempt and provider retries.

    Streaming keeps working: ``config`` (or, inside a LangGraph node, the node's
    config from context) carries the callbacks, so a graph streamed with
    ``stream_mode="messages"`` receives tokens as they arrive. A retried attempt
    streams again from the start.

    Args:
        model: A chat model (or a runnable around one, e.g. with tools bound).
        messages: Messages, a prompt value or a string.
        settings: Budgets and retry limits; defaults to :func:`get_settings`.
        tools: Tools to bind for this call (needs ``model`` to be a chat model).
        config: The runnable config (callbacks, tags, run name) of the caller.

    Returns:
        The model's message, with ``usage_metadata`` when the provider reports it.

    Raises:
        ProviderError: The provider refused (4xx other than 429), or kept failing
            past the retries; ``status_code`` is its HTTP status (None for network
            errors). The SDK's exception is the ``__cause__``.
        OperationTimeout: An attempt and its one retry ran out of time
            (``operation="ai"``).
    """
    settings = settings or get_settings()
    runnable: Runnable[LanguageModelInput, Any] = model
    if tools:
        if not isinstance(model, BaseChatModel):
            raise TypeError("invoke_model(tools=...) needs a chat model, not a bound runnable")
        runnable = model.bind_tools(tools)
    provider = _provider_name(model)

    async def attempt() -> Any:
        with timed(_log, "model.call", provider=provider) as facts:
            result = await with_timeout(
                runnable.ainvoke(messages, config=config), "ai", settings=settings
            )
            usage = getattr(result, "usage_metadata", None) or {}
            facts.update(
                input_tokens=usage.get("input_tokens"), output_tokens=usage.get("output_tokens")
            )
        return result

    try:
        try:
            result = await attempt()
        except Exception as first:
            # The retry policy is set up only for a call whose first attempt failed;
            # that failure is its first attempt, so it decides as if it had made it.
            result = await _retried(attempt, first, settings)
    except BuilderError:
        raise
    except Exception as exc:
        status = _status_code(exc)
        if status is None and not is_retryable_provider_error(exc):
            raise
        if status in (401, 403):
            variable = _KEY_VARIABLES.get(provider or "", "the provider's API key variable")
            raise ProviderError(
                f"the {provider or 'model'} API refused the API key (HTTP {status}): set "
                f"BUILDER_MODEL_API_KEY or {variable} to a valid key",
                status_code=status,
                provider=provider,
            ) from exc
        if status == 400 and _context_too_long(exc):
            raise ProviderError(
                "the conversation no longer fits the model's context window "
                f"({provider or 'model'} said: {str(exc)[:300]}); lower "
                "BUILDER_CONTEXT_TOKEN_BUDGET or use a model with a longer context",
                status_code=status,
                provider=provider,
            ) from exc
        raise ProviderError(
            f"model call failed: {type(exc).__name__}: {str(exc)[:500]}",
            status_code=status,
            provider=provider,
        ) from exc
    if not isinstance(result, AIMessage):
        raise TypeError(f"the model returned {type(result).__name__}, not an AIMessage")
    return result
