"""The agent node: one model call with the registered tools bound."""

from __future__ import annotations

import bisect
import json
import operator
import uuid
from collections.abc import Sequence
from typing import Any

from cachetools import LRUCache
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    InvalidToolCall,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.runtime import Runtime

from builder.errors import ConfigurationError
from builder.graphs.context import RunContext
from builder.graphs.state import StepUsage, StopReason, WebBuilderState
from builder.graphs.toolcalls import cut_off
from builder.models import invoke_model
from builder.models.pricing import call_cost, price_for

__all__ = [
    "AgentNode",
    "TokenCounts",
    "context_window",
    "project_summary",
    "tool_images_as_user_messages",
]

_MAX_LISTED_FILES = 150


class TokenCounts:
    """Approximate token counts of messages, remembered by message object.

    A message in a graph's state is not changed once added, so its count is worked out
    once per run instead of at every step (the window is taken at every model call).
    Each conversation's running totals are kept too (by its first message): the next
    step's messages start with the same ones, so only the messages added since are
    counted, and taking the window does not grow with the conversation.
    """

    def __init__(self, size: int = 8192, conversations: int = 256) -> None:
        self.size = size
        self._counts: LRUCache[int, tuple[BaseMessage, int]] = LRUCache(maxsize=size)
        self._totals: LRUCache[int, tuple[tuple[BaseMessage, ...], list[int]]] = LRUCache(
            maxsize=conversations
        )

    def __call__(self, message: BaseMessage) -> int:
        """The message's count, as ``count_tokens_approximately`` gives it."""
        key = id(message)
        known = self._counts.get(key)
        if known is not None and known[0] is message:
            return known[1]
        count = count_tokens_approximately([message])
        self._counts[key] = (message, count)
        return count

    def running_totals(self, messages: Sequence[BaseMessage]) -> list[int]:
        """The tokens of ``messages[:i]`` for every ``i`` from 0 to ``len(messages)``."""
        if not messages:
            return [0]
        key = id(messages[0])
        known = self._totals.get(key)
        start, totals = 0, [0]
        if known is not None and len(known[0]) <= len(messages):
            prefix = messages[: len(known[0])]
            if all(map(operator.is_, prefix, known[0])):
                start, totals = len(prefix), list(known[1])
        total = totals[-1]
        for message in messages[start:]:
            total += self(message)
            totals.append(total)
        self._totals[key] = (tuple(messages), totals)
        return totals


def context_window(
    messages: list[AnyMessage], budget: int, counts: TokenCounts | None = None
) -> list[BaseMessage]:
    """The most recent messages that fit ``budget`` tokens, starting at a user message.

    Tool calls are never separated from their results: the window starts at a human
    message, so it cannot begin with an orphaned tool result. The messages' tokens
    are counted as ``count_tokens_approximately`` counts them (``counts`` remembers
    them between calls). It is the window LangChain's ``trim_messages`` keeps
    (strategy ``last``, starting on ``human``, no partial messages).
    """
    totals = (counts or TokenCounts()).running_totals(messages)
    # The first index whose messages to the end fit (counts are never negative, so
    # the tokens from an index to the end only grow as the index goes down).
    start = bisect.bisect_left(totals, totals[-1] - budget)
    first_human = next(
        (i for i in range(start, len(messages)) if messages[i].type == "human"), None
    )
    window: list[BaseMessage] = [] if first_human is None else list(messages[first_human:])
    if not window and messages:
        # A single turn larger than the budget: keep its user message and the tail.
        last_human = max(
            (i for i, m in enumerate(messages) if m.type == "human"), default=len(messages) - 1
        )
        window = [messages[last_human], *messages[last_human + 1 :][-8:]]
    return window


def _is_image(block: object) -> bool:
    return isinstance(block, dict) and block.get("type") in ("image", "image_url")


def tool_images_as_user_messages(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Move images out of tool results into a user message after them.

    OpenAI's chat completions take images only in user messages: a tool result keeps
    its text and says where its images went; the images follow the run of tool
    results (which must stay right after the calls they answer) in one user message.
    """
    out: list[BaseMessage] = []
    moved: list[str | dict[str, Any]] = []
    for message in messages:
        if moved and not isinstance(message, ToolMessage):
            out.append(HumanMessage(moved))
            moved = []
        if isinstance(message, ToolMessage) and isinstance(message.content, list):
            images = [block for block in message.content if _is_image(block)]
            if images:
                tool = message.name or "tool"
                text = message.text or f"The {tool} tool answered with images."
                note = f"{text}\n({len(images)} image(s) in the next user message.)"
                message = message.model_copy(update={"content": note})
                moved.append({"type": "text", "text": f"Image(s) from the {tool} tool result:"})
                moved.extend(images)
        out.append(message)
    if moved:
        out.append(HumanMessage(moved))
    return out


def project_summary(state: WebBuilderState) -> str:
    """A short description of the project's state for the system prompt."""
    lines = ["", "## Current project state"]
    files = sorted(state.get("files", {}))
    if files:
        shown = files[:_MAX_LISTED_FILES]
        more = f" (and {len(files) - len(shown)} more)" if len(files) > len(shown) else ""
        lines.append(f"Files ({len(files)}){more}: " + ", ".join(shown))
    else:
        lines.append("Files: none yet (empty workspace).")
    plan = state.get("plan")
    if plan:
        done = sum(step["done"] for step in plan["steps"])
        lines.append(f"Plan: {plan['goal']} — {done}/{len(plan['steps'])} steps done")
        for number, step in enumerate(plan["steps"], 1):
            lines.append(f"  {number}. [{'x' if step['done'] else ' '}] {step['description']}")
    server = state.get("dev_server")
    if server:
        status = "running" if server["running"] else f"stopped (exit {server['exit_code']})"
        lines.append(f"Dev server: {status} `{server['command']}` {server['preview_url'] or ''}")
    errors = state.get("errors", [])
    if errors:
        lines.append("Recent errors: " + " | ".join(errors[-3:]))
    return "\n".join(lines)


class AgentNode:
    """Calls the model with the conversation window and the project summary.

    Before calling, it ends the run cleanly when the step limit or the token budget
    has been reached, with a message that says so.
    """

    def __init__(
        self,
        model: BaseChatModel | Runnable[Any, Any],
        *,
        tools: Sequence[BaseTool],
        system_prompt: str,
    ) -> None:
        # The model's own integration turns each tool into its provider's format.
        self.caches_prompt = _caches_prompt(model)
        bound: list[Any] = list(tools)
        if self.caches_prompt and bound:
            # Anthropic caches the prompt up to a block marked cache_control: marking the
            # last tool caches every tool definition, so a long build pays for them once.
            bound = [convert_to_anthropic_tool(tool) for tool in bound]
            bound[-1] = {**bound[-1], "cache_control": _EPHEMERAL}
        self.model = model.bind_tools(bound) if isinstance(model, BaseChatModel) else model
        self.model_name = _model_name(model)
        self.system_prompt = system_prompt
        self.token_counts = TokenCounts()
        # Anthropic reads images in tool results; OpenAI-style APIs only in user turns.
        self.images_in_tool_results = self.caches_prompt

    async def __call__(
        self, state: WebBuilderState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        ctx = runtime.context
        steps = state.get("run_steps", 0)
        tokens = state.get("run_tokens", 0)
        if tokens >= ctx.tokens_allowed:
            return self._stop(
                "token_budget",
                f"I stopped because this run reached its token budget ({tokens:,} of "
                f"{ctx.tokens_allowed:,} tokens). Send another message to continue.",
            )
        price = price_for(self.model_name, ctx.settings.model_prices)
        spent = state.get("run_cost")
        budget = ctx.settings.run_cost_budget
        if budget is not None:
            if price is None:
                raise ConfigurationError(
                    f"BUILDER_RUN_COST_BUDGET is set but the price of {self.model_name!r} is "
                    "unknown: add it to BUILDER_MODEL_PRICES"
                )
            if (spent or 0.0) >= budget:
                return self._stop(
                    "cost_budget",
                    f"I stopped because this run reached its budget (${spent or 0:.4f} of "
                    f"${budget:.2f}). Send another message to continue.",
                )
        if steps >= ctx.step_limit:
            return self._stop(
                "step_limit",
                f"I stopped after {steps} steps, the most one run may take. "
                "Send another message to continue.",
            )
        window = context_window(
            state.get("messages", []), ctx.settings.context_token_budget, self.token_counts
        )
        summary = project_summary(state)
        prompt = (
            # The fixed instructions are a cached block; the project's state changes at
            # every step, so it follows the cache breakpoint.
            SystemMessage(
                [
                    {"type": "text", "text": self.system_prompt, "cache_control": _EPHEMERAL},
                    {"type": "text", "text": summary},
                ]
            )
            if self.caches_prompt
            else SystemMessage(self.system_prompt + "\n" + summary)
        )
        if not self.images_in_tool_results:
            window = tool_images_as_user_messages(window)
        reply = await invoke_model(
            self.model, [prompt, *window], settings=ctx.settings, config=config
        )
        if reply.id is None:
            reply.id = str(uuid.uuid4())
        if reply.tool_calls and cut_off(reply):
            # Streamed arguments cut off by the output limit still parse as partial
            # JSON: the last call would run with half its content. It goes back to the
            # model as an invalid call instead.
            *complete, last = reply.tool_calls
            reply.tool_calls = complete
            reply.invalid_tool_calls = [
                *reply.invalid_tool_calls,
                InvalidToolCall(
                    name=last["name"],
                    args=json.dumps(last["args"]),
                    id=last.get("id"),
                    error="cut off at the output token limit",
                    type="invalid_tool_call",
                ),
            ]
        usage: dict[str, Any] = dict(reply.usage_metadata or {})
        used = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
        details: dict[str, Any] = dict(usage.get("input_token_details") or {})
        # Cache writes by lifetime, when the provider reports them so, replace the total.
        written = sum(int(details.get(k) or 0) for k in _CACHE_WRITE_BY_TTL)
        step_usage: StepUsage = {
            "step": steps + 1,
            "model": self.model_name,
            "input_tokens": int(usage.get("input_tokens", 0)),
            "output_tokens": int(usage.get("output_tokens", 0)),
            "cache_read_tokens": int(details.get("cache_read") or 0),
            "cache_write_tokens": written or int(details.get("cache_creation") or 0),
        }
        update: dict[str, Any] = {
            "messages": [reply],
            "model_message_id": reply.id,
            "run_steps": steps + 1,
            "run_tokens": tokens + used,
            "pending_usage": step_usage,
        }
        # A channel written is stored again at the step's end (a write row, a new
        # version): the ones that seldom change are written only when they do.
        cost = None if price is None else (spent or 0.0) + call_cost(step_usage, price)
        if cost != spent or "run_cost" not in state:
            update["run_cost"] = cost
        if state.get("build_status") != "working":
            update["build_status"] = "working"
        return update

    @staticmethod
    def _stop(reason: StopReason, text: str) -> dict[str, Any]:
        return {"messages": [AIMessage(text)], "stop_reason": reason, "pending_usage": None}


_EPHEMERAL = {"type": "ephemeral"}


def _caches_prompt(model: Any) -> bool:
    """Whether the model takes Anthropic's prompt-cache breakpoints."""
    return getattr(model, "_llm_type", None) == "anthropic-chat"


def convert_to_anthropic_tool(tool: BaseTool) -> dict[str, Any]:
    """A tool in Anthropic's format, through langchain-anthropic's own converter."""
    from langchain_anthropic.chat_models import convert_to_anthropic_tool as convert

    return dict(convert(tool))


_CACHE_WRITE_BY_TTL = ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")


def _model_name(model: Any) -> str | None:
    for attr in ("model_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str):
            return value
    return None
