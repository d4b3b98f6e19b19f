"""The scripted chat model: replays a recorded script instead of calling a provider.

:class:`ScriptedChatModel` answers from a :class:`~builder.models.script.ChatScript`
(``BUILDER_MODEL=scripted:demo`` or ``scripted:<path>``). It needs no network and no
key, so demos, tests and benchmarks run the real graph, tools and persistence end to
end.

Where the model is in its script is derived from the conversation, never from a
counter: the turn is the number of human messages minus one, the response is the
number of AI messages after the last human message. A run killed and resumed from a
checkpoint, or a context rebuilt from stored messages, therefore continues at the
right step, and replaying a step gives the identical message (tool call ids are
``call_<turn>_<response>_<n>``). Past the last turn the script cycles, repeats its
last turn or finishes (``after_last_turn``); past a turn's last response the model
answers ``final_message`` without tool calls, so agent loops end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cachetools import LRUCache
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolCall,
    ToolCallChunk,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr, SecretStr

from builder.errors import ConfigurationError, ProviderError
from builder.models.script import ChatScript, ScriptedResponse, load_script
from builder.models.tasks import fallback_answer, task_of

__all__ = ["ScriptPosition", "ScriptedChatModel", "estimate_tokens"]

_CONTENT_PIECE = re.compile(r"\S{1,24}\s*|\s+")
_ARGS_PIECE_CHARS = 80
_MAX_TRACKED_ERRORS = 4096


def estimate_tokens(text: str) -> int:
    """A deterministic token estimate: one token per four characters, at least one."""
    return max(1, math.ceil(len(text) / 4))


@dataclass(frozen=True, slots=True)
class ScriptPosition:
    """Where a conversation is in a script.

    Attributes:
        turn: The conversation's turn (human messages − 1, at least 0).
        step: AI messages since the last human message.
        script_turn: The script turn answering it, or None when the script is finished.
    """

    turn: int
    step: int
    script_turn: int | None


def _conversation_text(messages: Sequence[BaseMessage]) -> str:
    parts: list[str] = []
    for message in messages:
        parts.append(message.text)
        if isinstance(message, AIMessage):
            parts.extend(json.dumps(call["args"], sort_keys=True) for call in message.tool_calls)
    return "\n".join(parts)


class ScriptedChatModel(BaseChatModel):
    """A chat model that replays a recorded script (no provider, no network).

    Build it from a script object, from a file with :meth:`from_file`, or through
    :func:`builder.models.load_chat_model` with ``scripted:<name|path>``. The
    standard model parameters (temperature, max_tokens, stop, timeout, max_retries,
    api_key) are accepted so the model is a drop-in replacement, and have no effect.

    Example:
        >>> model = ScriptedChatModel(script={"turns": [{"responses": [{"content": "Hi"}]}]})
        >>> model.invoke("hello").content
        'Hi'
    """

    script: ChatScript
    """The script replayed."""
    model_name: str = Field(default="scripted", alias="model")
    """Name reported in traces and response metadata (the script's file name)."""
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    timeout: float | None = None
    max_retries: int | None = None
    api_key: SecretStr | None = None
    streaming: bool = False
    """Stream even when no streaming callback asks for it."""

    _errors_raised: LRUCache[str, int] = PrivateAttr(
        default_factory=lambda: LRUCache(maxsize=_MAX_TRACKED_ERRORS)
    )
    _errors_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> ScriptedChatModel:
        """A model replaying the JSON or YAML script at ``path``.

        Raises:
            ConfigurationError: The file is missing or not a valid script.
        """
        path = Path(path)
        kwargs.setdefault("model", f"scripted:{path.stem}")
        return cls(script=load_script(path), **kwargs)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="scripted",
            ls_model_name=str(kwargs.get("model", self.model_name)),
            ls_model_type="chat",
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # --- tools ---------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools, checking that every tool the script calls is among them.

        ``tool_choice`` is accepted for compatibility; the script decides which tools
        are called.

        Raises:
            ConfigurationError: The script calls a tool that is not bound; the message
                names the tool and where the script first calls it.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        bound = {spec["function"]["name"] for spec in formatted}
        for name, (turn, response) in self.script.tool_names().items():
            if name not in bound:
                raise ConfigurationError(
                    f"chat script {self.model_name} calls tool {name!r} "
                    f"(turns[{turn}].responses[{response}]) but it is not among the bound "
                    f"tools: {', '.join(sorted(bound)) or '(none)'}"
                )
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return super().bind(tools=formatted, **kwargs)

    # --- replay --------------------------------------------------------------------

    def position(self, messages: Sequence[BaseMessage]) -> ScriptPosition:
        """Where ``messages`` stand in the script (see the module docstring)."""
        from builder.graphs.check import is_check_message

        # The end-of-turn check's report is a user-role message, but not a new turn.
        human = [
            i
            for i, message in enumerate(messages)
            if isinstance(message, HumanMessage) and not is_check_message(message)
        ]
        turn = max(len(human) - 1, 0)
        since = messages[human[-1] + 1 :] if human else messages
        step = sum(isinstance(message, AIMessage) for message in since)
        count = len(self.script.turns)
        script_turn: int | None
        if count == 0:
            script_turn = None
        elif turn < count:
            script_turn = turn
        elif self.script.after_last_turn == "cycle":
            script_turn = turn % count
        elif self.script.after_last_turn == "repeat_last":
            script_turn = count - 1
        else:
            script_turn = None
        return ScriptPosition(turn=turn, step=step, script_turn=script_turn)

    def _scripted_response(
        self, messages: Sequence[BaseMessage]
    ) -> tuple[ScriptPosition, ScriptedResponse | None]:
        where = self.position(messages)
        if where.script_turn is None:
            return where, None
        responses = self.script.turns[where.script_turn].responses
        return where, responses[where.step] if where.step < len(responses) else None

    def _error_due(self, messages: Sequence[BaseMessage], response: ScriptedResponse) -> bool:
        """Whether this call raises the response's scripted error (``times`` per position)."""
        if response.error is None:
            return False
        digest = hashlib.sha256(_conversation_text(messages).encode()).hexdigest()
        with self._errors_lock:
            raised = self._errors_raised.get(digest, 0)
            if raised >= response.error.times:
                return False
            self._errors_raised[digest] = raised + 1
            return True

    def _answer(self, messages: Sequence[BaseMessage]) -> AIMessage:
        """The message for this position; raises the scripted error when one is due."""
        task = task_of(messages)
        tool_calls: list[ToolCall] = []
        usage_override = None
        if task is not None:
            content = getattr(self.script.tasks, task) or fallback_answer(task, messages)
        else:
            where, response = self._scripted_response(messages)
            if response is None:
                content = self.script.final_message
            else:
                if self._error_due(messages, response):
                    assert response.error is not None
                    raise ProviderError(
                        response.error.message,
                        status_code=response.error.status_code,
                        provider="scripted",
                    )
                content = response.content
                usage_override = response.usage
                tool_calls = [
                    ToolCall(
                        name=call.name,
                        args=dict(call.args),
                        id=f"call_{where.turn}_{where.step}_{n}",
                        type="tool_call",
                    )
                    for n, call in enumerate(response.tool_calls)
                ]
        output_text = content + "".join(
            call["name"] + json.dumps(call["args"], sort_keys=True) for call in tool_calls
        )
        if usage_override is not None:
            input_tokens, output_tokens = usage_override.input_tokens, usage_override.output_tokens
        else:
            input_tokens = estimate_tokens(_conversation_text(messages))
            output_tokens = estimate_tokens(output_text)
        usage = UsageMetadata(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )
        return AIMessage(
            content=content,
            tool_calls=tool_calls,
            usage_metadata=usage,
            response_metadata={
                "model_name": self.model_name,
                "model_provider": "scripted",
                "finish_reason": "tool_calls" if tool_calls else "stop",
            },
        )

    def _delay(self, messages: Sequence[BaseMessage]) -> float:
        if task_of(messages) is not None:
            return 0.0
        _, response = self._scripted_response(messages)
        return response.delay_s if response is not None else 0.0

    # --- BaseChatModel -------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if delay := self._delay(messages):
            time.sleep(delay)
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if delay := self._delay(messages):
            await asyncio.sleep(delay)
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if delay := self._delay(messages):
            time.sleep(delay)
        yield from _chunks(self._answer(messages))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if delay := self._delay(messages):
            await asyncio.sleep(delay)
        for chunk in _chunks(self._answer(messages)):
            yield chunk
            # Let other tasks (stream consumers, cancellation) run between chunks.
            await asyncio.sleep(0)


def _chunks(message: AIMessage) -> Iterator[ChatGenerationChunk]:
    """``message`` as stream chunks: text in small pieces, tool calls as call chunks.

    Usage and response metadata ride on the last chunk only, because merging chunks
    adds numbers and concatenates strings.
    """
    assert isinstance(message.content, str)
    for piece in _CONTENT_PIECE.findall(message.content):
        yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
    for index, call in enumerate(message.tool_calls):
        arguments = json.dumps(call["args"])
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                tool_call_chunks=[
                    ToolCallChunk(name=call["name"], args="", id=call["id"], index=index)
                ],
            )
        )
        for start in range(0, len(arguments), _ARGS_PIECE_CHARS):
            piece = arguments[start : start + _ARGS_PIECE_CHARS]
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    tool_call_chunks=[ToolCallChunk(name=None, args=piece, id=None, index=index)],
                )
            )
    yield ChatGenerationChunk(
        message=AIMessageChunk(
            content="",
            usage_metadata=message.usage_metadata,
            response_metadata=message.response_metadata,
            chunk_position="last",
        )
    )
