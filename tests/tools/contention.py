"""Many processes editing one file at once: the workload of the lost-update test and of
``bench/edit_contention.py``.

Each of ``processes`` spawned processes runs ``tasks`` asyncio tasks; each task calls
``edit_file`` ``edits`` times on one file, replacing the marker line ``<!-- end -->``
with its own unique line followed by the marker. With the lock manager and the
compare-and-swap write in place every line must survive. ``guarded=False`` removes both
guards (a no-op lock manager and a sandbox that drops ``expected_sha256``): a switch
for tests and the benchmark only, to show that the workload really loses updates
without them. ``dsn=None`` keeps the lock manager within each process, so only the
compare-and-swap write guards across processes; ``atomic_swap=False`` then removes the
flock that makes its check-and-rename one step (the twin that must lose edits).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import traceback
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import builder.sandbox.workspace as workspace_module
from builder.errors import BuilderError
from builder.locks import LockManager
from builder.sandbox.local import LocalSandbox
from builder.settings import Settings
from builder.tools.context import ToolContext
from builder.tools.edits import edit_file
from builder.tools.tool import Tool

MARKER = "<!-- end -->"
FILE = "page.html"
PROJECT = "contention"


class NoLocks(LockManager):
    """A lock manager that locks nothing (the guard removed, for tests only)."""

    def __init__(self) -> None:
        super().__init__(None, timeout=1)

    @asynccontextmanager
    async def hold_many(
        self, keys: Iterable[str], *, timeout: float | None = None, long_lived: bool = False
    ) -> AsyncIterator[None]:
        yield


class WithoutCompareAndSwap:
    """A sandbox that ignores ``expected_sha256`` (the guard removed, for tests only)."""

    def __init__(self, inner: LocalSandbox) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def write_file(
        self, path: str, data: bytes, *, expected_sha256: str | None = None
    ) -> None:
        await self._inner.write_file(path, data)


@dataclass(frozen=True)
class Workload:
    """What to run: who edits, how often, and whether the guards are on."""

    data_dir: str
    dsn: str | None
    processes: int
    tasks: int
    edits: int
    guarded: bool = True
    atomic_swap: bool = True

    @property
    def total(self) -> int:
        return self.processes * self.tasks * self.edits

    def settings(self) -> Settings:
        # Generous budgets: under contention one edit may wait for many others.
        return Settings(
            data_dir=Path(self.data_dir),
            lock_timeout=300,
            timeout_sandbox=300,
            project_quota_bytes=1 << 30,
        )

    def expected(self) -> set[str]:
        return {
            line(p, t, n)
            for p in range(self.processes)
            for t in range(self.tasks)
            for n in range(self.edits)
        }


@dataclass(frozen=True)
class Outcome:
    """What a run left behind."""

    seconds: float
    """From the moment every process was ready until the last one finished."""
    errors: list[str]
    missing: int
    """Lines of successful edits that are not in the file: lost updates."""
    present: int


_CRASHED = "worker crashed:\n"


def line(process: int, task: int, n: int) -> str:
    return f"line-{process}-{task}-{n}"


def run(workload: Workload) -> Outcome:
    """Run the workload in spawned processes and count what survived in the file."""
    settings = workload.settings()
    asyncio.run(_reset_file(settings))
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(workload.processes + 1)
    results = spawn.Queue()
    workers = [
        spawn.Process(target=_worker, args=(workload, p, barrier, results))
        for p in range(workload.processes)
    ]
    for worker in workers:
        worker.start()
    try:
        barrier.wait(timeout=120)
        started = time.monotonic()
        reports = [results.get(timeout=900) for _ in workers]
        crashes = [report for report in reports if isinstance(report, str)]
        assert not crashes, crashes[0]
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    assert all(worker.exitcode == 0 for worker in workers), [w.exitcode for w in workers]
    finished = max(report[0] for report in reports)
    errors = [error for report in reports for error in report[1]]
    failed = {failed for report in reports for failed in report[2]}
    content = asyncio.run(_read_file(settings))
    present = set(content.splitlines())
    expected = workload.expected() - failed
    return Outcome(
        seconds=finished - started,
        errors=errors,
        missing=len(expected - present),
        present=len(expected & present),
    )


async def _reset_file(settings: Settings) -> None:
    sandbox = LocalSandbox(PROJECT, settings=settings)
    await sandbox.write_file(FILE, f"<ul>\n{MARKER}\n</ul>\n".encode())


async def _read_file(settings: Settings) -> str:
    return (await LocalSandbox(PROJECT, settings=settings).read_file(FILE)).decode()


@contextmanager
def _no_flock(directory: int) -> Iterator[None]:
    yield


def _worker(workload: Workload, process: int, barrier: Barrier, results: Any) -> None:
    try:
        results.put(asyncio.run(_edit(workload, process, barrier)))
    except BaseException as exc:
        # Report instead of dying silently: the parent is waiting for one result each.
        results.put(_CRASHED + "".join(traceback.format_exception(exc)))
        raise


async def _edit(
    workload: Workload, process: int, barrier: Barrier
) -> tuple[float, list[str], list[str]]:
    settings = workload.settings()
    if not workload.atomic_swap:
        workspace_module._exclusive = _no_flock  # type: ignore[assignment]
    sandbox = LocalSandbox(PROJECT, settings=settings)
    locks: LockManager
    if workload.guarded:
        locks = LockManager(workload.dsn, timeout=settings.lock_timeout)
        async with locks.hold("warm-up"):  # open the pool before the clock starts
            pass
        ctx = ToolContext(sandbox=sandbox, project_id=PROJECT, settings=settings, locks=locks)
    else:
        locks = NoLocks()
        unguarded: Any = WithoutCompareAndSwap(sandbox)
        ctx = ToolContext(sandbox=unguarded, project_id=PROJECT, settings=settings, locks=locks)
    tool = Tool.from_function(edit_file, plugin="builtin")
    errors: list[str] = []
    failed: list[str] = []

    async def task(t: int) -> None:
        for n in range(workload.edits):
            replace = f"{line(process, t, n)}\n{MARKER}"
            try:
                await tool.run(ctx, {"path": FILE, "search": MARKER, "replace": replace})
            except BuilderError as exc:
                errors.append(f"{type(exc).__name__}: {exc.message}")
                failed.append(line(process, t, n))

    await asyncio.to_thread(barrier.wait, 120)
    try:
        await asyncio.gather(*(task(t) for t in range(workload.tasks)))
        return time.monotonic(), errors, failed
    finally:
        await locks.close()
