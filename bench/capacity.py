"""Capacity of one ``builder serve`` process: model steps per second at 1 and 50 runs.

A real ``builder serve`` (API and worker in one process, Redis fan-out on) serves N
projects from a temporary database. N clients each post one chat turn at the same
moment and read its server-sent events over HTTP until ``run_finished`` (each on its own
keep-alive connection, through the lean client of :mod:`bench.h11client`); the scripted
model answers every step after a pause (``--delay``, a real model's latency): a number of
``write_file`` steps, then a reply. Reported per N:

* model steps per second: the runs' steps (``steps`` of each ``run_finished``) over the
  time from the first request to the last ``run_finished``; N runs cannot do better than
  N / delay;
* time to the first SSE event of each chat request (median and p95);
* the runs' total seconds, the load average, and the CPU seconds the server process
  spent per model step (from ``/proc``).

N=1 is the baseline of the same run. One warm-up run goes first, so neither N pays the
process's first-run costs. The result is a Markdown table written into
docs/benchmarks.md between the ``bench:capacity`` markers.

Run from the repository root::

    python -m bench.capacity [--runs 1 50] [--steps 10] [--delay 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psycopg

from bench.h11client import Connection
from bench.report import ADMIN_URL, write_section
from builder.persistence.database import Database
from builder.persistence.projects import create_project
from builder.persistence.users import get_or_create_user
from tests.http.server import ServerProcess
from tests.support.database import clone_database, create_migrated_template, drop_template
from tests.support.scripts import call, write_script
from tests.support.services import delete_redis_prefix, drop_database

NAME = "capacity"
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    """What one N measured."""

    runs: int
    steps: int
    seconds: float
    first_event: list[float]
    started: list[float]
    """Seconds from each request to its ``run_started`` (the run claimed and set up)."""
    cpu_seconds: float
    load: float
    transactions: int
    """PostgreSQL transactions in the bench's database during the phase."""

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds

    def first_event_ms(self, quantile: float, *, started: bool = False) -> float:
        ordered = sorted(self.started if started else self.first_event)
        return 1000 * ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process and its live child processes (the
    worker processes of ``--workers``), and of the children it waited for."""
    total = 0.0
    for process in (pid, *_children(pid)):
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += sum(int(value) for value in fields[11:15]) / _TICKS
    return total


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = task / "children"
        if children.exists():
            found.extend(int(child) for child in children.read_text().split())
    return found


def _transactions(url: str) -> int:
    """Transactions committed or rolled back in the database so far, as reported (read
    from another database, so the reading does not count itself)."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


_FLUSH = 11.0
"""Seconds within which an idle connection reports its transactions (PostgreSQL 15+)."""


def _script(directory: Path, steps: int, delay: float) -> str:
    return write_script(
        directory,
        [
            [
                *(
                    {
                        "tool_calls": [call("write_file", path=f"p{i}.html", content=f"{i}\n")],
                        "delay_s": delay,
                    }
                    for i in range(steps)
                ),
                {"content": "Done.", "delay_s": delay},
            ]
        ],
        after_last_turn="cycle",
    )


async def _chat(connection: Connection, project: str) -> tuple[float, float, int]:
    """Post one chat turn and read its events to the end; returns (seconds to the first
    event, seconds to ``run_started``, the run's steps)."""
    sent = time.perf_counter()
    first: float | None = None
    started: float | None = None
    steps = -1
    response, events = await connection.events(
        "POST", f"/api/projects/{project}/chat", json_body={"prompt": "Build the pages."}
    )
    if response.status != 200:
        body = b"".join([chunk async for chunk in connection.body()])
        raise SystemExit(f"chat answered {response.status}: {body!r}")
    async for event in events:
        if first is None:
            first = time.perf_counter() - sent
        if event.event == "run_started" and started is None:
            started = time.perf_counter() - sent
        elif event.event == "run_finished":
            data = cast(dict[str, Any], event.json())
            if data["status"] != "success":
                raise SystemExit(f"a run ended {data['status']}: {data.get('error')}")
            steps = int(data["steps"])
    if first is None or started is None or steps < 0:
        raise SystemExit("a chat stream ended without run_started or run_finished")
    return first, started, steps


def _phase(server: ServerProcess, key: str, projects: list[str]) -> Phase:
    # The worker's idle polls and heartbeats commit transactions too: their rate, taken
    # over a quiet interval before the load, is taken off the count.
    quiet = _transactions(server.database_url)
    time.sleep(_FLUSH)
    before, began = _transactions(server.database_url), time.monotonic()
    idle_rate = (before - quiet) / _FLUSH
    phase = asyncio.run(_load(server, key, projects))
    time.sleep(_FLUSH)
    after = _transactions(server.database_url)
    phase.transactions = round(after - before - idle_rate * (time.monotonic() - began))
    return phase


async def _load(server: ServerProcess, key: str, projects: list[str]) -> Phase:
    assert server.process is not None
    pid = server.process.pid
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    connections = [
        Connection(host, int(port), {"authorization": f"Bearer {key}"}) for _ in projects
    ]
    # Each client's connection is open before the clock starts, as a browser's is by
    # the time its user sends a message, and has served a request: the figures are the
    # server's, not the cost of 50 connections opened at once by one client process.
    await asyncio.gather(*(connection.open() for connection in connections))
    try:
        warm = await asyncio.gather(
            *(
                c.request("GET", f"/api/projects/{p}")
                for c, p in zip(connections, projects, strict=True)
            )
        )
        if any(response.status != 200 for response, _ in warm):
            raise SystemExit("a project could not be read before the load")
        cpu = _cpu_seconds(pid)
        started = time.perf_counter()
        results = await asyncio.gather(
            *(_chat(c, p) for c, p in zip(connections, projects, strict=True))
        )
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds(pid) - cpu
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))
    return Phase(
        runs=len(projects),
        steps=sum(steps for _, _, steps in results),
        seconds=seconds,
        first_event=[first for first, _, _ in results],
        started=[started for _, started, _ in results],
        cpu_seconds=cpu,
        load=os.getloadavg()[0],
        transactions=0,
    )


def measure(
    ns: list[int],
    steps: int,
    delay: float,
    profile: Path | None = None,
    profile_seconds: int | None = None,
    workers: int = 1,
) -> list[Phase]:
    """Start one server (``builder serve --workers``) and run each N (after warm-up runs)
    against it; with ``profile``, py-spy samples the server during the last N (collapsed
    stacks; the first process only)."""
    template = create_migrated_template()
    url = clone_database(template, prefix="bench")
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    try:
        with tempfile.TemporaryDirectory() as directory:
            root = Path(directory)
            most = max(ns)
            server = ServerProcess(
                database_url=url,
                data_dir=root / "data",
                redis_prefix=prefix,
                args=("--workers", str(workers)) if workers > 1 else (),
                env={
                    "BUILDER_ALLOW_ANONYMOUS": "false",
                    "BUILDER_MODEL": _script(root, steps, delay),
                    "BUILDER_RATE_LIMIT_DEFAULT": "100000/minute",
                    "BUILDER_RATE_LIMIT_CHAT": "100000/minute",
                    "BUILDER_SANDBOX_POOL_SIZE": str(most + 10),
                    "BUILDER_MAINTENANCE_SECONDS": "0",
                },
            )
            server.start()
            try:
                key = server.new_key("bench")
                # Warm-up runs, enough for each worker process to work one or more.
                warm = 1 if workers == 1 else 4 * workers

                async def seed(db: Database) -> list[str]:
                    owner = await get_or_create_user(db, name="bench")
                    return [
                        str((await create_project(db, user_id=owner.id, name=f"p{n}")).id)
                        for n in range(warm + sum(ns))
                    ]

                ids: list[str] = server.run(seed)
                _phase(server, key, ids[:warm])
                phases = []
                used = warm
                for n in ns:
                    spy = None
                    if profile is not None and n == ns[-1]:
                        spy = _py_spy(server, profile, profile_seconds)
                    phase = _phase(server, key, ids[used : used + n])
                    if spy is not None:
                        spy.send_signal(2)
                        spy.wait(60)
                    used += n
                    phases.append(phase)
                    print(
                        f"N={n}: {phase.steps} steps in {phase.seconds:.1f} s = "
                        f"{phase.steps_per_second:.1f} steps/s; first event median "
                        f"{phase.first_event_ms(0.5):.0f} ms, p95 {phase.first_event_ms(0.95):.0f}"
                        f" ms; run_started median {phase.first_event_ms(0.5, started=True):.0f}"
                        f" ms; {1000 * phase.cpu_seconds / phase.steps:.1f} CPU ms/step; "
                        f"{phase.transactions / phase.steps:.1f} transactions/step; "
                        f"load {phase.load:.2f}"
                    )
                return phases
            finally:
                server.stop()
    finally:
        drop_database(url)
        drop_template(template)
        delete_redis_prefix(prefix)


def _py_spy(server: ServerProcess, output: Path, seconds: int | None) -> subprocess.Popen[bytes]:
    binary = shutil.which("py-spy")
    if binary is None:
        raise SystemExit("--profile needs py-spy on PATH (pip install py-spy)")
    assert server.process is not None
    spy = subprocess.Popen(
        [
            *(binary, "record", "--pid", str(server.process.pid), "--format", "raw"),
            *("--rate", "200", "--gil", "--output", str(output)),
            *(("--duration", str(seconds)) if seconds else ()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # attached
    return spy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--steps", type=int, default=10, help="write_file steps per run.")
    parser.add_argument("--delay", type=float, default=0.5, help="Seconds per model step.")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="`builder serve --workers` values to measure, one server each.",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="Print the figures only (docs untouched)."
    )
    parser.add_argument(
        "--profile", type=Path, help="Sample the server with py-spy during the last N (raw)."
    )
    parser.add_argument(
        "--profile-seconds", type=int, help="Sample only the first seconds of the last N."
    )
    args = parser.parse_args()
    rows: list[str] = []
    for workers in args.workers:
        phases = measure(
            args.runs, args.steps, args.delay, args.profile, args.profile_seconds, workers
        )
        base = phases[0]
        rows.extend(
            f"| {workers} | {p.runs} | {p.steps} | {p.seconds:.1f} | "
            f"{p.steps_per_second:.1f} | {p.steps_per_second / base.steps_per_second:.1f}× | "
            f"{p.runs / args.delay:.0f} | {p.first_event_ms(0.5):.0f} ms | "
            f"{p.first_event_ms(0.95):.0f} ms | {p.first_event_ms(0.5, started=True):.0f} ms | "
            f"{1000 * p.cpu_seconds / p.steps:.1f} | {p.transactions / p.steps:.1f} | "
            f"{p.load:.2f} |"
            for p in phases
        )
    lines = [
        "| Processes (`--workers`) | Concurrent runs | Model steps | Seconds | Steps/s "
        "| vs N=1 | Ceiling (N / delay) | First SSE event, median | p95 "
        "| `run_started`, median | CPU ms per step | DB transactions per step | Load average |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    body = "\n".join(
        [
            "## Capacity of one `builder serve` (`python -m bench.capacity`)",
            "",
            "One `builder serve` (API and worker in each process, Redis fan-out; one "
            "process, then `--workers 2`) on a temporary database; N clients each post a "
            "chat turn at once and read its server-sent events over HTTP to `run_finished`, "
            "each on a keep-alive connection opened before the clock starts. The clients "
            "are one process on the same two cores, speaking HTTP/1.1 through h11 "
            "(`bench/h11client.py`), so that they take "
            "little of the CPU the server is measured on: with httpx they spent about "
            "1 s of CPU during the N=50 load, half of it sending the fifty requests, and "
            "the median first SSE event of one process was 307–369 ms (the table has it "
            "now). "
            "Each run is "
            f"{args.steps} `write_file` steps and a reply, the scripted model pausing "
            f"{args.delay} s per call; the end-of-turn check hands the bare pages back three "
            f"times, so a run makes {args.steps + 4} model calls (its `steps`). Steps/s is "
            "the runs' model steps over the time from the first request to the last "
            "`run_finished`; the first SSE event (`queued`) is timed from sending each "
            "request. CPU is the server's processes' own (from `/proc`), per model step; DB "
            "transactions are the database's (`pg_stat_database`), less the workers' idle "
            "polls. Warm-up runs go first (one, or four per process). Measured on "
            f"{platform.machine()} with {os.cpu_count()} CPUs (shared with the clients and "
            f"PostgreSQL), Python {platform.python_version()}. At N=50 one process's event "
            "loop is busy most of the time: each of a step's awaits (checkpoint writes, "
            "events, tool calls) waits its turn behind the other runs' work, so a step "
            "takes well over the model's pause, and the fifty chat requests and run starts "
            "arrive together. A second process (each works the runs of the chats it "
            "accepted) spreads the runs over both cores; the chat requests and run starts "
            "still arrive in one burst, and the first SSE event waits on them. Under that "
            "burst every sequential await waits its turn behind the other runs' work, so "
            "the start path is kept short in awaits: a chat's run is queued in one "
            "statement after the project's run lock, a claim tries all its projects' locks "
            "in one statement, and a run's start reads its state, its workspace's version "
            "and the project's last message together.",
            "",
            *lines,
        ]
    )
    if not args.no_write:
        write_section(NAME, body)
    print(body)


if __name__ == "__main__":
    main()
