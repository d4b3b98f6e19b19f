"""Per-command cost of confinement: the same commands confined and unconfined.

Each command runs through ``LocalSandbox.exec`` (what ``run_command`` does): unconfined
(the baseline), confined by bubblewrap with each network mode — ``none`` (an empty
network namespace), ``host`` (no network namespace) and ``isolated`` (a namespace with
``pasta`` attached before the command starts). The variants are interleaved round by
round in one process, so load from elsewhere on the machine hits them alike.

Run ``python -m bench.sandbox_overhead``; the table goes into docs/benchmarks.md between
the ``bench:sandbox_overhead`` markers.
"""

from __future__ import annotations

import asyncio
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import write_section
from builder.sandbox.local import LocalSandbox
from builder.sandbox.local.confine import bwrap_status
from builder.sandbox.local.network import pasta_status
from builder.settings import Settings

NAME = "sandbox_overhead"
ROUNDS = 7
CALLS = 8
PYTHON = Path(sys.base_prefix) / "bin" / "python3"
COMMANDS = {
    "`true`": "true",
    "`python3 -c pass`": f"{PYTHON} -c pass",
    "`node -e 0`": "node -e 0",
}
VARIANTS = {
    "unconfined": ("local-unconfined", "host"),
    "confined, network `none`": ("local", "none"),
    "confined, network `host`": ("local", "host"),
    "confined, network `isolated` (pasta)": ("local", "isolated"),
}


async def run(data_dir: Path) -> dict[str, dict[str, list[float]]]:
    """Seconds per call: variant → command → samples."""
    boxes = {}
    for label, (backend, network) in VARIANTS.items():
        settings = Settings(data_dir=data_dir, sandbox_backend=backend, sandbox_network=network)
        box = LocalSandbox(f"bench-{len(boxes)}", settings=settings)
        assert (box.confinement is None) == (backend == "local-unconfined"), label
        assert box.confinement is None or box.confinement.network == network, label
        boxes[label] = box
    samples: dict[str, dict[str, list[float]]] = {v: {c: [] for c in COMMANDS} for v in VARIANTS}
    for box in boxes.values():  # warm the page cache and the interpreters
        for command in COMMANDS.values():
            await box.exec(command)
    for _ in range(ROUNDS):
        for label, box in boxes.items():
            for name, command in COMMANDS.items():
                for _ in range(CALLS):
                    started = time.perf_counter()
                    result = await box.exec(command)
                    samples[label][name].append(time.perf_counter() - started)
                    assert result.exit_code == 0, (label, name, result.stderr)
    for box in boxes.values():
        await box.close()
    return samples


def _versions() -> str:
    bwrap = subprocess.run(["bwrap", "--version"], capture_output=True, text=True, check=False)
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return f"{bwrap.stdout.strip()}, node {node.stdout.strip()}"


def table(samples: dict[str, dict[str, list[float]]]) -> str:
    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.1f} ms"

    base = {c: statistics.median(samples["unconfined"][c]) for c in COMMANDS}
    lines = [
        "## Sandbox confinement: cost per command",
        "",
        f"`LocalSandbox.exec` of each command, {ROUNDS} interleaved rounds of {CALLS} calls "
        "per variant and command, medians; the ratio is to the unconfined run of the same "
        "command in the same process. `python -m bench.sandbox_overhead` on "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
        f"{_versions()}, 2 shared cores.",
        "",
        "| Variant | " + " | ".join(f"{c} | ÷ unconfined" for c in COMMANDS) + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in COMMANDS) + " |",
    ]
    for label in VARIANTS:
        cells = []
        for command in COMMANDS:
            median = statistics.median(samples[label][command])
            cells.append(f"{ms(median)} | {median / base[command]:.2f}×")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    isolated = statistics.median(samples["confined, network `isolated` (pasta)"]["`true`"])
    none = statistics.median(samples["confined, network `none`"]["`true`"])
    lines += [
        "",
        "Unconfined, a command is a fork of `env -i … /bin/sh -c` in its own process "
        "group with rlimits. Confined adds `bwrap` setting up the user, PID, IPC, UTS, "
        "mount (and network) namespaces and the bind mounts before the shell starts. "
        f"`isolated` adds {ms(isolated - none)} per command over `none`: bwrap reports its "
        "namespace and waits, `pasta` is started and attached, and the command is "
        "released once the namespace has its default routes; pasta is killed when the "
        "command exits and reaped off its path. The cost is fixed per command, so it "
        "matters for many short commands and not for an `npm install` or a build.",
    ]
    return "\n".join(lines)


def main() -> None:
    if bwrap_status()[0] is None or pasta_status()[0] is None:
        raise SystemExit(f"cannot measure: {bwrap_status()[1]}; {pasta_status()[1]}")
    if shutil.which("node") is None:
        raise SystemExit("cannot measure: node is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        body = table(asyncio.run(run(Path(tmp))))
    print(body)
    write_section(NAME, body)


if __name__ == "__main__":
    main()
