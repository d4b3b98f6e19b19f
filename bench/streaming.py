"""What streaming the model's tokens adds to an agent step.

The web-builder graph drives ``openai:gpt-bench`` (LangChain's ``ChatOpenAI``) against
the fake OpenAI chat-completions server of the test suite, run in its own process so
its work does not share this one's interpreter. Every step is the same model reply:
``TEXT_CHARS`` characters of text and one ``write_file`` call with a ``PAGE_BYTES``
page, written into a ``LocalSandbox``; a run takes ``STEPS`` steps (the step limit
ends it) without a checkpointer or database, so what differs is only the model call
and what the graph does with its tokens.

* **not streamed** — ``graph.astream(stream_mode="updates")``: LangChain sends a plain
  request and gets one JSON body.
* **streamed** — ``stream_mode=["messages", "updates"]``, as builder's runs do: the
  request asks for server-sent events, the text arrives in 4-character chunks
  (``TEXT_CHARS / 4`` events, then the tool call and usage) and LangGraph hands every
  chunk to the stream.

Rounds interleave the two; the table shows the median time per step, the difference
(the overhead per step) and the ratio. Run ``python -m bench.streaming``; the table
goes into docs/benchmarks.md between the ``bench:streaming`` markers.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import write_section

NAME = "streaming"
STEPS = 20
ROUNDS = 9
TEXT_CHARS = 400
PAGE_BYTES = 2048
VARIANTS = ("plain", "streamed")
LABELS = {
    "plain": 'not streamed (`stream_mode="updates"`)',
    "streamed": 'streamed (`stream_mode=["messages", "updates"]`)',
}


def serve() -> None:
    """The fake provider, answering every request with the same step until stdin closes."""
    from tests.models.openai_server import OpenAIServer, completion

    text = ("I'll write the next page of the site now. " * 20)[:TEXT_CHARS]
    page = "<!doctype html><p>" + "x" * (PAGE_BYTES - 18)
    reply = completion(
        text,
        tool_calls=[{"name": "write_file", "args": {"path": "page.html", "content": page}}],
        usage=(1200, 150),
    )
    with OpenAIServer(reply) as server:
        server.burst = True
        print(server.base_url, flush=True)
        sys.stdin.read()


async def _run(graph: Any, ctx: Any, modes: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process) of one run."""
    started, cpu = time.perf_counter(), time.process_time()
    async for _ in graph.astream(
        {"messages": [("user", "A site")]}, context=ctx, stream_mode=modes
    ):
        pass
    return time.perf_counter() - started, time.process_time() - cpu


async def measure(base_url: str) -> dict[str, list[tuple[float, float]]]:
    """Wall-clock and CPU seconds per step of each variant, one pair per round."""
    from pydantic import SecretStr

    from builder.graphs.context import RunContext
    from builder.graphs.web_builder import build_web_builder_graph
    from builder.locks import LockManager
    from builder.models import load_chat_model
    from builder.sandbox.local import LocalSandbox
    from builder.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            model="openai:gpt-bench",
            model_base_url=base_url,
            model_api_key=SecretStr("sk-bench"),
            model_retries=0,
        )
        graph = build_web_builder_graph(model=load_chat_model(settings=settings), settings=settings)
        sandbox = LocalSandbox("bench", settings=settings)
        ctx = RunContext(
            sandbox=sandbox, locks=LockManager(None, timeout=5), settings=settings, max_steps=STEPS
        )
        modes = {"plain": ["updates"], "streamed": ["messages", "updates"]}
        for variant in VARIANTS:  # warm-up: imports, connections, the sandbox
            await _run(graph, ctx, modes[variant])
        seconds: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
        for _ in range(ROUNDS):
            for variant in VARIANTS:
                wall, cpu = await _run(graph, ctx, modes[variant])
                seconds[variant].append((wall / STEPS, cpu / STEPS))
        await sandbox.close()
    return seconds


def table(seconds: dict[str, list[tuple[float, float]]]) -> str:
    """The Markdown section."""

    def median_ms(variant: str, index: int) -> float:
        return statistics.median(pair[index] for pair in seconds[variant]) * 1000

    plain, streamed = median_ms("plain", 0), median_ms("streamed", 0)
    plain_cpu, streamed_cpu = median_ms("plain", 1), median_ms("streamed", 1)
    rows = [
        "## Token streaming: cost per agent step",
        "",
        f"Per agent step, median of {ROUNDS} interleaved rounds of {STEPS}-step runs "
        f"({platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}): each step is one model reply of {TEXT_CHARS} characters "
        f"of text ({TEXT_CHARS // 4} chunks when streamed) and a `write_file` call of a "
        f"{PAGE_BYTES // 1024} KiB page, from the fake OpenAI server in another process "
        "(which writes a stream's events in one piece, so only builder's side differs). "
        "CPU is this process's, per step. Load average while measuring: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (the wall-clock overhead grows "
        "with it; the CPU overhead is what streaming costs the process).",
        "",
        "| Model calls | ms per step | Overhead | Ratio "
        "| CPU ms per step | CPU overhead | CPU ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {LABELS['plain']} | {plain:.1f} | — | 1.00 | {plain_cpu:.1f} | — | 1.00 |",
        f"| {LABELS['streamed']} | {streamed:.1f} | {streamed - plain:+.1f} ms | "
        f"{streamed / plain:.2f} | {streamed_cpu:.1f} | {streamed_cpu - plain_cpu:+.1f} ms | "
        f"{streamed_cpu / plain_cpu:.2f} |",
        "",
        "Where the CPU goes (cProfile of `ChatOpenAI` streaming on its own): mostly the "
        "openai SDK turning each server-sent event into its typed chunk object "
        "(`openai._base_client._process_response_data`), then langchain-openai's chunk "
        "conversion; LangGraph's `messages` handler and the graph add little. A longer "
        "reply costs more in proportion to its chunks; the model's own generation time, "
        "which streaming overlaps with showing the reply, is not part of this figure.",
    ]
    return "\n".join(rows)


def main() -> None:
    """Start the fake provider, measure, write the table."""
    provider = subprocess.Popen(
        [sys.executable, "-m", "bench.streaming", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert provider.stdout is not None
        base_url = provider.stdout.readline().strip()
        seconds = asyncio.run(measure(base_url))
    finally:
        assert provider.stdin is not None
        provider.stdin.close()
        provider.wait(timeout=10)
    body = table(seconds)
    write_section(NAME, body)
    print(body)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        main()
