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


def test_without_a_database_compare_and_swap_alone_loses_nothing(tmp_path: Path) -> None:
    # Three processes, each with its own in-process lock manager (no database, as in the
    # README's library example): only the flock-guarded check-and-rename keeps them apart.
    workload = Workload(str(tmp_path), None, 3, 4, 100)
    outcome = run(workload)
    print(f"\nflock: {outcome.present} of {workload.total} kept, {len(outcome.errors)} retried")
    assert outcome.missing == 0
    assert outcome.present + len(outcome.errors) == workload.total


def test_without_the_flock_compare_and_swap_across_processes_loses_edits(tmp_path: Path) -> None:
    workload = Workload(str(tmp_path), None, 3, 4, 100, atomic_swap=False)
    outcome = run(workload)
    print(f"\nno flock: {outcome.missing} of {workload.total} lost")
    assert outcome.missing > 0
