"""Retry policies: transient failures are retried and logged, others never."""

from __future__ import annotations

import psycopg
import pytest
from structlog.testing import capture_logs

from builder.retry import (
    db_retry,
    db_retry_after_first,
    is_retryable_provider_error,
    is_transient_db_error,
    provider_retry,
)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


class FakeProviderError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


def test_real_serialization_failure_is_retried_until_it_succeeds(pg_url: str) -> None:
    url = _plain(pg_url)
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)")
        setup.execute("INSERT INTO counter VALUES (1, 0)")
    attempts: list[int] = []

    @db_retry(initial=0.001, maximum=0.01)
    def increment() -> None:
        attempts.append(1)
        with psycopg.connect(url) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            (n,) = conn.execute("SELECT n FROM counter WHERE id = 1").fetchone()  # type: ignore[misc]
            if len(attempts) == 1:  # a concurrent writer commits between our read and write
                with psycopg.connect(url, autocommit=True) as other:
                    other.execute("UPDATE counter SET n = n + 100 WHERE id = 1")
            conn.execute("UPDATE counter SET n = %s WHERE id = 1", (n + 1,))

    with capture_logs() as logs:
        increment()
    assert len(attempts) == 2
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT n FROM counter").fetchone() == (101,)
    (event,) = [e for e in logs if e["event"] == "retry.attempt"]
    assert event["policy"] == "db" and event["error"] == "SerializationFailure"


def test_unique_violation_is_not_retried(pg_url: str) -> None:
    url = _plain(pg_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    calls: list[int] = []

    @db_retry(initial=0.001)
    def insert_twice() -> None:
        calls.append(1)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING")
            conn.execute("INSERT INTO t VALUES (1)")

    with capture_logs() as logs, pytest.raises(psycopg.errors.UniqueViolation):
        insert_twice()
    assert calls == [1]
    assert not [e for e in logs if e["event"].startswith("retry.")]


async def test_unreachable_database_is_retried_then_given_up_with_an_alert() -> None:
    calls: list[int] = []

    @db_retry(attempts=3, initial=0.001, maximum=0.01)
    async def connect() -> None:
        calls.append(1)
        conn = await psycopg.AsyncConnection.connect(
            "postgresql://postgres@127.0.0.1:1/x", connect_timeout=1
        )
        await conn.close()  # pragma: no cover - nothing listens on port 1

    with capture_logs() as logs, pytest.raises(psycopg.OperationalError):
        await connect()
    assert len(calls) == 3
    assert [e["event"] for e in logs] == ["retry.attempt", "retry.attempt", "retry.gave_up"]
    assert logs[-1]["attempts"] == 3 and logs[-1]["log_level"] == "error"


@pytest.mark.parametrize(
    ("status", "retried"),
    [(429, True), (500, True), (503, True), (400, False), (401, False), (404, False)],
)
async def test_provider_policy_retries_rate_limits_and_5xx_only(status: int, retried: bool) -> None:
    calls: list[int] = []

    @provider_retry(attempts=3, initial=0.001, maximum=0.01)
    async def call_model() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise FakeProviderError(status)
        return "ok"

    if retried:
        assert await call_model() == "ok"
        assert len(calls) == 3
    else:
        with pytest.raises(FakeProviderError):
            await call_model()
        assert calls == [1]


def test_classifiers() -> None:
    assert is_transient_db_error(psycopg.errors.DeadlockDetected())
    assert is_transient_db_error(psycopg.errors.SerializationFailure())
    assert is_transient_db_error(psycopg.errors.AdminShutdown())  # server restarting
    assert is_transient_db_error(psycopg.errors.ConnectionFailure())  # 08006
    assert not is_transient_db_error(psycopg.errors.UniqueViolation())
    assert not is_transient_db_error(ValueError("x"))
    assert is_retryable_provider_error(FakeProviderError(429))
    assert not is_retryable_provider_error(FakeProviderError(422))
    assert not is_retryable_provider_error(KeyError("x"))


async def test_a_hot_path_pays_for_the_retry_policy_only_after_a_transient_failure() -> None:
    calls: list[str] = []

    @db_retry_after_first(initial=0.001)
    async def write(kind: str) -> str:
        calls.append(kind)
        if kind == "transient" and len(calls) < 3:
            raise psycopg.errors.SerializationFailure()
        if kind == "broken":
            raise psycopg.errors.UniqueViolation()
        return "written"

    assert await write("fine") == "written" and calls == ["fine"]
    calls.clear()
    with capture_logs() as logs:
        assert await write("transient") == "written"
    assert calls == ["transient"] * 3  # the bare attempt, then the policy's two
    assert [e["policy"] for e in logs if e.get("policy")] == ["db"]
    calls.clear()
    with pytest.raises(psycopg.errors.UniqueViolation):
        await write("broken")
    assert calls == ["broken"]
