"""A tool: a typed, documented function that the agent can call.

Everything the model sees comes from the function itself: the name from its name,
the description from the first paragraph of its docstring, the argument schema from
its signature, and each argument's description from the docstring's Google-style
``Args:`` section. A keyword-only parameter annotated :class:`ToolContext` receives the
run context and is left out of the schema.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, create_model

from builder.errors import InvalidTool
from builder.settings import OperationKind
from builder.timeouts import with_timeout
from builder.tools.context import ToolContext
from builder.tools.output import ToolContent, WithImages, truncate

__all__ = ["Tool", "parse_docstring"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_SECTION = re.compile(
    r"(Args|Arguments|Parameters|Returns?|Yields?|Raises|Examples?|Notes?|Attributes"
    r"|See Also|Warnings?|Todo):\s*"
)
_ARG = re.compile(r"\*{0,2}(?P<name>\w+)\s*(\([^)]*\))?\s*:\s*(?P<text>.*)")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into a one-paragraph summary and argument notes.

    Args:
        doc: The docstring (indentation is cleaned first).

    Returns:
        The first paragraph joined into one line, and a mapping from argument name to
        its description taken from the ``Args:`` section.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.fullmatch(line):
            break
        summary.append(line.strip())
    args: dict[str, str] = {}
    in_args = False
    indent: int | None = None
    current: str | None = None
    for line in lines:
        if _SECTION.fullmatch(line):
            in_args = line.split(":")[0] in {"Args", "Arguments", "Parameters"}
            indent, current = None, None
            continue
        if not in_args or not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        match = _ARG.fullmatch(line.strip())
        if depth == indent and match:
            current = match["name"]
            args[current] = match["text"].strip()
        elif depth > indent and current is not None:
            args[current] = f"{args[current]} {line.strip()}".strip()
    return " ".join(summary), args


def _context_hints(fn: Callable[..., Any], name: str, plugin: str) -> dict[str, Any]:
    try:
        # ToolContext resolves even when a plugin imports it only for type checking.
        return typing.get_type_hints(fn, localns={"ToolContext": ToolContext}, include_extras=True)
    except Exception as exc:
        raise InvalidTool(name, plugin, f"its type annotations cannot be resolved: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Tool:
    """A registered tool.

    Attributes:
        name: What the model calls it.
        description: One paragraph for the model.
        fn: The function (sync or async).
        args_schema: A pydantic model of the arguments (the context excluded).
        plugin: The plugin that registered it (entry-point name, ``builtin`` for ours).
        context_param: The parameter that receives the :class:`ToolContext`, if any.
        timeout: The operation budget each call runs under; None when the tool
            bounds its own work.
        source: The LangChain tool it calls, for a tool registered from one
            (see :mod:`builder.tools.foreign`); None for a function.
    """

    name: str
    description: str
    fn: Callable[..., Any]
    args_schema: type[BaseModel]
    plugin: str
    context_param: str | None = None
    timeout: OperationKind | None = "sandbox"
    source: Any = None

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        plugin: str,
        name: str | None = None,
        timeout: OperationKind | None = "sandbox",
    ) -> Tool:
        """Build a tool from a typed, documented function.

        Args:
            fn: The function; every parameter but the context needs a type annotation.
            plugin: The plugin registering it.
            name: The tool's name; defaults to the function's name.
            timeout: The operation budget of one call (None: the tool bounds itself).

        Raises:
            InvalidTool: The name, docstring or signature cannot make a tool.
        """
        tool_name: str = name or str(getattr(fn, "__name__", ""))
        if not _NAME.fullmatch(tool_name):
            raise InvalidTool(tool_name, plugin, "a name is 1-64 letters, digits, _ or -")
        description, arg_notes = parse_docstring(inspect.getdoc(fn))
        if not description:
            raise InvalidTool(tool_name, plugin, "it needs a docstring to describe it")
        hints = _context_hints(fn, tool_name, plugin)
        fields: dict[str, Any] = {}
        context_param: str | None = None
        for param in inspect.signature(fn).parameters.values():
            annotation = hints.get(param.name, inspect.Parameter.empty)
            if annotation is ToolContext:
                if param.kind is not inspect.Parameter.KEYWORD_ONLY or context_param:
                    raise InvalidTool(
                        tool_name, plugin, "the ToolContext must be one keyword-only parameter"
                    )
                context_param = param.name
                continue
            if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise InvalidTool(tool_name, plugin, "*args and **kwargs cannot be described")
            if annotation is inspect.Parameter.empty:
                raise InvalidTool(tool_name, plugin, f"parameter {param.name!r} has no type")
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (
                annotation,
                Field(default, description=arg_notes.get(param.name)),
            )
        schema_name = "".join(part.capitalize() for part in re.split(r"[_-]", tool_name))
        args_schema = create_model(
            f"{schema_name}Args",
            __config__=ConfigDict(extra="forbid"),
            __doc__=description,
            **fields,
        )
        return cls(
            name=tool_name,
            description=description,
            fn=fn,
            args_schema=args_schema,
            plugin=plugin,
            context_param=context_param,
            timeout=timeout,
        )

    @property
    def is_async(self) -> bool:
        """True when the function is a coroutine function."""
        return inspect.iscoroutinefunction(self.fn)

    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments, exactly as langchain-core gives it to a model."""
        from builder.tools.bound import BoundTool  # bound.py builds on this module

        schema: dict[str, Any] = convert_to_openai_tool(BoundTool(self))["function"]["parameters"]
        return schema

    async def run(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolContent:
        """Validate ``arguments``, call the function with ``ctx`` injected, and render.

        Sync functions run in a worker thread. The call runs under the tool's
        operation budget; the result is rendered as text and cut to
        ``settings.tool_output_chars`` with a note. A :class:`WithImages` result
        becomes a text block followed by image blocks.

        Raises:
            pydantic.ValidationError: The arguments do not match the schema.
            OperationTimeout: The call ran past its budget.
            BuilderError: Whatever the tool raises on purpose.
        """
        validated = self.args_schema.model_validate(dict(arguments))
        kwargs = {field: getattr(validated, field) for field in type(validated).model_fields}
        kwargs.update(validated.model_extra or {})  # a JSON-schema tool's arguments
        if self.context_param is not None:
            kwargs[self.context_param] = ctx
        work = self.fn(**kwargs) if self.is_async else asyncio.to_thread(self.fn, **kwargs)
        if self.timeout is None:
            result = await work
        else:
            result = await with_timeout(work, self.timeout, settings=ctx.settings)
        if isinstance(result, WithImages):
            return result.content(ctx.settings.tool_output_chars)
        return truncate(_render(result), ctx.settings.tool_output_chars)


def _render(result: object) -> str:
    if isinstance(result, str):
        return result
    if result is None:
        return "done"
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    return json.dumps(result, default=str, ensure_ascii=False)
