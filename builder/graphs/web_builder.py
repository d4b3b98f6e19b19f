"""The web-builder graph: agent → tools, looping until the model answers; then persist.

::

    START → agent ─┬─ tool calls ──► tools ──┬─ more calls ─► tools
                   │                         └─ step saved ─► agent
                   └─ answer ──────────────► persist
    persist ─┬─ files changed since the last check ─► check ─┬─ problems ─► agent
             │                                               └─ passes ───► END
             └─ otherwise ─► END

The tools node saves each model step's files and tokens with its last call, so a tool
call costs two checkpointed nodes; persist ends the turn.

The check (:mod:`builder.graphs.check`) builds the project, reads the dev server's
errors and runs the site checker when it is installed; the model fixes what it reports
before the turn ends.

Build it with :func:`build_web_builder_graph`, run it with a :class:`RunContext`::

    graph = build_web_builder_graph(model="openai:gpt-4.1", checkpointer=saver)
    await graph.ainvoke(
        {"messages": [("user", "A bakery site with a menu page")]},
        {"configurable": {"thread_id": project_id}},
        context=RunContext(sandbox=sandbox, locks=locks, db=db),
        durability="sync",
    )
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph._internal._runnable import RunnableCallable
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from builder.graphs.agent import AgentNode
from builder.graphs.check import CheckNode, is_check_message, needs_check
from builder.graphs.context import RunContext
from builder.graphs.persist import PersistNode
from builder.graphs.state import RouteState, WebBuilderState
from builder.graphs.toolcalls import ToolCallsNode, pending_tool_calls
from builder.models import WEB_BUILDER_SYSTEM_PROMPT, load_chat_model
from builder.models.factory import reads_images
from builder.plugins import build_tool_registry, load_plugins
from builder.settings import Settings, get_settings
from builder.tools.registry import ToolRegistry
from builder.tools.screenshot import IMAGE_TOOLS

__all__ = ["RunContexts", "build_web_builder_graph", "tool_specs"]

WebBuilderGraph = CompiledStateGraph[WebBuilderState, RunContext, WebBuilderState, WebBuilderState]

RunContexts = Callable[[RunnableConfig, str], AbstractAsyncContextManager[RunContext]]
"""Where a graph hosted by another server gets its run context: called with the node's
config and the run id, it holds a :class:`RunContext` (a leased sandbox) while the node
runs."""

_TURN_START = {"run_steps": 0, "run_tokens": 0, "stop_reason": None, "pending_usage": None}
"""What a turn starts from (the runs service puts it in each turn's input)."""


class _WithContexts:
    """A node that builds its run context itself when the caller passed none.

    A server that is not builder (``langgraph dev``) invokes the graph with a JSON
    context or none at all. The agent node also starts the turn there, as the runs
    service does with its input: a user message last means a new run, whose counters
    start at zero.
    """

    def __init__(self, node: Any, contexts: RunContexts, *, starts_turns: bool = False) -> None:
        self.node = node
        self.contexts = contexts
        self.starts_turns = starts_turns
        self.takes_config = "config" in inspect.signature(node.__call__).parameters

    async def __call__(
        self, state: WebBuilderState, config: RunnableConfig, runtime: Runtime[Any]
    ) -> dict[str, Any]:
        if isinstance(runtime.context, RunContext):
            return await self._call(state, config, runtime)
        messages = state.get("messages", [])
        new_turn = (
            self.starts_turns
            and bool(messages)
            and isinstance(messages[-1], HumanMessage)
            and not is_check_message(messages[-1])
        )
        run_id = _run_id(config) or (None if new_turn else state.get("run_id")) or uuid.uuid4().hex
        async with self.contexts(config, run_id) as ctx:
            if not new_turn:
                return await self._call(state, config, runtime.override(context=ctx))
            started: dict[str, Any] = {**_TURN_START, "run_id": run_id}
            started["project_id"] = ctx.project_id
            update = await self._call(
                cast(WebBuilderState, {**state, **started}),
                config,
                runtime.override(context=ctx),
            )
            return {**started, **update}

    async def _call(
        self, state: WebBuilderState, config: RunnableConfig, runtime: Runtime[Any]
    ) -> dict[str, Any]:
        if self.takes_config:
            return cast(dict[str, Any], await self.node(state, config, runtime))
        return cast(dict[str, Any], await self.node(state, runtime))


def _run_id(config: RunnableConfig) -> str | None:
    """The hosting server's id for this run, if it says."""
    for source in (config.get("configurable") or {}, config.get("metadata") or {}):
        value = source.get("run_id")
        if value:
            return str(value)
    return None


def tool_specs(registry: ToolRegistry) -> list[dict[str, Any]]:
    """The registry's tools as langchain-core converts them for OpenAI-style models.

    The graph itself hands the model :meth:`ToolRegistry.definitions` and lets the
    model's integration convert them; this is the same conversion, for inspection.
    """
    return [convert_to_openai_tool(tool) for tool in registry.definitions()]


# The routers are coroutines although they only read the state: LangGraph runs a plain
# function given as an edge's path on a worker thread when the graph runs asynchronously,
# a thread hop (and a wait for the interpreter lock) after every node. They are not
# traced (:func:`_router`), and the two that run at every tool call read only the
# channels they need (``RouteState``).
async def _after_agent(state: RouteState) -> Literal["tools", "persist"]:
    messages = state.get("messages", [])
    last = messages[-1] if messages else None
    calls = isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls)
    if calls and state.get("stop_reason") is None:
        return "tools"
    return "persist"


async def _after_tools(state: RouteState) -> Literal["tools", "agent"]:
    return "tools" if pending_tool_calls(state.get("messages", [])) else "agent"


class _AfterPersist:
    """A tool result set by a state update goes back to the agent; an answer that needs a
    check goes to the check."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, state: WebBuilderState) -> Literal["agent", "check", "__end__"]:
        # State only: a state update (``update_state(as_node="persist")``) routes here
        # too, without a runtime.
        messages = state.get("messages", [])
        if messages and isinstance(messages[-1], ToolMessage):
            return "agent"
        if self.settings.check_rounds and needs_check(state):
            return "check"
        return "__end__"


async def _after_check(state: WebBuilderState) -> Literal["agent", "__end__"]:
    messages = state.get("messages", [])
    return "agent" if messages and is_check_message(messages[-1]) else "__end__"


def _router(route: Callable[[Any], Awaitable[str]]) -> Runnable[Any, str]:
    """A router as an edge's path that reports no run of its own to callbacks.

    LangGraph wraps a plain function as a traced runnable: a tracer would see a chain
    start and end for every routing decision, and a step pays for the callback manager
    each time. Its routing (the input schema and destinations read from the
    annotations) is the same.
    """
    name = getattr(route, "__name__", None) or type(route).__name__
    return RunnableCallable(None, route, name=name, trace=False)


def build_web_builder_graph(
    *,
    model: BaseChatModel | str | None = None,
    tools: ToolRegistry | None = None,
    extra_tools: Iterable[Callable[..., Any] | BaseTool] = (),
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    settings: Settings | None = None,
    system_prompt: str | None = None,
    name: str = "web_builder",
    contexts: RunContexts | None = None,
) -> WebBuilderGraph:
    """Build and compile the web-builder graph.

    Args:
        model: A chat model, a ``provider:model`` string, or None for ``BUILDER_MODEL``.
        tools: The tool registry; default: every tool of the loaded plugins.
        extra_tools: More tools, registered under the plugin name ``app``: functions
            (typed, documented, optionally taking a ``ToolContext``) or any LangChain
            ``BaseTool``.
        checkpointer: Where the context is kept between steps and turns; use
            :class:`~builder.graphs.checkpointer.TTLCheckpointer` for PostgreSQL
            with expiry. None compiles without one (each invoke starts fresh).
        settings: Settings for loading plugins and the model.
        system_prompt: Replaces the built-in system prompt.
        name: The compiled graph's name.
        contexts: For a graph hosted by another server (``langgraph dev``), which
            cannot pass a :class:`RunContext`: each node gets its context from here
            whenever the runtime carries none, and the graph takes any context (a
            JSON one is ignored). See :mod:`builder.graphs.hosted`.

    Returns:
        A compiled graph. Invoke it with ``context=RunContext(...)`` (optional with
        ``contexts``).

    Raises:
        DuplicateTool: An extra tool has the name of a registered one.
        ConfigurationError: No model is configured, or its integration is missing.
    """
    settings = settings or get_settings()
    registry = tools if tools is not None else build_tool_registry(load_plugins(settings))
    extras = list(extra_tools)
    if extras:
        if tools is not None:
            registry = registry.copy()
        for fn in extras:
            registry.register(fn, plugin="app")
    chat_model = (
        model if isinstance(model, BaseChatModel) else load_chat_model(model, settings=settings)
    )
    graph = StateGraph(
        WebBuilderState, context_schema=RunContext if contexts is None else cast(Any, None)
    )
    offered = registry.definitions()
    if not reads_images(chat_model, settings):
        offered = [tool for tool in offered if tool.name not in IMAGE_TOOLS]
    nodes: dict[str, Any] = {
        "agent": AgentNode(
            chat_model,
            tools=offered,
            system_prompt=system_prompt or WEB_BUILDER_SYSTEM_PROMPT,
        ),
        "tools": ToolCallsNode(registry),
        "persist": PersistNode(),
        "check": CheckNode(registry),
    }
    for node_name, node in nodes.items():
        if contexts is not None:
            node = _WithContexts(node, contexts, starts_turns=node_name == "agent")
        # LangGraph reads each node's signature to inject config and runtime; its
        # overloads do not describe a callable object taking both, hence the cast.
        graph.add_node(node_name, cast(Any, node))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", _router(_after_agent))
    graph.add_conditional_edges("tools", _router(_after_tools))
    graph.add_conditional_edges(
        "persist", _router(_AfterPersist(settings)), ["agent", "check", END]
    )
    graph.add_conditional_edges("check", _router(_after_check))
    return graph.compile(checkpointer=checkpointer, name=name)
