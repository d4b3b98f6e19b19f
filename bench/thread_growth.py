"""What a live thread stores, and what reading its state costs, as its turns add up.

One project's thread runs ``TURNS`` turns of the web-builder graph with a scripted
model (each turn: ``CALLS`` tool calls writing a 1 KiB page, then an answer), with
``TTLCheckpointer`` and durability ``"sync"``, each turn inside ``hold_context`` as the
runs service runs it:

* **latest checkpoint kept** — builder's checkpointer: a run that ends prunes the
  thread to its latest checkpoint;
* **every checkpoint kept** — ``keep_history=True``, the baseline: what a live thread
  stored before.

After turns 10 and 50 it records the thread's checkpoint bytes (``checkpoints`` as
text, ``checkpoint_blobs``, ``checkpoint_writes``), the serialized bytes of the
messages in the thread's state and of the whole conversation so far. The thread as it
was after turn 10 is copied under another thread id; after turn 50 both states are read
with ``graph.aget_state`` (the state read of every turn and of the API) in alternation,
so the ratio of their medians compares reads made under the same load.

Run ``python -m bench.thread_growth``; the table goes into docs/benchmarks.md between
the ``bench:thread_growth`` markers.
"""

from __future__ import annotations

import asyncio
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from langchain_core.messages import HumanMessage
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bench.graph_overhead import BYTES_SQL
from bench.report import create_database, drop_database, write_section
from builder.graphs.checkpointer import TTLCheckpointer
from builder.graphs.context import RunContext
from builder.graphs.web_builder import build_web_builder_graph
from builder.locks import LockManager
from builder.models.scripted import ScriptedChatModel
from builder.persistence import Database, create_project, get_or_create_user, upgrade_database
from builder.sandbox.local import LocalSandbox
from builder.settings import Settings

NAME = "thread_growth"
TURNS = 50
MARKS = (10, 50)
CALLS = 4
READS = 40
COPIED = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
"""The tables holding a thread's checkpoints, copied row for row under another id."""
PAGE = "<p>" + "x" * 1017 + "</p>"


@dataclass
class Mark:
    checkpoint_bytes: int
    state_message_bytes: int
    conversation_bytes: int
    read_seconds: float


def _script() -> dict[str, Any]:
    responses = [
        {
            "content": f"Writing page {n}.",
            "tool_calls": [
                {"name": "write_file", "args": {"path": f"page{n}.html", "content": PAGE}}
            ],
        }
        for n in range(CALLS)
    ]
    return {
        "turns": [{"responses": responses}],
        "final_message": "Done: the pages are written.",
        "after_last_turn": "cycle",
    }


async def _thread(url: str, work_dir: Path, *, keep_history: bool) -> dict[int, Mark]:
    settings = Settings(data_dir=work_dir / uuid.uuid4().hex, timeout_db=120)
    db = Database(url, settings=settings)
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    user = await get_or_create_user(db, name="bench")
    project = await create_project(db, user_id=user.id, name="bench")
    thread_id = str(project.id)
    sandbox = LocalSandbox(thread_id, settings=settings)
    locks = LockManager(dsn, timeout=60)
    marks: dict[int, Mark] = {}
    seen: dict[str, int] = {}
    try:
        async with AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=5,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False,
        ) as pool:
            saver = TTLCheckpointer(pool, keep_history=keep_history)  # type: ignore[arg-type]
            graph = build_web_builder_graph(
                model=ScriptedChatModel(script=_script()), checkpointer=saver, settings=settings
            )
            config: Any = {"configurable": {"thread_id": thread_id}, "recursion_limit": 1000}
            for turn in range(1, TURNS + 1):
                run_id = uuid.uuid4().hex
                ctx = RunContext(
                    sandbox=sandbox,
                    locks=locks,
                    settings=settings,
                    db=db,
                    project_id=thread_id,
                    run_id=run_id,
                )
                graph_input = {
                    "messages": [HumanMessage(f"Turn {turn}: write the pages again.")],
                    "project_id": thread_id,
                    "run_id": run_id,
                    "run_steps": 0,
                    "run_tokens": 0,
                    "stop_reason": None,
                    "pending_usage": None,
                }
                async with saver.hold_context(thread_id):
                    await graph.ainvoke(graph_input, config, context=ctx, durability="sync")
                messages = (await graph.aget_state(config)).values["messages"]
                for message in messages:
                    if message.id not in seen:
                        seen[message.id] = len(saver.serde.dumps_typed(message)[1])
                if turn in MARKS:
                    marks[turn] = await _mark(saver, dsn, config, messages, seen)
                if turn == MARKS[0]:
                    await _copy_thread(dsn, thread_id, f"{thread_id}@{turn}")
            first: Any = {"configurable": {"thread_id": f"{thread_id}@{MARKS[0]}"}}
            early, late = await _reads(graph, first, config)
            marks[MARKS[0]].read_seconds, marks[MARKS[-1]].read_seconds = early, late
    finally:
        await locks.close()
        await sandbox.close()
        await db.dispose()
    return marks


async def _mark(
    saver: TTLCheckpointer,
    dsn: str,
    config: Any,
    messages: list[Any],
    seen: dict[str, int],
) -> Mark:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cursor = await conn.execute(BYTES_SQL, {"t": config["configurable"]["thread_id"]})
        row = await cursor.fetchone()
    return Mark(
        checkpoint_bytes=int(row[0]) if row else 0,
        state_message_bytes=len(saver.serde.dumps_typed(messages)[1]),
        conversation_bytes=sum(seen.values()),
        read_seconds=0.0,
    )


async def _copy_thread(dsn: str, thread_id: str, copy_id: str) -> None:
    """Keep the thread's checkpoints as they are now under ``copy_id``."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for table in COPIED:
            cursor = await conn.execute(
                "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position) "
                "FROM information_schema.columns WHERE table_name = %s AND column_name <> "
                "'thread_id'",
                (table,),
            )
            row = await cursor.fetchone()
            columns = row[0] if row else ""
            await conn.execute(
                f"INSERT INTO {table} (thread_id, {columns}) "
                f"SELECT %s, {columns} FROM {table} WHERE thread_id = %s",
                (copy_id, thread_id),
            )


async def _reads(graph: Any, early: Any, late: Any) -> tuple[float, float]:
    """Median seconds of ``aget_state`` of two threads, read in alternation."""
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(READS):
        for which, config in enumerate((early, late)):
            started = time.perf_counter()
            await graph.aget_state(config)
            times[which].append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


async def run() -> dict[bool, dict[int, Mark]]:
    name, url = create_database()
    work_dir = Path(tempfile.mkdtemp(prefix="bench-thread-"))
    try:
        db = Database(url, settings=Settings(data_dir=work_dir))
        await upgrade_database(db)
        await db.dispose()
        return {keep: await _thread(url, work_dir, keep_history=keep) for keep in (False, True)}
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        drop_database(name)


def _kib(n: float) -> str:
    return f"{n / 1024 / 1024:,.2f} MiB" if n >= 1024 * 1024 else f"{n / 1024:,.1f} KiB"


def table(results: dict[bool, dict[int, Mark]]) -> str:
    rows = []
    for keep, label in (
        (False, "latest checkpoint kept"),
        (True, "every checkpoint kept (before)"),
    ):
        marks = results[keep]
        for turn in MARKS:
            mark = marks[turn]
            rows.append(
                f"| {label} | {turn} | {_kib(mark.checkpoint_bytes)} "
                f"| {_kib(mark.state_message_bytes)} "
                f"| {mark.checkpoint_bytes / mark.state_message_bytes:,.2f}× "
                f"| {_kib(mark.conversation_bytes)} "
                f"| {mark.read_seconds * 1000:,.2f} ms |"
            )
        first, last = marks[MARKS[0]], marks[MARKS[-1]]
        rows.append(
            f"| {label} | {MARKS[-1]} ÷ {MARKS[0]} "
            f"| {last.checkpoint_bytes / first.checkpoint_bytes:,.2f}× | | | "
            f"| {last.read_seconds / first.read_seconds:,.2f}× |"
        )
    return "\n".join(
        [
            "## A live thread over many turns",
            "",
            f"One project's thread runs {TURNS} turns of the web-builder graph (scripted "
            f"model; each turn {CALLS} `write_file` calls of a 1 KiB page, then an answer) "
            "with `TTLCheckpointer`, durability `sync`, each turn inside `hold_context` as "
            "the runs service runs it. *Checkpoint bytes* are the thread's rows in "
            "`checkpoints` (as text), `checkpoint_blobs` and `checkpoint_writes`; *state "
            "messages* the serialized messages of its current state (pruned to the context "
            "budget at the end of each turn); *conversation* every message the thread has "
            f"had; *state read* the median of {READS} `aget_state` calls, made after turn "
            f"{MARKS[-1]} in alternation with the state after turn {MARKS[0]} (kept under "
            "another thread id), so both are read under the same load. One run of "
            f"`python -m bench.thread_growth` on {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}.",
            "",
            "| Checkpointer | After turn | Checkpoint bytes | State messages "
            "| Checkpoints ÷ messages | Conversation | State read |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            "A run that ends prunes its thread to the latest checkpoint (LangGraph's "
            "`keep_latest`), so between turns a thread stores one copy of its state; a run "
            "that fails or is cut short keeps every checkpoint, so it can be resumed. "
            "Within a turn every checkpoint still stores the whole message list again "
            "(as LangGraph does), until the turn ends. `TTLCheckpointer` reads a state in "
            "one statement (the checkpoint, its channel values and its pending writes as "
            "rows of one query, with the expiry refresh in the same round trip) and decodes "
            "it in the task that asked; `AsyncPostgresSaver` gathers the values and writes "
            "into arrays by correlated subqueries, refreshes nothing, and decodes the writes "
            "on a worker thread. What still grows with the thread is decoding its messages.",
        ]
    )


def main() -> None:
    body = table(asyncio.run(run()))
    print(body)
    write_section(NAME, body)


if __name__ == "__main__":
    main()
