"""Run events through Redis, so any process can follow a run and cancel it.

A run's events live in the :class:`~builder.runs.events.RunStream` of the process that
runs it. With ``BUILDER_REDIS_URL`` set, :class:`RunFanout` copies each stream to a
Redis Stream and carries cancel requests between processes.

* **Keys.** ``<prefix>run:<run id>:events`` holds the run's events as JSON;
  ``<prefix>run:<run id>:graph`` holds LangGraph's own stream parts, serialised the way
  checkpoints are (msgpack) and rebuilt only as the types LangGraph deems safe
  (messages, ``Send``, ``Interrupt``, …). Entry ids are ``<seq>-1``, so a reader resumes
  after any position with one ``XREAD``; a finished stream ends with an entry holding
  ``end``. A stream keeps about :data:`~builder.runs.events.REPLAY_EVENTS` entries
  (``MAXLEN ~``), like the in-process buffer, and expires an hour after its last write.
* **Writing never slows the run.** The run only appends to its in-process stream; a
  background task per stream sends what is new in one pipelined round trip,
  at most one every :data:`_LINGER_SECONDS` (the events of a step arrive together, so
  they go together: a round trip per step rather than per event).
  When Redis fails, a :class:`~builder.circuit.Circuit` opens (the cache's cool-down):
  one warning is logged, nothing touches the network until the cool-down has passed,
  then the writer catches up from the in-process buffer. Local readers never notice.
* **Reading.** :meth:`RunFanout.follow` replays a stream after any position and
  follows it with ``XREAD BLOCK`` until the end entry. After every quiet
  ``block_seconds`` it asks the caller whether the run has ended (its row in the
  database) and checks that the stream still exists, so a run whose process died, or
  whose writer gave up during an outage, does not hold a reader for ever.
* **Queued runs.** While a run waits in the queue, the process that started it adds
  ``queued`` events (its position) to both its streams (:meth:`RunFanout.note_queued`),
  marked as notes. The worker that claims the run fences them off first
  (:meth:`RunFanout.claim_notes`, one script: no note lands after the claim) and numbers
  its own events after the last note, so a reader sees the notes and then the run, each
  seq once, whichever process worked the run.
* **Cancelling.** :meth:`RunFanout.request_cancel` sets ``<prefix>run:<run id>:cancel``
  to a request token for a few minutes and publishes ``<run id> <token>`` on
  ``<prefix>runs:cancel``. Every process
  listens there (:meth:`RunFanout.listen`) and cancels the run if it is its own; a
  process that lost its subscription checks the keys of its runs when it subscribes
  again, so a request made meanwhile still arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from functools import partial
from typing import Literal, TypeVar, cast

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.typing import EncodableT, FieldT

from builder.circuit import REDIS_ERRORS, UNAVAILABLE, Circuit, Unavailable, redis_options
from builder.errors import DependencyUnavailable
from builder.log import get_logger
from builder.runs.events import REPLAY_EVENTS, RunEvent, RunStream
from builder.settings import Settings

__all__ = ["Channel", "RemoteStream", "RunFanout"]

Channel = Literal["events", "graph"]
"""``events``: a run's :class:`RunEvent` s; ``graph``: LangGraph's stream parts."""

T = TypeVar("T")
Entry = tuple[bytes, dict[bytes, bytes]]
_log = get_logger("builder.runs.fanout")
_BATCH = 500
_BATCH_BYTES = 1024 * 1024
_KEEP_SECONDS = 3600
_CANCEL_SECONDS = 300
_BLOCK_SECONDS = 5.0
_END_ATTEMPTS = 3
_FLUSH_SECONDS = 2.0
_LINGER_SECONDS = 0.1
# Whoever can write to Redis must not be able to make this process build arbitrary
# objects: only the types LangGraph lists as safe are rebuilt.
_SERDE = JsonPlusSerializer(allowed_msgpack_modules=None)


# Adds a queued run's notes, unless a worker has claimed the run (its fence is set).
# KEYS: fence, then a stream per note; ARGV: maxlen, keep seconds, then per note its
# entry id, its field count and fields. A run's first note replaces what a stream held.
_NOTE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local i = 3
for k = 2, #KEYS do
  local id, n = ARGV[i], tonumber(ARGV[i + 1])
  if string.sub(id, 1, 2) == '0-' then redis.call('DEL', KEYS[k]) end
  local command = {'XADD', KEYS[k], 'MAXLEN', '~', ARGV[1], id}
  for j = 1, n do command[#command + 1] = ARGV[i + 1 + j] end
  redis.call(unpack(command))
  redis.call('EXPIRE', KEYS[k], ARGV[2])
  i = i + 2 + n
end
return 1
"""

# Sets a claimed run's fence and answers, per stream, the seq of its last entry when
# that is a note (-1 otherwise). KEYS: fence, then streams; ARGV: the fence's seconds.
_CLAIM_NOTES_SCRIPT = """
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
local out = {}
for k = 2, #KEYS do
  local seq = -1
  local last = redis.call('XREVRANGE', KEYS[k], '+', '-', 'COUNT', 1)
  if #last > 0 then
    local fields = last[1][2]
    for j = 1, #fields, 2 do
      if fields[j] == 'q' then seq = tonumber(string.match(last[1][1], '^(%d+)')) end
    end
  end
  out[#out + 1] = seq
end
return out
"""


def _seq(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


def _fields(event: RunEvent, channel: Channel) -> dict[str, str | bytes]:
    fields: dict[str, str | bytes] = {"type": event.type, "at": repr(event.at)}
    try:
        if channel == "events":
            fields["enc"] = "json"
            fields["data"] = json.dumps(event.data, default=str, separators=(",", ":"))
        else:
            fields["enc"], fields["data"] = _SERDE.dumps_typed(event.data)
    except (TypeError, ValueError) as exc:
        # Keep the position (readers number what they receive) without the content.
        _log.warning("fanout.unserializable", type=event.type, error=str(exc)[:200])
        fields["enc"], fields["data"] = "lost", b""
    return fields


def _event(entry_id: bytes, fields: dict[bytes, bytes]) -> RunEvent | None:
    encoding = fields.get(b"enc", b"").decode()
    if encoding == "lost":
        return None
    raw = fields.get(b"data", b"")
    try:
        data = json.loads(raw) if encoding == "json" else _SERDE.loads_typed((encoding, raw))
    except (TypeError, ValueError, NotImplementedError) as exc:
        _log.warning("fanout.unreadable", entry=entry_id.decode(), error=str(exc)[:200])
        return None
    return RunEvent(
        type=fields[b"type"].decode(), data=data, seq=_seq(entry_id), at=float(fields[b"at"])
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RunFanout:
    """Runs' event streams in Redis, and cancel requests between processes.

    Args:
        redis_url: The Redis every process shares.
        prefix: Prefix of every key and channel (``BUILDER_REDIS_KEY_PREFIX``).
        timeout: Seconds one connect or command may take (``BUILDER_REDIS_TIMEOUT``).
        cooldown: Seconds Redis is left alone after a failure.
        maxlen: About how many entries a run's stream keeps.
        keep_seconds: Seconds a stream lives after its last write.
        block_seconds: Longest wait of one blocking read; how often a quiet reader
            checks whether its run has ended.
    """

    def __init__(
        self,
        *,
        redis_url: str,
        prefix: str = "builder:",
        timeout: float = 0.1,
        cooldown: float = 10.0,
        maxlen: int = REPLAY_EVENTS,
        keep_seconds: int = _KEEP_SECONDS,
        block_seconds: float = _BLOCK_SECONDS,
    ) -> None:
        self.prefix = prefix
        self.timeout = timeout
        self.maxlen = maxlen
        self.keep_seconds = keep_seconds
        self.block_seconds = block_seconds
        self.circuit = Circuit(cooldown, name="fanout")
        self._redis = Redis.from_url(redis_url, **redis_options(timeout))
        # Blocking reads and the cancel subscription wait up to block_seconds for an
        # answer: they get connections whose reads may take that long.
        self._blocking = Redis.from_url(
            redis_url, **{**redis_options(timeout), "socket_timeout": block_seconds + 4 * timeout}
        )
        self._writers: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._note_script = self._redis.register_script(_NOTE_SCRIPT)
        self._claim_script = self._redis.register_script(_CLAIM_NOTES_SCRIPT)

    @classmethod
    def from_settings(cls, settings: Settings) -> RunFanout | None:
        """The fan-out ``BUILDER_REDIS_*`` describe, or None without a Redis URL."""
        if settings.redis_url is None:
            return None
        return cls(
            redis_url=settings.redis_url,
            prefix=settings.redis_key_prefix,
            timeout=settings.redis_timeout,
            cooldown=settings.cache_cooldown_seconds,
        )

    def key(self, run_id: str, channel: Channel) -> str:
        """The Redis key of a run's stream."""
        return f"{self.prefix}run:{run_id}:{channel}"

    @property
    def _cancel_channel(self) -> str:
        return f"{self.prefix}runs:cancel"

    def _cancel_key(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}:cancel"

    def _fence_key(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}:claimed"

    # --- the process that started a queued run ------------------------------------------
    async def note_queued(self, notes: dict[str, list[tuple[Channel, RunEvent]]]) -> set[str]:
        """Add queued runs' notes (their ``queued`` events) to their streams, in one round
        trip; a run a worker has claimed meanwhile gets none.

        Args:
            notes: By run id, the events to add and the stream of each, numbered where
                that stream's next event is.

        Returns:
            The run ids whose notes were added (none when Redis is unreachable).
        """
        if not notes:
            return set()
        ids = list(notes)

        async def send(redis: Redis) -> list[object]:
            pipe: Pipeline
            async with redis.pipeline(transaction=False) as pipe:
                for run_id in ids:
                    keys = [self._fence_key(run_id)]
                    args: list[EncodableT] = [self.maxlen, self.keep_seconds]
                    for channel, event in notes[run_id]:
                        keys.append(self.key(run_id, channel))
                        fields = {**_fields(event, channel), "q": "1"}
                        args.extend([f"{event.seq}-1", 2 * len(fields)])
                        for name, value in fields.items():
                            args.extend([name, value])
                    await self._note_script(keys=keys, args=args, client=pipe)
                return cast(list[object], await pipe.execute())

        answers = await self._call(send)
        if isinstance(answers, Unavailable):
            return set()
        return {run_id for run_id, added in zip(ids, answers, strict=True) if added == 1}

    # --- the worker that claims a run started elsewhere -----------------------------------
    async def claim_notes(self, run_id: str, channels: list[Channel]) -> dict[Channel, int]:
        """Fence a claimed run's streams off its starter's notes; the seq of each stream's
        last note (-1: it ends with none, or Redis is unreachable)."""
        keys = [self._fence_key(run_id), *(self.key(run_id, channel) for channel in channels)]

        async def fence(redis: Redis) -> list[int]:
            answer = await self._claim_script(keys=keys, args=[self.keep_seconds], client=redis)
            return [int(seq) for seq in cast(list[int], answer)]

        seqs = await self._call(fence)
        if isinstance(seqs, Unavailable):
            return dict.fromkeys(channels, -1)
        return dict(zip(channels, seqs, strict=True))

    # --- the process that runs the run ------------------------------------------------------
    def mirror(
        self, run_id: str, stream: RunStream, *, channel: Channel, replace: bool = True
    ) -> None:
        """Copy ``stream`` to Redis in the background until it closes; never waits.

        A stream left in Redis under the same run id (a run resumed after a crash) is
        replaced, unless ``replace`` is False: a run taken over by another worker goes
        on appending to it (its stream numbered on from :meth:`last_seq`).
        """
        task = asyncio.create_task(
            self._mirror(self.key(run_id, channel), stream, channel, replace),
            name=f"fanout-{channel}-{run_id}",
        )
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)

    async def last_seq(self, run_id: str, *, channel: Channel = "events") -> int:
        """The seq of the last event of a run's stream in Redis (-1: none, or unreachable)."""
        key = self.key(run_id, channel)

        async def newest(redis: Redis) -> list[Entry]:
            return cast(list[Entry], await redis.xrevrange(key, count=2))

        entries = await self._call(newest)
        if isinstance(entries, Unavailable):
            return -1
        for entry_id, fields in entries:
            if b"end" not in fields:
                return _seq(entry_id)
        return -1

    async def _mirror(self, key: str, stream: RunStream, channel: Channel, replace: bool) -> None:
        written = -1
        fresh, unsure = replace, not replace
        failures_at_end = 0
        while True:
            batch = await stream.next_events(after=written, limit=_BATCH)
            if not batch and stream.handed_over:
                return  # another worker goes on with the run, appending to this stream
            send = partial(self._append, key=key, channel=channel, batch=batch)
            last = await self._call(partial(send, fresh=fresh, unsure=unsure))
            if isinstance(last, Unavailable):
                unsure = True
                if stream.closed:
                    failures_at_end += 1
                    if failures_at_end >= _END_ATTEMPTS:
                        return  # readers end by the run's record instead
                await asyncio.sleep(self.circuit.cooldown)
                continue
            fresh = unsure = False
            if not batch:
                return
            if last == batch[-1].seq and not stream.closed:
                await asyncio.sleep(_LINGER_SECONDS)  # let the step's other events come
            written = last

    async def _append(
        self,
        redis: Redis,
        *,
        key: str,
        channel: Channel,
        batch: list[RunEvent],
        fresh: bool,
        unsure: bool,
    ) -> int:
        """Append ``batch`` (or, when empty, the end entry); returns the last seq sent."""
        end = not batch
        if unsure and not fresh:
            # The previous attempt may have been applied with its answer lost.
            newest = cast(list[Entry], await redis.xrevrange(key, count=1))
            if newest and b"end" in newest[0][1]:
                return batch[-1].seq if batch else -1
            if newest and batch:
                done = _seq(newest[0][0])
                if batch[-1].seq <= done:
                    return batch[-1].seq
                batch = [e for e in batch if e.seq > done]
        last, size = -1, 0
        pipe: Pipeline
        # Only a replacement needs MULTI/EXEC (no reader may see the old stream's end
        # after the delete). Appends need none: entries are added in seq order, so one
        # cut short leaves a prefix, which the next attempt finds (``unsure``).
        async with redis.pipeline(transaction=fresh) as pipe:
            if fresh:
                pipe.delete(key)
            for event in batch:
                fields = _fields(event, channel)
                size += sum(len(value) for value in fields.values())
                entry: dict[FieldT, EncodableT] = dict(fields.items())
                pipe.xadd(key, entry, id=f"{event.seq}-1", maxlen=self.maxlen)
                last = event.seq
                if size >= _BATCH_BYTES:
                    break
            if end:
                # An automatic id sorts after every ``<seq>-1``.
                pipe.xadd(key, {"end": "1"}, maxlen=self.maxlen)
            pipe.expire(key, self.keep_seconds)
            await pipe.execute()
        return last

    def listen(
        self, on_cancel: Callable[[str], bool], *, runs: Callable[[], Iterable[str]]
    ) -> None:
        """Hear cancel requests from every process until :meth:`aclose`.

        Args:
            on_cancel: Cancels a run if it is this process's; says whether it was.
            runs: The ids of this process's runs in progress.
        """
        if self._listener is None:
            self._listener = asyncio.create_task(
                self._listen(on_cancel, runs), name="fanout-cancels"
            )

    async def _listen(
        self, on_cancel: Callable[[str], bool], runs: Callable[[], Iterable[str]]
    ) -> None:
        while True:
            pubsub = self._blocking.pubsub()
            try:
                async with asyncio.timeout(4 * self.timeout):
                    await pubsub.subscribe(self._cancel_channel)
                    # Requests made while this process was not subscribed.
                    ids = list(runs())
                    keys = [self._cancel_key(run_id) for run_id in ids]
                    flags: list[bytes | str | None] = await self._redis.mget(keys) if keys else []
                self.circuit.succeeded()
                # A request made while subscribing is both flagged and published; its
                # token tells the message apart from a later request for the same run.
                seen: set[str] = set()
                for run_id, flag in zip(ids, flags, strict=True):
                    if flag is not None:
                        seen.add(_text(flag))
                        await self._cancelled(on_cancel, run_id)
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=self.block_seconds
                    )
                    if message is not None and message["type"] == "message":
                        run_id, _, token = _text(message["data"]).partition(" ")
                        if token in seen:
                            seen.discard(token)
                            continue
                        await self._cancelled(on_cancel, run_id)
            except REDIS_ERRORS as exc:
                self.circuit.failed(exc)
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    # redis-py before 8.2 leaves it untyped.
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            await asyncio.sleep(self.circuit.cooldown)

    async def _cancelled(self, on_cancel: Callable[[str], bool], run_id: str) -> None:
        if on_cancel(run_id):
            _log.info("fanout.cancel_received", run_id=run_id)
            key = self._cancel_key(run_id)
            await self._call(lambda redis: redis.delete(key))

    # --- any process ----------------------------------------------------------------------------
    async def follow(
        self,
        run_id: str,
        *,
        channel: Channel = "events",
        after: int = -1,
        ended: Callable[[], Awaitable[bool]] | None = None,
    ) -> RemoteStream:
        """A run's stream in Redis: the entries after ``after``, then live ones.

        Args:
            run_id: The run, in whichever process runs it.
            channel: Which of its streams.
            after: The last seq the reader has (-1: from the start).
            ended: Says whether the run has ended (by its record); asked when the stream
                is quiet, so a reader stops even when no end entry will come.

        Raises:
            DependencyUnavailable: Redis cannot be reached.
        """
        key = self.key(run_id, channel)
        position = f"{after}-1" if after >= 0 else "0-0"
        first = await self._call(partial(self._read, key=key, position=position, block=False))
        if isinstance(first, Unavailable):
            raise DependencyUnavailable(
                "redis", "Redis cannot be reached to follow a run of another server process"
            )
        gone = not first and ended is not None and await ended()
        return RemoteStream(self, key, position, [] if gone else first, ended, over=gone)

    async def request_cancel(self, run_id: str) -> None:
        """Ask the process running ``run_id`` to cancel it at its next step boundary.

        Raises:
            DependencyUnavailable: Redis cannot be reached.
        """

        async def send(redis: Redis) -> None:
            pipe: Pipeline
            async with redis.pipeline(transaction=False) as pipe:
                token = uuid.uuid4().hex
                pipe.set(self._cancel_key(run_id), token, ex=_CANCEL_SECONDS)
                pipe.publish(self._cancel_channel, f"{run_id} {token}")
                await pipe.execute()

        if isinstance(await self._call(send), Unavailable):
            raise DependencyUnavailable(
                "redis", "Redis cannot be reached to cancel a run of another server process"
            )

    async def aclose(self) -> None:
        """Stop listening, let the writers flush briefly, close the connections."""
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        writers = list(self._writers)
        if writers:
            await asyncio.wait(writers, timeout=_FLUSH_SECONDS)
            for task in writers:
                task.cancel()
            await asyncio.gather(*writers, return_exceptions=True)
        await self._redis.aclose()
        await self._blocking.aclose()

    # --- internals ----------------------------------------------------------------------------
    async def _read(self, redis: Redis, *, key: str, position: str, block: bool) -> list[Entry]:
        reply = await redis.xread(
            {key: position},
            count=_BATCH,
            block=int(self.block_seconds * 1000) if block else None,
        )
        return cast(list[tuple[bytes, list[Entry]]], reply)[0][1] if reply else []

    async def _wait_for_entries(self, key: str, position: str) -> list[Entry] | Unavailable:
        # Not through the circuit: a probe that blocks for seconds would hold the
        # half-open circuit that long. A failure still opens it for everyone.
        try:
            async with asyncio.timeout(self.block_seconds + 8 * self.timeout):
                entries = await self._read(self._blocking, key=key, position=position, block=True)
        except REDIS_ERRORS as exc:
            self.circuit.failed(exc)
            return UNAVAILABLE
        self.circuit.succeeded()
        return entries

    async def _call(self, operation: Callable[[Redis], Awaitable[T]]) -> T | Unavailable:
        # The socket timeouts bound each read and connect; this bounds the whole call.
        return await self.circuit.call(lambda: operation(self._redis), timeout=self.timeout * 4)


class RemoteStream:
    """A run's stream read from Redis (see :meth:`RunFanout.follow`).

    Iterate it for the run's events in order; it ends at the stream's end entry, or
    when the run has ended (or its stream expired) without one.
    """

    def __init__(
        self,
        fanout: RunFanout,
        key: str,
        position: str,
        entries: list[Entry],
        ended: Callable[[], Awaitable[bool]] | None,
        *,
        over: bool = False,
    ) -> None:
        self._fanout = fanout
        self._key = key
        self._position = position
        self._entries = entries
        self._ended = ended
        self._over = over
        self.complete = False
        """True once the stream's end entry has been read."""

    def __aiter__(self) -> AsyncIterator[RunEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[RunEvent]:
        fanout, key = self._fanout, self._key
        entries, position = self._entries, self._position
        seen = bool(entries)
        while not self._over:
            for entry_id, fields in entries:
                position = entry_id.decode()
                if b"end" in fields:
                    self.complete = True
                    return
                event = _event(entry_id, fields)
                if event is not None:
                    yield event
            waited = await fanout._wait_for_entries(key, position)
            if isinstance(waited, Unavailable):
                entries = []
                if not await self._run_ended():
                    await asyncio.sleep(fanout.circuit.cooldown)
                continue
            entries = waited
            if entries:
                seen = True
            elif await self._run_ended() or (seen and await self._expired()):
                return

    async def _run_ended(self) -> bool:
        self._over = self._ended is not None and await self._ended()
        return self._over

    async def _expired(self) -> bool:
        key = self._key
        exists = await self._fanout._call(lambda redis: redis.exists(key))
        return exists == 0
