"""No lost updates: many processes and tasks run edit_file on one file at once.

Real processes, real Postgres advisory locks, the real local sandbox. The same workload
with the guards removed (no locks, no compare-and-swap) must lose lines, which proves
the test can fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools.contention import Workload, run

PROCESSES, TASKS, EDITS = 4, 8, 250


@pytest.mark.slow
def test_locked_edits_lose_nothing(pg_url: str, tmp_path: Path) -> None:
    workload = Workload(str(tmp_path), pg_url, PROCESSES, TASKS, EDITS)
    outcome = run(workload)
    print(f"\nguarded: {outcome.present} of {workload.total} lines kept in {outcome.seconds:.1f} s")
    assert (outcome.errors, outcome.missing, outcome.present) == ([], 0, 8000)


@pytest.mark.slow
def test_without_locks_and_compare_and_swap_edits_are_lost(tmp_path: Path) -> None:
    workload = Workload(str(tmp_path), None, PROCESSES, TASKS, EDITS, guarded=False)
    outcome = run(workload)
    print(
        f"\nunguarded: {outcome.present} of {workload.total} lines kept, {outcome.missing} "
        f"lost, {len(outcome.errors)} edits failed, in {outcome.seconds:.1f} s"
    )
    assert outcome.missing > 0
    assert outcome.present + outcome.missing + len(outcome.errors) == 8000


CAS_PROCESSES, CAS_EDITS = 3, 400


@pytest.mark.slow
def test_compare_and_swap_alone_loses_nothing_between_processes(tmp_path: Path) -> None:
    """No database lock (the library example's ``LockManager(None)``): three processes
    edit one file and only the workspace's compare-and-swap keeps them apart."""
    workload = Workload(str(tmp_path), None, CAS_PROCESSES, 1, CAS_EDITS)
    outcome = run(workload)
    print(f"\ncompare-and-swap: {outcome.present} kept, {len(outcome.errors)} refused")
    assert outcome.missing == 0
    assert outcome.present + len(outcome.errors) == CAS_PROCESSES * CAS_EDITS


@pytest.mark.slow
def test_without_the_cross_process_lock_compare_and_swap_loses_edits(tmp_path: Path) -> None:
    """The twin: check and replace as two steps between processes lose updates."""
    workload = Workload(str(tmp_path), None, CAS_PROCESSES, 1, CAS_EDITS, flock=False)
    outcome = run(workload)
    print(f"\nwithout flock: {outcome.missing} of {workload.total} edits lost")
    assert outcome.missing > 0
