"""The persist node: ends a turn.

It saves anything a step left unsaved (after a resume, the rescanned workspace),
records the answer's tokens and prunes the checkpointed conversation to the context
budget — the full conversation is in the ``messages`` table, so nothing is lost.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, RemoveMessage
from langgraph.runtime import Runtime

from builder.graphs.agent import context_window
from builder.graphs.context import RunContext
from builder.graphs.saving import StepSaver, record_run_version
from builder.graphs.state import WebBuilderState

__all__ = ["PersistNode"]


class PersistNode:
    """Ends a turn: saves anything left unsaved, records the answer's tokens and
    prunes the checkpointed conversation to the context budget."""

    def __init__(self) -> None:
        self.saver = StepSaver()

    async def __call__(
        self, state: WebBuilderState, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        update = await self.saver.save(state, runtime)
        if runtime.context.exclusive:
            # The version the turn's last step saved (this node's own save, if any,
            # commits with its writes, after it returns: the runs service records it).
            await record_run_version(runtime.context)
        messages = state.get("messages", [])
        last = messages[-1] if messages else None
        if isinstance(last, AIMessage) and not last.tool_calls:
            update["build_status"] = "done"
            if state.get("stop_reason") is None:
                update["stop_reason"] = "done"
            window = context_window(messages, runtime.context.settings.context_token_budget)
            keep = {m.id for m in window}
            removed = [RemoveMessage(id=m.id) for m in messages if m.id and m.id not in keep]
            if removed:
                update["messages"] = removed
        return update
