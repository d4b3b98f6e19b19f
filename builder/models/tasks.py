"""Helper tasks: short one-shot model calls marked so any model can recognise them.

A helper prompt (``generate_title``, ``improve_prompt``) starts its system message with
a marker line such as ``# task: generate_title``. Real models read it as a heading; the
scripted model uses it to answer from its script's ``tasks`` section, or, when the
script has no reply for the task, with :func:`fallback_answer` — a deterministic answer
derived from the input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, get_args

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

__all__ = [
    "TASK_MARKER",
    "TITLE_MAX_CHARS",
    "TaskName",
    "fallback_answer",
    "task_of",
    "title_from_text",
]

TaskName = Literal["generate_title", "improve_prompt"]
"""The helper tasks builder knows."""

TASK_MARKER = "# task: "
"""The first line of a helper prompt's system message is this marker plus the task name."""

TITLE_MAX_CHARS = 60
"""Longest project title."""

_TASK_NAMES: frozenset[str] = frozenset(get_args(TaskName))
_WORD = re.compile(r"[^\W_][\w'’-]*", re.UNICODE)


def task_of(messages: Sequence[BaseMessage]) -> TaskName | None:
    """The helper task a conversation was built for, or None for an agent conversation."""
    if not messages or not isinstance(messages[0], SystemMessage):
        return None
    first_line = messages[0].text.lstrip().split("\n", 1)[0].strip()
    if not first_line.startswith(TASK_MARKER):
        return None
    name = first_line.removeprefix(TASK_MARKER).strip()
    return name if name in _TASK_NAMES else None  # type: ignore[return-value]


def title_from_text(text: str, *, limit: int = TITLE_MAX_CHARS) -> str:
    """A title made of the first words of ``text``, capitalised, at most ``limit`` chars.

    Returns ``"Untitled project"`` when ``text`` has no words.
    """
    title = ""
    for word in _WORD.findall(text):
        candidate = f"{title} {word}" if title else word
        if len(candidate) > limit:
            break
        title = candidate
        if len(title.split()) >= 6:
            break
    if not title:
        return "Untitled project"
    return title[0].upper() + title[1:]


def fallback_answer(task: TaskName, messages: Sequence[BaseMessage]) -> str:
    """A deterministic answer to a helper task, derived from its last human message.

    * ``generate_title``: the first words of the request (see :func:`title_from_text`).
    * ``improve_prompt``: the request, whitespace-normalised, followed by the
      requirements every good site brief spells out.
    """
    human = [m for m in messages if isinstance(m, HumanMessage)]
    text = " ".join(human[-1].text.split()) if human else ""
    if task == "generate_title":
        return title_from_text(text)
    request = text.rstrip(".") or "Build a small website"
    return (
        f"{request}.\n\n"
        "Requirements:\n"
        "- A clear page structure with a shared navigation bar and footer.\n"
        "- Responsive layout that works on phones and desktops.\n"
        "- Accessible markup: semantic HTML, labels on form fields, alt text on images.\n"
        "- One shared stylesheet with a consistent colour palette and typography."
    )
