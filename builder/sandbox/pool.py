"""A bounded pool of live sandboxes, one per project.

``async with pool.lease(project_id) as sandbox:`` hands out the project's sandbox,
creating it on first use, and marks it in use until the block ends. The pool holds at
most ``max_size`` sandboxes:

* a new one needs a free place; when there is none, the least recently used sandbox
  that nobody holds is closed to make room;
* when every sandbox is in use, the caller waits up to ``acquire_timeout`` seconds for
  one to be released, then gets ``DependencyUnavailable("sandbox pool")`` — the pool
  is a capacity limit of this process, not a fault of the request;
* :meth:`SandboxPool.sweep_idle` closes sandboxes nobody has held for ``idle_seconds``;
* a sandbox that fails its health check when it is leased (an E2B sandbox that
  expired, a workspace directory that vanished) is closed and recreated through the
  factory, and the ``on_create`` hook runs for every new sandbox — that is where the
  project's latest snapshot is restored into it.

Creation runs outside the pool's lock, one creation per project at a time: concurrent
leases of one project wait for the same sandbox instead of making two. (A generic LRU
cache such as cachetools' does not fit: eviction here must skip sandboxes in use and
await their ``close()``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from builder.errors import BuilderError, DependencyUnavailable, InvalidInput
from builder.log import get_logger
from builder.sandbox.base import Sandbox
from builder.sandbox.factory import create_sandbox
from builder.settings import Settings

__all__ = ["OnCreate", "SandboxFactory", "SandboxPool"]

SandboxFactory = Callable[[str], Awaitable[Sandbox]]
"""Makes a new sandbox for a project id."""
OnCreate = Callable[[Sandbox], Awaitable[None]]
"""Runs once for every new sandbox before it is handed out (restore files here)."""

log = get_logger(__name__)


@dataclass(eq=False)
class _Slot:
    project_id: str
    last_used: float
    sandbox: Sandbox | None = None
    leases: int = 0
    stale: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SandboxPool:
    """Live sandboxes keyed by project id, at most ``max_size`` of them.

    Args:
        factory: Makes a sandbox for a project id.
        max_size: Most sandboxes held at once.
        idle_seconds: How long a sandbox nobody holds is kept by :meth:`sweep_idle`.
        on_create: Awaited with every new sandbox before it is handed out.
        acquire_timeout: Seconds to wait for a free place when every sandbox is in use.
        health_timeout: Seconds a health check may take before it counts as failed.
        clock: Monotonic time source (seconds).
    """

    def __init__(
        self,
        factory: SandboxFactory,
        *,
        max_size: int,
        idle_seconds: float,
        on_create: OnCreate | None = None,
        acquire_timeout: float = 30.0,
        health_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_size < 1:
            raise InvalidInput("a sandbox pool needs room for at least one sandbox")
        self._factory = factory
        self.max_size = max_size
        self.idle_seconds = idle_seconds
        self._on_create = on_create
        self._acquire_timeout = acquire_timeout
        self._health_timeout = health_timeout
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._changed = asyncio.Condition()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        factory: SandboxFactory | None = None,
        on_create: OnCreate | None = None,
    ) -> SandboxPool:
        """A pool sized by ``sandbox_pool_size`` and ``sandbox_idle_seconds``.

        Without ``factory``, sandboxes come from :func:`create_sandbox` with
        ``settings``; a full pool is waited on for ``timeout_sandbox`` seconds.
        """

        async def default_factory(project_id: str) -> Sandbox:
            return await create_sandbox(settings, project_id)

        return cls(
            factory or default_factory,
            max_size=settings.sandbox_pool_size,
            idle_seconds=settings.sandbox_idle_seconds,
            on_create=on_create,
            acquire_timeout=settings.timeout_sandbox,
        )

    def __len__(self) -> int:
        return len(self._slots)

    def project_ids(self) -> list[str]:
        """Projects with a sandbox in the pool, least recently used first."""
        return [s.project_id for s in sorted(self._slots.values(), key=lambda s: s.last_used)]

    def in_use(self, project_id: str) -> bool:
        """Whether someone holds the project's sandbox."""
        slot = self._slots.get(project_id)
        return slot is not None and slot.leases > 0

    @contextlib.asynccontextmanager
    async def lease(self, project_id: str) -> AsyncIterator[Sandbox]:
        """Hold the project's sandbox for the duration of the block."""
        sandbox = await self.acquire(project_id)
        try:
            yield sandbox
        finally:
            await self.release(project_id)

    async def acquire(self, project_id: str) -> Sandbox:
        """The project's sandbox, created or recreated as needed; pair with :meth:`release`.

        Raises:
            DependencyUnavailable: Every place is held for ``acquire_timeout`` seconds,
                or the factory failed.
        """
        slot, was_idle, evicted = await self._reserve(project_id)
        if evicted is not None:
            await _close(evicted, "evicted to make room")
        try:
            async with slot.lock:
                # Only a sandbox that sat idle is checked: one in use was just
                # created or checked by whoever holds it.
                if (
                    slot.sandbox is None
                    or slot.stale
                    or (was_idle and not await self._healthy(slot))
                ):
                    await self._replace(slot)
                assert slot.sandbox is not None
                return slot.sandbox
        except BaseException:
            await self.release(project_id)
            raise

    async def release(self, project_id: str) -> None:
        """Mark one hold of the project's sandbox as over."""
        async with self._changed:
            slot = self._slots.get(project_id)
            if slot is None:
                return  # the pool was closed while it was held
            if slot.leases == 0:
                raise InvalidInput(f"the sandbox of {project_id} is not leased")
            slot.leases -= 1
            slot.last_used = self._clock()
            if slot.leases == 0 and slot.sandbox is None:
                del self._slots[project_id]  # creation failed; free the place
            self._changed.notify_all()

    def invalidate(self, project_id: str) -> None:
        """Have the project's sandbox recreated on its next lease (it misbehaved)."""
        slot = self._slots.get(project_id)
        if slot is not None:
            slot.stale = True

    async def discard(self, project_id: str) -> bool:
        """Close the project's sandbox now, with its processes (its project is gone).

        A sandbox someone still holds is only marked stale: it is closed when the next
        lease replaces it, or when the pool closes.

        Returns:
            True when a sandbox was closed.
        """
        async with self._changed:
            slot = self._slots.get(project_id)
            if slot is None:
                return False
            if slot.leases:
                slot.stale = True
                return False
            del self._slots[project_id]
            self._changed.notify_all()
        if slot.sandbox is None:
            return False
        await _close(slot.sandbox, "project deleted")
        return True

    async def sweep_idle(self) -> list[str]:
        """Close sandboxes nobody has held for ``idle_seconds``; returns their projects."""
        now = self._clock()
        async with self._changed:
            idle = [
                s
                for s in self._slots.values()
                if s.leases == 0 and now - s.last_used >= self.idle_seconds
            ]
            for slot in idle:
                del self._slots[slot.project_id]
            self._changed.notify_all()
        for slot in idle:
            if slot.sandbox is not None:
                await _close(slot.sandbox, "idle")
        return [slot.project_id for slot in idle]

    async def close(self) -> None:
        """Close every sandbox, held or not (at shutdown)."""
        async with self._changed:
            slots = list(self._slots.values())
            self._slots.clear()
            self._changed.notify_all()
        for slot in slots:
            if slot.sandbox is not None:
                await _close(slot.sandbox, "pool closed")

    # --- internals ---------------------------------------------------------------
    async def _reserve(self, project_id: str) -> tuple[_Slot, bool, Sandbox | None]:
        """Hold the project's slot, making one (and room for it) if needed.

        Returns:
            The slot, whether it was idle before, and a sandbox evicted to make room
            (for the caller to close outside the lock).
        """
        deadline = time.monotonic() + self._acquire_timeout
        async with self._changed:
            while True:
                slot = self._slots.get(project_id)
                if slot is not None:
                    slot.leases += 1
                    slot.last_used = self._clock()
                    return slot, slot.leases == 1, None
                evicted: Sandbox | None = None
                if len(self._slots) >= self.max_size:
                    victim = self._least_recently_used_idle()
                    if victim is None:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or not await self._wait(remaining):
                            raise DependencyUnavailable(
                                "sandbox pool",
                                f"all {self.max_size} sandboxes are in use; retry shortly",
                            )
                        continue
                    del self._slots[victim.project_id]
                    evicted = victim.sandbox
                slot = _Slot(project_id=project_id, last_used=self._clock(), leases=1)
                self._slots[project_id] = slot
                return slot, False, evicted

    async def _wait(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        except TimeoutError:
            return False
        return True

    def _least_recently_used_idle(self) -> _Slot | None:
        idle = [s for s in self._slots.values() if s.leases == 0]
        return min(idle, key=lambda s: s.last_used) if idle else None

    async def _healthy(self, slot: _Slot) -> bool:
        assert slot.sandbox is not None
        try:
            async with asyncio.timeout(self._health_timeout):
                return await slot.sandbox.health()
        except Exception:  # a health check that fails in any way means "not healthy"
            log.warning("sandbox health check failed", project_id=slot.project_id, exc_info=True)
            return False

    async def _replace(self, slot: _Slot) -> None:
        """Close the slot's sandbox (if any) and put a new one in, restored by on_create."""
        old, slot.sandbox = slot.sandbox, None
        if old is not None:
            await _close(old, "stale" if slot.stale else "unhealthy")
        try:
            sandbox = await self._factory(slot.project_id)
        except BuilderError:
            raise
        except Exception as exc:
            raise DependencyUnavailable(
                "sandbox", f"could not create a sandbox for {slot.project_id}: {exc}"
            ) from exc
        try:
            if self._on_create is not None:
                await self._on_create(sandbox)
        except BaseException:
            await _close(sandbox, "on_create failed")
            raise
        slot.sandbox, slot.stale = sandbox, False
        log.info("sandbox created", project_id=slot.project_id, sandbox_id=sandbox.sandbox_id)


async def _close(sandbox: Sandbox, reason: str) -> None:
    try:
        await sandbox.close()
    except Exception:  # closing is best effort; the sandbox is dropped either way
        log.warning("closing a sandbox failed", sandbox_id=sandbox.sandbox_id, exc_info=True)
    else:
        log.info("sandbox closed", sandbox_id=sandbox.sandbox_id, reason=reason)
