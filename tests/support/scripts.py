"""Chat scripts written by tests: scripted models that drive the agent step by step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["call", "write_script"]


def call(name: str, **args: Any) -> dict[str, Any]:
    """One scripted tool call."""
    return {"name": name, "args": args}


def write_script(directory: Path, turns: list[list[dict[str, Any]]], **extra: Any) -> str:
    """Write a chat script and return its ``scripted:<path>`` model spec.

    Args:
        directory: Where to write it.
        turns: For each user message, the model's responses: dicts with ``content``
            and/or ``tool_calls`` (see :func:`call`), optionally ``usage``/``delay_s``.
        **extra: Top-level script fields (``final_message``, ``after_last_turn``, ...).
    """
    path = directory / f"script-{len(list(directory.glob('script-*.yaml')))}.yaml"
    script = {"turns": [{"responses": responses} for responses in turns], **extra}
    path.write_text(yaml.safe_dump(script, sort_keys=False))
    return f"scripted:{path}"
