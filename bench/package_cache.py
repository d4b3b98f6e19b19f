"""The per-host package cache: a starter's install cold, then in a second project.

Each round makes a fresh data directory (so an empty package cache), writes the
``vite-react-ts`` starter into one project and runs ``install_packages`` (``npm ci`` from
its lock file, from the registry, in the confined sandbox with isolated networking):
that is the cold install. A second project then installs the same starter with the
cache the first one filled: the warm install. The baseline is the cold install of the
same round, so a slower network or a busier machine hits both alike.

Run ``python -m bench.package_cache``; the table goes into docs/benchmarks.md between
the ``bench:package_cache`` markers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import platform
import shutil
import stat
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.report import write_section
from builder.locks import LockManager
from builder.plugins import get_starter_registry
from builder.sandbox.local import LocalSandbox
from builder.sandbox.local.confine import bwrap_status
from builder.sandbox.local.network import pasta_status
from builder.settings import Settings
from builder.starters import starter_files
from builder.tools import shell
from builder.tools.context import ToolContext

NAME = "package_cache"
ROUNDS = 5
STARTER = "vite-react-ts"


async def install(
    settings: Settings, project_id: str, *, copy: bool = False
) -> tuple[float, str, LocalSandbox]:
    """Seconds ``install_packages`` took for a fresh project from the starter."""
    box = LocalSandbox(project_id, settings=settings)
    if copy and box.trees is not None:
        box.trees = dataclasses.replace(box.trees, hard_links=False)
    assert box.confinement is not None and box.confinement.network == "isolated", box
    assert box.confinement.package_cache is not None, box
    for path, data in starter_files(get_starter_registry().get(STARTER)).items():
        await box.write_file(path, data)
    ctx = ToolContext(
        sandbox=box,
        project_id=project_id,
        settings=settings,
        locks=LockManager(None, timeout=5),
    )
    started = time.perf_counter()
    report = await shell.install_packages(ctx=ctx)
    took = time.perf_counter() - started
    await box.close()
    if not report.startswith("Installed with npm:"):
        raise SystemExit(f"install failed: {report}")
    return took, report, box


async def run(parent: Path) -> tuple[list[float], list[float], list[float], str]:
    cold: list[float] = []
    warm: list[float] = []
    copied: list[float] = []
    report = ""
    for index in range(ROUNDS):
        data_dir = parent / f"round-{index}"
        settings = Settings(data_dir=data_dir, timeout_install=900)
        seconds, report, _ = await install(settings, "cold")
        cold.append(seconds)
        seconds, report, box = await install(settings, "warm")
        warm.append(seconds)
        tree = _tree_counts(box.root / "node_modules")
        seconds, _, _ = await install(settings, "copied", copy=True)
        copied.append(seconds)
        print(
            f"round {index}: cold {cold[-1]:.1f} s, warm {warm[-1]:.1f} s, "
            f"copied {copied[-1]:.1f} s",
            flush=True,
        )
        shutil.rmtree(data_dir)
    return cold, warm, copied, f"{report} The warm tree: {tree}."


def _tree_counts(root: Path) -> str:
    files = linked = size = directories = 0
    for parent, dirs, names in os.walk(root):
        directories += len(dirs)
        for name in names:
            st = os.lstat(os.path.join(parent, name))
            if not stat.S_ISLNK(st.st_mode):
                files += 1
                size += st.st_size
                linked += st.st_nlink > 1
    return (
        f"{files:,} files ({size / 1e6:.0f} MB), {linked:,} of them hard links, "
        f"{directories:,} directories created"
    )


def _load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def _versions() -> str:
    npm = subprocess.run(["npm", "--version"], capture_output=True, text=True, check=False)
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return f"node {node.stdout.strip()}, npm {npm.stdout.strip()}"


def table(
    cold: list[float],
    warm: list[float],
    copied: list[float],
    report: str,
    as_user: str,
    load: str,
    link_note: str,
) -> str:
    cold_median, warm_median = statistics.median(cold), statistics.median(warm)
    # Each round's warm install against its own cold one: load drifts between rounds.
    ratio = statistics.median(c / w for c, w in zip(cold, warm, strict=True))
    rows = " | ".join(f"{c:.1f} s / {w:.1f} s" for c, w in zip(cold, warm, strict=True))
    return "\n".join(
        [
            "## Package cache: a starter's install, cold and warm",
            "",
            f"`install_packages` of the `{STARTER}` starter (`npm ci` from its lock file, "
            "packages from registry.npmjs.org) in the confined sandbox with isolated "
            f"networking{as_user}: first into a fresh data directory (an empty package "
            "cache), then in a second project on the same host. "
            f"{ROUNDS} rounds, each with its own data directory; medians. "
            f"`python -m bench.package_cache` on {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, {_versions()}, 2 shared cores.",
            "",
            "| Install | Median | ÷ cold |",
            "| --- | ---: | ---: |",
            f"| cold (empty cache, every tarball from the registry) | {cold_median:.1f} s "
            "| 1.00× |",
            f"| warm (second project, `node_modules` from the cache of installed trees) "
            f"| {warm_median:.1f} s | {warm_median / cold_median:.2f}× |",
            "",
            f"Warm is **{ratio:.1f}× faster** (the median of each round's cold ÷ warm). "
            "Per round (cold / warm): "
            f"{rows}; load average {load} on the 2 cores while it ran. The cold install "
            "runs a clean `npm ci` outside the project (tarballs from the registry into "
            "the shared store), keeps the installed tree and puts it into the project; the "
            "warm one runs no npm at all: the same lock file, `package.json`, npm, Node.js "
            "and platform find the kept tree, put into the new project "
            f"({link_note}). Copying the same tree instead of linking it (a third "
            f"project, links turned off): {statistics.median(copied):.1f} s median. "
            f"The tool reported: {report}",
        ]
    )


def main() -> None:
    if bwrap_status()[0] is None or pasta_status()[0] is None:
        raise SystemExit(f"cannot measure: {bwrap_status()[1]}; {pasta_status()[1]}")
    if shutil.which("npm") is None:
        raise SystemExit("cannot measure: npm is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        # A root service's sandbox user must pass through the data directory's parents.
        os.chmod(tmp, 0o711)  # noqa: S103 - pass-through only
        cold, warm, copied, report = asyncio.run(run(Path(tmp)))
    as_user = ", as uid 64000 on the host (the service runs as root)" if os.geteuid() == 0 else ""
    link_note = (
        "hard links: the files belong to root and are read-only, the directories are the project's"
        if os.geteuid() == 0
        else "copies: commands run as the service's own uid, so links would be writable"
    )
    body = table(cold, warm, copied, report, as_user, _load(), link_note)
    print(body)
    write_section(NAME, body)


if __name__ == "__main__":
    main()
