"""The runs service: one turn of the agent on a project, start to finish.

A turn (:meth:`RunService.start`):

1. takes the project's run lock — a second run on the same project is rejected
   (:class:`~builder.errors.RunInProgress`) or waits its turn (``enqueue``); never two
   runs on one thread;
2. persists the user message;
3. loads the project's context (the LangGraph thread) or rebuilds it from the durable
   project when it is new or has expired;
4. leases the project's sandbox from the pool (recreated from the latest snapshot when
   it is gone);
5. runs the graph with durability ``sync`` and streams events (tokens, messages, tool
   calls, file changes, snapshots, errors) to any number of subscribers;
6. persists the assistant message and releases everything.

Cancelling stops the run at the next step boundary; the context is left consistent
(pending tool calls are answered as cancelled) and the next turn carries on from it.
With Redis (:class:`~builder.runs.fanout.RunFanout`) every run's events are also
copied there, and a cancel requested through any process reaches the one running it.
A run interrupted by a crash is resumed with ``resume=True``: steps that completed are
not run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, cast

from cachetools import TTLCache
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.errors import GraphDrained

from builder.errors import BuilderError, InvalidImage, InvalidInput, RunInProgress
from builder.graphs.checkpointer import TTLCheckpointer
from builder.graphs.context import RunContext
from builder.graphs.toolcalls import pending_tool_calls
from builder.graphs.web_builder import WebBuilderGraph, build_web_builder_graph
from builder.images import Image, check_image_count
from builder.locks import LockManager
from builder.log import bound_context, get_logger
from builder.persistence.database import Database
from builder.persistence.files import sync_workspace
from builder.persistence.messages import append_message, list_messages, message_images
from builder.persistence.projects import get_project, record_sandbox
from builder.persistence.runs import (
    ensure_thread,
    record_run_abandoned,
    record_run_finished,
    record_run_started,
    running_runs,
)
from builder.persistence.usage import run_usage
from builder.runs.conversation import ReplyParts, rebuild_context, user_message
from builder.runs.events import RunStream
from builder.runs.fanout import RunFanout
from builder.runs.handle import (
    MAX_PROMPT_CHARS,
    STREAM_MODES,
    GraphStreamMode,
    MultitaskStrategy,
    RunHandle,
    RunResult,
    RunStatus,
    close_streams,
)
from builder.runs.sandboxes import project_pool
from builder.runs.translate import publish_part, summarise
from builder.sandbox.base import Sandbox
from builder.sandbox.pool import SandboxPool
from builder.settings import Settings, get_settings
from builder.tools.devserver import DEV_SERVER, launch_dev_server
from builder.tools.mcp import tools_with_mcp

__all__ = [
    "MAX_PROMPT_CHARS",
    "GraphStreamMode",
    "MultitaskStrategy",
    "RunHandle",
    "RunResult",
    "RunService",
    "RunStatus",
]

_log = get_logger("builder.runs")
_FINISHED_KEPT = 1000
_RUN_ID_KEY = "builder_run_id"
"""Checkpoint metadata key naming the run that wrote the checkpoint."""
_FINISHED_SECONDS = 3600.0


def check_prompt(prompt: str) -> None:
    """Refuse an empty user message or one longer than :data:`MAX_PROMPT_CHARS`.

    Raises:
        InvalidInput: The message is empty or too long.
    """
    if not prompt.strip():
        raise InvalidInput("the prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidInput(
            f"the message is {len(prompt):,} characters long; the limit is {MAX_PROMPT_CHARS:,}",
            limit=MAX_PROMPT_CHARS,
        )


class RunService:
    """Runs turns of the web-builder agent on projects.

    Args:
        db: The durable store.
        graph: The compiled web-builder graph (with ``checkpointer`` compiled in).
        checkpointer: The TTL-bounded checkpointer the graph uses.
        pool: Live sandboxes.
        locks: Run locks and file locks.
        settings: Budgets and timeouts.
        fanout: Copies runs' events to Redis and hears cancels from other processes
            (:meth:`open` makes one when ``BUILDER_REDIS_URL`` is set).
    """

    def __init__(
        self,
        *,
        db: Database,
        graph: WebBuilderGraph,
        checkpointer: TTLCheckpointer,
        pool: SandboxPool,
        locks: LockManager,
        settings: Settings,
        fanout: RunFanout | None = None,
    ) -> None:
        self.db = db
        self.graph = graph
        self.checkpointer = checkpointer
        self.pool = pool
        self.locks = locks
        self.settings = settings
        self.fanout = fanout
        self._active: dict[str, RunHandle] = {}
        self._finished: TTLCache[str, RunHandle] = TTLCache(_FINISHED_KEPT, _FINISHED_SECONDS)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        db: Database | None = None,
        model: Any = None,
        extra_tools: Iterable[Callable[..., Any] | BaseTool] = (),
    ) -> AsyncIterator[RunService]:
        """A runs service with its checkpointer, sandbox pool and locks, closed on exit.

        Args:
            settings: Defaults to :func:`get_settings`.
            db: The database (default: the one the settings name, or the embedded one).
            model: A chat model or ``provider:model`` string (default: ``BUILDER_MODEL``).
            extra_tools: More tools for the agent: functions or LangChain tools (see
                :func:`~builder.graphs.web_builder.build_web_builder_graph`). The tools of
                the MCP servers of ``BUILDER_MCP_SERVERS`` are added too.
        """
        settings = settings or get_settings()
        owns_db = db is None
        database = db or Database.from_settings(settings, cached=False)
        async with AsyncExitStack() as stack:
            if owns_db:
                stack.push_async_callback(database.dispose)
            checkpointer = await stack.enter_async_context(
                TTLCheckpointer.from_settings(database.psycopg_url, settings)
            )
            locks = LockManager.from_settings(settings, dsn=database.psycopg_url)
            stack.push_async_callback(locks.close)

            pool = project_pool(database, settings)
            stack.push_async_callback(pool.close)
            graph = build_web_builder_graph(
                model=model,
                tools=await tools_with_mcp(settings),
                extra_tools=extra_tools,
                checkpointer=checkpointer,
                settings=settings,
            )
            fanout = RunFanout.from_settings(settings)
            if fanout is not None:
                stack.push_async_callback(fanout.aclose)  # after the runs have stopped
            service = cls(
                db=database,
                graph=graph,
                checkpointer=checkpointer,
                pool=pool,
                locks=locks,
                settings=settings,
                fanout=fanout,
            )
            stack.push_async_callback(service.close)
            if fanout is not None:
                fanout.listen(service._cancel_requested, runs=lambda: list(service._active))
            try:
                await service.reconcile()
            except Exception:  # the periodic sweep tries again
                _log.exception("runs.reconcile_failed")
            if settings.maintenance_seconds > 0:
                maintenance = asyncio.create_task(
                    service.maintain(settings.maintenance_seconds), name="builder-maintenance"
                )
                stack.callback(maintenance.cancel)
            yield service

    # --- public API ------------------------------------------------------------------
    async def start(
        self,
        *,
        user_id: uuid.UUID,
        project_id: uuid.UUID,
        prompt: str | None,
        multitask: MultitaskStrategy = "reject",
        resume: bool = False,
        run_id: str | None = None,
        max_steps: int | None = None,
        token_budget: int | None = None,
        graph_stream: Sequence[GraphStreamMode] | None = None,
        images: Sequence[Image] = (),
    ) -> RunHandle:
        """Start a turn; returns once the run holds the project (or is queued).

        Args:
            user_id: The caller; the project must be theirs.
            project_id: The project.
            prompt: The user's message; None only with ``resume``.
            multitask: ``reject`` a second run while one is in progress, or
                ``enqueue`` it behind the current one.
            resume: First finish a run that was interrupted by a crash.
            run_id: This run's id (default: a new one).
            max_steps: Overrides the step limit for this run.
            token_budget: Overrides the token budget for this run.
            graph_stream: Also publish LangGraph's stream parts, unchanged, to
                ``handle.graph_stream``, in these modes besides ``messages``, ``updates``
                and ``custom`` (for clients that speak LangGraph's own protocol).
            images: Images attached to the prompt (checked; at most ``MAX_IMAGES``);
                stored with the user's message and given to the model after its text.

        Raises:
            NotFound: No such project for this user.
            RunInProgress: ``reject`` and a run is in progress on the project.
            InvalidInput: Neither a prompt nor ``resume``.
            InvalidImage: Images without a prompt, or too many.
        """
        if prompt is None and not resume:
            raise InvalidInput("a run needs a prompt (or resume=True)")
        if prompt is not None:
            check_prompt(prompt)
        elif images:
            raise InvalidImage("images need a prompt to go with them")
        check_image_count(images)
        await get_project(self.db, user_id=user_id, project_id=project_id)
        handle = RunHandle(
            run_id or uuid.uuid4().hex, project_id, cancel_grace=self.settings.timeout_sandbox
        )
        if graph_stream is not None:
            handle.graph_stream = RunStream()
            handle.stream_modes = tuple(dict.fromkeys([*STREAM_MODES, *graph_stream]))
        self._active[handle.run_id] = handle
        handle._task = asyncio.create_task(
            self._execute(
                handle,
                user_id=user_id,
                prompt=prompt,
                multitask=multitask,
                resume=resume,
                max_steps=max_steps,
                token_budget=token_budget,
                images=images,
            ),
            name=f"run-{handle.run_id}",
        )
        handle._task.add_done_callback(lambda _: self._retire(handle))
        try:
            await asyncio.shield(handle._started)
        except RunInProgress:
            await asyncio.gather(handle._task, return_exceptions=True)
            raise
        if self.fanout is not None:
            # From the first event on: the stream keeps what was published meanwhile.
            self.fanout.mirror(handle.run_id, handle.stream, channel="events")
            if handle.graph_stream is not None:
                self.fanout.mirror(handle.run_id, handle.graph_stream, channel="graph")
        return handle

    def get(self, run_id: str) -> RunHandle | None:
        """An active or recently finished run of this process."""
        return self._active.get(run_id) or self._finished.get(run_id)

    async def maintain(self, every: float) -> None:
        """Reconcile abandoned runs (:meth:`reconcile`), sweep expired contexts and idle
        sandboxes every ``every`` seconds, forever.

        Several processes may run this at once: the sweep splits its work between them
        (``FOR UPDATE SKIP LOCKED``). A failed round is logged and the next one runs.
        """
        while True:
            await asyncio.sleep(every)
            try:
                await self.reconcile()
                await self.checkpointer.sweep()
                await self.pool.sweep_idle()
            except Exception:
                _log.exception("maintenance.failed")

    async def reconcile(self) -> list[str]:
        """Mark runs whose process is gone as interrupted, and their threads too.

        A run's process holds the project's run lock (a database lock, released by the
        server when the process's connection ends) from before the run is recorded as
        running until it is recorded as finished. So a run recorded as running whose
        lock is free right now has no process any more: it was killed, or finishing it
        failed. Any process may reconcile; taking the lock keeps a new run from starting
        on the project meanwhile. The thread can then be resumed.

        Returns:
            The run ids marked as interrupted.
        """
        abandoned = []
        for run_id, thread_id in await running_runs(self.db):
            if run_id in self._active:
                continue
            async with self.locks.try_hold(f"run:{thread_id}") as held:
                if held and await record_run_abandoned(
                    self.db, run_id=run_id, error="the process running it stopped"
                ):
                    abandoned.append(run_id)
        if abandoned:
            _log.warning("runs.reconciled", runs=abandoned)
        return abandoned

    async def close(self) -> None:
        """Cancel active runs and wait for them to stop."""
        handles = list(self._active.values())
        for handle in handles:
            handle.cancel()
            handle._hard_cancel()
        tasks = [h._task for h in handles if h._task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- the run -----------------------------------------------------------------------
    def _cancel_requested(self, run_id: str) -> bool:
        """Cancel a run of this process that another process asked to stop."""
        handle = self._active.get(run_id)
        if handle is None:
            return False
        handle.cancel()
        return True

    def _retire(self, handle: RunHandle) -> None:
        self._active.pop(handle.run_id, None)
        self._finished[handle.run_id] = handle

    async def _execute(
        self,
        handle: RunHandle,
        *,
        user_id: uuid.UUID,
        prompt: str | None,
        multitask: MultitaskStrategy,
        resume: bool,
        max_steps: int | None,
        token_budget: int | None,
        images: Sequence[Image] = (),
    ) -> RunResult:
        project_id = handle.project_id
        thread_id = str(project_id)
        result = RunResult(run_id=handle.run_id, project_id=project_id, status="error")
        with bound_context(run_id=handle.run_id, project_id=thread_id):
            async with AsyncExitStack() as stack:
                try:
                    await self._take_run_lock(stack, handle, multitask)
                except BaseException as exc:
                    if not handle._started.done():
                        handle._started.set_exception(exc)
                    result.status, result.error = "error", str(exc)
                    await close_streams(handle)
                    if isinstance(exc, RunInProgress):
                        return result
                    if handle.status == "cancelled":  # cancelled while queued
                        result.status, result.stop_reason = "cancelled", "cancelled"
                        result.error = None
                        return result
                    raise
                try:
                    await self._turn(
                        stack,
                        handle,
                        result,
                        user_id=user_id,
                        prompt=prompt,
                        resume=resume,
                        max_steps=max_steps,
                        token_budget=token_budget,
                        images=images,
                    )
                except asyncio.CancelledError:
                    result.status = "cancelled"
                    result.stop_reason = "cancelled"
                    await self._finish(handle, result)
                    raise
                except Exception as exc:
                    result.status = "error"
                    result.error = exc.message if isinstance(exc, BuilderError) else str(exc)
                    result.error_code = exc.code if isinstance(exc, BuilderError) else "internal"
                    _log.exception("run.failed")
                    await handle.stream.publish(
                        "error", code=result.error_code, message=result.error[:500]
                    )
                await self._finish(handle, result)
        return result

    async def _take_run_lock(
        self, stack: AsyncExitStack, handle: RunHandle, multitask: MultitaskStrategy
    ) -> None:
        key = f"run:{handle.project_id}"
        if multitask == "reject":
            if not await stack.enter_async_context(self.locks.try_hold(key, long_lived=True)):
                raise RunInProgress(handle.project_id)
        else:
            handle._started.set_result(None)  # queued: the caller may subscribe now
            await stack.enter_async_context(
                self.locks.hold(key, timeout=self.settings.run_queue_seconds, long_lived=True)
            )
        if not handle._started.done():
            handle._started.set_result(None)

    async def _turn(
        self,
        stack: AsyncExitStack,
        handle: RunHandle,
        result: RunResult,
        *,
        user_id: uuid.UUID,
        prompt: str | None,
        resume: bool,
        max_steps: int | None,
        token_budget: int | None,
        images: Sequence[Image] = (),
    ) -> None:
        project_id = handle.project_id
        thread_id = str(project_id)
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        handle.status = "running"
        await ensure_thread(self.db, thread_id=thread_id, user_id=user_id, project_id=project_id)
        await stack.enter_async_context(self.checkpointer.hold_context(thread_id))
        sandbox = await stack.enter_async_context(self.pool.lease(thread_id))
        # Under the run lock: a copy another replica has moved past is refreshed first.
        await sync_workspace(self.db, project_id=project_id, sandbox=sandbox)

        current = await self.graph.aget_state(config)
        await self._restart_dev_server(sandbox, (current.values or {}).get("dev_server"))
        interrupted = bool(current.next)
        if interrupted and _injected_tool_calls(current):
            # Tool calls written into the state by a state update, not by the model in a
            # run: answered as not run, never executed.
            await self._close_interrupted(
                config, "stopped: its tool calls did not come from the model"
            )
            current = await self.graph.aget_state(config)
            interrupted = False
        graph_input: dict[str, Any] | None
        message_id: uuid.UUID | None = None
        run_id = handle.run_id
        asked = None if interrupted else await self._last_user_message(project_id)
        context = (current.values or {}).get("messages", [])
        unstarted = None
        if asked is not None:
            if not any(m.id == f"msg-{asked.id}" for m in context):
                # Stored by a turn that crashed before the graph took it in.
                unstarted = asked
            elif (finished := _unreplied_turn(context, f"msg-{asked.id}")) is not None:
                # Answered by a turn that crashed before storing the reply; a resume
                # with no new prompt is then done.
                await self._store_reply(handle, finished)
                if prompt is None:
                    await self._finish_recovered(handle, result, current, finished)
                    return
        if interrupted and resume:
            # The id this run was started with, from the checkpoint's metadata: right
            # after a turn's input checkpoint the state's values still hold the
            # previous turn's id, whose snapshot and usage keys must not be reused.
            run_id = str(
                (current.metadata or {}).get(_RUN_ID_KEY) or current.values.get("run_id") or run_id
            )
            graph_input = None
        else:
            if interrupted:
                await self._close_interrupted(config, "interrupted before it finished")
                current = await self.graph.aget_state(config)
            if unstarted is not None and (prompt is None or prompt == unstarted.content):
                # Resume the turn from its stored message instead of refusing (or, for
                # the same prompt sent again, instead of storing it twice).
                prompt, message_id = unstarted.content, unstarted.id
                images = (await message_images(self.db, [unstarted])).get(unstarted.id, [])
            elif prompt is None:
                raise InvalidInput("there is no interrupted run to resume on this project")
            else:
                stored = await append_message(
                    self.db, project_id=project_id, role="user", content=prompt, images=images
                )
                message_id = stored.id
            base: dict[str, Any] = {}
            if not current.values:
                base = await rebuild_context(self.db, project_id=project_id, exclude=message_id)
            graph_input = {
                **base,
                "messages": [
                    *base.get("messages", []),
                    user_message(prompt, images, message_id=message_id),
                ],
                "project_id": thread_id,
                "run_id": run_id,
                "run_steps": 0,
                "run_tokens": 0,
                "run_cost": None,
                "stop_reason": None,
                "pending_usage": None,
                "build_status": "working",
            }
        before = dict(current.values.get("files", {})) if current.values else {}
        if graph_input is not None and "files" in graph_input and not current.values:
            before = dict(graph_input["files"])
        result.run_id = run_id
        config = {**config, "metadata": {_RUN_ID_KEY: run_id}}
        await record_run_started(
            self.db,
            run_id=run_id,
            thread_id=thread_id,
            project_id=project_id,
            resumed=graph_input is None,
        )
        await handle.stream.publish(
            "run_started",
            run_id=run_id,
            project_id=thread_id,
            resumed=graph_input is None,
            rebuilt=bool(graph_input) and not current.values,
        )
        ctx = RunContext(
            sandbox=sandbox,
            locks=self.locks,
            settings=self.settings,
            db=self.db,
            project_id=thread_id,
            run_id=run_id,
            message_id=message_id,
            max_steps=max_steps,
            token_budget=token_budget,
            resumed=graph_input is None,
        )
        parts = ReplyParts()
        try:
            async for mode, chunk in self.graph.astream(
                cast(Any, graph_input),
                config,
                context=ctx,
                stream_mode=list(handle.stream_modes),
                durability="sync",
                control=handle.control,
            ):
                if handle.graph_stream is not None:
                    await handle.graph_stream.publish(mode, chunk=chunk)
                await publish_part(handle.stream, parts, mode, chunk)
            result.status = "success"
        except GraphDrained:
            await self._close_interrupted(config, "cancelled by the user", turn_input=graph_input)
            result.status = "cancelled"
        final = (await self.graph.aget_state(config)).values
        summarise(result, before, final, parts)
        usage = await run_usage(self.db, run_id=run_id)
        result.input_tokens, result.output_tokens = usage.prompt_tokens, usage.completion_tokens
        if result.preview_url:
            await record_sandbox(self.db, project_id=project_id, sandbox_url=result.preview_url)
        if result.status == "cancelled":
            result.stop_reason = "cancelled"
        if parts.parts or result.reply:
            await append_message(
                self.db,
                project_id=project_id,
                role="assistant",
                content=result.reply,
                parts=parts.parts,
                model=self.settings.model,
            )

    async def _restart_dev_server(self, sandbox: Sandbox, server: Any) -> None:
        """Start the dev server again when the context says it runs and it does not.

        Its process went with a process that died (or with a sandbox closed since):
        the turn, and the preview, carry on with the same command and port.
        """
        if not server or not server.get("running"):
            return
        info = await sandbox.process_info(DEV_SERVER)
        if info is not None and info.running:
            return
        launch = await launch_dev_server(
            sandbox, settings=self.settings, command=server["command"], port=server["port"]
        )
        _log.info("run.dev_server_restarted", port=server["port"], outcome=launch.outcome)

    async def _last_user_message(self, project_id: uuid.UUID) -> Any:
        """The latest stored message when it is the user's (a turn not yet answered)."""
        page = await list_messages(self.db, project_id=project_id, limit=1, newest_first=True)
        return page.items[0] if page.items and page.items[0].role == "user" else None

    async def _store_reply(self, handle: RunHandle, turn: list[Any]) -> None:
        """Store the reply of a finished turn from its messages in the context."""
        parts = _reply_parts(turn)
        await append_message(
            self.db,
            project_id=handle.project_id,
            role="assistant",
            content=parts.reply,
            parts=parts.parts,
            model=self.settings.model,
        )
        _log.info("run.reply_recovered", messages=len(turn))

    async def _finish_recovered(
        self, handle: RunHandle, result: RunResult, current: Any, turn: list[Any]
    ) -> None:
        """Make a recovered turn this run's result, under the turn's own run id."""
        values = current.values or {}
        result.run_id = str(
            (current.metadata or {}).get(_RUN_ID_KEY) or values.get("run_id") or result.run_id
        )
        result.status = "success"
        summarise(result, dict(values.get("files", {})), values, _reply_parts(turn))
        usage = await run_usage(self.db, run_id=result.run_id)
        result.input_tokens, result.output_tokens = usage.prompt_tokens, usage.completion_tokens
        await handle.stream.publish(
            "run_started", run_id=result.run_id, project_id=str(handle.project_id), resumed=True
        )

    async def _close_interrupted(
        self, config: RunnableConfig, why: str, *, turn_input: dict[str, Any] | None = None
    ) -> None:
        """Answer a stopped run's pending tool calls so the context stays valid.

        A run stopped before its first step never applied its input: the turn's input
        (the user's message, and a rebuilt context) is applied here, so the context
        agrees with the conversation stored in the database.
        """
        state = await self.graph.aget_state(config)
        messages = state.values.get("messages", [])
        update: dict[str, Any] = {}
        if turn_input is not None:
            present = {m.id for m in messages}
            if not any(m.id in present for m in turn_input["messages"][-1:]):
                update = {k: v for k, v in turn_input.items() if k != "messages"}
                messages = [*messages, *turn_input["messages"]]
                update["messages"] = turn_input["messages"]
        answers = [
            ToolMessage(
                f"Not run: {why}.", tool_call_id=call["id"], name=call["name"], status="error"
            )
            for call in pending_tool_calls(messages)
            if call.get("id")
        ]
        note = AIMessage(f"(The previous run was {why}.)")
        await self.graph.aupdate_state(
            config,
            {
                **update,
                "messages": [*update.get("messages", []), *answers, note],
                "stop_reason": "cancelled",
                "build_status": "idle",
            },
            as_node="persist",
        )

    async def _finish(self, handle: RunHandle, result: RunResult) -> None:
        handle.status = result.status
        with contextlib.suppress(Exception):
            await record_run_finished(self.db, run_id=result.run_id, result=result.as_dict())
        await handle.stream.publish("run_finished", **result.as_dict())
        await close_streams(handle)
        _log.info(
            "run.finished",
            status=result.status,
            stop_reason=result.stop_reason,
            steps=result.steps,
            tokens=result.total_tokens,
        )


def _reply_parts(turn: list[Any]) -> ReplyParts:
    parts = ReplyParts()
    for message in turn:
        if isinstance(message, AIMessage):
            parts.add_model_message(message)
        elif isinstance(message, ToolMessage):
            parts.add_tool_result(message)
    return parts


def _unreplied_turn(context: list[Any], asked: str) -> list[Any] | None:
    """The messages of a turn that finished but whose reply was never stored.

    The process died between the graph's last checkpoint and storing the reply: the
    context took the user's message ``asked`` in and the model answered it without
    tool calls.
    """
    if not context or not isinstance(context[-1], AIMessage) or context[-1].tool_calls:
        return None
    for index in range(len(context) - 1, -1, -1):
        if context[index].id == asked:
            return list(context[index + 1 :])
    return None


def _injected_tool_calls(state: Any) -> bool:
    """Whether pending tool calls come from a state update rather than from the graph.

    A checkpoint the graph wrote while running has ``source`` ``loop`` (or ``input``);
    one written by ``update_state`` has ``update``. Only the graph's own calls resume.
    """
    metadata = state.metadata or {}
    return metadata.get("source") == "update" and bool(
        pending_tool_calls(state.values.get("messages", []))
    )
