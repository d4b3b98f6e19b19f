"""A frozen database costs each call no more than its budget: one deadline for the
whole call, retries included.

The database is reached through a TCP proxy running in its own process, and that
process is stopped with SIGSTOP: to the client it is a server that accepts
connections and never answers, as a frozen PostgreSQL is — while the machine's shared
PostgreSQL keeps serving the other tests. Without the whole-call deadline a call waits
for the driver's own timeouts, once per retry attempt, and fails with some other error
long after its budget; with it the call fails with ``OperationTimeout`` naming its
budget.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from builder.errors import OperationTimeout
from builder.persistence.database import Database
from builder.settings import Settings
from tests.support.services import PG_ADMIN_URL, create_database, drop_database

BUDGET = 2.0
pytestmark = pytest.mark.slow

_PROXY = """
import sys, threading
from tests.http.proxy import TcpProxy
proxy = TcpProxy((sys.argv[1], int(sys.argv[2])))
print(proxy.port, flush=True)
threading.Event().wait()
"""


@pytest.fixture
def proxied_url() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    url = create_database("frozen")
    host_port = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = subprocess.Popen(
        [sys.executable, "-c", _PROXY, host, port], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proxy.stdout is not None
        local = int(proxy.stdout.readline())
        yield url.replace(host_port, f"127.0.0.1:{local}", 1), proxy
    finally:
        proxy.send_signal(signal.SIGCONT)
        proxy.kill()
        proxy.wait()
        if proxy.stdout is not None:
            proxy.stdout.close()
        drop_database(url)


async def test_every_call_ends_within_its_budget_when_the_server_freezes(
    proxied_url: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, proxy = proxied_url
    db = Database(url, settings=Settings(database_url=url, timeout_db=BUDGET, data_dir=tmp_path))

    async def write(session: AsyncSession) -> None:
        await session.execute(text("CREATE TABLE IF NOT EXISTS t (v int)"))
        await session.execute(text("INSERT INTO t VALUES (1)"))

    async def read(session: AsyncSession) -> int:
        return int((await session.execute(text("SELECT count(*) FROM t"))).scalar_one())

    await db.run(write)
    assert await db.run(read) == 1
    proxy.send_signal(signal.SIGSTOP)
    try:
        for name, call in (
            ("write", lambda: db.run(write)),
            ("read", lambda: db.run(read)),
            ("readiness ping", lambda: db.ping(seconds=1.0)),
        ):
            started = time.monotonic()
            with pytest.raises(OperationTimeout) as caught:
                await call()
            print(f"\n{name}: {caught.value.message} after {time.monotonic() - started:.1f} s")
            assert caught.value.operation == "db"
            assert caught.value.seconds == (1.0 if name == "readiness ping" else BUDGET)
    finally:
        proxy.send_signal(signal.SIGCONT)
    assert await db.run(read) == 1  # thawed: the pool recovers
    await db.dispose()
