"""Chat scripts: the recorded conversations :class:`ScriptedChatModel` replays.

A script is a JSON or YAML file::

    description: What the script does.
    after_last_turn: cycle          # cycle | repeat_last | finish
    final_message: Done.            # answered once a turn's responses are used up
    turns:                          # one entry per user message
      - responses:                  # one entry per model call in that turn
          - content: I'll plan first.
            tool_calls:
              - name: plan_changes
                args: {goal: A site, steps: [Write index.html]}
            usage: {input_tokens: 120, output_tokens: 30}   # optional override
            delay_s: 0.5            # optional: wait before answering
            error:                  # optional: fail like a provider first
              status_code: 429
              message: slow down
              times: 1
    tasks:                          # optional replies to helper tasks
      generate_title: Bakery site
      improve_prompt: Build a bakery site with ...

Bundled scripts live in ``builder/models/scripts/<name>.yaml`` and are named by
``scripted:<name>``; any other script is named by its path, ``scripted:<path>``.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from builder.errors import ConfigurationError

__all__ = [
    "ChatScript",
    "ScriptedError",
    "ScriptedResponse",
    "ScriptedTasks",
    "ScriptedToolCall",
    "ScriptedTurn",
    "ScriptedUsage",
    "bundled_script_names",
    "load_script",
    "parse_script",
    "resolve_script",
]

_TOOL_NAME = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
_SCRIPT_NAME = r"^[a-z0-9][a-z0-9_-]*$"
_SUFFIXES = (".json", ".yaml", ".yml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScriptedToolCall(_Strict):
    """A tool call the model makes; its id is assigned from its position."""

    name: str = Field(pattern=_TOOL_NAME)
    args: dict[str, Any] = Field(default_factory=dict)


class ScriptedUsage(_Strict):
    """Token counts reported instead of the estimate."""

    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)


class ScriptedError(_Strict):
    """A provider error raised ``times`` times before the response is given."""

    status_code: int = Field(ge=400, le=599)
    message: str = "scripted provider error"
    times: int = Field(1, ge=1)


class ScriptedResponse(_Strict):
    """One model answer: text, tool calls, or both."""

    content: str = ""
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    usage: ScriptedUsage | None = None
    delay_s: float = Field(0.0, ge=0, le=3600)
    error: ScriptedError | None = None

    @model_validator(mode="after")
    def _says_something(self) -> ScriptedResponse:
        if not self.content and not self.tool_calls:
            raise ValueError("a response needs `content`, `tool_calls` or both")
        return self


class ScriptedTurn(_Strict):
    """The model's answers to one user message, in call order."""

    responses: list[ScriptedResponse] = Field(min_length=1)


class ScriptedTasks(_Strict):
    """Replies to helper tasks (see :mod:`builder.models.tasks`)."""

    generate_title: str | None = None
    improve_prompt: str | None = None


class ChatScript(_Strict):
    """A whole script: turns of responses, the final message and task replies."""

    description: str = ""
    turns: list[ScriptedTurn] = Field(default_factory=list)
    after_last_turn: Literal["cycle", "repeat_last", "finish"] = "cycle"
    final_message: str = Field("Done.", min_length=1)
    tasks: ScriptedTasks = Field(default_factory=ScriptedTasks)

    def tool_names(self) -> dict[str, tuple[int, int]]:
        """Every tool the script calls, with the (turn, response) indexes of its first call."""
        names: dict[str, tuple[int, int]] = {}
        for t, turn in enumerate(self.turns):
            for r, response in enumerate(turn.responses):
                for call in response.tool_calls:
                    names.setdefault(call.name, (t, r))
        return names


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else item)
    return "".join(parts) or "(top level)"


def parse_script(data: Any, *, source: str) -> ChatScript:
    """Validate already-parsed script data.

    Args:
        data: The parsed JSON/YAML document.
        source: Where it came from, for error messages.

    Raises:
        ConfigurationError: The data is not a valid script; every problem is listed
            with its location (``turns[0].responses[2].tool_calls[0].name``).
    """
    try:
        return ChatScript.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"  - {_location(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        ]
        raise ConfigurationError(
            f"invalid chat script {source}: {len(problems)} problem(s):\n" + "\n".join(problems)
        ) from None


def load_script(path: Path) -> ChatScript:
    """Read and validate a JSON (``.json``) or YAML (any other suffix) script file.

    Raises:
        ConfigurationError: The file is missing, unreadable, not JSON/YAML, or not a
            valid script.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read chat script {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"chat script {path} is not valid JSON/YAML: {exc}") from None
    return parse_script(data, source=str(path))


def bundled_script_names() -> list[str]:
    """The names of the scripts shipped with builder, sorted."""
    folder = resources.files("builder.models") / "scripts"
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def resolve_script(reference: str) -> Path:
    """The file a ``scripted:<reference>`` names: a bundled script or a path.

    A reference with a path separator or a ``.json``/``.yaml``/``.yml`` suffix is a
    path (relative to the working directory); otherwise it names a bundled script.

    Raises:
        ConfigurationError: The reference is empty or names no bundled script.
    """
    if not reference:
        raise ConfigurationError(
            "BUILDER_MODEL=scripted: needs a script, "
            "e.g. scripted:demo or scripted:./my-script.yaml"
        )
    if "/" in reference or "\\" in reference or reference.endswith(_SUFFIXES):
        return Path(reference).expanduser()
    bundled = bundled_script_names()
    if re.fullmatch(_SCRIPT_NAME, reference) and reference in bundled:
        return Path(str(resources.files("builder.models") / "scripts" / f"{reference}.yaml"))
    raise ConfigurationError(
        f"no bundled chat script named {reference!r}; bundled: {', '.join(bundled)}. "
        "Name a file instead, e.g. scripted:./my-script.yaml"
    )
