"""Run events through real Redis: order, replay, bounds, expiry, outages and cancels."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from langchain_core.messages import AIMessageChunk
from structlog.testing import capture_logs

from builder.errors import DependencyUnavailable
from builder.persistence.database import Database
from builder.persistence.projects import create_project
from builder.persistence.users import get_or_create_user
from builder.runs.events import RunEvent, RunStream
from builder.runs.fanout import RunFanout
from builder.runs.service import RunService
from builder.settings import Settings
from tests.http.server import free_port

COOLDOWN = 0.3


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def fanouts(redis_url: str, redis_prefix: str) -> AsyncIterator[Callable[..., RunFanout]]:
    """Fan-outs on the test's prefix, as separate processes would have them."""
    made: list[RunFanout] = []

    def make(**options: Any) -> RunFanout:
        options = {"redis_url": redis_url, "prefix": redis_prefix, "cooldown": COOLDOWN, **options}
        fanout = RunFanout(**options)
        made.append(fanout)
        return fanout

    yield make
    for fanout in made:
        await fanout.aclose()


async def _publish(stream: RunStream, count: int) -> list[RunEvent]:
    events = [await stream.publish("token", text=f"t{i}", n=i) for i in range(count)]
    return [*events, await stream.publish("run_finished", status="success")]


async def _drain(stream: Any) -> list[RunEvent]:
    return [event async for event in stream]


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until ``check()`` holds (for at most a minute)."""
    for _ in range(3000):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


async def _finished(fanout: RunFanout) -> None:
    """Wait for the fan-out's writers to end."""
    await asyncio.gather(*fanout._writers)


async def test_a_stream_is_copied_in_order_and_replayed_from_any_position(
    fanouts: Callable[..., RunFanout],
) -> None:
    owner, other = fanouts(), fanouts()
    stream = RunStream()
    owner.mirror("r1", stream, channel="events")
    published = await _publish(stream, 20)
    await stream.close()
    await _finished(owner)

    everything = await other.follow("r1")
    assert await _drain(everything) == published
    assert everything.complete
    assert await _drain(await other.follow("r1", after=14)) == published[15:]
    assert await _drain(await other.follow("r1", after=20)) == []


async def test_a_reader_follows_a_live_run_to_its_end(fanouts: Callable[..., RunFanout]) -> None:
    owner, other = fanouts(), fanouts()
    stream = RunStream()
    owner.mirror("r2", stream, channel="events")
    follower = await other.follow("r2")  # before anything was published
    reading = asyncio.create_task(_drain(follower))
    published = []
    for i in range(5):
        published.append(await stream.publish("token", text=str(i)))
        await asyncio.sleep(0.05)  # spread out, so the reader waits between events
    published += await _publish(stream, 3)
    await stream.close()
    assert await reading == published


async def test_langgraph_parts_come_back_as_messages(fanouts: Callable[..., RunFanout]) -> None:
    owner, other = fanouts(), fanouts()
    stream = RunStream()
    owner.mirror("r3", stream, channel="graph")
    chunk = AIMessageChunk(content="Hel", id="m1")
    await stream.publish("messages", chunk=(chunk, {"langgraph_node": "agent"}))
    await stream.publish("updates", chunk={"agent": {"run_steps": 1}})
    await stream.close()
    [messages, updates] = await _drain(await other.follow("r3", channel="graph"))
    message, metadata = messages.data["chunk"]
    assert isinstance(message, AIMessageChunk) and message == chunk
    assert metadata == {"langgraph_node": "agent"}
    assert (updates.type, updates.data) == ("updates", {"chunk": {"agent": {"run_steps": 1}}})


async def test_only_safe_types_are_rebuilt_from_redis(
    fanouts: Callable[..., RunFanout], raw: redis.asyncio.Redis, settings: Settings
) -> None:
    # Settings is a pydantic model like the messages, but not one LangGraph lists as safe:
    # an entry someone wrote into Redis must not construct it.
    owner, other = fanouts(), fanouts()
    stream = RunStream()
    owner.mirror("r4", stream, channel="graph")
    await stream.publish("custom", chunk=settings)
    await stream.close()
    [event] = await _drain(await other.follow("r4", channel="graph"))
    assert not isinstance(event.data["chunk"], Settings)
    assert event.data["chunk"]["max_steps"] == settings.max_steps


async def test_a_stream_is_bounded_and_expires(
    fanouts: Callable[..., RunFanout], raw: redis.asyncio.Redis
) -> None:
    owner = fanouts(maxlen=100, keep_seconds=600)
    stream = RunStream()
    owner.mirror("r5", stream, channel="events")
    published = await _publish(stream, 999)
    await stream.close()
    await _finished(owner)
    key = owner.key("r5", "events")
    length = await raw.xlen(key)
    assert 100 <= length <= 300  # MAXLEN ~ trims whole nodes: about the bound
    assert 590 <= await raw.ttl(key) <= 600
    kept = await _drain(await fanouts().follow("r5"))
    assert kept == published[-len(kept) :] and len(kept) == length - 1  # the newest, and the end


async def test_a_resumed_run_replaces_the_stream_left_by_its_crashed_attempt(
    fanouts: Callable[..., RunFanout], raw: redis.asyncio.Redis
) -> None:
    owner = fanouts()
    key = owner.key("r6", "events")
    for seq in range(5):
        await raw.xadd(
            key, {"type": "token", "at": "1.0", "enc": "json", "data": "{}"}, id=f"{seq}-1"
        )
    stream = RunStream()
    owner.mirror("r6", stream, channel="events")
    published = await _publish(stream, 2)
    await stream.close()
    await _finished(owner)
    assert await _drain(await fanouts().follow("r6")) == published


async def test_redis_down_at_publish_time_does_not_disturb_the_run(
    fanouts: Callable[..., RunFanout],
) -> None:
    dead = fanouts(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    stream = RunStream()
    with capture_logs() as logs:
        dead.mirror("r7", stream, channel="events")
        local = asyncio.create_task(_drain(stream.subscribe()))
        published = await _publish(stream, 50)
        await stream.close()
        assert await local == published
        await _finished(dead)  # it gives up a few cool-downs after the end
    warnings = [log for log in logs if log["event"] == "fanout.redis_unavailable"]
    assert [w["log_level"] for w in warnings] == ["warning"]
    # One attempt per cool-down, not one per event: the circuit breaker held the rest.
    assert dead.circuit.openings <= 4
    with pytest.raises(DependencyUnavailable):
        await dead.follow("r7")
    with pytest.raises(DependencyUnavailable):
        await dead.request_cancel("r7")


class _Switch:
    """A TCP proxy to Redis that can be turned off (every connection dropped) and on."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.on = True
        self._pairs: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> _Switch:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.on:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._pairs |= {writer, up_writer}

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def off(self) -> None:
        self.on = False
        for writer in self._pairs:
            writer.close()
        self._pairs.clear()

    async def aclose(self) -> None:
        self.off()
        if self._server is not None:
            self._server.close()


async def test_the_writer_catches_up_after_an_outage(
    fanouts: Callable[..., RunFanout], raw: redis.asyncio.Redis, redis_url: str
) -> None:
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    switch = await _Switch(int(port)).start()
    try:
        owner = fanouts(redis_url=redis_url.replace(f":{port}/", f":{switch.port}/"))
        key = owner.key("r8", "events")
        stream = RunStream()
        with capture_logs() as logs:
            owner.mirror("r8", stream, channel="events")
            before = await _publish(stream, 3)

            async def copied() -> bool:
                return await raw.xlen(key) == len(before)

            await _until(copied)
            switch.off()
            during = [await stream.publish("token", text=f"d{i}") for i in range(30)]

            async def failed() -> bool:
                return owner.circuit.openings > 0

            await _until(failed)
            switch.on = True
            after = [await stream.publish("token", text="after")]
            await stream.close()
            assert await _drain(await fanouts().follow("r8")) == [*before, *during, *after]
        assert [log["event"] for log in logs if log["log_level"] == "warning"] == [
            "fanout.redis_unavailable"
        ]
    finally:
        await switch.aclose()


async def test_a_reader_stops_when_the_run_ended_without_an_end_entry(
    fanouts: Callable[..., RunFanout], raw: redis.asyncio.Redis
) -> None:
    reader = fanouts(block_seconds=0.2)
    key = reader.key("r9", "events")
    await raw.xadd(
        key, {"type": "token", "at": "1.0", "enc": "json", "data": '{"text":"a"}'}, id="0-1"
    )
    checks = 0

    async def ended() -> bool:
        nonlocal checks
        checks += 1
        return checks >= 2

    events = await _drain(await reader.follow("r9", ended=ended))
    assert [(e.type, e.data, e.seq) for e in events] == [("token", {"text": "a"}, 0)]
    assert checks == 2
    # A stream that is gone and a run that has ended: nothing to wait for.
    gone = await reader.follow("nothing", ended=ended)
    assert await _drain(gone) == [] and not gone.complete


async def test_a_cancel_reaches_the_process_running_the_run(
    fanouts: Callable[..., RunFanout], raw: redis.asyncio.Redis, redis_prefix: str
) -> None:
    owner, other = fanouts(), fanouts()
    heard: list[str] = []

    def cancel(run_id: str) -> bool:
        heard.append(run_id)
        return True

    # Asked before the owner listens: the key still delivers it when it subscribes.
    await other.request_cancel("early")
    owner.listen(cancel, runs=lambda: ["early", "mine"])
    channel = f"{redis_prefix}runs:cancel"

    async def subscribed() -> bool:
        return dict(await raw.pubsub_numsub(channel)).get(channel.encode(), 0) > 0

    async def both_heard() -> bool:
        return len(heard) == 2

    async def keys_removed() -> bool:
        keys = [f"{redis_prefix}run:{run_id}:cancel" for run_id in heard]
        return await raw.exists(*keys) == 0

    await _until(subscribed)
    await other.request_cancel("mine")
    await _until(both_heard)
    assert heard == ["early", "mine"]
    # Each key is removed once its run is cancelled: a later resume under the id is not.
    await _until(keys_removed)


async def test_a_cancel_asked_while_the_owner_subscribes_is_heard_once(
    fanouts: Callable[..., RunFanout], redis_url: str, redis_prefix: str
) -> None:
    """A request between SUBSCRIBE and the key check is both flagged and published."""
    owner, other = fanouts(), fanouts()
    heard: list[str] = []
    asker = redis.Redis.from_url(redis_url)

    def runs() -> list[str]:
        # Another process asks at this very moment, as request_cancel does.
        asker.set(f"{redis_prefix}run:mid:cancel", "t1", ex=60)
        asker.publish(f"{redis_prefix}runs:cancel", "mid t1")
        return ["mid", "later"]

    def cancel(run_id: str) -> bool:
        heard.append(run_id)
        return True

    try:
        owner.listen(cancel, runs=runs)

        async def heard_later() -> bool:
            return heard[-1:] == ["later"]

        await _until(lambda: asyncio.sleep(0, bool(heard)))
        await other.request_cancel("later")
        await _until(heard_later)
        # A new request for the same run (a resumed attempt) is still heard.
        await other.request_cancel("mid")
        await _until(lambda: asyncio.sleep(0, len(heard) == 3))
        assert heard == ["mid", "later", "mid"]
    finally:
        asker.close()


async def test_a_run_service_with_redis_publishes_every_event(
    db: Database, settings: Settings, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    configured = settings.model_copy(
        update={"redis_url": redis_url, "redis_key_prefix": redis_prefix}
    )
    user = await get_or_create_user(db, name="alice")
    project = await create_project(db, user_id=user.id, name="bakery")
    async with RunService.open(configured, db=db, model="scripted:demo") as service:
        assert service.fanout is not None
        handle = await service.start(user_id=user.id, project_id=project.id, prompt="A site")
        remote = await service.fanout.follow(handle.run_id)
        local = [event async for event in handle.events()]
        assert await _drain(remote) == local
        assert local[-1].type == "run_finished" and local[-1].data["status"] == "success"


async def test_a_run_service_with_redis_down_runs_as_without_it(
    db: Database, settings: Settings
) -> None:
    configured = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_port()}/0", "cache_cooldown_seconds": 60}
    )
    user = await get_or_create_user(db, name="alice")
    project = await create_project(db, user_id=user.id, name=str(uuid.uuid4()))
    with capture_logs() as logs:
        async with RunService.open(configured, db=db, model="scripted:demo") as service:
            handle = await service.start(user_id=user.id, project_id=project.id, prompt="A site")
            events = [event async for event in handle.events()]
            result = await handle.wait()
    assert result.status == "success"
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[-1].type == "run_finished"
    assert [log["event"] for log in logs].count("fanout.redis_unavailable") == 1
