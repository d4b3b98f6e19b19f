"""Chat models: the factory, the one way to call a model, the scripted model, prompts.

* :func:`load_chat_model` — a LangChain chat model from ``BUILDER_MODEL``
  (``provider:model`` or ``scripted:<name|path>``).
* :func:`invoke_model` — one call with the AI time budget and provider retries.
* :class:`ScriptedChatModel` — replays a recorded script; no provider needed.
* :data:`WEB_BUILDER_SYSTEM_PROMPT`, :func:`improve_prompt`, :func:`generate_title`.
"""

from __future__ import annotations

from builder.models.factory import load_chat_model
from builder.models.invoke import invoke_model
from builder.models.prompts import WEB_BUILDER_SYSTEM_PROMPT, generate_title, improve_prompt
from builder.models.script import ChatScript, bundled_script_names, load_script
from builder.models.scripted import ScriptedChatModel

__all__ = [
    "WEB_BUILDER_SYSTEM_PROMPT",
    "ChatScript",
    "ScriptedChatModel",
    "bundled_script_names",
    "generate_title",
    "improve_prompt",
    "invoke_model",
    "load_chat_model",
    "load_script",
]
