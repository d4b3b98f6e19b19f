"""What one agent step costs: builder's web-builder graph against plain LangGraph agents.

Every variant replays the same scripted model (no provider) on a 1 MiB project of 64
files: a turn of ``STEPS`` tool calls, alternately ``edit_file`` on a project file and
``write_file`` of a new 1 KiB page, then a final answer. All checkpoint to PostgreSQL
with durability ``"sync"``.

* **create_agent, files on disk** — ``langchain.agents.create_agent`` with plain
  ``@tool`` functions writing into a directory, ``AsyncPostgresSaver``: the time
  baseline.
* **create_agent, files in state** — the same agent whose state holds a
  ``files: dict[path, content]`` channel that every step updates: the design builder
  replaced, and the size baseline.
* **web-builder graph** — ``build_web_builder_graph`` with the built-in tools in a
  ``LocalSandbox`` brought to the latest version, the ``LockManager`` on the database
  and the context marked exclusive (as under the runs service's lease on the project),
  snapshots and token usage saved every step (``RunContext(db=...)``); once with
  ``AsyncPostgresSaver`` and once with ``TTLCheckpointer`` (what builder runs).

A step's cost is marginal: a run of ``STEPS`` tool calls minus a run that only answers,
divided by ``STEPS``; so is its size, the bytes the thread's rows hold in
``checkpoints`` (checkpoint and metadata as text), ``checkpoint_blobs`` and
``checkpoint_writes``. Rounds interleave the variants; the table shows medians.

Run ``python -m bench.graph_overhead``; the table goes into docs/benchmarks.md between
the ``bench:graph_overhead`` markers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import psycopg
from langchain.agents import AgentState, create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, InjectedToolCallId, tool
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.prebuilt import InjectedState
from langgraph.types import Command
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bench.pgwire import WireCounter
from bench.report import create_database, drop_database, write_section
from builder.graphs.checkpointer import TTLCheckpointer
from builder.graphs.context import RunContext
from builder.graphs.web_builder import build_web_builder_graph
from builder.locks import LockManager
from builder.models.scripted import ScriptedChatModel
from builder.persistence import (
    Database,
    create_project,
    get_or_create_user,
    save_snapshot,
    upgrade_database,
)
from builder.persistence.files import sync_workspace
from builder.runs.conversation import rebuild_context
from builder.sandbox.local import LocalSandbox
from builder.settings import Settings

NAME = "graph_overhead"
FILES = 64
FILE_BYTES = 16 * 1024
PAGE_BYTES = 1024
STEPS = 40
ROUNDS = 11
LONG_STEPS = 200
LONG_ROUNDS = 3
LONG_VARIANTS = ("agent_disk", "ours_ttl")
WIRE_ROUNDS = 3
VARIANTS = ("agent_disk", "agent_state", "ours_plain", "ours_ttl")
LABELS = {
    "agent_disk": "LangGraph `create_agent`, files on disk",
    "agent_state": "LangGraph `create_agent`, files in graph state",
    "ours_plain": "builder web-builder graph, `AsyncPostgresSaver`",
    "ours_ttl": "builder web-builder graph, `TTLCheckpointer`",
}

BYTES_SQL = """
SELECT
  (SELECT coalesce(sum(octet_length(checkpoint::text) + octet_length(metadata::text)), 0)
     FROM checkpoints WHERE thread_id = %(t)s)
  + (SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_blobs WHERE thread_id = %(t)s)
  + (SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_writes WHERE thread_id = %(t)s)
"""

SNAPSHOT_BYTES_SQL = """
SELECT coalesce(sum(b.size), 0) FROM blobs b
WHERE b.sha256 IN (
  SELECT blob_sha256 FROM snapshot_entries WHERE project_id = %(p)s AND version > 1
)
"""


@dataclass
class Run:
    seconds: float
    checkpoint_bytes: int
    snapshot_bytes: int = 0
    round_trips: int = 0
    commits: int = 0
    channel_writes: int = 0
    wal_bytes: int = 0


def _content(seed: int, size: int) -> str:
    header = f"/* file {seed} */\n"
    return header + base64.b64encode(os.urandom(size))[: size - len(header)].decode()


def project_files() -> dict[str, str]:
    """The 1 MiB project every run starts from."""
    return {f"src/file{i}.js": _content(i, FILE_BYTES) for i in range(FILES)}


def script(steps: int) -> dict[str, Any]:
    """A turn of ``steps`` tool calls, alternately editing a file and writing a page."""
    responses: list[dict[str, Any]] = []
    for step in range(steps):
        if step % 2 == 0:
            k = step // 2 % FILES
            # The header's start stays unique however often the file is edited.
            call = {
                "name": "edit_file",
                "args": {
                    "path": f"src/file{k}.js",
                    "search": f"/* file {k}",
                    "replace": f"/* file {k}!",
                },
            }
        else:
            call = {
                "name": "write_file",
                "args": {"path": f"pages/page{step}.html", "content": "x" * PAGE_BYTES},
            }
        responses.append({"content": f"Step {step}.", "tool_calls": [call]})
    return {"turns": [{"responses": responses}] if responses else [], "final_message": "Done."}


def _edited(text: str, path: str, search: str, replace: str) -> str:
    if text.count(search) != 1:
        raise ValueError(f"{search!r} does not occur exactly once in {path}")
    return text.replace(search, replace, 1)


def disk_tools(root: Path) -> list[BaseTool]:
    """Plain tools writing files into ``root``."""

    @tool
    async def write_file(path: str, content: str) -> str:
        """Create or overwrite a file with the given content."""
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return f"Wrote {path} ({len(content):,} characters)."

    @tool
    async def edit_file(path: str, search: str, replace: str) -> str:
        """Replace one exact, unique occurrence of a text in a file with new text."""
        target = root / path
        target.write_text(_edited(target.read_text(), path, search, replace))
        return f"Edited {path}."

    return [write_file, edit_file]


def _merge_files(left: dict[str, str] | None, right: dict[str, str] | None) -> dict[str, str]:
    return {**(left or {}), **(right or {})}


class FilesState(AgentState[Any]):
    """The replaced design: every file's content in the graph state."""

    files: Annotated[dict[str, str], _merge_files]


def state_tools() -> list[BaseTool]:
    """Tools that keep files in the ``files`` channel."""

    @tool
    async def write_file(
        path: str, content: str, tool_call_id: Annotated[str, InjectedToolCallId]
    ) -> Command[Any]:
        """Create or overwrite a file with the given content."""
        note = ToolMessage(
            f"Wrote {path} ({len(content):,} characters).", tool_call_id=tool_call_id
        )
        return Command(update={"files": {path: content}, "messages": [note]})

    @tool
    async def edit_file(
        path: str,
        search: str,
        replace: str,
        state: Annotated[dict[str, Any], InjectedState],
        tool_call_id: Annotated[str, InjectedToolCallId],
    ) -> Command[Any]:
        """Replace one exact, unique occurrence of a text in a file with new text."""
        text = _edited(state["files"][path], path, search, replace)
        note = ToolMessage(f"Edited {path}.", tool_call_id=tool_call_id)
        return Command(update={"files": {path: text}, "messages": [note]})

    return [write_file, edit_file]


class Bench:
    """One temporary database and the pieces every run shares."""

    def __init__(self, url: str, work_dir: Path, counter: WireCounter | None = None) -> None:
        self.direct_dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.counter = counter
        if counter is not None:
            # Everything the workload sends goes through the counting proxy.
            host_part = url.split("@", 1)[1].split("/", 1)
            url = (
                f"{url.split('@', 1)[0]}@127.0.0.1:{counter.port}/{host_part[1]}"
                "?sslmode=disable&gssencmode=disable"
            )
        self.url = url
        self.dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.work_dir = work_dir
        self.settings = Settings(
            data_dir=work_dir / "data",
            max_steps=LONG_STEPS + 10,
            run_token_budget=50_000_000,
            # A long turn stays whole in the model's window, as in create_agent (the
            # scripted model finds its place in the script by counting the turn's calls).
            context_token_budget=50_000_000,
            timeout_db=120,
            # The end-of-turn check (a build, the site checker) is a turn's cost, not a
            # tool call's; the scripted pages would fail it and send the model back.
            check_rounds=0,
        )
        self.files = project_files()
        self.db = Database(url, settings=self.settings)
        self.channel_writes = 0
        """Channel values the checkpointers were given to store (``aput_writes``)."""

    def counted(self, saver: Any) -> Any:
        """``saver``, counting the channel writes it stores into :attr:`channel_writes`."""
        store = saver.aput_writes

        async def aput_writes(config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
            self.channel_writes += len(writes)
            await store(config, writes, task_id, task_path)

        saver.aput_writes = aput_writes
        return saver

    @asynccontextmanager
    async def measured(self) -> AsyncIterator[Run]:
        """Time the block; through the proxy, also count its round trips, commits and
        the WAL the server wrote meanwhile (server-wide)."""
        run = Run(0.0, 0)
        writes = self.channel_writes
        if self.counter is None:
            started = time.perf_counter()
            yield run
            run.seconds = time.perf_counter() - started
            run.channel_writes = self.channel_writes - writes
            return
        wal_before = await self._wal_lsn()
        self.counter.reset()
        yield run
        counts = self.counter.reset()
        run.round_trips, run.commits = counts.round_trips, counts.commits
        run.channel_writes = self.channel_writes - writes
        run.wal_bytes = await self._wal_lsn() - wal_before

    async def _wal_lsn(self) -> int:
        async with await psycopg.AsyncConnection.connect(self.direct_dsn) as conn:
            cursor = await conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def thread_bytes(self, thread_id: str) -> int:
        async with await psycopg.AsyncConnection.connect(self.direct_dsn) as conn:
            cursor = await conn.execute(BYTES_SQL, {"t": thread_id})
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def snapshot_bytes(self, project_id: uuid.UUID) -> int:
        async with await psycopg.AsyncConnection.connect(self.direct_dsn) as conn:
            cursor = await conn.execute(SNAPSHOT_BYTES_SQL, {"p": project_id})
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def pool(self) -> AsyncIterator[AsyncConnectionPool[Any]]:
        async with AsyncConnectionPool(
            self.dsn,
            min_size=1,
            max_size=10,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False,
        ) as pool:
            yield pool

    async def run_agent(self, steps: int, *, in_state: bool) -> Run:
        thread_id = f"agent-{uuid.uuid4().hex}"
        root = self.work_dir / thread_id
        for path, text in self.files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
        model = ScriptedChatModel(script=script(steps))
        async with self.pool() as pool:
            saver = self.counted(AsyncPostgresSaver(pool))
            if in_state:
                agent: Any = create_agent(
                    model, state_tools(), state_schema=FilesState, checkpointer=saver
                )
                graph_input: dict[str, Any] = {
                    "messages": [HumanMessage("Build it")],
                    "files": dict(self.files),
                }
            else:
                agent = create_agent(model, disk_tools(root), checkpointer=saver)
                graph_input = {"messages": [HumanMessage("Build it")]}
            config = {"configurable": {"thread_id": thread_id}, "recursion_limit": 1000}
            async with self.measured() as run:
                await agent.ainvoke(graph_input, config, durability="sync")
        shutil.rmtree(root, ignore_errors=True)
        run.checkpoint_bytes = await self.thread_bytes(thread_id)
        return run

    async def run_ours(self, steps: int, *, ttl: bool) -> Run:
        user = await get_or_create_user(self.db, name="bench")
        project = await create_project(self.db, user_id=user.id, name="bench")
        await save_snapshot(
            self.db,
            project_id=project.id,
            changes={p: t.encode() for p, t in self.files.items()},
        )
        thread_id = str(project.id)
        sandbox = LocalSandbox(thread_id, settings=self.settings)
        # As the runs service does: the workspace is brought to (and records) the latest.
        await sync_workspace(self.db, project_id=project.id, sandbox=sandbox)
        base = await rebuild_context(self.db, project_id=project.id)
        locks = LockManager(self.dsn, timeout=60)
        run_id = uuid.uuid4().hex
        graph_input: Any = {
            **base,
            "messages": [HumanMessage("Build it")],
            "project_id": thread_id,
            "run_id": run_id,
            "run_steps": 0,
            "run_tokens": 0,
            "stop_reason": None,
            "pending_usage": None,
            "build_status": "working",
        }
        ctx = RunContext(
            sandbox=sandbox,
            locks=locks,
            settings=self.settings,
            db=self.db,
            project_id=thread_id,
            run_id=run_id,
            exclusive=True,  # as under the runs service's lease
        )
        config: Any = {"configurable": {"thread_id": thread_id}, "recursion_limit": 1000}
        model = ScriptedChatModel(script=script(steps))
        try:
            async with self.pool() as pool:
                saver = self.counted(
                    TTLCheckpointer(pool, ttl_seconds=1800) if ttl else AsyncPostgresSaver(pool)
                )
                graph = build_web_builder_graph(
                    model=model, checkpointer=saver, settings=self.settings
                )
                # As the runs service does: the run works under its lease (no lock or
                # context hold of its own), its context marked exclusive, and the
                # thread's expiry refreshed when the run starts and ends, not per write.
                async with contextlib.AsyncExitStack() as stack:
                    if isinstance(saver, TTLCheckpointer):
                        await stack.enter_async_context(saver.under_lease(thread_id))
                    async with self.measured() as run:
                        await graph.ainvoke(graph_input, config, context=ctx, durability="sync")
                await self._check(graph, config, steps)
                if isinstance(saver, TTLCheckpointer):
                    # As the runs service does once the turn's reply is stored.
                    await saver.prune_history(thread_id)
        finally:
            await locks.close()
            await sandbox.close()
        run.checkpoint_bytes = await self.thread_bytes(thread_id)
        run.snapshot_bytes = await self.snapshot_bytes(project.id)
        return run

    @staticmethod
    async def _check(graph: Any, config: Any, steps: int) -> None:
        values: dict[str, Any] = (await graph.aget_state(config)).values
        if values.get("run_steps") != steps + 1 or values.get("stop_reason") != "done":
            raise RuntimeError(f"the run did not go as scripted: {values.get('stop_reason')}")


Results = dict[str, dict[str, list[tuple[Run, Run]]]]


async def run() -> Results:
    """Timing rounds, long turns, and counting rounds through the wire counter."""
    name, url = create_database()
    work_dir = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    results: Results = {
        "steps": {v: [] for v in VARIANTS},
        "long": {v: [] for v in LONG_VARIANTS},
        "wire": {v: [] for v in VARIANTS},
    }
    host, port = url.split("@", 1)[1].split("/", 1)[0].split(":")
    bench = Bench(url, work_dir)
    try:
        await upgrade_database(bench.db)
        runners = _runners(bench)
        for variant in VARIANTS:  # warm up imports, plans and caches
            await runners[variant](2)
        for round_ in range(ROUNDS):
            order = VARIANTS if round_ % 2 == 0 else tuple(reversed(VARIANTS))
            for variant in order:
                empty = await runners[variant](0)
                full = await runners[variant](STEPS)
                results["steps"][variant].append((empty, full))
        for round_ in range(LONG_ROUNDS):
            order = LONG_VARIANTS if round_ % 2 == 0 else tuple(reversed(LONG_VARIANTS))
            for variant in order:
                empty = await runners[variant](0)
                full = await runners[variant](LONG_STEPS)
                results["long"][variant].append((empty, full))
        async with WireCounter(host, int(port)) as counter:
            counted = Bench(url, work_dir, counter)
            try:
                wire_runners = _runners(counted)
                for _ in range(WIRE_ROUNDS):
                    for variant in VARIANTS:
                        empty = await wire_runners[variant](0)
                        full = await wire_runners[variant](STEPS)
                        results["wire"][variant].append((empty, full))
            finally:
                await counted.db.dispose()
    finally:
        await bench.db.dispose()
        shutil.rmtree(work_dir, ignore_errors=True)
        drop_database(name)
    return results


def _runners(bench: Bench) -> dict[str, Callable[[int], Awaitable[Run]]]:
    return {
        "agent_disk": lambda n: bench.run_agent(n, in_state=False),
        "agent_state": lambda n: bench.run_agent(n, in_state=True),
        "ours_plain": lambda n: bench.run_ours(n, ttl=False),
        "ours_ttl": lambda n: bench.run_ours(n, ttl=True),
    }


def marginal(pair: tuple[Run, Run], attr: str, steps: int = STEPS) -> float:
    """(A full run − a run that only answers) ÷ its number of tool calls."""
    empty, full = pair
    return float(getattr(full, attr) - getattr(empty, attr)) / steps


def per_step(pairs: list[tuple[Run, Run]], attr: str, steps: int = STEPS) -> float:
    """The median over rounds of the marginal cost of a step."""
    return statistics.median(marginal(pair, attr, steps) for pair in pairs)


def ratio(
    pairs: list[tuple[Run, Run]],
    baseline: list[tuple[Run, Run]],
    attr: str,
    steps: int = STEPS,
) -> float:
    """The median over rounds of this variant's step cost ÷ the baseline's in that round.

    Both ran seconds apart, so load from other processes on a shared machine
    mostly cancels out.
    """
    return statistics.median(
        marginal(mine, attr, steps) / marginal(theirs, attr, steps)
        for mine, theirs in zip(pairs, baseline, strict=True)
    )


def _bytes(n: float) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:,.2f} MiB"
    return f"{n / 1024:,.1f} KiB"


def table(all_results: Results) -> str:
    results, long, wire = all_results["steps"], all_results["long"], all_results["wire"]
    ms = {v: per_step(results[v], "seconds") * 1000 for v in VARIANTS}
    slower = {v: ratio(results[v], results["agent_disk"], "seconds") for v in VARIANTS}
    size = {v: per_step(results[v], "checkpoint_bytes") for v in VARIANTS}
    trips = {v: per_step(wire[v], "round_trips") for v in VARIANTS}
    commits = {v: per_step(wire[v], "commits") for v in VARIANTS}
    wal = {v: per_step(wire[v], "wal_bytes") for v in VARIANTS}
    writes = {v: per_step(wire[v], "channel_writes") for v in VARIANTS}
    rows = []
    for variant in VARIANTS:
        snapshot = (
            _bytes(per_step(results[variant], "snapshot_bytes"))
            if variant.startswith("ours")
            else "—"
        )
        rows.append(
            f"| {LABELS[variant]} | {ms[variant]:,.1f} ms | {slower[variant]:.2f}× "
            f"| {trips[variant]:,.1f} | {commits[variant]:,.1f} | {writes[variant]:,.1f} "
            f"| {_bytes(wal[variant])} "
            f"| {_bytes(size[variant])} | {size['agent_state'] / size[variant]:,.0f}× "
            f"| {snapshot} |"
        )
    long_rows = [
        f"| {LABELS[v]} | {per_step(long[v], 'seconds', LONG_STEPS) * 1000:,.1f} ms "
        f"| {ratio(long[v], long['agent_disk'], 'seconds', LONG_STEPS):.2f}× "
        f"| {_bytes(per_step(long[v], 'checkpoint_bytes', LONG_STEPS))} |"
        for v in LONG_VARIANTS
    ]
    lines = [
        "## The web-builder graph: cost of a step",
        "",
        f"A scripted turn of {STEPS} tool calls (alternately `edit_file` on a project file "
        f"and `write_file` of a new {PAGE_BYTES // 1024} KiB page) on a project of {FILES} "
        f"files, {FILES * FILE_BYTES // 1024 // 1024} MiB in all, checkpointed to "
        "PostgreSQL with durability `sync`. Per step means marginal: a run of "
        f"{STEPS} calls minus a run that only answers, divided by {STEPS}. Checkpoint bytes "
        "are what the thread's rows hold in `checkpoints` (as text), `checkpoint_blobs` "
        "and `checkpoint_writes`. Round trips and commits are counted on the wire by a "
        "proxy in front of the server (`bench/pgwire.py`; a round trip is the client "
        "sending after the server answered, a commit a transaction that wrote) in "
        f"{WIRE_ROUNDS} separate rounds, with the channel values the nodes' writes "
        "handed the checkpointer (`aput_writes`; each is a `checkpoint_writes` row) and "
        "the WAL the server wrote meanwhile (server-"
        "wide, so other sessions on a shared server add noise). Times are medians of "
        f"{ROUNDS} interleaved rounds (the time ratio is the median of each round's "
        "ratio) of `python -m bench.graph_overhead` in one temporary "
        f"database on {platform.system()} {platform.machine()}, Python "
        f"{platform.python_version()}.",
        "",
        "| Variant | Time per step | ÷ `create_agent` | Round trips | Commits "
        "| Channel writes | WAL | Checkpoint bytes per step | Files-in-state ÷ this "
        "| Snapshot content per step |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        f"A long turn: {LONG_STEPS} tool calls, the same workload, {LONG_ROUNDS} "
        "interleaved rounds.",
        "",
        "| Variant | Time per step | ÷ `create_agent` | Checkpoint bytes per step |",
        "| --- | ---: | ---: | ---: |",
        *long_rows,
        "",
        "Per tool call the web-builder graph checkpoints two nodes, as the plain agent "
        "does, in half its round trips and commits: the tools node runs the call in a "
        "`LocalSandbox` and, after the last call of a model step, its save — the "
        "snapshot of the changed paths on the version the workspace holds and the model "
        "call's token usage, one statement that locks nothing, refused when that version "
        "is not the latest and made once per run and step — goes with the node's writes "
        "(`TTLCheckpointer.carry`). Under the run's lease (`TTLCheckpointer.under_lease`) "
        "each node's writes (the tools node's with the save) are sent with the checkpoint "
        "that follows them and committed in its transaction, where the checkpoint would "
        "wait for them to commit first (an interrupt's or an error's writes, which no "
        "checkpoint follows, are stored at once), and the "
        "thread's expiry is refreshed when the run ends, not in every checkpoint write. "
        "A task's writes are one statement, and so are a checkpoint and its new channel "
        "values; a write of one statement goes outside a pipeline (a pipeline sends the "
        "statement, a sync and a flush request as three messages). With "
        "`AsyncPostgresSaver` the tools node saves on its own, in a round trip and commit "
        "of its own. What a call costs beyond the plain agent's is spent in the process and "
        "in the server's work on the save: LangGraph's work over a state of some twenty "
        "channels (a step stores again each channel it changed — the manifest, the "
        "bounded tool history and the run's counters among them, the channel writes "
        "column — where the plain agent stores only its messages), the sandbox's file "
        "operations (each a hop to a worker thread, the tool's own two: a `stat` measured "
        "77 µs on the worker thread during a run against 24 µs inline, as each system call "
        "takes the interpreter lock back from the event loop) and the nodes' "
        "own bookkeeping. A run that has the workspace to itself records the version the "
        "workspace holds when the turn ends, not after every save: that write, on a "
        "worker thread racing the next checkpoint for the interpreter lock, cost 1.7 ms "
        "a step. "
        "`TTLCheckpointer` encodes a step's values in the task that stores them "
        "(`AsyncPostgresSaver` hops to a worker thread for each), and a run that has the "
        "workspace to itself reads its `.gitignore` once, not at every save. The agent node "
        "writes the channels that seldom change (`build_status`, `run_cost`) only when "
        "they do; the graph's edges are coroutines, since LangGraph runs a plain function "
        "given as an edge on a worker thread, report no run to callbacks, and the two "
        "taken at every tool call read only `messages` and `stop_reason` (LangGraph "
        "re-applies a node's writes to every channel a router reads); a model call's "
        "retry policy is set up only when its first attempt failed. A long turn costs "
        "both graphs more per step, as each stores the whole conversation again at every step; "
        "`TTLCheckpointer`'s serializer encodes each message once and takes the earlier "
        "messages' encoded items as one run (`builder/graphs/serializer.py`), where the "
        "plain agent's encodes every message again at every step, and the agent node "
        "counts only the new messages' tokens to take its context window. "
        "LangGraph stores a channel's whole value again at every step that changes it: "
        "with files in graph state that is the 1 MiB `files` channel every step; the "
        "web-builder state keeps a manifest of hashes instead, and the changed file's "
        "content goes once into the content-addressed snapshot blobs (last column). "
        "`TTLCheckpointer`'s bytes are counted after the run, which pruned the thread to "
        "its latest checkpoint (see the thread growth table); `AsyncPostgresSaver` keeps "
        "every checkpoint. The machine is shared with other work (load average "
        f"{LOAD[0]:.1f} when the run began, {LOAD[1]:.1f} when it ended, on 2 cores): "
        "times and time ratios move between runs, byte and round-trip counts do not.",
    ]
    return "\n".join(lines)


LOAD = [0.0, 0.0]
"""The 1-minute load average when the run began and when it ended."""


def main() -> None:
    LOAD[0] = os.getloadavg()[0]
    results = asyncio.run(run())
    LOAD[1] = os.getloadavg()[0]
    body = table(results)
    print(body)
    write_section(NAME, body)


if __name__ == "__main__":
    main()
