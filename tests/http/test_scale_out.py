"""Three real ``builder serve`` replicas behind haproxy, one killed under load.

200 chat runs over 50 projects of 5 users go through the load balancer (each project's
runs queued behind each other, ``enqueue``); the scripted model pauses on every step as
a real one does. One replica is SIGKILLed in the middle of the load and started again.
Every run must end exactly once with success, every project's checkpoint history must
be one line, every file edit must be there, an SSE client reconnecting through another
replica with ``Last-Event-ID`` must get every event once, and the chat rate limit must
hold across the replicas (once, not once per replica).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from builder.persistence.database import Database
from builder.persistence.projects import create_project
from builder.persistence.snapshots import tree
from builder.persistence.users import get_or_create_user
from tests.http import server
from tests.http.server import ServerProcess, free_port
from tests.http.sse import read_events
from tests.support.database import clone_database
from tests.support.scripts import call, write_script
from tests.support.services import delete_redis_prefix, drop_database

pytestmark = pytest.mark.slow

USERS = 5
PROJECTS = 50
TURNS = 4  # runs per project: 200 in all
PAUSE = 0.3
CHAT_LIMIT = 60


def _script(directory: Path) -> str:
    """Turn k of every conversation writes ``turn-k.txt``, one paused step, then replies."""
    return write_script(
        directory,
        [
            [
                {
                    "tool_calls": [call("write_file", path=f"turn-{k}.txt", content=f"{k}\n")],
                    "delay_s": PAUSE,
                },
                {"content": f"Turn {k} done.", "delay_s": PAUSE},
            ]
            for k in range(TURNS)
        ],
        after_last_turn="cycle",
    )


@dataclass
class Cluster:
    replicas: list[ServerProcess]
    balancer: str
    url: str
    keys: dict[str, str]
    projects: dict[str, list[str]]


def _haproxy(directory: Path, port: int, backends: list[ServerProcess]) -> subprocess.Popen[bytes]:
    servers = "\n".join(
        f"    server r{i} {s.host}:{s.port} check inter 300 fall 1 rise 1"
        for i, s in enumerate(backends)
    )
    config = directory / "haproxy.cfg"
    config.write_text(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 120s\n"
        "    timeout server 120s\n    retries 3\n    option redispatch\n"
        f"frontend api\n    bind 127.0.0.1:{port}\n    default_backend replicas\n"
        "backend replicas\n    balance roundrobin\n    option httpchk GET /api/health\n"
        f"{servers}\n"
    )
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    with (directory / "haproxy.log").open("wb") as log:
        process = subprocess.Popen([haproxy, "-f", str(config), "-db"], stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("haproxy did not start")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, migrated_template: str) -> Iterator[Cluster]:
    url = clone_database(migrated_template)
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    env = {
        "BUILDER_ALLOW_ANONYMOUS": "false",
        "BUILDER_MODEL": _script(tmp_path_factory.mktemp("script")),
        "BUILDER_RATE_LIMIT_DEFAULT": "100000/minute",
        "BUILDER_RATE_LIMIT_CHAT": f"{CHAT_LIMIT}/minute",
        "BUILDER_RUN_LEASE_SECONDS": "15",
        "BUILDER_RUN_POLL_SECONDS": "0.2",
        "BUILDER_SHUTDOWN_GRACE_SECONDS": "2",
        "BUILDER_SANDBOX_POOL_SIZE": "64",
        "BUILDER_MAINTENANCE_SECONDS": "0",
        # Three replicas and the rest of the suite share one server's max_connections:
        # each replica needs at most 3 × (3 + 2) + 2 = 17, whatever its runs.
        "BUILDER_DB_POOL_SIZE": "3",
        "BUILDER_DB_MAX_OVERFLOW": "2",
        "BUILDER_TIMEOUT_DB": "30",
        # Three replicas share two cores with the load: a Redis call slower than the
        # default 0.1 s would open a replica's circuit and its rate limit would count
        # alone (the degraded mode tests/http/test_ratelimit.py covers), not globally.
        "BUILDER_REDIS_TIMEOUT": "2",
    }
    replicas = [
        ServerProcess(
            database_url=url,
            data_dir=tmp_path_factory.mktemp(f"replica-{n}") / "data",
            redis_prefix=prefix,
            env=env,
        )
        for n in range(3)
    ]
    balancer = None
    usual_start = server._START_SECONDS
    # Three replicas starting at once, then one again under the load, on a small machine.
    server._START_SECONDS = 240
    try:
        with ThreadPoolExecutor(len(replicas)) as starting:
            list(starting.map(ServerProcess.start, replicas))
        port = free_port()
        balancer = _haproxy(tmp_path_factory.mktemp("haproxy"), port, replicas)
        keys = {f"user{u}": replicas[0].new_key(f"user{u}") for u in range(USERS)}
        keys["burst"] = replicas[0].new_key("burst")

        async def seed(db: Database) -> dict[str, list[str]]:
            made: dict[str, list[str]] = {}
            for name in keys:
                owner = await get_or_create_user(db, name=name)
                count = PROJECTS // USERS if name != "burst" else 1
                made[name] = [
                    str((await create_project(db, user_id=owner.id, name=f"p{n}")).id)
                    for n in range(count)
                ]
            return made

        projects = replicas[0].run(seed)
        yield Cluster(replicas, f"http://127.0.0.1:{port}", url, keys, projects)
    finally:
        server._START_SECONDS = usual_start
        if balancer is not None:
            balancer.terminate()
            balancer.wait(10)
        for replica in replicas:
            replica.stop()
        drop_database(url)
        delete_redis_prefix(prefix)


_CLIENTS = asyncio.Semaphore(20)
"""Chats being started at once (each returns as soon as its run is queued)."""


async def _chat(client: httpx.AsyncClient, project: str, key: str, turn: int) -> str:
    """Start a run through the balancer (queued behind the project's others)."""
    async with _CLIENTS:
        return await _start(client, project, key, turn)


async def _start(client: httpx.AsyncClient, project: str, key: str, turn: int) -> str:
    for _ in range(20):
        try:
            async with client.stream(
                "POST",
                f"/api/projects/{project}/chat",
                json={"prompt": f"turn {turn}", "multitask": "enqueue"},
                headers={"authorization": f"Bearer {key}"},
            ) as response:
                if response.status_code == 200:
                    return response.headers["x-run-id"]
                await response.aread()
                if response.status_code != 503:
                    raise AssertionError(f"{response.status_code}: {response.text}")
        except httpx.TransportError:
            pass  # the replica died under the request: the client tries again
        await asyncio.sleep(0.2)
    raise AssertionError("no replica took the run")


def _rows(url: str, query: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        return list(conn.execute(query, args).fetchall())


async def _load(cluster: Cluster) -> tuple[list[str], float]:
    victim = cluster.replicas[1]
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=cluster.balancer, timeout=60) as client:
        run_ids: list[str] = []
        for turn in range(TURNS):
            batch = [
                _chat(client, project, cluster.keys[user], turn)
                for user, projects in cluster.projects.items()
                if user != "burst"
                for project in projects
            ]
            run_ids += await asyncio.gather(*batch)
            if turn == 1:
                assert victim.process is not None
                victim.process.send_signal(signal.SIGKILL)  # mid-load, runs in flight
                victim.process.wait(10)
                # And back, on the same port, while the load goes on.
                restarted = asyncio.create_task(asyncio.to_thread(victim.start))
        await restarted
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            (left,) = _rows(
                cluster.url,
                "SELECT count(*) FROM runs WHERE ended_at IS NULL AND run_id = ANY(%s)",
                run_ids,
            )[0]
            if left == 0:
                break
            await asyncio.sleep(0.5)
    return run_ids, time.monotonic() - started


def test_runs_survive_a_replica_killed_under_load(cluster: Cluster) -> None:
    run_ids, seconds = asyncio.run(_load(cluster))
    assert len(set(run_ids)) == USERS * (PROJECTS // USERS) * TURNS == 200

    statuses = _rows(
        cluster.url,
        "SELECT status, count(*), sum(attempts) FROM runs WHERE run_id = ANY(%s) GROUP BY status",
        run_ids,
    )
    assert [(s, n) for s, n, _ in statuses] == [("success", 200)], statuses
    taken_over = _rows(
        cluster.url, "SELECT count(*) FROM runs WHERE run_id = ANY(%s) AND attempts > 1", run_ids
    )[0][0]
    # Each project's conversation once: every turn's message and reply, nothing doubled.
    per_project = _rows(
        cluster.url,
        "SELECT project_id, count(*) FILTER (WHERE role = 'user'), "
        "count(*) FILTER (WHERE role = 'assistant') FROM messages GROUP BY project_id",
    )
    load_projects = {p for u, ps in cluster.projects.items() if u != "burst" for p in ps}
    assert {str(p): (u, a) for p, u, a in per_project if str(p) in load_projects} == dict.fromkeys(
        load_projects, (TURNS, TURNS)
    )
    # No forked history: no checkpoint has two children.
    forks = _rows(
        cluster.url,
        "SELECT thread_id, parent_checkpoint_id FROM checkpoints WHERE checkpoint_ns = '' "
        "AND parent_checkpoint_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1",
    )
    assert forks == []

    # Every edit is in each project's latest version.
    async def trees(db: Database) -> dict[str, list[str]]:
        return {p: sorted(await tree(db, project_id=uuid.UUID(p))) for p in sorted(load_projects)}

    expected = [f"turn-{k}.txt" for k in range(TURNS)]
    assert cluster.replicas[0].run(trees) == dict.fromkeys(sorted(load_projects), expected)
    print(
        f"\n200 runs on 3 replicas (one killed and restarted) in {seconds:.1f} s "
        f"({200 / seconds:.1f} runs/s); {taken_over} taken over"
    )


def test_an_sse_client_reconnecting_elsewhere_gets_every_event_once(cluster: Cluster) -> None:
    (project,) = cluster.projects["burst"]
    key = cluster.keys["burst"]
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=cluster.balancer, headers=headers, timeout=60) as client:
        with client.stream(
            "POST", f"/api/projects/{project}/chat", json={"prompt": "follow me"}
        ) as response:
            assert response.status_code == 200
            run_id = response.headers["x-run-id"]
            first = []
            for event in read_events(response):
                first.append(event)
                if event.event == "tool_end":
                    break
        last = int(first[-1].id)
        # Through another replica than the balancer may pick: each one directly.
        rest = []
        other = cluster.replicas[2]
        with (
            other.client(key) as direct,
            direct.stream(
                "GET",
                f"/api/projects/{project}/chat/{run_id}/stream",
                headers={"last-event-id": str(last)},
            ) as response,
        ):
            assert response.status_code == 200
            rest = list(read_events(response))
    seqs = [int(e.id) for e in [*first, *rest]]
    assert seqs == list(range(len(seqs)))
    assert [e.event for e in rest].count("run_finished") == 1 and rest[-1].event == "run_finished"


def test_the_chat_rate_limit_holds_across_replicas(cluster: Cluster) -> None:
    (project,) = cluster.projects["burst"]
    headers = {"authorization": f"Bearer {cluster.keys['burst']}"}
    codes = []
    with httpx.Client(base_url=cluster.balancer, headers=headers, timeout=60) as client:
        for _ in range(3 * CHAT_LIMIT):
            response = client.post(f"/api/projects/{project}/chat/wait", json={"prompt": ""})
            codes.append(response.status_code)
    admitted = sum(code != 429 for code in codes)
    # Round robin over three replicas: per-replica limits would admit three times as many.
    assert 0 < admitted <= CHAT_LIMIT, codes
