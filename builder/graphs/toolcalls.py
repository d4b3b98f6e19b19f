"""The tools node: runs the model's tool calls, one per step, through the registry.

Each pending tool call of the last model message is its own graph step, in the order
the model gave them. With ``durability="sync"`` every finished call is checkpointed
before the next one starts, so a run resumed after a crash never repeats a call that
had completed (only the one in flight, if any). After the last call of a model
message the same step saves the files the calls changed and the model call's tokens
(:class:`~builder.graphs.saving.StepSaver`); a crash before that save repeats the
last call on resume, and the save after it finds the workspace by a rescan.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, ToolCall, ToolMessage
from langgraph.runtime import Runtime

from builder.graphs.context import RunContext
from builder.graphs.saving import StepSaver
from builder.graphs.state import DevServerState, PlanState, WebBuilderState
from builder.locks import LockManager
from builder.log import get_logger
from builder.persistence.projects import record_replica
from builder.tools.bound import answer_call
from builder.tools.context import (
    DevServerStatus,
    Plan,
    PlanStep,
    ToolContext,
    ToolEffects,
    ToolEvent,
)
from builder.tools.registry import ToolRegistry

__all__ = ["ToolCallsNode", "cut_off", "pending_tool_calls"]

_log = get_logger("builder.graphs.tools")

_ARG_PREVIEW = 160
_RESULT_PREVIEW = 400


def _last_ai_message(messages: list[AnyMessage]) -> AIMessage | None:
    return next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)


def pending_tool_calls(messages: list[AnyMessage]) -> list[ToolCall]:
    """Tool calls of the last AI message that have no result yet, in order.

    Calls whose arguments the provider integration could not parse (its
    ``invalid_tool_calls``: arguments that are not JSON, cut off by the output limit)
    are pending too, marked ``type="invalid_tool_call"``: the provider sent them with
    an id, so the conversation needs an answer for each, and the model learns what
    to fix.
    """
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, AIMessage):
            answered = {m.tool_call_id for m in messages[index + 1 :] if isinstance(m, ToolMessage)}
            calls = list(message.tool_calls)
            calls += [
                ToolCall(
                    name=invalid.get("name") or "",
                    args={"arguments": invalid.get("args") or "", "error": invalid.get("error")},
                    id=invalid.get("id"),
                    type="invalid_tool_call",  # type: ignore[typeddict-item]
                )
                for invalid in message.invalid_tool_calls
            ]
            return [call for call in calls if call.get("id") not in answered]
    return []


def preview_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Tool arguments for events and logs: long strings replaced by their length."""
    shown: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, str) and len(value) > _ARG_PREVIEW:
            shown[key] = f"<{len(value):,} characters>"
        elif isinstance(value, list) and len(str(value)) > _ARG_PREVIEW:
            shown[key] = f"<{len(value)} items>"
        else:
            shown[key] = value
    return shown


def _plan_from_state(plan: PlanState | None) -> Plan | None:
    if plan is None:
        return None
    return Plan(
        goal=plan["goal"],
        steps=[PlanStep(s["description"], s["done"], s["notes"]) for s in plan["steps"]],
    )


def _plan_to_state(plan: Plan) -> PlanState:
    return {
        "goal": plan.goal,
        "steps": [
            {"description": s.description, "done": s.done, "notes": s.notes} for s in plan.steps
        ],
    }


def _server_from_state(server: DevServerState | None) -> DevServerStatus | None:
    return None if server is None else DevServerStatus(**server)


def _server_to_state(server: DevServerStatus) -> DevServerState:
    return {
        "running": server.running,
        "command": server.command,
        "port": server.port,
        "preview_url": server.preview_url,
        "exit_code": server.exit_code,
    }


class ToolCallsNode:
    """Runs the next pending tool call with the run context injected."""

    def __init__(self, registry: ToolRegistry) -> None:
        self.registry = registry
        self.saver = StepSaver()

    async def __call__(
        self, state: WebBuilderState, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        messages = state.get("messages", [])
        pending = pending_tool_calls(messages)
        if not pending:
            return {}
        last = _last_ai_message(messages)
        if last is None or last.id is None or last.id != state.get("model_message_id"):
            return _refuse_foreign(pending)
        call = pending[0]
        ctx = runtime.context
        write = runtime.stream_writer
        step = state.get("run_steps", 0)
        name, call_id = call["name"], call.get("id") or ""
        effects = ToolEffects(
            plan=_plan_from_state(state.get("plan")),
            dev_server=_server_from_state(state.get("dev_server")),
        )

        def forward(event: ToolEvent) -> None:
            write({"event": "tool_progress", "tool": event.tool, "kind": event.kind, **event.data})

        tool_ctx = ToolContext(
            sandbox=ctx.sandbox,
            project_id=ctx.project_id,
            settings=ctx.settings,
            locks=_tool_locks(ctx),
            run_id=ctx.run_id,
            effects=effects,
            on_event=forward,
            db=ctx.db,
            disk=ctx.disk,
        )
        write(
            {
                "event": "tool_start",
                "tool": name,
                "call_id": call_id,
                "step": step,
                "args": preview_args(call.get("args", {})),
            }
        )
        started = time.perf_counter()
        if str(call.get("type")) == "invalid_tool_call":
            message = ToolMessage(
                f"Error (invalid_arguments): the arguments of this {name} call are not a "
                "valid JSON object, so it was not run; call the tool again with complete "
                f"JSON arguments. Received: {str(call['args'].get('arguments'))[:200]!r}"
                + (
                    " The reply was cut off at the model's output token limit: write large "
                    "files in smaller parts."
                    if last is not None and cut_off(last)
                    else ""
                ),
                tool_call_id=call_id,
                name=name,
                status="error",
            )
            effects.error(f"{name}: invalid arguments")
        elif name in self.registry:
            message = await answer_call(
                self.registry.get(name), tool_ctx, call_id, call.get("args", {})
            )
        else:
            known = ", ".join(self.registry.names())
            message = ToolMessage(
                f"Error (unknown_tool): there is no tool named {name!r}; the tools are: {known}",
                tool_call_id=call_id,
                name=name,
                status="error",
            )
            effects.error(f"{name}: unknown tool")
        duration = round((time.perf_counter() - started) * 1000, 1)
        if effects.rescan:
            ctx.disk.forget()  # a command may have changed any file
        # A command that exited non-zero or timed out answered, but did not succeed.
        ok = message.status != "error" and not effects.failed
        text = message.content if isinstance(message.content, str) else message.text
        write(
            {
                "event": "tool_end",
                "tool": name,
                "call_id": call_id,
                "step": step,
                "ok": ok,
                "duration_ms": duration,
                "result": text[:_RESULT_PREVIEW],
            }
        )
        for path, sha in effects.files.items():
            write({"event": "file_changed", "path": path, "sha256": sha, "deleted": sha is None})

        update: dict[str, Any] = {
            "messages": [message],
            "tool_history": [
                {
                    "step": step,
                    "tool": name,
                    "ok": ok,
                    "summary": text.splitlines()[0][:200] if text else "",
                    "duration_ms": duration,
                }
            ],
        }
        changes = dict(effects.files)
        if len(pending) > 1:
            # More calls of this model step follow: the step is saved after the last.
            if changes:
                update["files"] = changes
                update["unsaved"] = {**state.get("unsaved", {}), **changes}
            if effects.rescan:
                update["rescan"] = True
        else:
            update.update(
                await self.saver.save(
                    state, runtime, files=changes, rescan=effects.rescan, written=effects.written
                )
            )
        if effects.plan_changed and effects.plan is not None:
            update["plan"] = _plan_to_state(effects.plan)
        if effects.dev_server is not None and effects.dev_server != tool_ctx_server(state):
            update["dev_server"] = _server_to_state(effects.dev_server)
            if effects.dev_server.running and ctx.db is not None:
                # It runs in this process's sandbox: other replicas forward previews here.
                await record_replica(
                    ctx.db, project_id=ctx.project_id, replica=ctx.settings.advertise_url
                )
        if not ok:
            update["errors"] = [f"{name}: {text.splitlines()[0][:300] if text else 'error'}"]
        return update


def _tool_locks(ctx: RunContext) -> LockManager:
    """The file locks of a run's tools.

    A run of the runs service works under its lease on the project, which keeps every
    other writer of the project's workspace (runs elsewhere, hand edits) out
    (``RunContext.exclusive``): file locks then only need to order this process's
    tasks, with no database round trip per write. Anywhere else they hold across
    processes.
    """
    if ctx.exclusive:
        return ctx.locks.in_process()
    return ctx.locks


def cut_off(message: AIMessage) -> bool:
    """Whether the provider stopped the message at its output token limit."""
    meta = message.response_metadata
    return meta.get("finish_reason") == "length" or meta.get("stop_reason") == "max_tokens"


def _refuse_foreign(calls: list[ToolCall]) -> dict[str, Any]:
    """Answer tool calls the model did not make with an error, running none of them.

    Only the message the agent node produced in this run may call tools; calls put
    into the state by anyone else (an edited thread, a forged message) are answered so
    the conversation stays well formed, and reported.
    """
    _log.warning("tools.refused", calls=[call["name"] for call in calls])
    return {
        "messages": [
            ToolMessage(
                "Error (refused): this tool call was not made by the model in this run, "
                "so it was not executed",
                tool_call_id=call.get("id") or "",
                name=call["name"],
                status="error",
            )
            for call in calls
        ],
        "errors": [f"{call['name']}: refused, not made by the model" for call in calls],
    }


def tool_ctx_server(state: WebBuilderState) -> DevServerStatus | None:
    """The dev-server status the state held before the call."""
    return _server_from_state(state.get("dev_server"))
