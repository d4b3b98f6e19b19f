"""Cold start: what ``import builder`` and ``builder --help`` cost a fresh interpreter.

Each command runs in a new process, alternating with the others in every round so that
the machine's load falls on all of them alike; the table gives the median wall time
and the modules each one imports (a count that does not depend on the machine). The
baseline is an interpreter that imports nothing; "everything" imports the whole public
API, which is what ``import builder`` cost while it imported it eagerly.

Run: ``python -m bench.startup``.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time

from bench.report import write_section

NAME = "startup"
ROUNDS = 7
_COUNT = "import sys; print(len(sys.modules))"
CASES = {
    "bare interpreter (baseline)": ["-c", _COUNT],
    "`import langgraph` (reference)": ["-c", f"import langgraph; {_COUNT}"],
    "`import langgraph.graph`": ["-c", f"import langgraph.graph; {_COUNT}"],
    "`import builder`": ["-c", f"import builder; {_COUNT}"],
    "`builder --help`": ["-m", "builder", "--help"],
    "`import builder` + every public name": [
        "-c",
        f"import builder; [getattr(builder, n) for n in builder.__all__]; {_COUNT}",
    ],
}


def measure() -> dict[str, tuple[float, int | None]]:
    times: dict[str, list[float]] = {label: [] for label in CASES}
    modules: dict[str, int | None] = {}
    for _ in range(ROUNDS):
        for label, argv in CASES.items():
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, *argv], capture_output=True, text=True, check=True
            )
            times[label].append(time.perf_counter() - started)
            last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
            modules[label] = int(last) if last.isdigit() else None
    return {label: (statistics.median(times[label]), modules[label]) for label in CASES}


def table(results: dict[str, tuple[float, int | None]]) -> str:
    base = results["bare interpreter (baseline)"][0]
    lines = [
        "## Cold start",
        "",
        f"Median of {ROUNDS} alternating rounds, each command in a new process; "
        f"{platform.machine()}, CPython {platform.python_version()}. "
        "Command: `python -m bench.startup`.",
        "",
        "| command | wall time | minus the bare interpreter | ÷ `import langgraph` "
        "| modules loaded |",
        "|---|---:|---:|---:|---:|",
    ]
    reference = results["`import langgraph` (reference)"][0]
    for label, (seconds, count) in results.items():
        lines.append(
            f"| {label} | {seconds * 1000:,.0f} ms | {(seconds - base) * 1000:,.0f} ms "
            f"| {seconds / reference:.2f} | {count if count is not None else '-'} |"
        )
    lines += [
        "",
        "`import builder` loads the errors and the version; every other public name is "
        "imported on first use (`builder/__init__.py`). `builder --help` imports typer and "
        "the command modules only: each command imports settings, logging, rich and "
        "asyncio when it runs, and the help is click's plain formatter (typer's rich one "
        "imports markdown and syntax highlighting). Before that, `--help` took 828 ms "
        "(1,283 ms on a busier machine, 7.7× `import langgraph`). `import langgraph` is a "
        "namespace package; `import langgraph.graph` is what using it costs. The last row "
        "is what importing builder used to cost.",
    ]
    return "\n".join(lines)


def main() -> None:
    body = table(measure())
    print(body)
    write_section(NAME, body)


if __name__ == "__main__":
    main()
