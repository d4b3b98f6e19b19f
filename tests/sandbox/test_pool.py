"""SandboxPool: bounded, LRU eviction of idle sandboxes only, health-checked, one per project."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pytest
from pydantic import SecretStr

import builder.sandbox.pool as pool_module
from builder.errors import ConfigurationError, DependencyUnavailable, InvalidInput
from builder.sandbox import LocalSandbox, Sandbox, SandboxPool, create_sandbox
from builder.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tracked(LocalSandbox):
    """A real local sandbox that records when it is closed."""

    def __init__(self, project_id: str, *, settings: Settings, events: list[tuple[str, str]]):
        super().__init__(project_id, settings=settings)
        self.events = events

    async def close(self) -> None:
        self.events.append(("close", self.project_id))
        await super().close()


@dataclass
class Harness:
    settings: Settings
    clock: Clock = field(default_factory=Clock)
    events: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    fail: bool = False

    async def factory(self, project_id: str) -> Sandbox:
        self.events.append(("create", project_id))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("backend down")
        return Tracked(project_id, settings=self.settings, events=self.events)

    async def restore(self, sandbox: Sandbox) -> None:
        self.events.append(("restore", sandbox.project_id))
        await sandbox.write_file("restored.txt", b"from the snapshot")

    def pool(self, max_size: int = 2, **kwargs: Any) -> SandboxPool:
        return SandboxPool(
            self.factory,
            max_size=max_size,
            idle_seconds=60,
            on_create=self.restore,
            clock=self.clock,
            **kwargs,
        )


@pytest.fixture
def harness(settings: Settings) -> Harness:
    return Harness(settings)


async def lease_once(pool: SandboxPool, project_id: str) -> Sandbox:
    async with pool.lease(project_id) as sandbox:
        return sandbox


async def test_a_lease_creates_restores_and_reuses(harness: Harness) -> None:
    pool = harness.pool()
    first = await lease_once(pool, "a")
    second = await lease_once(pool, "a")
    assert first is second
    assert await first.read_file("restored.txt") == b"from the snapshot"
    assert harness.events == [("create", "a"), ("restore", "a")]
    assert (len(pool), pool.in_use("a")) == (1, False)
    await pool.close()


async def test_a_full_pool_closes_the_least_recently_used_idle_sandbox(harness: Harness) -> None:
    pool = harness.pool(max_size=2)
    await lease_once(pool, "a")
    harness.clock.now += 1
    await lease_once(pool, "b")
    harness.clock.now += 1
    await lease_once(pool, "a")  # a is now the most recently used
    harness.clock.now += 1
    harness.events.clear()
    await lease_once(pool, "c")
    assert harness.events == [("close", "b"), ("create", "c"), ("restore", "c")]
    assert (len(pool), pool.project_ids()) == (2, ["a", "c"])
    await pool.close()


async def test_sandboxes_in_use_are_never_evicted(harness: Harness) -> None:
    pool = harness.pool(max_size=2, acquire_timeout=0.2)
    async with pool.lease("a") as held:
        harness.clock.now += 1
        await lease_once(pool, "b")
        harness.clock.now += 1
        async with pool.lease("c"):  # a is older but held: b goes
            assert pool.project_ids() == ["a", "c"]
            with pytest.raises(DependencyUnavailable) as caught:
                await lease_once(pool, "d")
            assert caught.value.dependency == "sandbox pool"
            assert "all 2 sandboxes are in use" in str(caught.value)
        assert ("close", "a") not in harness.events
        assert await held.health() is True
    await pool.close()


async def test_a_waiting_lease_gets_the_place_a_release_frees(harness: Harness) -> None:
    pool = harness.pool(max_size=1, acquire_timeout=30)
    async with pool.lease("a"):
        waiting = asyncio.create_task(lease_once(pool, "b"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
    sandbox = await waiting
    assert sandbox.project_id == "b"
    assert harness.events[-3:] == [("close", "a"), ("create", "b"), ("restore", "b")]
    await pool.close()


async def test_sweep_closes_only_sandboxes_idle_past_the_timeout(harness: Harness) -> None:
    pool = harness.pool(max_size=3)
    await lease_once(pool, "old")
    harness.clock.now += 50
    await lease_once(pool, "recent")
    async with pool.lease("held"):
        harness.clock.now += 100
        assert await pool.sweep_idle() == ["old", "recent"]
        assert pool.project_ids() == ["held"]
    harness.clock.now += 59
    assert await pool.sweep_idle() == []
    harness.clock.now += 1
    assert await pool.sweep_idle() == ["held"]
    assert [e for e in harness.events if e[0] == "close"] == [
        ("close", "old"),
        ("close", "recent"),
        ("close", "held"),
    ]


async def test_an_unhealthy_sandbox_is_recreated_and_restored(harness: Harness) -> None:
    pool = harness.pool()
    broken = await lease_once(pool, "a")
    assert isinstance(broken, LocalSandbox)
    shutil.rmtree(broken.root)  # the workspace vanished: health() is False
    harness.events.clear()
    fresh = await lease_once(pool, "a")
    assert fresh is not broken
    assert harness.events == [("close", "a"), ("create", "a"), ("restore", "a")]
    assert await fresh.read_file("restored.txt") == b"from the snapshot"
    await pool.close()


async def test_invalidate_forces_a_new_sandbox(harness: Harness) -> None:
    pool = harness.pool()
    first = await lease_once(pool, "a")
    pool.invalidate("a")
    assert await lease_once(pool, "a") is not first
    await pool.close()


async def test_concurrent_leases_of_one_project_share_one_sandbox(harness: Harness) -> None:
    harness.delay = 0.05
    pool = harness.pool()
    sandboxes = await asyncio.gather(*(lease_once(pool, "a") for _ in range(10)))
    assert len({id(s) for s in sandboxes}) == 1
    assert harness.events == [("create", "a"), ("restore", "a")]
    await pool.close()


class _NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


async def test_without_the_per_project_lock_two_sandboxes_are_made(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shows the lock is what prevents duplicate creation."""

    @dataclass(eq=False)
    class UnlockedSlot(pool_module._Slot):
        lock: Any = field(default_factory=_NoLock)

    monkeypatch.setattr(pool_module, "_Slot", UnlockedSlot)
    harness.delay = 0.05
    pool = harness.pool()
    await asyncio.gather(*(lease_once(pool, "a") for _ in range(3)))
    assert harness.events.count(("create", "a")) == 3
    await pool.close()


async def test_a_failed_creation_frees_its_place(harness: Harness) -> None:
    pool = harness.pool(max_size=1)
    harness.fail = True
    with pytest.raises(DependencyUnavailable, match="could not create a sandbox for a"):
        await lease_once(pool, "a")
    assert len(pool) == 0
    harness.fail = False
    assert (await lease_once(pool, "b")).project_id == "b"
    await pool.close()


async def test_a_failed_restore_closes_the_new_sandbox(harness: Harness) -> None:
    async def broken_restore(sandbox: Sandbox) -> None:
        raise DependencyUnavailable("database")

    pool = SandboxPool(harness.factory, max_size=1, idle_seconds=60, on_create=broken_restore)
    with pytest.raises(DependencyUnavailable, match="database"):
        await lease_once(pool, "a")
    assert (harness.events, len(pool)) == ([("create", "a"), ("close", "a")], 0)


async def test_release_without_a_lease_is_refused(harness: Harness) -> None:
    pool = harness.pool()
    await lease_once(pool, "a")
    with pytest.raises(InvalidInput, match="not leased"):
        await pool.release("a")
    await pool.close()


async def test_from_settings_uses_the_configured_backend(settings: Settings) -> None:
    pool = SandboxPool.from_settings(
        settings.model_copy(update={"sandbox_pool_size": 3, "sandbox_idle_seconds": 42})
    )
    assert (pool.max_size, pool.idle_seconds) == (3, 42)
    async with pool.lease("proj-1") as sandbox:
        assert isinstance(sandbox, LocalSandbox)
        assert sandbox.root == (settings.data_dir / "workspaces" / "proj-1").resolve()
    await pool.close()


async def test_create_sandbox_picks_the_backend(settings: Settings) -> None:
    local = await create_sandbox(settings, "proj-1")
    assert isinstance(local, LocalSandbox)
    no_key = settings.model_copy(update={"sandbox_backend": "e2b"})
    with pytest.raises(ConfigurationError, match="BUILDER_E2B_API_KEY"):
        await create_sandbox(no_key, "proj-1")
    with pytest.raises(InvalidInput):
        await create_sandbox(no_key.model_copy(update={"e2b_api_key": SecretStr("k")}), "../escape")
