"""Database connections of one worker as its concurrent runs grow (1 run is the baseline).

One process works N runs at once (one per project, a scripted model pausing on every
step as a real one does), through the real queue, checkpointer, lock manager and local
sandboxes, in a temporary database. Every connection it opens carries one
``application_name``; a separate connection samples ``pg_stat_activity`` every 50 ms
and the peak is kept. With the run's exclusivity in its lease row, the peak should not
grow with N. The result is a Markdown table written into docs/benchmarks.md between
the ``bench:run_connections`` markers.

Run from the repository root::

    python -m bench.run_connections [--runs 1 50 200] [--delay 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from pathlib import Path

import psycopg

from bench.report import create_database, drop_database, write_section
from builder.persistence.database import Database
from builder.persistence.migrations import upgrade_database
from builder.persistence.projects import create_project
from builder.persistence.users import get_or_create_user
from builder.runs.service import RunService
from builder.settings import Settings
from tests.support.scripts import call, write_script

NAME = "run_connections"
APP = "builder-bench-runs"
POOL = 2
"""``BUILDER_DB_POOL_SIZE`` (no overflow): the size of each of the worker's three pools
(queries, checkpoints, locks)."""


async def _peak(url: str, stop: asyncio.Event, seen: list[int]) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APP,)
            )
            row = await cur.fetchone()
            seen.append(int(row[0]) if row else 0)
            await asyncio.sleep(0.05)


async def measure(url: str, runs: int, delay: float, steps: int) -> tuple[int, float, int]:
    """Work ``runs`` runs at once; returns (peak connections, seconds, runs succeeded)."""
    with tempfile.TemporaryDirectory() as directory:
        script = write_script(
            Path(directory),
            [
                [
                    *(
                        {
                            "tool_calls": [call("write_file", path=f"p{i}.html", content=f"{i}")],
                            "delay_s": delay,
                        }
                        for i in range(steps)
                    ),
                    {"content": "Done.", "delay_s": delay},
                ]
            ],
        )
        app_url = f"{url}?application_name={APP}"
        settings = Settings(
            database_url=app_url,
            data_dir=Path(directory) / "data",
            model=script,
            db_pool_size=POOL,
            db_max_overflow=0,
            sandbox_pool_size=runs + 10,
            worker_concurrency=runs,
            maintenance_seconds=0,
        )
        db = Database(app_url, settings=settings)
        stop, seen = asyncio.Event(), [0]
        sampler = asyncio.create_task(_peak(url, stop, seen))
        try:
            user = await get_or_create_user(db, name="bench")
            projects = [
                await create_project(db, user_id=user.id, name=f"p{n}") for n in range(runs)
            ]
            async with RunService.open(settings, db=db, model=script) as service:
                started = time.perf_counter()
                handles = [
                    await service.start(user_id=user.id, project_id=p.id, prompt="build")
                    for p in projects
                ]
                results = await asyncio.gather(*(h.wait() for h in handles))
                seconds = time.perf_counter() - started
        finally:
            stop.set()
            await sampler
            await db.dispose()
    return max(seen), seconds, sum(r.status == "success" for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument("--delay", type=float, default=0.5, help="Seconds per model step.")
    parser.add_argument("--steps", type=int, default=3, help="Tool steps per run.")
    args = parser.parse_args()
    rows = []
    for runs in args.runs:
        name, url = create_database()
        try:
            db = Database(url, settings=Settings(database_url=url))
            asyncio.run(_migrate(db))
            peak, seconds, ok = asyncio.run(measure(url, runs, args.delay, args.steps))
        finally:
            drop_database(name)
        if ok != runs:
            raise SystemExit(f"{runs - ok} of {runs} runs failed")
        rows.append((runs, peak, seconds))
        print(f"{runs} runs: peak {peak} connections, {seconds:.1f} s")
    base = rows[0][1]
    lines = [
        "| Concurrent runs | Peak connections | vs 1 run | Seconds | Runs/s |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {runs} | {peak} | {peak / base:.2f}× | {seconds:.1f} | {runs / seconds:.1f} |"
            for runs, peak, seconds in rows
        ),
    ]
    body = "\n".join(
        [
            "## Database connections of one worker (`python -m bench.run_connections`)",
            "",
            f"One process works N runs at once, one per project: {args.steps} tool steps "
            f"and a reply, the scripted model pausing {args.delay} s per step. The "
            f"worker's three pools (queries, checkpoints, file locks) are "
            f"`BUILDER_DB_POOL_SIZE={POOL}` each with no overflow, plus two for its "
            f"claims and heartbeats: at most {3 * POOL + 2} connections. Peak is the "
            "most connections of the process seen in `pg_stat_activity` (sampled every "
            "50 ms). Measured on "
            f"{platform.machine()}, Python {platform.python_version()}.",
            "",
            *lines,
        ]
    )
    write_section(NAME, body)


async def _migrate(db: Database) -> None:
    try:
        await upgrade_database(db)
    finally:
        await db.dispose()


if __name__ == "__main__":
    main()
