"""What the HTTP middleware stack costs on a cached ``GET /api/projects/{id}``.

Two uvicorn processes with the same settings (one worker, access log off, the same
PostgreSQL database and Redis) serve the same project read, which the cache answers:

* *full stack*: ``builder serve`` — request id, security headers, metrics, error
  catcher, CORS, body limit, API-key authentication (one indexed key lookup), the rate
  limit in Redis, and the error mapping;
* *bare handler*: the same ``get_project`` call mounted on a FastAPI app with no
  middleware, no authentication and no rate limit.

Load comes from ``wrk`` (Debian package ``wrk``) when installed, else from httpx async
clients; rounds alternate between the two servers. A second table, :func:`in_process`,
calls the same apps directly in this process and gives CPU time and Python calls per
request, steadier than requests per second on a shared machine. Both use a private ``redis-server``
(when installed) so that its ``INFO commandstats`` counts only their commands: the table
gives Redis commands per request, read before and after each round. Run
``python -m bench.http_middleware``; the table goes into docs/benchmarks.md between the
``bench:http_middleware`` markers.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import redis
from fastapi import FastAPI, Request

from bench.report import create_database, drop_database, write_section

if TYPE_CHECKING:
    from builder.settings import Settings

NAME = "http_middleware"
REDIS_URL = os.environ.get("BUILDER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROUNDS = 7
SECONDS = 5
CONNECTIONS = 16
RATE = "100000000/minute"
"""The default tier's limit: never reached, so every request is answered 200."""
REDIS_TIMEOUT = 2.0
"""Seconds a Redis command may take: on a loaded machine the default (0.1 s) can open
a server's circuit, which then answers from process memory and skips Redis."""


def bare_app() -> FastAPI:
    """The project read with nothing around it (uvicorn factory)."""
    from builder.settings import get_settings

    return _bare(get_settings(), uuid.UUID(os.environ["BENCH_USER_ID"]))


def _bare(settings: Settings, user_id: uuid.UUID) -> FastAPI:
    from builder.persistence.database import Database
    from builder.persistence.projects import get_project

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database.from_settings(settings)
        app.state.db = db
        yield
        await db.dispose()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/api/projects/{project_id}")
    async def read(project_id: uuid.UUID, request: Request) -> Any:
        return await get_project(request.app.state.db, user_id=user_id, project_id=project_id)

    return app


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{command} did not start")


def _wrk(url: str, headers: dict[str, str]) -> tuple[float, int]:
    args = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise RuntimeError(f"{non_2xx.group(1)} failed requests:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    assert match and total, out
    return float(match.group(1)), int(total.group(1))


async def _httpx(url: str, headers: dict[str, str]) -> tuple[float, int]:
    done = 0
    deadline = time.perf_counter() + SECONDS

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            (await client.get(url)).raise_for_status()
            done += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(headers=headers) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONNECTIONS)))
    return done / (time.perf_counter() - started), done


def _load(url: str, headers: dict[str, str]) -> tuple[float, int]:
    if shutil.which("wrk"):
        return _wrk(url, headers)
    return asyncio.run(_httpx(url, headers))


@contextmanager
def _private_redis() -> Iterator[str]:
    """A redis-server of our own (so its command counts are ours), else the shared one."""
    if shutil.which("redis-server") is None:
        yield REDIS_URL
        return
    port = _free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


_IN_SCRIPTS = {"lindex", "lpush", "ltrim", "expire"}
"""What the moving window's Lua scripts run inside Redis (counted under their EVALSHA)."""


def _commands(url: str) -> Counter[str]:
    """Client commands so far (``INFO commandstats``), without INFO and script internals."""
    stats = redis.Redis.from_url(url).info("commandstats")
    counts: Counter[str] = Counter()
    for name, value in stats.items():
        command = name.removeprefix("cmdstat_")
        if command not in {"info", "ping", *_IN_SCRIPTS}:
            counts[command] = int(value["calls"])
    return counts


def _setup(db_url: str) -> tuple[str, str, str]:
    """Migrate, and make a user, a key and a project; returns (user id, key, project id)."""
    from builder.persistence.database import Database
    from builder.persistence.migrations import upgrade_database
    from builder.persistence.projects import create_project
    from builder.persistence.users import create_api_key, get_or_create_user
    from builder.settings import Settings

    async def work() -> tuple[str, str, str]:
        db = Database(db_url, settings=Settings())
        try:
            await upgrade_database(db)
            # The user keyless requests act as, so all three rows read the same project.
            user = await get_or_create_user(db, name="local")
            key = await create_api_key(db, user_id=user.id)
            project = await create_project(db, user_id=user.id, name="bench")
        finally:
            await db.dispose()
        return str(user.id), key.key.get_secret_value(), str(project.id)

    return asyncio.run(work())


Results = dict[str, tuple[list[float], Counter[str], int]]
"""Per server: requests/s of each round, Redis commands and requests over all rounds."""

IN_PROCESS_REQUESTS = 3000
IN_PROCESS_ROUNDS = 5
CALL_COUNT_REQUESTS = 500


def _scope(path: str, headers: dict[str, str]) -> dict[str, Any]:
    """What uvicorn would hand the app for ``GET path``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            *((name.encode(), value.encode()) for name, value in headers.items()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


async def _drive(app: Any, scope: dict[str, Any], requests: int) -> float:
    """Microseconds of this process's CPU per request, the app called directly."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: Counter[int] = Counter()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1

    started = time.process_time()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    spent = time.process_time() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"unexpected answers: {dict(statuses)}")
    return spent / requests * 1e6


InProcess = dict[str, tuple[list[float], float]]
"""Per target: CPU µs per request of each round, Python function calls per request."""


def in_process(db_url: str, redis_url: str, user_id: str, key: str, project_id: str) -> InProcess:
    """CPU µs and Python calls per request of each target, its app called in this process.

    No HTTP server and no load generator: the same apps (the same database and Redis)
    called with a ready scope, rounds alternating, so the figure is the Python each
    request costs (with the client side of its Redis round trip), steadier than requests
    per second on a loaded machine; the calls (cProfile's count, one more pass) are
    exact.
    """
    from builder.http.app import create_app
    from builder.settings import Settings

    settings = Settings(
        database_url=db_url,
        redis_url=redis_url,
        redis_key_prefix=f"bench:{uuid.uuid4().hex[:8]}:",
        model="scripted:demo",
        data_dir=tempfile.mkdtemp(prefix="bench-http-"),
        log_level="WARNING",
        rate_limit_default=RATE,
        redis_timeout=REDIS_TIMEOUT,
        allow_anonymous=True,
    )
    full, bare = create_app(settings), _bare(settings, uuid.UUID(user_id))
    path = f"/api/projects/{project_id}"
    targets = {
        "bare handler": (bare, _scope(path, {})),
        "full stack, no key (local user)": (full, _scope(path, {})),
        "full stack, API key": (full, _scope(path, {"authorization": f"Bearer {key}"})),
    }

    async def work() -> InProcess:
        times: dict[str, list[float]] = {label: [] for label in targets}
        calls: dict[str, float] = {}
        async with full.router.lifespan_context(full), bare.router.lifespan_context(bare):
            for app, scope in targets.values():
                await _drive(app, scope, 200)
            for _ in range(IN_PROCESS_ROUNDS):
                for label, (app, scope) in targets.items():
                    times[label].append(await _drive(app, scope, IN_PROCESS_REQUESTS))
            for label, (app, scope) in targets.items():
                profile = cProfile.Profile()
                profile.enable()
                await _drive(app, scope, CALL_COUNT_REQUESTS)
                profile.disable()
                stats = pstats.Stats(profile)
                calls[label] = stats.total_calls / CALL_COUNT_REQUESTS  # type: ignore[attr-defined]
        return {label: (times[label], calls[label]) for label in targets}

    return asyncio.run(work())


def run() -> tuple[Results, InProcess]:
    name, db_url = create_database()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with _private_redis() as redis_url:
            ids = _setup(db_url)
            results = _measure(db_url, redis_url, processes, ids)
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
            processes.clear()
            return results, in_process(db_url, redis_url, *ids)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        drop_database(name)


def _measure(
    db_url: str,
    redis_url: str,
    processes: list[subprocess.Popen[bytes]],
    ids: tuple[str, str, str],
) -> Results:
    user_id, key, project_id = ids
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")}
    env.update(
        {
            "BUILDER_DATABASE_URL": db_url,
            "BUILDER_REDIS_URL": redis_url,
            "BUILDER_REDIS_KEY_PREFIX": f"bench:{uuid.uuid4().hex[:8]}:",
            "BUILDER_MODEL": "scripted:demo",
            "BUILDER_DATA_DIR": tempfile.mkdtemp(prefix="bench-http-"),
            "BUILDER_LOG_LEVEL": "WARNING",
            "BUILDER_RATE_LIMIT_DEFAULT": RATE,
            "BUILDER_REDIS_TIMEOUT": str(REDIS_TIMEOUT),
            "BENCH_USER_ID": user_id,
            "BUILDER_ALLOW_ANONYMOUS": "true",
        }
    )
    full_port, bare_port = _free_port(), _free_port()
    serve = [sys.executable, "-m", "builder", "serve", "--port", str(full_port)]
    processes.append(_start([*serve, "--no-access-log"], env, full_port))
    bare_command = [sys.executable, "-m", "uvicorn", "bench.http_middleware:bare_app"]
    bare_command += ["--factory", "--port", str(bare_port), "--no-access-log"]
    processes.append(_start([*bare_command, "--log-level", "warning"], env, bare_port))
    path = f"/api/projects/{project_id}"
    full_url = f"http://127.0.0.1:{full_port}{path}"
    bearer = {"authorization": f"Bearer {key}"}
    targets: dict[str, tuple[str, dict[str, str]]] = {
        "bare handler": (f"http://127.0.0.1:{bare_port}{path}", {}),
        "full stack, no key (local user)": (full_url, {}),
        "full stack, API key": (full_url, bearer),
    }
    for url, headers in targets.values():  # warm up: connections, the cache entry
        for _ in range(20):
            httpx.get(url, headers=headers).raise_for_status()
    results: Results = {label: ([], Counter(), 0) for label in targets}
    for _ in range(ROUNDS):
        for label, (url, headers) in targets.items():
            rates, commands, requests = results[label]
            before = _commands(redis_url)
            rate, done = _load(url, headers)
            commands.update(_commands(redis_url) - before)
            rates.append(rate)
            results[label] = (rates, commands, requests + done)
    return results


def table(results: Results, inproc: InProcess, load: tuple[float, float]) -> str:
    bare_rates = results["bare handler"][0]
    bare = statistics.median(bare_rates)
    tool = "wrk -t2 -c16" if shutil.which("wrk") else f"httpx, {CONNECTIONS} concurrent clients"
    rows = [
        "## HTTP middleware overhead",
        "",
        f"Cached `GET /api/projects/{{id}}`, {SECONDS} s per round, {ROUNDS} alternating rounds "
        f"per server ({tool}), one uvicorn worker each, access log off, same database and "
        "Redis (a private `redis-server`, whose `INFO commandstats` gives the commands per "
        "request, not counting what the rate limit's Lua scripts run inside Redis). "
        "*Bare handler* is the same `get_project` call, through the same cache, on "
        "a FastAPI app with no middleware, no authentication and no rate limit. The default "
        f"tier's limit is {RATE} (never reached). `python -m bench.http_middleware` on "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}; "
        "load generator and servers share the machine's 2 cores, whose load average (1 min) "
        f"was {load[0]:.1f} at the start and {load[1]:.1f} at the end. *Ratio to bare* "
        "divides the medians; *per round* is the median of each round's ratio to the bare "
        "round just before it (steadier when the machine's load changes during the run).",
        "",
        "| Server | Requests/s (median) | Rounds | Ratio to bare | Per round "
        "| Redis commands per request |",
        "| --- | ---: | --- | ---: | ---: | --- |",
    ]
    for label, (values, commands, requests) in results.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v:,.0f}" for v in values)
        paired = statistics.median(v / b for v, b in zip(values, bare_rates, strict=True))
        total = sum(commands.values()) / max(requests, 1)
        detail = ", ".join(
            f"{name} {count / max(requests, 1):.2f}"
            for name, count in commands.most_common()
            if count / max(requests, 1) >= 0.005
        )
        rows.append(
            f"| {label} | {median:,.0f} | {rounds} | {median / bare:.2f} | {paired:.2f} "
            f"| {total:.2f} ({detail or '-'}) |"
        )
    bare_cpu = statistics.median(inproc["bare handler"][0])
    bare_calls = inproc["bare handler"][1]
    rows += [
        "",
        f"In process (`in_process()`, same run): each app called directly with a ready "
        f"scope, {IN_PROCESS_ROUNDS} alternating rounds of {IN_PROCESS_REQUESTS:,} requests; "
        "CPU time of the process per request (the Python of the request and the client side "
        "of its Redis round trip), and Python function calls per request (cProfile, "
        f"{CALL_COUNT_REQUESTS} requests).",
        "",
        "| App | CPU µs per request (median) | Rounds | Added to bare | Python calls per "
        "request | Added to bare |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for label, (times, calls) in inproc.items():
        cpu = statistics.median(times)
        rounds = ", ".join(f"{t:.0f}" for t in times)
        rows.append(
            f"| {label} | {cpu:.0f} | {rounds} | {cpu - bare_cpu:+.0f} | {calls:.0f} "
            f"| {calls - bare_calls:+.0f} |"
        )
    for note in NOTES:
        rows += ["", note]
    return "\n".join(rows)


NOTES = [
    "Per keyed request the stack reads the project through the cache like the bare "
    "handler (one `MGET` of the entry and its scope token), and nothing else from Redis "
    "on most requests: the API key is answered from the process's near copy (kept for "
    "`BUILDER_CACHE_NEAR_SECONDS`, dropped on every replica as soon as any key is "
    "revoked), and the rate limit from a lease of requests reserved in the shared "
    "window (`EVALSHA`: reserving, then reading the window, about once per 64 requests "
    "of a busy key). Before that, the same benchmark measured 6.03 client commands per "
    "keyed request, six sequential round trips, and the keyed stack at 0.28× of the bare "
    "handler.",
    "What a keyed request costs besides the bare handler's work is now Python of about "
    "the same size: one ASGI layer (`builder/http/edge.py`: request id, security "
    "headers, metrics with label children bound once, the last resort for errors, CORS "
    "only for requests with an `Origin`, the body limit, authentication) instead of seven "
    "middlewares, and the route's four dependencies replayed from a plan made when the "
    "route is built (`builder/http/routing.py`) instead of FastAPI solving the tree per "
    "request, which also skips FastAPI's two exit stacks and exception wrapper; the near "
    "copy's hit, the user validated from it and the key's principal are built once, not "
    "per request. The stack now makes fewer Python calls per request than the bare "
    "FastAPI route; the CPU it still adds (the second table) is work that is not more "
    "calls: hashing the key, the metrics' locked updates, and eleven more response "
    "headers (security, request id, rate limit, `Vary`) that uvicorn encodes one by one. "
    "On this shared machine the keyed ratio has varied between runs from 0.84× to 1.03× "
    "(per round), as much as the rounds of one run vary. The code before these changes, "
    "measured by this same benchmark minutes before this run (load average 2.1 to 4.6): "
    "bare 2,228 requests/s, no key 0.62×, API key 0.49× (0.47× per round); in process the "
    "keyed request added 194 µs of CPU and 552 Python calls to the bare handler's.",
]


def main() -> None:
    before = os.getloadavg()[0]
    results, inproc = run()
    body = table(results, inproc, (before, os.getloadavg()[0]))
    print(body)
    write_section(NAME, body)


if __name__ == "__main__":
    main()
