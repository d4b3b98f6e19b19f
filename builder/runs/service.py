"""The runs service: one turn of the agent on a project, start to finish.

A turn (:meth:`RunService.start`):

1. is queued (:mod:`builder.runs.queue`) — a second run on the same project is rejected
   (:class:`~builder.errors.RunInProgress`) or waits its turn (``enqueue``); never two
   runs on one thread, whichever replicas start and work them;
2. is claimed by a worker (:mod:`builder.runs.worker`: this process's, or another's)
   under a lease it renews by heartbeat; the handle follows it wherever it is worked;
3. persists the user message, loads the project's context (the LangGraph thread) or
   rebuilds it from the durable project when it is new or has expired;
4. leases the project's sandbox from the pool (recreated from the latest snapshot when
   it is gone);
5. runs the graph with durability ``sync`` and streams events (tokens, messages, tool
   calls, file changes, snapshots, errors) to any number of subscribers;
6. persists the assistant message and records its end, only while it holds the lease.

Cancelling stops the run at the next step boundary; the context is left consistent
(pending tool calls are answered as cancelled) and the next turn carries on from it.
With Redis (:class:`~builder.runs.fanout.RunFanout`) every run's events are also
copied there, and a cancel requested through any process reaches the one running it.
A run whose worker died is taken over by another worker from its last checkpoint (or
resumed with ``resume=True`` where nobody takes runs over): steps that completed are
not run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal, cast

from cachetools import TTLCache
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.errors import GraphDrained
from langgraph.types import StateSnapshot
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from builder.concurrency import all_of
from builder.errors import (
    BuilderError,
    DependencyUnavailable,
    InvalidImage,
    InvalidInput,
    RunInProgress,
)
from builder.graphs.check import is_check_message
from builder.graphs.checkpointer import TTLCheckpointer
from builder.graphs.context import RunContext
from builder.graphs.saving import record_run_version, scan_workspace
from builder.graphs.toolcalls import pending_tool_calls
from builder.graphs.web_builder import WebBuilderGraph, build_web_builder_graph
from builder.images import Image, check_image_count
from builder.locks import LockManager
from builder.log import bound_context, get_logger
from builder.persistence.database import Database
from builder.persistence.files import sync_workspace
from builder.persistence.messages import (
    append_message,
    latest_message,
    load_images,
    message_images,
    store_images,
)
from builder.persistence.projects import get_project, record_replica, record_sandbox
from builder.persistence.runs import (
    get_run,
    record_run_finished,
    record_run_started,
)
from builder.persistence.schemas import ProjectPublic
from builder.persistence.usage import run_usage
from builder.runs.conversation import ReplyParts, rebuild_context, user_message
from builder.runs.events import RunEvent, RunStream
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
from builder.runs.queue import (
    ClaimedRun,
    cancel_queued,
    enqueue,
    queue_positions,
    release,
    reset_abandoned,
    resumable_run,
    run_lock_key,
)
from builder.runs.sandboxes import project_pool
from builder.runs.translate import publish_part, summarise
from builder.runs.worker import RunWorker, WorkerMode
from builder.runs.workspace import Workspaces
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
    "stopped_midway",
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
        worker: WorkerMode = "own",
        concurrency: int | None = None,
    ) -> None:
        self.db = db
        self.graph = graph
        self.checkpointer = checkpointer
        self.pool = pool
        self.locks = locks
        self.settings = settings
        self.fanout = fanout
        self.workspaces = Workspaces(pool, db, settings)
        """Projects' sandboxes, dev servers and previews in this process."""
        self.worker = RunWorker(
            db,
            settings,
            mode=worker,
            # Every run holds a sandbox: a run claimed beyond the pool would only wait
            # for one (and could time out) while other workers could have taken it.
            concurrency=min(concurrency or settings.worker_concurrency, pool.max_size),
            adopt=self._adopt,
            shared_events=fanout is not None,
            on_position=self._publish_positions,
        )
        self._active: dict[str, RunHandle] = {}
        self._finished: TTLCache[str, RunHandle] = TTLCache(_FINISHED_KEPT, _FINISHED_SECONDS)
        self._closing = False

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        db: Database | None = None,
        model: Any = None,
        extra_tools: Iterable[Callable[..., Any] | BaseTool] = (),
        worker: WorkerMode = "own",
        concurrency: int | None = None,
    ) -> AsyncIterator[RunService]:
        """A runs service with its checkpointer, sandbox pool and locks, closed on exit.

        Args:
            settings: Defaults to :func:`get_settings`.
            db: The database (default: the one the settings name, or the embedded one).
            model: A chat model or ``provider:model`` string (default: ``BUILDER_MODEL``).
            extra_tools: More tools for the agent: functions or LangChain tools (see
                :func:`~builder.graphs.web_builder.build_web_builder_graph`). The tools of
                the MCP servers of ``BUILDER_MCP_SERVERS`` are added too.
            worker: Which queued runs this process works: ``all`` (a server's worker:
                any run, and runs whose worker died), ``own`` (those it starts), or
                ``none`` (it only starts and follows runs).
            concurrency: Most runs worked at once (default ``BUILDER_WORKER_CONCURRENCY``).
        """
        settings = settings or get_settings()
        owns_db = db is None
        database = db or Database.from_settings(settings, cached=False)
        async with AsyncExitStack() as stack:
            if owns_db:
                stack.push_async_callback(database.dispose)
            # Each pool as large as the database's: a worker's connections are bounded
            # by BUILDER_DB_POOL_SIZE + BUILDER_DB_MAX_OVERFLOW, whatever its runs.
            pool_max = settings.db_pool_size + settings.db_max_overflow
            checkpointer = await stack.enter_async_context(
                TTLCheckpointer.from_settings(database.psycopg_url, settings, pool_max=pool_max)
            )
            locks = LockManager(
                database.psycopg_url, timeout=settings.lock_timeout, pool_max=pool_max
            )
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
                worker=worker,
                concurrency=concurrency,
            )
            stack.push_async_callback(service.close)
            if fanout is not None:
                fanout.listen(service._cancel_requested, runs=lambda: list(service._active))
            if worker != "all":
                try:
                    await service.reconcile()
                except Exception:  # the periodic sweep tries again
                    _log.exception("runs.reconcile_failed")
            service.worker.start()
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
        project: ProjectPublic | None = None,
    ) -> RunHandle:
        """Queue a turn; returns once it is queued (a worker claims it, here or elsewhere).

        The handle follows the run wherever it is worked: events, status, result and
        cancel work the same whether this process's worker claimed it or another's.

        Args:
            user_id: The caller; the project must be theirs.
            project_id: The project.
            prompt: The user's message; None only with ``resume``.
            multitask: ``reject`` a second run while one is pending or in progress, or
                ``enqueue`` it behind the current one.
            resume: First finish a run that was interrupted by a crash (the project's
                run that stopped without ending is queued again, under its own id).
            run_id: This run's id (default: a new one).
            max_steps: Overrides the step limit for this run.
            token_budget: Overrides the token budget for this run.
            graph_stream: Also publish LangGraph's stream parts, unchanged, to
                ``handle.graph_stream``, in these modes besides ``messages``, ``updates``
                and ``custom`` (for clients that speak LangGraph's own protocol).
            images: Images attached to the prompt (checked; at most ``MAX_IMAGES``);
                stored with the user's message and given to the model after its text.
            project: The project, when the caller has just read it for this user (an
                HTTP route's dependency): it is not read again.

        Raises:
            NotFound: No such project for this user.
            RunInProgress: ``reject`` and a run is pending or in progress on the project.
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
        if project is None or project.id != project_id or project.user_id != user_id:
            await get_project(self.db, user_id=user_id, project_id=project_id)
        resuming = None
        if resume and run_id is None:
            run_id = resuming = await resumable_run(self.db, project_id=project_id)
        handle = RunHandle(
            run_id or uuid.uuid4().hex, project_id, cancel_grace=self.settings.timeout_sandbox
        )
        modes: list[str] | None = None
        if graph_stream is not None:
            handle.graph_stream = RunStream()
            handle.stream_modes = tuple(dict.fromkeys([*STREAM_MODES, *graph_stream]))
            modes = list(handle.stream_modes)
        thread_id = str(project_id)
        queued_at = time.time()
        run_input: dict[str, Any] = {
            "prompt": prompt,
            "resume": resume,
            "max_steps": max_steps,
            "token_budget": token_budget,
            "stream_modes": modes,
            "images": await store_images(self.db, images),
            "queued_at": queued_at,
        }
        queued = await enqueue(
            self.db,
            run_id=handle.run_id,
            thread_id=thread_id,
            project_id=project_id,
            user_id=user_id,
            multitask=multitask,
            run_input=run_input,
        )
        if not queued and resuming is None:
            raise RunInProgress(project_id)
        if not queued:
            # Resuming a run whose lease has not run out yet: a worker (this process's
            # too) takes it over when it does, unless its worker ends it first.
            place = (await queue_positions(self.db, run_ids=[handle.run_id])).get(handle.run_id)
            if place is not None and place.status == "running":
                handle._takeover_of = place.attempts
        handle._canceller = self._cancel_elsewhere
        handle.queue_notes = not resume
        self._active[handle.run_id] = handle
        # The first event, at once: the run is recorded. The worker that claims it (here
        # or elsewhere) has the same event from the run's input (see _execute).
        await handle.stream.put(_queued_event(handle, queued_at))
        handle._task = asyncio.create_task(self._lifecycle(handle), name=f"run-{handle.run_id}")
        handle._task.add_done_callback(lambda _: self._retire(handle))
        self.worker.wait_for_placement(handle)
        return handle

    def get(self, run_id: str) -> RunHandle | None:
        """An active or recently finished run of this process."""
        return self._active.get(run_id) or self._finished.get(run_id)

    async def position(self, run_id: str) -> int | None:
        """A pending run's place in the queue (1 = next), wherever it was started; None
        once it works or has ended."""
        place = (await queue_positions(self.db, run_ids=[run_id])).get(run_id)
        return None if place is None or place.status != "pending" else place.position

    async def cancel(self, run_id: str) -> bool:
        """Cancel a run wherever it is: queued, or running in any process.

        A queued run ends ``cancelled`` at once; a running one stops at its next step
        boundary (its worker hears it through Redis at once, or through the database at
        its next heartbeat).

        Returns:
            False when the run has already ended (or is unknown).
        """
        handle = self._active.get(run_id)
        if handle is not None and handle._executing:
            handle.cancel()
            return True
        if handle is not None:
            # Claimed here meanwhile (by this process's worker, before the run starts
            # executing): the run stops as soon as it does.
            handle._cancel_wanted = True
        outcome = await cancel_queued(self.db, run_id=run_id)
        if outcome == "requested" and self.fanout is not None:
            with contextlib.suppress(DependencyUnavailable):
                await self.fanout.request_cancel(run_id)
        self.worker.wake()
        return outcome is not None

    @asynccontextmanager
    async def project_idle(
        self, project_id: uuid.UUID, *, queued_too: bool = False
    ) -> AsyncIterator[bool]:
        """Hold a project with no run working on it, if it has none right now.

        Yields True when the project's run lock is held for the body and no run holds
        a lease on it (no run starts on it meanwhile); False when a run is working on
        it, or someone else holds it (nothing is held during the body then).

        Args:
            project_id: The project.
            queued_too: A run waiting in the queue for the project (or for a worker to
                take it over) counts as working on it: for deleting the project, which
                would leave such a run nothing to work on, and for editing its agent
                context, which such a run would start from.
        """
        async with self.locks.try_hold(run_lock_key(project_id)) as held:
            if held:
                held = not await _project_running(self.db, project_id, queued_too=queued_too)
            yield held

    async def delete_context(self, project_id: uuid.UUID) -> None:
        """Delete a project's agent context (its checkpoints); hold it idle first
        (:meth:`project_idle`)."""
        await self.checkpointer.adelete_thread(str(project_id))

    # --- a thread's state, for APIs that show and edit it ---------------------------------
    def graph_drawing(self, *, xray: int | bool = False) -> dict[str, Any]:
        """The graph's nodes and edges, as ``Graph.to_json()`` draws them."""
        drawn: dict[str, Any] = self.graph.get_graph(xray=xray).to_json()
        return drawn

    def graph_nodes(self) -> list[str]:
        """The names of the graph's nodes (without LangGraph's own start and end)."""
        return [name for name in self.graph.nodes if not name.startswith("__")]

    async def thread_state(self, config: RunnableConfig) -> StateSnapshot:
        """A thread's state: its latest checkpoint, or the one ``config`` names."""
        return await self.graph.aget_state(config)

    def thread_history(
        self,
        config: RunnableConfig,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[StateSnapshot]:
        """A thread's states, newest first (its live context's checkpoints)."""
        return self.graph.aget_state_history(config, filter=filter, before=before, limit=limit)

    async def update_thread(
        self, config: RunnableConfig, values: dict[str, Any], *, as_node: str | None
    ) -> RunnableConfig:
        """Write ``values`` into a thread's state as if ``as_node`` had just run; hold the
        project idle first (:meth:`project_idle`). Returns the new checkpoint's config."""
        return await self.graph.aupdate_state(config, values, as_node=as_node)

    async def maintain(self, every: float) -> None:
        """Reconcile abandoned runs (:meth:`reconcile`, unless this process takes them
        over), sweep expired contexts and idle sandboxes every ``every`` seconds.

        Several processes may run this at once: the sweep splits its work between them
        (``FOR UPDATE SKIP LOCKED``). A failed round is logged and the next one runs.
        """
        while True:
            await asyncio.sleep(every)
            try:
                if self.worker.mode != "all":
                    await self.reconcile()
                await self.checkpointer.sweep()
                await self.pool.sweep_idle()
            except Exception:
                _log.exception("maintenance.failed")

    async def reconcile(self) -> list[str]:
        """Mark runs nobody works any more as interrupted, and their threads too.

        For processes that take no runs over (``builder run``): a run whose lease ran
        out (its worker died), or one of this process's whose end could not be
        recorded, is marked interrupted; ``resume`` then finishes it. A server's worker
        takes such runs over instead.

        Returns:
            The run ids marked as interrupted.
        """
        abandoned = await reset_abandoned(
            self.db,
            worker=self.worker.id,
            mine=list(self._active),
            error="the process running it stopped",
        )
        if abandoned:
            _log.warning("runs.reconciled", runs=abandoned)
        return abandoned

    async def close(self) -> None:
        """Stop claiming, let running steps finish (``BUILDER_SHUTDOWN_GRACE_SECONDS``),
        then hand the runs still going to other workers (their leases are released).
        """
        self._closing = True
        self.worker.stop_claiming()
        handles = list(self._active.values())
        for handle in handles:
            if handle._executing:
                handle._handing_over = True
                handle.control.request_drain("shutdown")
        tasks = [h._task for h in handles if h._task is not None and h._executing]
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_seconds)
        for handle in handles:
            handle._hard_cancel()
        await asyncio.gather(*(h._task for h in handles if h._task), return_exceptions=True)
        await self.worker.close()

    # --- the run -----------------------------------------------------------------------
    def _cancel_requested(self, run_id: str) -> bool:
        """Cancel a run of this process that another process asked to stop."""
        handle = self._active.get(run_id)
        if handle is None:
            return False
        if not handle._executing:
            handle._cancel_wanted = True  # claimed here, about to start
            return False
        handle.cancel()
        return True

    def _cancel_elsewhere(self, handle: RunHandle) -> None:
        """Cancel a run started here that is queued, or worked by another process."""
        handle._cancel_wanted = True  # seen when this process's worker claims it meanwhile
        task = asyncio.create_task(self.cancel(handle.run_id), name=f"cancel-{handle.run_id}")
        self._background(task)

    def _background(self, task: asyncio.Task[Any]) -> None:
        _background_tasks.add(task)
        task.add_done_callback(_background_tasks.discard)

    def _retire(self, handle: RunHandle) -> None:
        self._active.pop(handle.run_id, None)
        self.worker.waiting.pop(handle.run_id, None)
        self.worker.working.pop(handle.run_id, None)
        self._finished[handle.run_id] = handle
        self.worker.wake()

    def _adopt(self, claimed: ClaimedRun) -> None:
        """Work a run this worker claimed that was started in another process (or whose
        worker died)."""
        handle = RunHandle(
            claimed.run_id, claimed.project_id, cancel_grace=self.settings.timeout_sandbox
        )
        modes = claimed.input.get("stream_modes")
        if modes:
            handle.graph_stream = RunStream()
            handle.stream_modes = tuple(modes)
        handle._canceller = self._cancel_elsewhere
        handle._adopted = True
        self._active[handle.run_id] = handle
        self.worker.working[handle.run_id] = handle
        handle._placed.set_result(claimed)
        handle._task = asyncio.create_task(self._lifecycle(handle), name=f"run-{handle.run_id}")
        handle._task.add_done_callback(lambda _: self._retire(handle))

    async def _publish_positions(self, handles: list[RunHandle]) -> None:
        """Publish a ``queued`` event (its new place) for each of these pending runs.

        In both its streams: ``queued`` with ``position`` in its events, and a ``custom``
        part ``{"event": "queued", "position"}`` in LangGraph's, when kept. With Redis the
        events go there first, fenced against a worker claiming the run meanwhile (see
        :meth:`RunFanout.note_queued`); only those written there are published here.
        """
        notes: dict[str, list[tuple[Literal["events", "graph"], RunEvent]]] = {}
        for handle in handles:
            if not handle.queue_notes or handle._placed.done() or handle.position is None:
                continue
            position = handle.position
            run_notes: list[tuple[Literal["events", "graph"], RunEvent]] = []
            if handle.stream.next_seq == 1:
                # The first note carries the run's first event (seq 0, so far only in
                # this process): a reader through Redis gets the stream from its start.
                run_notes += [("events", e) for e in await handle.stream.next_events(after=-1)]
            run_notes.append(
                ("events", RunEvent("queued", {"position": position}, handle.stream.next_seq))
            )
            if handle.graph_stream is not None:
                chunk = {"event": "queued", "position": position}
                run_notes.append(
                    ("graph", RunEvent("custom", {"chunk": chunk}, handle.graph_stream.next_seq))
                )
            notes[handle.run_id] = run_notes
        if not notes:
            return
        written = set(notes) if self.fanout is None else await self.fanout.note_queued(notes)
        for run_id in written:
            if (noted := self._active.get(run_id)) is None:
                continue
            for channel, event in notes[run_id]:
                stream = noted.stream if channel == "events" else noted.graph_stream
                assert stream is not None
                if event.seq >= stream.next_seq:  # not the first event, there already
                    await stream.put(event)

    async def _lifecycle(self, handle: RunHandle) -> RunResult:
        """Wait for the run to be placed, then work it here or follow it elsewhere."""
        try:
            placed = await handle._placed
        except asyncio.CancelledError:
            # Closing: the run stays queued for another worker.
            await close_streams(handle)
            raise
        if isinstance(placed, ClaimedRun):
            return await self._execute(handle, placed)
        return await self._follow_elsewhere(handle)

    async def _follow_elsewhere(self, handle: RunHandle) -> RunResult:
        """Mirror a run worked by another process into this handle, until it ends."""
        run_id = handle.run_id
        handle.status = "running"

        async def ended() -> bool:
            row = await get_run(self.db, run_id=run_id)
            return row is None or row["ended_at"] is not None

        try:
            if self.fanout is not None:
                copies = [self._copy_remote(handle, "events", ended)]
                if handle.graph_stream is not None:
                    copies.append(self._copy_remote(handle, "graph", ended))
                await asyncio.gather(*copies)
            row = await get_run(self.db, run_id=run_id)
            while row is not None and row["ended_at"] is None:
                await asyncio.sleep(self.settings.run_poll_seconds)
                row = await get_run(self.db, run_id=run_id)
            result = _recorded_result(handle, row)
            handle.status = result.status
            if not handle.stream.closed and not handle._finished_seen:
                await handle.stream.publish("run_finished", **result.as_dict())
            return result
        finally:
            await close_streams(handle)

    async def _copy_remote(
        self, handle: RunHandle, channel: Literal["events", "graph"], ended: Any
    ) -> None:
        assert self.fanout is not None
        target = handle.stream if channel == "events" else handle.graph_stream
        assert target is not None
        try:
            remote = await self.fanout.follow(handle.run_id, channel=channel, ended=ended)
        except DependencyUnavailable:
            return
        async for event in remote:
            if event.type == "run_finished" and channel == "events":
                handle._finished_seen = True
            await target.put(event)

    async def _execute(self, handle: RunHandle, claimed: ClaimedRun) -> RunResult:
        project_id = handle.project_id
        thread_id = str(project_id)
        run_input = claimed.input
        handle._executing = True
        handle.status = "running"
        if handle._cancel_wanted or claimed.cancel_requested:
            handle.cancel()
        # The ``queued`` event as the starting process published it (already there when
        # that is this process).
        await handle.stream.put(_queued_event(handle, run_input.get("queued_at")))
        if self.fanout is not None:
            await self._mirror(handle, claimed)
        result = RunResult(run_id=handle.run_id, project_id=project_id, status="error")
        with bound_context(run_id=handle.run_id, project_id=thread_id):
            if claimed.takeover:
                _log.warning("run.taken_over", attempt=claimed.attempts)
            async with AsyncExitStack() as stack:
                try:
                    await self._turn(
                        stack,
                        handle,
                        result,
                        user_id=claimed.user_id,
                        prompt=run_input.get("prompt"),
                        resume=bool(run_input.get("resume")),
                        takeover=claimed.takeover,
                        max_steps=run_input.get("max_steps"),
                        token_budget=run_input.get("token_budget"),
                        images=await load_images(self.db, run_input.get("images") or []),
                    )
                except (asyncio.CancelledError, _HandedOver):
                    if handle._handing_over:
                        await self._hand_over(handle, result)
                        return result
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
                except BaseException:
                    # Stopped without an end (as by a crash): free the run at once for
                    # whoever resumes or takes it over.
                    await self._hand_over(handle, result)
                    raise
                await self._finish(handle, result)
        return result

    async def _mirror(self, handle: RunHandle, claimed: ClaimedRun) -> None:
        """Copy the run's streams to Redis, numbered on from what they hold there."""
        assert self.fanout is not None
        streams: dict[Literal["events", "graph"], RunStream] = {"events": handle.stream}
        if handle.graph_stream is not None:
            streams["graph"] = handle.graph_stream
        if claimed.takeover:
            # Events go on after the last one the earlier attempt passed on.
            after = {
                channel: await self.fanout.last_seq(handle.run_id, channel=channel)
                for channel in streams
            }
        elif handle._adopted:
            # Started elsewhere: its starter may have published where it was queued.
            after = await self.fanout.claim_notes(handle.run_id, list(streams))
        else:
            after = dict.fromkeys(streams, -1)
        for channel, stream in streams.items():
            if after[channel] >= 0:
                stream.renumber(after[channel] + 1)
            replace = not claimed.takeover and after[channel] < 0
            self.fanout.mirror(handle.run_id, stream, channel=channel, replace=replace)

    async def _hand_over(self, handle: RunHandle, result: RunResult) -> None:
        """Leave the run to another worker: release its lease (unless lost already)."""
        handle._finishing = True
        result.status = "interrupted"
        result.stop_reason = "handed_over"
        if not handle._lost:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    release(self.db, worker=self.worker.id, run_ids=[handle.run_id])
                )
        _log.info("run.handed_over", lost=handle._lost)
        handle.stream.handed_over = True
        if handle.graph_stream is not None:
            handle.graph_stream.handed_over = True
        await close_streams(handle)

    async def _turn(
        self,
        stack: AsyncExitStack,
        handle: RunHandle,
        result: RunResult,
        *,
        user_id: uuid.UUID,
        prompt: str | None,
        resume: bool,
        takeover: bool = False,
        max_steps: int | None,
        token_budget: int | None,
        images: Sequence[Image] = (),
    ) -> None:
        project_id = handle.project_id
        thread_id = str(project_id)
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        handle.status = "running"

        async def workspace() -> Sandbox:
            sandbox = await stack.enter_async_context(self.pool.lease(thread_id))
            # Under the run's lease: a copy another replica has moved past is refreshed
            # first.
            await sync_workspace(self.db, project_id=project_id, sandbox=sandbox)
            return sandbox

        # Independent of each other, so awaited together: with many runs starting at
        # once every await waits its turn behind the others' work.
        sandbox, current, last_asked = await all_of(
            workspace(), self.graph.aget_state(config), self._last_user_message(project_id)
        )
        if not current.next and current.tasks:
            current = await self._settle(config, current)
        await self._restart_dev_server(sandbox, thread_id, (current.values or {}).get("dev_server"))
        interrupted = stopped_midway(current)
        if interrupted and _injected_tool_calls(current):
            # Tool calls written into the state by a state update, not by the model in a
            # run: answered as not run, never executed.
            await self._close_interrupted(
                config, "stopped: its tool calls did not come from the model"
            )
            current = await self.graph.aget_state(config)
            interrupted = False
        if takeover:
            # An earlier attempt's worker stopped. Its checkpoints say how far it got.
            ran = (current.metadata or {}).get(_RUN_ID_KEY) == handle.run_id
            if ran and not interrupted:
                # The graph finished the turn; only storing its end was lost.
                done_turn = _last_turn(current.values.get("messages", []))
                if last_asked is not None:
                    await self._store_reply(handle, done_turn)
                await self._finish_recovered(handle, result, current, done_turn)
                return
            resume = ran  # from its last checkpoint; else the turn never began
            if ran and await self._rewind_lost_steps(config, sandbox, current):
                current = await self.graph.aget_state(config)
        graph_input: dict[str, Any] | None
        message_id: uuid.UUID | None = None
        run_id = handle.run_id
        asked = None if interrupted else last_asked
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
        if run_id != handle.run_id:
            # Resuming a turn started under another id (before runs were queued): its
            # own row says it runs again. The queued row was marked when claimed.
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
            exclusive=True,  # the claimed lease keeps other runs and hand edits out
        )
        parts = ReplyParts()
        try:
            # The run's lease keeps its context from being swept: its expiry is refreshed
            # when the graph is done (and was when its state was read), not per write.
            async with self.checkpointer.under_lease(thread_id):
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
            if handle._handing_over:
                raise _HandedOver from None
            await self._close_interrupted(config, "cancelled by the user", turn_input=graph_input)
            result.status = "cancelled"
        finally:
            await _record_version(ctx)
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
                parts=[*parts.parts, _usage_part(result)],
                model=self.settings.model,
            )
        if result.status in ("success", "cancelled"):
            # The turn is over and its reply stored: its steps' checkpoints are no
            # longer needed for resuming (a failed run keeps them).
            await self.checkpointer.prune_history(str(project_id))

    async def _settle(self, config: RunnableConfig, current: Any) -> Any:
        """Store the checkpoint of a step whose tasks all finished before the process
        stopped, and return the state after it.

        LangGraph applies the tasks' stored writes and stops before every next node, so
        nothing runs: the state then holds the step's messages and names the nodes to
        run next, which resuming runs and closing the turn answers (a state update on
        the unsettled checkpoint would drop those writes).
        """
        run_id = (current.metadata or {}).get(_RUN_ID_KEY)
        settling: RunnableConfig = (
            {**config, "metadata": {_RUN_ID_KEY: run_id}} if run_id else config
        )
        async for _ in self.graph.astream(None, settling, interrupt_before="*", durability="sync"):
            pass
        return await self.graph.aget_state(config)

    async def _rewind_lost_steps(
        self, config: RunnableConfig, sandbox: Sandbox, current: Any
    ) -> bool:
        """Go back to the last saved step when the files of later ones are not here.

        Files a model step's tool calls wrote are saved (a version of the project) with
        its last call; until then the state lists them as ``unsaved``. A worker that died
        in between took the unsaved files with its sandbox: the run goes on from the
        newest checkpoint with nothing unsaved, running the steps after it again (their
        model calls are not repeated).

        Returns:
            Whether the run was rewound.
        """
        values = current.values or {}
        unsaved: dict[str, str | None] = values.get("unsaved") or {}
        if not unsaved:
            return False
        here = await scan_workspace(sandbox)
        if all(here.get(path) == sha for path, sha in unsaved.items()):
            return False  # the same workspace (a shared volume, or this machine)
        async for saved in self.checkpointer.alist(config):
            channels = saved.checkpoint.get("channel_values", {})
            if not channels.get("unsaved"):
                checkpoint_id = saved.config["configurable"]["checkpoint_id"]
                thread_id = config["configurable"]["thread_id"]
                dropped = await self.checkpointer.rewind(thread_id, checkpoint_id)
                _log.warning("run.rewound", unsaved=sorted(unsaved), checkpoints=dropped)
                return True
        return False

    async def _restart_dev_server(self, sandbox: Sandbox, project_id: str, server: Any) -> None:
        """Start the dev server again when the context says it runs and it does not.

        Its process went with a process that died (or with a sandbox closed since):
        the turn, and the preview, carry on with the same command and port, and other
        replicas forward the previews here.
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
        if launch.info.running:
            await record_replica(
                self.db, project_id=project_id, replica=self.settings.advertise_url
            )

    async def _last_user_message(self, project_id: uuid.UUID) -> Any:
        """The latest stored message when it is the user's (a turn not yet answered)."""
        latest = await latest_message(self.db, project_id=project_id)
        return latest if latest is not None and latest.role == "user" else None

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
        handle._finishing = True
        recorded = True
        try:
            recorded = await record_run_finished(
                self.db, run_id=handle.run_id, result=result.as_dict(), worker=self.worker.id
            )
            if result.run_id != handle.run_id:
                await record_run_finished(self.db, run_id=result.run_id, result=result.as_dict())
        except Exception:
            _log.warning("run.finish_not_recorded", exc_info=True)
        if not recorded:
            # Taken over by another worker meanwhile: its attempt ends the run.
            _log.warning("run.lease_lost_at_end", status=result.status)
            handle._lost = True
            await self._hand_over(handle, result)
            return
        handle.status = result.status
        await handle.stream.publish("run_finished", **result.as_dict())
        await close_streams(handle)
        _log.info(
            "run.finished",
            status=result.status,
            stop_reason=result.stop_reason,
            steps=result.steps,
            tokens=result.total_tokens,
        )


async def _record_version(ctx: RunContext) -> None:
    """Record the version the run saved last in its workspace as the run stops; when
    that fails (the sandbox went away), the workspace says an older one and the next
    run restores it."""
    try:
        await record_run_version(ctx)
    except Exception as exc:
        _log.warning("run.version_unrecorded", run_id=ctx.run_id, error=str(exc))


class _HandedOver(Exception):
    """The run stopped at a step boundary for another worker to continue it."""


_background_tasks: set[asyncio.Task[Any]] = set()

_PROJECT_RUNNING = text(
    "SELECT 1 FROM runs WHERE project_id = :project_id AND status = 'running' "
    "AND lease_expires_at > now() LIMIT 1"
)
_PROJECT_RUN_OPEN = text(
    "SELECT 1 FROM runs WHERE project_id = :project_id AND status IN ('pending', 'running') LIMIT 1"
)


async def _project_running(db: Database, project_id: uuid.UUID, *, queued_too: bool) -> bool:
    """Whether a run holds a live lease on the project (or, ``queued_too``, any run of
    it has not ended)."""
    query = _PROJECT_RUN_OPEN if queued_too else _PROJECT_RUNNING

    async def work(session: AsyncSession) -> bool:
        row = await session.execute(query, {"project_id": project_id})
        return row.first() is not None

    return await db.run(work)


def _recorded_result(handle: RunHandle, row: dict[str, Any] | None) -> RunResult:
    """A run's result as its record has it (a run worked by another process)."""
    if row is None:
        return RunResult(
            run_id=handle.run_id,
            project_id=handle.project_id,
            status="error",
            error="the run was deleted",
            error_code="not_found",
        )
    stored = dict(row.get("result") or {})
    fields = {f.name for f in dataclasses.fields(RunResult)}
    values = {k: v for k, v in stored.items() if k in fields and k != "project_id"}
    values["run_id"] = handle.run_id
    values["status"] = cast(RunStatus, row["status"])
    values.setdefault("error", row.get("error"))
    return RunResult(project_id=handle.project_id, **values)


def _queued_event(handle: RunHandle, at: float | None) -> RunEvent:
    """A run's first event (seq 0): it is recorded and waits for a worker."""
    return RunEvent(
        type="queued",
        data={"run_id": handle.run_id, "project_id": str(handle.project_id)},
        seq=0,
        at=time.time() if at is None else at,
    )


def _usage_part(result: RunResult) -> dict[str, Any]:
    """What the turn cost, kept with its reply (the studio shows it beside each turn)."""
    return {
        "type": "usage",
        "status": result.status,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": None if result.cost_usd is None else round(result.cost_usd, 6),
        "steps": result.steps,
    }


def _last_turn(context: list[Any]) -> list[Any]:
    """The messages after the context's last message of the user (the check's reports
    to the model are part of the turn)."""
    for index in range(len(context) - 1, -1, -1):
        if isinstance(context[index], HumanMessage) and not is_check_message(context[index]):
            return list(context[index + 1 :])
    return []


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


def stopped_midway(state: Any) -> bool:
    """Whether a thread's latest checkpoint is inside a turn (the graph has steps to go).

    ``next`` alone does not say so: LangGraph leaves out of it the tasks whose writes
    are stored, so a process that died after a step's tasks finished and before the
    step's checkpoint leaves a state with nothing next, though resuming it goes on
    with the turn. A checkpoint has tasks at all only while its graph is not done.
    """
    return bool(state.next) or bool(state.tasks)


def _injected_tool_calls(state: Any) -> bool:
    """Whether pending tool calls come from a state update rather than from the graph.

    A checkpoint the graph wrote while running has ``source`` ``loop`` (or ``input``);
    one written by ``update_state`` has ``update``. Only the graph's own calls resume.
    """
    metadata = state.metadata or {}
    return metadata.get("source") == "update" and bool(
        pending_tool_calls(state.values.get("messages", []))
    )
