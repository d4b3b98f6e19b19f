"""From a LangGraph run request to a turn of the runs service.

The web-builder graph works one user message at a time: the runs service persists it
to the project's conversation, loads or rebuilds the context and runs the turn. So a
run's ``input`` must carry user messages, in any of the forms LangGraph clients send:

* ``{"messages": [{"role": "user", "content": "…"}]}`` (``role`` ``user``/``human``);
* ``{"messages": [{"type": "human", "content": "…", …}]}`` (``message.model_dump()``);
* LangChain's serialized form (``{"lc": 1, "type": "constructor", "id": […,
  "HumanMessage"], "kwargs": {…}}``), a ``["user", "…"]`` pair, or a bare string.

Several user messages make one prompt, separated by a blank line. Image content blocks
(LangChain's standard ``{"type": "image", "base64": …, "mime_type": …}`` or OpenAI's
``{"type": "image_url", "image_url": {"url": "data:image/png;base64,…"}}``) are the
turn's images (:func:`images_of`), with the REST chat's limits. Messages of other
roles are refused: the assistant's and the tools' messages come from the graph. Input
may only be left out to resume a thread whose last run was interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.messages import HumanMessage

from builder.errors import InvalidInput
from builder.http.langgraph.schemas import RunCreateBody
from builder.images import Image, check_image_count, image_from_block
from builder.runs.service import GraphStreamMode, MultitaskStrategy, check_prompt

__all__ = [
    "MULTITASK_STRATEGIES",
    "STREAM_MODES",
    "RunOptions",
    "check_checkpoint",
    "check_run_options",
    "graph_stream_modes",
    "images_of",
    "prompt_of",
    "requested_checkpoint",
    "run_options",
]

STREAM_MODES = (
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "events",
    "tasks",
    "checkpoints",
    "debug",
)
"""The stream modes the API serves."""

MULTITASK_STRATEGIES: tuple[MultitaskStrategy, ...] = ("reject", "enqueue")
"""How a run on a busy thread can be handled."""

_PASSED_THROUGH: tuple[GraphStreamMode, ...] = ("checkpoints", "debug")
_USER_ROLES = frozenset({"user", "human"})
_USER_CLASSES = frozenset({"HumanMessage", "HumanMessageChunk"})
_LIMIT_KEYS = ("max_steps", "token_budget")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What a run request asks of the runs service."""

    stream_modes: tuple[str, ...]
    multitask: MultitaskStrategy
    max_steps: int | None
    token_budget: int | None


def _refuse(feature: str, why: str) -> InvalidInput:
    return InvalidInput(f"{feature} is not supported: {why}", feature=feature)


def check_run_options(body: RunCreateBody) -> None:
    """Refuse, with a 422 that says why, what builder's runs cannot do.

    Raises:
        InvalidInput: The request asks for a feature builder does not offer.
    """
    if body.interrupt_before or body.interrupt_after:
        raise _refuse(
            "interrupt_before/interrupt_after",
            "the web-builder graph runs a whole turn; edit the state between turns instead",
        )
    if body.webhook:
        raise _refuse("webhook", "follow the run with join, the stream or the run's status")
    if body.after_seconds:
        raise _refuse("after_seconds", "runs start when they are created")
    if body.multitask_strategy not in (None, *MULTITASK_STRATEGIES):
        raise _refuse(
            f"multitask_strategy {body.multitask_strategy!r}",
            "a busy thread can only reject a new run or queue it; "
            f"use one of {', '.join(MULTITASK_STRATEGIES)}",
        )
    command = body.command or {}
    if command.get("goto") or command.get("update"):
        raise _refuse("command goto/update", "only a command with `resume` is accepted")


def requested_checkpoint(body: RunCreateBody) -> str | None:
    """The checkpoint id a run asks to start from (``checkpoint_id`` or
    ``checkpoint.checkpoint_id``), if any."""
    if body.checkpoint_id:
        return body.checkpoint_id
    named = (body.checkpoint or {}).get("checkpoint_id")
    return str(named) if named else None


def check_checkpoint(requested: str | None, latest: str | None) -> None:
    """Refuse a run from any checkpoint but the thread's latest.

    Clients send the head they show along with the next message (agent-chat-ui does):
    starting from it is continuing the latest state, which every run does.

    Raises:
        InvalidInput: ``requested`` is an earlier checkpoint.
    """
    if requested is not None and requested != latest:
        raise _refuse(
            "running from an earlier checkpoint",
            f"a run always continues the latest state, and {requested} is not the "
            f"thread's latest checkpoint ({latest or 'none yet'})",
        )


def run_options(body: RunCreateBody) -> RunOptions:
    """The stream modes, multitask strategy and per-run limits of a request.

    ``max_steps`` and ``token_budget`` are read from ``context`` or
    ``config.configurable``; other keys there are for the graph's own use and ignored.

    Raises:
        InvalidInput: An unknown stream mode, or a limit that is not a positive integer.
    """
    requested = body.stream_mode if body.stream_mode is not None else ["values"]
    modes = (requested,) if isinstance(requested, str) else tuple(requested)
    unknown = [mode for mode in modes if mode not in STREAM_MODES]
    if unknown:
        raise InvalidInput(
            f"unsupported stream mode(s) {', '.join(map(repr, unknown))}; "
            f"supported: {', '.join(STREAM_MODES)}"
        )
    sources = [body.context or {}, (body.config or {}).get("configurable") or {}]
    limits: dict[str, int | None] = {}
    for key in _LIMIT_KEYS:
        value = next((source[key] for source in sources if source.get(key) is not None), None)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise InvalidInput(f"{key} must be a positive integer")
        limits[key] = value
    return RunOptions(
        stream_modes=tuple(dict.fromkeys(modes)),
        multitask=body.multitask_strategy or "reject",  # type: ignore[arg-type]
        max_steps=limits["max_steps"],
        token_budget=limits["token_budget"],
    )


def graph_stream_modes(modes: tuple[str, ...]) -> list[GraphStreamMode]:
    """The LangGraph stream modes to collect to serve the API's ``modes``.

    ``values`` and ``tasks`` are always collected (they are cheap: references to the
    state, no copies), so a stream joined later can ask for ``values`` or ``events``
    whatever the run was started with; ``checkpoints`` and ``debug`` only on request.
    ``messages``, ``updates`` and ``custom`` are collected for every run anyway.
    """
    needed: list[GraphStreamMode] = ["values", "tasks"]
    needed.extend(mode for mode in _PASSED_THROUGH if mode in modes)
    return needed


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return HumanMessage(content=content).text
    raise InvalidInput("a message's content must be text or a list of content blocks")


def _user_content(item: Any) -> Any:
    """The content of one user message in any accepted form."""
    if isinstance(item, str):
        return item
    if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str):
        role, content = item
    elif isinstance(item, dict) and item.get("lc") == 1 and item.get("type") == "constructor":
        path = item.get("id") or [""]
        role = "human" if path[-1] in _USER_CLASSES else str(path[-1])
        content = (item.get("kwargs") or {}).get("content", "")
    elif isinstance(item, dict) and ("role" in item or "type" in item):
        role = str(item.get("role") or item.get("type"))
        content = item.get("content", "")
    else:
        raise InvalidInput(
            'a message must be {"role": "user", "content": "..."}, a serialized '
            "LangChain message or a string"
        )
    if role not in _USER_ROLES:
        raise InvalidInput(
            f"only user messages can be sent, not {role!r}: the web-builder graph "
            "writes the assistant's and the tools' messages itself"
        )
    return content


def _messages(graph_input: dict[str, Any]) -> list[Any]:
    raw = graph_input.get("messages")
    return raw if isinstance(raw, list) else [raw] if raw is not None else []


def prompt_of(graph_input: Any) -> str | None:
    """The prompt a run's ``input`` carries; None when there is no input.

    Raises:
        InvalidInput: The input is not ``{"messages": ...}`` with user messages only,
            or their text is empty.
    """
    if graph_input is None:
        return None
    if not isinstance(graph_input, dict) or set(graph_input) - {"messages"}:
        raise InvalidInput(
            'the input must be {"messages": [...]} with the user\'s message; the other '
            "state channels are maintained by builder"
        )
    texts = [_text(_user_content(item)).strip() for item in _messages(graph_input)]
    prompt = "\n\n".join(text for text in texts if text)
    if not prompt:
        raise InvalidInput("the input has no user message with text")
    check_prompt(prompt)
    return prompt


def images_of(graph_input: Any, *, limit: int) -> list[Image]:
    """The images of a run's ``input`` (call :func:`prompt_of` first), in order.

    Raises:
        InvalidImage: An image block that is not base64 data of an accepted type, or
            more images than a turn may carry.
        ImageTooLarge: An image larger than ``limit`` bytes.
    """
    if not isinstance(graph_input, dict):
        return []
    images: list[Image] = []
    for item in _messages(graph_input):
        content = _user_content(item)
        for block in content if isinstance(content, list) else []:
            image = image_from_block(block, limit=limit, index=len(images))
            if image is not None:
                images.append(image)
                check_image_count(images)
    return images
