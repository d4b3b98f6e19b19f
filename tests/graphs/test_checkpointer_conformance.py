"""TTLCheckpointer against LangGraph's checkpointer conformance suite.

Run with ``-s`` to see the suite's progress and report.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from builder.graphs.checkpointer import TTLCheckpointer
from builder.settings import Settings


async def test_passes_the_langgraph_conformance_suite(
    migrated_db_url: str, settings: Settings
) -> None:
    @checkpointer_test(name="TTLCheckpointer")
    async def ttl_checkpointer() -> AsyncIterator[TTLCheckpointer]:
        async with TTLCheckpointer.from_settings(migrated_db_url, settings) as saver:
            yield saver

    report = await validate(ttl_checkpointer, progress=ProgressCallbacks.default())
    report.print_report()

    assert report.passed_all_base()
    outcome = {
        name: (result.detected, result.passed, result.tests_failed, result.failures)
        for name, result in report.results.items()
    }
    # prune is AsyncPostgresSaver's own; delete_for_runs and copy_thread it does not have.
    assert outcome == {
        "put": (True, True, 0, []),
        "put_writes": (True, True, 0, []),
        "get_tuple": (True, True, 0, []),
        "list": (True, True, 0, []),
        "delete_thread": (True, True, 0, []),
        "prune": (True, True, 0, []),
        "delete_for_runs": (False, None, 0, []),
        "copy_thread": (False, None, 0, []),
    }
    passed = {name: r.tests_passed for name, r in report.results.items() if r.detected}
    print(f"tests passed per capability: {passed} (total {sum(passed.values())})")
    # The suite went through the TTL layer: its threads have live contexts.
    dsn = migrated_db_url.replace("postgresql+psycopg://", "postgresql://", 1)
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cursor = await conn.execute("SELECT count(*) FROM threads WHERE expires_at > now()")
        row = await cursor.fetchone()
    assert row is not None and row[0] > 0
