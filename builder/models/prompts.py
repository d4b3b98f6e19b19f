"""Prompts: the web-builder system prompt and the two helper tasks.

:func:`improve_prompt` rewrites a site request into a clear brief; :func:`generate_title`
names a project. Both are one short model call through
:func:`~builder.models.invoke.invoke_model` (AI timeout per attempt, provider retries),
at temperature 0 where the model accepts one, with their input length checked and their
output cleaned. Their system prompts start with a task marker (``# task: <name>``), so
the scripted model answers them from its script's ``tasks`` (or deterministically from
the input when the script has none).
"""

from __future__ import annotations

import re

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from builder.errors import InvalidInput
from builder.models.factory import load_chat_model
from builder.models.invoke import invoke_model
from builder.models.tasks import TASK_MARKER, TITLE_MAX_CHARS, TaskName, title_from_text
from builder.settings import Settings, get_settings

__all__ = [
    "IMPROVED_PROMPT_MAX_CHARS",
    "PROMPT_INPUT_MAX_CHARS",
    "TITLE_MAX_CHARS",
    "WEB_BUILDER_SYSTEM_PROMPT",
    "clean_improved_prompt",
    "clean_title",
    "generate_title",
    "improve_prompt",
]

PROMPT_INPUT_MAX_CHARS = 4000
"""Longest text the helper tasks accept."""

IMPROVED_PROMPT_MAX_CHARS = 6000
"""Longest improved prompt returned; a longer answer is cut at a word boundary."""

WEB_BUILDER_SYSTEM_PROMPT = """\
You are builder, an expert web developer. You build and edit the user's web project \
inside a sandboxed workspace, using only the tools provided. The user sees a live \
preview of the dev server.

How to work:
1. Plan first. For any change bigger than one small edit, call plan_changes(goal, \
steps) with short, concrete steps, then mark_step_complete(step, notes) as you finish \
each one. Use analyze_project_state or get_project_structure to orient yourself in an \
existing project, and list_files / search_files / read_file to find what to change.
2. Read before you edit. Call read_file on a file before changing it, unless you \
created it in this conversation and nothing else touched it.
3. Edit small, write whole. For a small change use edit_file(path, search, replace) \
with a search text copied exactly from the file and long enough to occur exactly once \
(include a neighbouring line if needed). Use write_file for new files or complete \
rewrites, batch_write_files to create several files at once, rename_file and \
delete_file to reorganise. If an edit reports that the file changed or the search text \
was not found or not unique, read the file again and retry with a precise search text.
4. Keep files small and focused: split large pages, styles and scripts into several \
files rather than one huge file. Use relative links between pages and make every \
internal link and asset path point to a file that exists. Give every page a <title>, \
every image an alt text and every form field a label.
5. Install dependencies with install_packages, not run_command: with no packages it \
installs what the lock file lists (do that first in a project that has package.json \
but no node_modules). Use run_command for short, non-interactive commands (tests, \
linters); never start long-running servers with it.
6. Preview: when the project can run, call start_dev_server, then \
get_dev_server_status to confirm it is running and to learn the preview URL. If it \
fails, read the error output, fix the cause and start it again.
7. When the project has a build (package.json with a build script), call check_build \
after changing code and fix every error it reports before you finish; say in your \
summary whether the build passes.
8. Respect the limits: file sizes, the project quota, command time limits and your \
step and token budget are enforced. Tool results may be truncated; narrow your \
request (a path, a search) instead of repeating it.
9. Never print, log or write secrets (API keys, tokens, passwords) into files or \
answers; use environment variables and placeholders.

Finish with a short summary for the user: what you built or changed, which files, \
and how to see it. Be concise; do not paste whole files into your answer.
"""

_TITLE_PROMPT = f"""\
{TASK_MARKER}generate_title
Name the website project the user describes. Answer with the title only: at most \
six words, no quotes, no trailing punctuation, no explanation."""

_IMPROVE_PROMPT = f"""\
{TASK_MARKER}improve_prompt
Rewrite the user's request for a website into a clear, specific brief for a web \
developer. Keep every requirement the user gave and their language; add sensible \
details they left out (pages, sections, content, layout, style, accessibility). Answer \
with the improved brief only, in plain text, at most 250 words, no preamble."""

_QUOTES = "\"'`“”‘’«»"
_LABEL = re.compile(r"^(?:project\s+)?(?:title|name)\s*:\s*", re.IGNORECASE)
_FENCE = re.compile(r"^```[\w-]*\n(.*)\n```$", re.DOTALL)


def _checked(text: str) -> str:
    stripped = text.strip()
    if not stripped:
        raise InvalidInput("text must not be empty")
    if len(text) > PROMPT_INPUT_MAX_CHARS:
        raise InvalidInput(
            f"text is {len(text):,} characters; the limit is {PROMPT_INPUT_MAX_CHARS:,}"
        )
    return stripped


async def _run_task(
    task: TaskName,
    system: str,
    text: str,
    *,
    model: BaseChatModel | None,
    settings: Settings | None,
) -> str:
    settings = settings or get_settings()
    chat = model or load_chat_model(settings=settings, temperature=0)
    messages: list[BaseMessage] = [SystemMessage(content=system), HumanMessage(content=text)]
    answer = await invoke_model(chat, messages, settings=settings, config={"tags": [task]})
    return answer.text


def clean_title(raw: str, *, fallback_from: str) -> str:
    """One line, no quotes or label, at most 60 characters; derived from the request if empty."""
    lines = [line.strip() for line in raw.strip().splitlines() if line.strip()]
    title = re.sub(r"[*`]+|__", "", lines[0]).lstrip("# ") if lines else ""
    title = _LABEL.sub("", title)
    title = " ".join(title.strip(_QUOTES + " ").split())
    title = title.rstrip(".!?;:,").strip(_QUOTES + " ")
    if len(title) > TITLE_MAX_CHARS:
        cut = title[:TITLE_MAX_CHARS]
        title = cut.rsplit(" ", 1)[0] if " " in cut else cut
        title = title.rstrip(".!?;:,-– ")
    return title or title_from_text(fallback_from)


def clean_improved_prompt(raw: str, *, fallback: str) -> str:
    """Stripped, code fences removed, at most 6,000 characters; the request itself if empty."""
    text = raw.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if len(text) > IMPROVED_PROMPT_MAX_CHARS:
        cut = text[:IMPROVED_PROMPT_MAX_CHARS]
        text = cut.rsplit(None, 1)[0] if " " in cut else cut
    return text or fallback


async def generate_title(
    text: str, *, model: BaseChatModel | None = None, settings: Settings | None = None
) -> str:
    """A short project title for a site request.

    Args:
        text: The user's request (1 to 4,000 characters).
        model: The model to ask; default: ``BUILDER_MODEL`` at temperature 0.
        settings: Budgets, retries and the default model.

    Returns:
        One line without quotes, at most 60 characters. When the model answers
        nothing usable, the first words of ``text``.

    Raises:
        InvalidInput: ``text`` is empty or longer than 4,000 characters.
        ProviderError: The model call failed after retries.
        OperationTimeout: The model did not answer in time.
    """
    request = _checked(text)
    raw = await _run_task("generate_title", _TITLE_PROMPT, request, model=model, settings=settings)
    return clean_title(raw, fallback_from=request)


async def improve_prompt(
    text: str, *, model: BaseChatModel | None = None, settings: Settings | None = None
) -> str:
    """A clearer, more specific version of a site request.

    Args:
        text: The user's request (1 to 4,000 characters).
        model: The model to ask; default: ``BUILDER_MODEL`` at temperature 0.
        settings: Budgets, retries and the default model.

    Returns:
        The improved request, stripped, at most 6,000 characters; the request itself
        when the model answers nothing.

    Raises:
        InvalidInput: ``text`` is empty or longer than 4,000 characters.
        ProviderError: The model call failed after retries.
        OperationTimeout: The model did not answer in time.
    """
    request = _checked(text)
    raw = await _run_task(
        "improve_prompt", _IMPROVE_PROMPT, request, model=model, settings=settings
    )
    return clean_improved_prompt(raw, fallback=request)
