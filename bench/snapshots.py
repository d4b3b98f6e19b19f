"""Saving and restoring a version: delta snapshots vs one JSONB document of all files.

A 50 MB project of 2,000 files; each round edits 5 files and saves. The baseline is the
design builder replaces: every file in one JSONB column, rewritten on every save. Both
run in one temporary database, interleaved round by round, and are measured the same
way: wall time, the WAL the server wrote (``pg_current_wal_insert_lsn`` before and
after; the server is shared, so medians), and the growth of the tables on disk.

Run ``python -m bench.snapshots``; the table goes into docs/benchmarks.md between the
``bench:snapshots`` markers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.report import create_database, drop_database, write_section
from builder.persistence import (
    Database,
    create_project,
    get_or_create_user,
    restore_snapshot,
    save_snapshot,
    tree,
    upgrade_database,
)
from builder.sandbox.local import LocalSandbox
from builder.settings import Settings

NAME = "snapshots"
FILES = 2_000
TOTAL_BYTES = 50 * 1024 * 1024
EDITED = 5
ROUNDS = 5


@dataclass
class Cost:
    seconds: float
    wal_bytes: int
    table_bytes: int


def _content(seed: int, size: int) -> bytes:
    raw = base64.b64encode(os.urandom(size))[:size]
    return f"/* file {seed} */\n".encode() + raw


def _project_files() -> dict[str, bytes]:
    size = TOTAL_BYTES // FILES
    return {f"src/dir{i % 40}/file{i}.js": _content(i, size) for i in range(FILES)}


def _scalar(conn: psycopg.Connection[Any], sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def _sizes(conn: psycopg.Connection[Any], tables: list[str]) -> int:
    return sum(_scalar(conn, f"SELECT pg_total_relation_size('{t}')") for t in tables)


async def _measure(
    conn: psycopg.Connection[Any], tables: list[str], work: Callable[[], Awaitable[Any]]
) -> Cost:
    wal = _scalar(conn, "SELECT pg_current_wal_insert_lsn()")
    size = _sizes(conn, tables)
    started = time.perf_counter()
    await work()
    seconds = time.perf_counter() - started
    wal_bytes = _scalar(conn, f"SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '{wal}')")
    return Cost(seconds, int(wal_bytes), _sizes(conn, tables) - size)


async def run() -> dict[str, list[Cost]]:
    name, url = create_database()
    work_dir = Path(tempfile.mkdtemp(prefix="bench-snapshots-"))
    settings = Settings(data_dir=work_dir, timeout_db=600)
    db = Database(url, settings=settings)
    results: dict[str, list[Cost]] = {
        "save_ours": [],
        "save_json": [],
        "restore_ours": [],
        "restore_json": [],
        "tree_ours": [],
        "tree_json": [],
    }
    try:
        await upgrade_database(db)
        files = _project_files()
        user = await get_or_create_user(db, name="bench")
        project = await create_project(db, user_id=user.id, name="bench")
        await save_snapshot(db, project_id=project.id, changes=files)
        conn = psycopg.connect(url, autocommit=True)
        conn.execute("CREATE TABLE bench_project_files (id int PRIMARY KEY, files jsonb NOT NULL)")
        document = {path: data.decode() for path, data in files.items()}
        with conn.transaction():
            conn.execute(
                "INSERT INTO bench_project_files VALUES (1, %s)",
                (psycopg.types.json.Jsonb(document),),
            )
        ours = ["blobs", "snapshots", "snapshot_entries"]
        paths = sorted(files)
        for round_ in range(ROUNDS):
            edits = {
                paths[(round_ * 397 + k * 101) % FILES]: _content(-k, TOTAL_BYTES // FILES)
                for k in range(EDITED)
            }

            async def save_ours(edits: dict[str, bytes] = edits) -> None:
                await save_snapshot(db, project_id=project.id, changes=edits)

            async def save_json(edits: dict[str, bytes] = edits) -> None:
                document.update({p: d.decode() for p, d in edits.items()})
                # The original design: serialise and rewrite the whole document.
                with conn.transaction():
                    conn.execute(
                        "UPDATE bench_project_files SET files = %s WHERE id = 1",
                        (psycopg.types.json.Jsonb(document),),
                    )

            results["save_ours"].append(await _measure(conn, ours, save_ours))
            results["save_json"].append(await _measure(conn, ["bench_project_files"], save_json))

            target = work_dir / "workspaces"

            async def restore_ours(round_: int = round_) -> None:
                sandbox = LocalSandbox(f"ours{round_}", settings=settings)
                await restore_snapshot(db, project_id=project.id, sandbox=sandbox)
                await sandbox.close()

            async def restore_json(round_: int = round_) -> None:
                sandbox = LocalSandbox(f"json{round_}", settings=settings)
                row = conn.execute("SELECT files FROM bench_project_files WHERE id = 1").fetchone()
                assert row is not None
                for path, text in row[0].items():
                    await sandbox.write_file(path, text.encode())
                await sandbox.close()

            async def tree_ours() -> None:
                await tree(db, project_id=project.id)

            async def tree_json() -> None:
                # What the original did to list a project's files: load the document.
                row = conn.execute("SELECT files FROM bench_project_files WHERE id = 1").fetchone()
                assert row is not None
                json.dumps(sorted(row[0]))

            results["restore_ours"].append(await _measure(conn, [], restore_ours))
            results["restore_json"].append(await _measure(conn, [], restore_json))
            results["tree_ours"].append(await _measure(conn, [], tree_ours))
            results["tree_json"].append(await _measure(conn, [], tree_json))
            shutil.rmtree(target, ignore_errors=True)
        conn.close()
    finally:
        await db.dispose()
        shutil.rmtree(work_dir, ignore_errors=True)
        drop_database(name)
    return results


def _median(costs: list[Cost], attr: str) -> float:
    return statistics.median(getattr(c, attr) for c in costs)


def _mib(n: float) -> str:
    return f"{n / 1024 / 1024:,.2f} MiB" if n >= 1024 * 1024 else f"{n / 1024:,.0f} KiB"


def table(results: dict[str, list[Cost]]) -> str:
    def row(label: str, key: str, attr: str, fmt: Callable[[float], str]) -> str:
        json_v, ours_v = (
            _median(results[f"{key}_json"], attr),
            _median(results[f"{key}_ours"], attr),
        )
        ratio = f"{json_v / ours_v:,.{0 if json_v >= 10 * ours_v else 2}f}×"
        return f"| {label} | {fmt(json_v)} | {fmt(ours_v)} | {ratio} |"

    def ms(s: float) -> str:
        return f"{s * 1000:,.1f} ms"

    lines = [
        "## Snapshots: a save costs what changed",
        "",
        f"A project of {FILES:,} files, {TOTAL_BYTES // 1024 // 1024} MB in all; each round "
        f"edits {EDITED} files and saves. *JSONB document* is the replaced design (all "
        "files in one JSONB column, rewritten on every save); *delta snapshots* is "
        "builder's (content-addressed blobs plus one entry per changed path). Medians "
        f"of {ROUNDS} interleaved rounds of `python -m bench.snapshots` in one temporary "
        f"database on {platform.system()} {platform.machine()}, Python "
        f"{platform.python_version()}. WAL is measured server-wide on a shared server, so "
        "small values carry other sessions' noise.",
        "",
        "| Measure | JSONB document | Delta snapshots | JSONB ÷ delta |",
        "| --- | ---: | ---: | ---: |",
        row("Save after editing 5 files: time", "save", "seconds", ms),
        row("Save after editing 5 files: WAL written", "save", "wal_bytes", _mib),
        row("Save after editing 5 files: table growth", "save", "table_bytes", _mib),
        row("Restore every file into an empty workspace", "restore", "seconds", ms),
        row("List the latest version's files", "tree", "seconds", ms),
        "",
        "Restores write through the same `LocalSandbox` on both sides, so the difference "
        "is reading: blobs in bounded batches against one 50 MB document. Table growth "
        "is counted in 8 KiB pages and includes TOAST.",
    ]
    return "\n".join(lines)


def main() -> None:
    body = table(asyncio.run(run()))
    print(body)
    write_section(NAME, body)


if __name__ == "__main__":
    main()
