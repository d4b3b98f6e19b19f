"""Cache latency with Redis healthy, absent, and hanging (accepts, never answers).

Each scenario runs the same cache calls (``get`` of a present key); the baseline is
the healthy Redis of the same run. With Redis down the first call pays the timeout
(``BUILDER_REDIS_TIMEOUT``), opens the circuit, and later calls go to the in-process
fallback without touching the network.

Run ``python -m bench.cache_fallback``; the table goes into docs/benchmarks.md between
the ``bench:cache_fallback`` markers.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
import uuid

from bench.report import write_section
from builder.cache import Cache

NAME = "cache_fallback"
REDIS_URL = os.environ.get("BUILDER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CALLS = 2_000
TIMEOUT = 0.1


async def _hole() -> tuple[asyncio.Server, int]:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _calls(url: str) -> tuple[float, list[float]]:
    cache = Cache(redis_url=url, prefix=f"bench:{uuid.uuid4().hex[:8]}:", timeout=TIMEOUT)
    started = time.perf_counter()
    await cache.set("project", "key", {"name": "value"})
    first = time.perf_counter() - started
    durations = []
    try:
        for _ in range(CALLS):
            started = time.perf_counter()
            await cache.get("project", "key")
            durations.append(time.perf_counter() - started)
    finally:
        await cache.delete("project", "key")
        await cache.aclose()
    return first, durations


async def run() -> dict[str, tuple[float, list[float]]]:
    server, port = await _hole()
    try:
        return {
            "Redis healthy": await _calls(REDIS_URL),
            "nothing listening": await _calls(f"redis://127.0.0.1:{_free_port()}/0"),
            "listener never answers": await _calls(f"redis://127.0.0.1:{port}/0"),
        }
    finally:
        server.close()


def table(results: dict[str, tuple[float, list[float]]]) -> str:
    def us(seconds: float) -> str:
        return f"{seconds * 1e6:,.0f} µs"

    lines = [
        "## Cache with Redis down",
        "",
        f"{CALLS:,} `Cache.get` calls per scenario, `BUILDER_REDIS_TIMEOUT={TIMEOUT}`, "
        "after one `set` (which, with Redis down, pays the one timeout and opens the "
        "circuit). `python -m bench.cache_fallback` on "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}.",
        "",
        "| Scenario | First call (`set`) | Median per call | p99 per call | Slowest call |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, (first, durations) in results.items():
        p99 = statistics.quantiles(durations, n=100)[98]
        lines.append(
            f"| {label} | {us(first)} | {us(statistics.median(durations))} | {us(p99)} "
            f"| {us(max(durations))} |"
        )
    lines += [
        "",
        "While the circuit is open (`BUILDER_CACHE_COOLDOWN_SECONDS`) a call costs a "
        "local dictionary lookup; Redis is probed again after the cooldown.",
    ]
    return "\n".join(lines)


def main() -> None:
    body = table(asyncio.run(run()))
    print(body)
    write_section(NAME, body)


if __name__ == "__main__":
    main()
