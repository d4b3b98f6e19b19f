"""Runs per second through a load balancer: one ``builder serve`` replica vs three.

Real ``builder serve`` processes share one PostgreSQL and one Redis behind haproxy
(round robin). The same load goes through the balancer each time: R chat runs over P
projects (each project's runs queued behind each other), the scripted model pausing on
every step as a real one does. The time is from the first request to the last run's
end. The result is a Markdown table written into docs/benchmarks.md between the
``bench:run_scale`` markers.

Run from the repository root::

    python -m bench.run_scale [--replicas 1 3] [--projects 50] [--turns 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

from bench.report import write_section
from builder.persistence.database import Database
from builder.persistence.projects import create_project
from builder.persistence.users import get_or_create_user
from tests.http import server as servers
from tests.http.server import ServerProcess, free_port
from tests.http.test_scale_out import _haproxy
from tests.support.database import clone_database, create_migrated_template, drop_template
from tests.support.scripts import call, write_script
from tests.support.services import delete_redis_prefix, drop_database

NAME = "run_scale"


def _script(directory: Path, turns: int, pause: float) -> str:
    return write_script(
        directory,
        [
            [
                {
                    "tool_calls": [call("write_file", path=f"t{k}.txt", content=f"{k}\n")],
                    "delay_s": pause,
                },
                {"content": "Done.", "delay_s": pause},
            ]
            for k in range(turns)
        ],
        after_last_turn="cycle",
    )


async def _load(balancer: str, key: str, projects: list[str], turns: int, url: str) -> float:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=balancer, timeout=120) as client:

        async def chat(project: str, turn: int) -> str:
            async with client.stream(
                "POST",
                f"/api/projects/{project}/chat",
                json={"prompt": f"turn {turn}", "multitask": "enqueue"},
                headers={"authorization": f"Bearer {key}"},
            ) as response:
                assert response.status_code == 200, await response.aread()
                return response.headers["x-run-id"]

        ids = await asyncio.gather(*(chat(p, t) for t in range(turns) for p in projects))
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE ended_at IS NULL), "
                "count(*) FILTER (WHERE status <> 'success' AND ended_at IS NOT NULL) "
                "FROM runs WHERE run_id = ANY(%s)",
                (ids,),
            ).fetchone()
            assert row is not None
            if row[1]:
                raise SystemExit(f"{row[1]} runs did not succeed")
            if row[0] == 0:
                break
            await asyncio.sleep(0.2)
    return time.perf_counter() - started


def measure(template: str, replicas: int, projects: int, turns: int, pause: float) -> float:
    """Seconds for ``projects`` × ``turns`` runs through ``replicas`` replicas."""
    url = clone_database(template, prefix="bench")
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        env = {
            "BUILDER_ALLOW_ANONYMOUS": "false",
            "BUILDER_MODEL": _script(root, turns, pause),
            "BUILDER_RATE_LIMIT_DEFAULT": "100000/minute",
            "BUILDER_RATE_LIMIT_CHAT": "100000/minute",
            "BUILDER_SANDBOX_POOL_SIZE": str(projects + 10),
            "BUILDER_MAINTENANCE_SECONDS": "0",
            "BUILDER_DB_POOL_SIZE": "2",
            "BUILDER_DB_MAX_OVERFLOW": "2",
        }
        for n in range(replicas):
            (root / f"r{n}").mkdir()
        started = [
            ServerProcess(
                database_url=url, data_dir=root / f"r{n}" / "data", redis_prefix=prefix, env=env
            )
            for n in range(replicas)
        ]
        balancer = None
        try:
            with ThreadPoolExecutor(replicas) as starting:
                list(starting.map(ServerProcess.start, started))
            port = free_port()
            balancer = _haproxy(root, port, started)
            key = started[0].new_key("bench")

            async def seed(db: Database) -> list[str]:
                owner = await get_or_create_user(db, name="bench")
                return [
                    str((await create_project(db, user_id=owner.id, name=f"p{n}")).id)
                    for n in range(projects)
                ]

            ids = started[0].run(seed)
            return asyncio.run(_load(f"http://127.0.0.1:{port}", key, ids, turns, url))
        finally:
            if balancer is not None:
                balancer.terminate()
                balancer.wait(10)
            for replica in started:
                replica.stop()
            drop_database(url)
            delete_redis_prefix(prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.3, help="Seconds per model step.")
    args = parser.parse_args()
    servers._START_SECONDS = 240  # replicas starting together on a small machine
    template = create_migrated_template()
    rows = []
    try:
        for replicas in args.replicas:
            seconds = measure(template, replicas, args.projects, args.turns, args.pause)
            runs = args.projects * args.turns
            rows.append((replicas, runs, seconds))
            print(f"{replicas} replica(s): {runs} runs in {seconds:.1f} s")
    finally:
        drop_template(template)
    base = rows[0][1] / rows[0][2]
    lines = [
        "| Replicas | Runs | Seconds | Runs/s | Ratio to the first |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {n} | {runs} | {seconds:.1f} | {runs / seconds:.2f} | "
            f"{runs / seconds / base:.2f}× |"
            for n, runs, seconds in rows
        ),
    ]
    body = "\n".join(
        [
            "## Runs per second through a load balancer (`python -m bench.run_scale`)",
            "",
            f"{args.projects * args.turns} chat runs over {args.projects} projects (each "
            "project's runs queued behind each other) through haproxy, round robin over "
            "N `builder serve` replicas (API and worker in each) on one PostgreSQL and one "
            f"Redis; the scripted model pauses {args.pause} s per step (a tool step and a "
            f"reply per run). Measured on {platform.machine()} with {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}; every replica shares those CPUs, so the "
            "ratio shows what the queue costs or gains on one machine, not across machines.",
            "",
            *lines,
        ]
    )
    write_section(NAME, body)


if __name__ == "__main__":
    main()
