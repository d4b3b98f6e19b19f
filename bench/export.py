"""Exporting a version: streamed blob by blob vs the whole project loaded first.

The 50 MB, 2,000-file project of ``bench.snapshots`` is saved once; each variant then
runs in its own child process (its peak RSS is its own: ``VmHWM``) and
writes the archive to a file:

* *loaded first* — the baseline: read every file of the version into memory, then
  write the zip (what an export without streaming does);
* *streamed zip* / *streamed tar.gz* — :func:`builder.publish.archive.archive_chunks`
  over :class:`~builder.publish.source.VersionFiles`, one blob in memory at a time;
* *git push* — :func:`builder.publish.git.push_files` to a bare repository behind
  ``git http-backend`` on loopback (the test suite's server), which streams the blobs
  into ``git fast-import`` (the RSS is builder's process; git's own is not counted).

*imports only* is a child that imports the same modules and connects to the database,
so the memory each export adds is its peak minus that. Rounds are interleaved; the
table holds medians. Run ``python -m bench.export``; the table goes into
docs/benchmarks.md between the ``bench:export`` markers.
"""

from __future__ import annotations

import asyncio
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

from bench.report import create_database, drop_database, write_section
from bench.snapshots import FILES, TOTAL_BYTES, _project_files

NAME = "export"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
VARIANTS = ("imports", "loaded", "zip", "tar.gz", "git")


async def _child(variant: str, url: str, project_id: str, out: Path, remote: str) -> float:
    from builder.persistence import Database, read_file, tree
    from builder.publish.archive import archive_chunks
    from builder.publish.git import GitCredentials, push_files
    from builder.publish.source import VersionFiles
    from builder.settings import Settings

    db = Database(url, settings=Settings(data_dir=out.parent, timeout_db=600))
    pid = uuid.UUID(project_id)
    await db.ping()
    started = time.perf_counter()
    if variant == "loaded":
        files = {
            p: await read_file(db, project_id=pid, path=p) for p in await tree(db, project_id=pid)
        }
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path, data in files.items():
                archive.writestr(path, data)
        await asyncio.to_thread(out.write_bytes, buffer.getvalue())
    elif variant in ("zip", "tar.gz"):
        sink = await asyncio.to_thread(out.open, "wb")
        try:
            files_ = VersionFiles(db, project_id=pid, version=None)
            async for chunk in archive_chunks(files_, format=variant):  # type: ignore[arg-type]
                await asyncio.to_thread(sink.write, chunk)
        finally:
            sink.close()
    elif variant == "git":
        await push_files(
            VersionFiles(db, project_id=pid, version=None),
            url=remote,
            branch=f"b{uuid.uuid4().hex[:8]}",
            credentials=GitCredentials("bench", "bench-password"),
            author_name="bench",
            author_email="bench@example.invalid",
            message="bench",
            timestamp=int(time.time()),
        )
    seconds = time.perf_counter() - started
    await db.dispose()
    return seconds


def _run_child(
    variant: str, url: str, project_id: str, work: Path, remote: str
) -> tuple[float, int]:
    out = work / f"out-{variant}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.export",
            "--child",
            variant,
            url,
            project_id,
            str(out),
            remote,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    seconds, peak = process.stdout.read().split()
    assert process.wait() == 0, f"{variant} failed"
    out.unlink(missing_ok=True)
    return float(seconds), int(peak)


def _peak_rss() -> int:
    """This process's peak resident set (VmHWM), in bytes.

    Read in the child itself: a child's ``ru_maxrss`` as its parent sees it can include
    the parent's memory copied at fork, before the exec.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def _setup(url: str) -> str:
    from builder.persistence import (
        Database,
        create_project,
        get_or_create_user,
        save_snapshot,
        upgrade_database,
    )
    from builder.settings import Settings

    db = Database(url, settings=Settings(timeout_db=600))
    try:
        await upgrade_database(db)
        user = await get_or_create_user(db, name="bench")
        project = await create_project(db, user_id=user.id, name="bench")
        await save_snapshot(db, project_id=project.id, changes=_project_files())
        return str(project.id)
    finally:
        await db.dispose()


def run() -> dict[str, list[tuple[float, int]]]:
    from tests.support.git_server import GitServer

    name, url = create_database()
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    results: dict[str, list[tuple[float, int]]] = {v: [] for v in VARIANTS}
    try:
        project_id = asyncio.run(_setup(url))
        (work / "git").mkdir()
        with GitServer(work / "git", "bench", "bench-password") as server:
            remote = server.url("site.git")
            for _ in range(ROUNDS):
                for variant in VARIANTS:
                    results[variant].append(_run_child(variant, url, project_id, work, remote))
    finally:
        drop_database(name)
    return results


def table(results: dict[str, list[tuple[float, int]]]) -> str:
    def median(variant: str, index: int) -> float:
        return statistics.median(r[index] for r in results[variant])

    idle = median("imports", 1)
    base_s, base_mem = median("loaded", 0), max(median("loaded", 1) - idle, 1)
    labels = {
        "loaded": "Zip, every file loaded first (baseline)",
        "zip": "Zip, streamed blob by blob",
        "tar.gz": "tar.gz, streamed blob by blob",
        "git": "git push (fast-import) to a loopback server",
    }
    lines = [
        "## Export: a 50 MB project in bounded memory",
        "",
        f"A version of {FILES:,} files, {TOTAL_BYTES // 1024 // 1024} MB in all (the "
        "project of `bench.snapshots`), exported by a child process per run; *added "
        "memory* is the child's peak RSS minus that of a child that only imports and "
        f"connects ({idle / 1024 / 1024:,.0f} MiB). Medians of {ROUNDS} interleaved rounds of "
        f"`python -m bench.export` on {platform.system()} {platform.machine()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores.",
        "",
        "| Export | Time | Added memory (peak RSS) | Memory ÷ baseline |",
        "| --- | ---: | ---: | ---: |",
    ]
    for variant, label in labels.items():
        seconds, memory = median(variant, 0), max(median(variant, 1) - idle, 0)
        lines.append(
            f"| {label} | {seconds:,.2f} s | {memory / 1024 / 1024:,.1f} MiB | "
            f"{memory / base_mem:,.2f} |"
        )
    lines += [
        "",
        f"The baseline holds the whole project and the whole archive at once "
        f"({base_s:,.2f} s); the streamed exports hold one file and its compressed form, "
        "so their memory does not grow with the project. The git push's time includes "
        "the smart-HTTP round trips and the server unpacking the pack.",
    ]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        variant, url, project_id, out, remote = sys.argv[2:7]
        seconds = asyncio.run(_child(variant, url, project_id, Path(out), remote))
        print(seconds, _peak_rss())
        return
    results = run()
    body = table(results)
    print(body)
    write_section(NAME, body)


if __name__ == "__main__":
    main()
