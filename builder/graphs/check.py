"""The end-of-turn check: the agent sees whether its work holds before the turn ends.

When the model answers without tool calls in a turn that changed files, the graph
checks the project before ending the turn::

    persist ─ answer, files changed since the last check ─► check ─┬─ problems ─► agent
                                                                   └─ passes ───► END

One check, three sources, whichever apply:

* **the build**: package.json's ``typecheck`` and ``build`` scripts (``tsc --noEmit``,
  ``vite build``, ``astro check``…), errors with file and line;
* **the dev server**: the build and compile errors it printed since the last check
  (and not cleared by a later rebuild), or that it exited;
* **the site checker**: ``check_site``'s findings, when a plugin registers that tool and
  the project is served as it is (it has no build).

Problems go back to the model as a user-role message named :data:`CHECK_MESSAGE_NAME`
(it is not a new turn), and the model fixes them. The turn ends "done" only when the
check passes. It ends "check_failed" when the model was given the problems
``settings.check_rounds`` times and they remain, and with the budget's reason when a
budget stops the run first; the last message then says the check still fails. Either
way the turn's final message says which.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.runtime import Runtime

from builder.errors import BuilderError
from builder.graphs.context import RunContext
from builder.graphs.state import CheckState, WebBuilderState
from builder.log import get_logger
from builder.sandbox.base import Sandbox
from builder.tools.build import run_build_check
from builder.tools.context import ToolContext
from builder.tools.devserver import DEV_SERVER, log_errors
from builder.tools.registry import ToolRegistry

__all__ = [
    "CHECK_MESSAGE_NAME",
    "SITE_CHECK_TOOL",
    "CheckNode",
    "Finding",
    "is_check_message",
    "needs_check",
]

_log = get_logger("builder.graphs.check")

CHECK_MESSAGE_NAME = "builder_check"
"""The ``name`` of the message that gives the model the check's problems."""
SITE_CHECK_TOOL = "check_site"
"""The site checker plugin's tool; the check runs it when it is registered."""
_LOG_LINES = 200
_MARK_LINES = 3


@dataclass(frozen=True, slots=True)
class Finding:
    """What one source of the check found."""

    source: str
    passed: bool
    text: str


def is_check_message(message: BaseMessage) -> bool:
    """Whether ``message`` is the check's report to the model, not the user's words."""
    return isinstance(message, HumanMessage) and message.name == CHECK_MESSAGE_NAME


_BUDGET_STOPS = ("step_limit", "token_budget", "cost_budget")


def needs_check(state: WebBuilderState) -> bool:
    """Whether the turn's answer must be checked before the turn ends.

    Only an answer of the model in this run (or a budget's stop message) is checked,
    never a message a state update put there. It must be when the files changed since
    the last check, or when the last check of this run failed (the model answered
    without fixing what it reported).
    """
    messages = state.get("messages", [])
    last_message = messages[-1] if messages else None
    answered = (
        isinstance(last_message, AIMessage)
        and not last_message.tool_calls
        and last_message.id is not None
        and last_message.id == state.get("model_message_id")
    )
    if not answered and state.get("stop_reason") not in _BUDGET_STOPS:
        return False
    files = state.get("files", {})
    last = state.get("check")
    if files != state.get("checked_files", {}):
        return bool(files) or last is not None
    return last is not None and not last["passed"] and last["run_id"] == state.get("run_id")


class CheckNode:
    """Runs the check and answers the model with its problems, or ends the turn."""

    def __init__(self, registry: ToolRegistry) -> None:
        self.registry = registry

    async def __call__(
        self, state: WebBuilderState, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        ctx = runtime.context
        files = dict(state.get("files", {}))
        last = state.get("check")
        run_id = state.get("run_id") or ctx.run_id
        seen = list(state.get("dev_log_seen") or [])
        update: dict[str, Any] = {"checked_files": files}
        if ctx.settings.check_rounds == 0:
            return update
        took = 0.0
        if last is not None and files == state.get("checked_files") and not last["passed"]:
            # Nothing changed since it failed: the same problems, without rebuilding.
            findings = [Finding("", False, last["report"])]
        else:
            began = time.perf_counter()
            findings, seen = await self._run(ctx, seen)
            took = round((time.perf_counter() - began) * 1000, 1)
        update["dev_log_seen"] = seen
        if not findings:
            update["check"] = None
            return update
        failed = [finding for finding in findings if not finding.passed]
        report = "\n\n".join(f"{f.source}: {f.text}" if f.source else f.text for f in failed)
        rounds = last["rounds"] if last is not None and last["run_id"] == run_id else 0
        stopped = state.get("stop_reason") not in (None, "done")
        feedback = bool(failed) and not stopped and rounds < ctx.settings.check_rounds
        rounds += feedback
        update["check"] = CheckState(passed=not failed, report=report, run_id=run_id, rounds=rounds)
        runtime.stream_writer(
            {
                "event": "check",
                "passed": not failed,
                "duration_ms": took,
                "findings": [
                    {"source": f.source, "passed": f.passed, "text": f.text} for f in findings
                ],
            }
        )
        _log.info(
            "check.done",
            passed=not failed,
            sources=[f.source for f in findings],
            duration_ms=took,
        )
        if feedback:
            update["messages"] = [
                HumanMessage(
                    "Automatic check of your changes (not the user): it found problems. "
                    "Fix them, then answer again.\n\n" + report,
                    name=CHECK_MESSAGE_NAME,
                    id=f"check-{uuid.uuid4().hex}",
                )
            ]
            update["stop_reason"] = None
            update["build_status"] = "working"
            return update
        if failed:
            verdict = f"The automatic check still fails:\n\n{report}"
            update["build_status"] = "failed"
            if not stopped:
                update["stop_reason"] = "check_failed"
        else:
            verdict = "The automatic check passed: " + " ".join(
                f"({f.source}) {f.text}" for f in findings
            )
        update["messages"] = [AIMessage(verdict, id=f"check-{uuid.uuid4().hex}")]
        return update

    async def _run(self, ctx: RunContext, seen: list[str]) -> tuple[list[Finding], list[str]]:
        tool_ctx = ToolContext(
            sandbox=ctx.sandbox,
            project_id=ctx.project_id,
            settings=ctx.settings,
            locks=ctx.locks,
            run_id=ctx.run_id,
            db=ctx.db,
        )
        findings: list[Finding] = []
        builds = True
        try:
            build = await run_build_check(tool_ctx)
            builds = build.passed is not None
            if builds:
                findings.append(Finding("build", build.passed is True, build.text))
        except BuilderError as exc:
            findings.append(Finding("build", False, str(exc)))
        server, seen = await _dev_server_errors(ctx.sandbox, seen)
        if server is not None:
            findings.append(server)
        # A project that builds has its pages checked by its build; its source HTML
        # (index.html with a script entry) and build output are not the site as served.
        if not builds and SITE_CHECK_TOOL in self.registry:
            tool = self.registry.as_langchain_tool(SITE_CHECK_TOOL, tool_ctx)
            try:
                text = str(await tool.ainvoke({"path": "."}))
            except BuilderError as exc:
                text = f"Error: {exc}"
            if not text.startswith("No HTML pages"):
                clean = text.rstrip().endswith("no problems found.")
                findings.append(Finding("site checker", clean, text))
        return findings, seen


async def _dev_server_errors(sandbox: Sandbox, seen: list[str]) -> tuple[Finding | None, list[str]]:
    """The dev server's errors since the last check, and the mark of what was read."""
    info = await sandbox.process_info(DEV_SERVER, log_lines=_LOG_LINES)
    if info is None:
        return None, []
    lines = list(info.logs)
    mark = [str(info.started_at), *lines[-_MARK_LINES:]]
    new = lines
    if seen and seen[0] == str(info.started_at):
        tail = seen[1:]
        for end in range(len(lines), len(tail) - 1, -1):
            if tail and lines[end - len(tail) : end] == tail:
                new = lines[end:]
                break
    if not info.running and info.exit_code not in (0, None):
        last = "\n".join(lines[-10:]) or "(no output)"
        return (
            Finding(
                "dev server",
                False,
                f"it exited (code {info.exit_code}); start it again with start_dev_server "
                f"after fixing the cause.\n$ {info.command}\n{last}",
            ),
            mark,
        )
    if not info.running:
        return None, mark
    errors = log_errors(new)
    if errors:
        return Finding("dev server", False, "its log shows errors:\n" + "\n".join(errors)), mark
    return Finding("dev server", True, "No errors in the dev server's log."), mark
