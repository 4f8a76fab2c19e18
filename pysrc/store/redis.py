"""Redis side of the store (redis-py asyncio): client factory, idempotency keys, the dead-letter
stream and a TTL cache.

* :class:`IdempotencyKeys`: a client order id is reserved with ``SET key <pending> NX EX 86400``
  before anything is sent (in a tiny Lua script that returns the current value when the key is
  taken, so a duplicate costs one round trip too). Exactly one caller gets the reservation; a repeat finds either the
  pending marker (and can wait for the first caller's result, polling with backoff, bounded by a
  timeout) or the stored result. Redis is the fast gate; PostgreSQL's unique ``order_link_id`` and
  ``idempotency_records`` are the durable ones (see ``docs/persistence.md``).
* :class:`RedisDeadLetters`: the Redis Stream dead-letter queue (mission section 8). ``put`` keeps
  the synchronous, never-blocking, never-raising signature of the feed's ``DeadLetterSink``
  protocol: it schedules the ``XADD`` on the event loop (or, from another thread, on the loop the
  sink is bound to) and keeps the entry in a bounded in-memory buffer if Redis cannot take it;
  ``flush()`` writes the buffer later. ``aput`` is the awaitable form. ``entries()`` reads
  (``XRANGE``) and ``replay()`` hands entries to a handler and deletes (``XDEL``) each one the
  handler accepted.
* :class:`RedisTTLCache`: JSON values with a TTL (instrument metadata: one hour or more), with
  single-flight loading per key in this process.

Use a client with ``decode_responses=False`` (what :func:`create_redis` returns): raw dead-letter
payloads are bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from .db import json_dumps
from .repositories import IdempotencyConflict

log = logging.getLogger(__name__)

DEFAULT_IDEMPOTENCY_TTL = 86_400
"""Mission section 6: client order ids are reserved for 24 hours."""
DEFAULT_CACHE_TTL = 3600.0
"""Mission section 2: instrument metadata is cached for at least one hour."""


async def create_redis(
    url: str,
    *,
    max_connections: int = 64,
    socket_timeout: float | None = 10.0,
    health_check_interval: float = 30.0,
    decode_responses: bool = False,
    ping: bool = True,
) -> aioredis.Redis:
    """A redis.asyncio client for ``url`` (``redis://``, ``rediss://`` or ``unix://``), checked with
    a PING unless ``ping=False``."""
    client = aioredis.from_url(
        url,
        max_connections=max_connections,
        socket_timeout=socket_timeout,
        health_check_interval=health_check_interval,
        decode_responses=decode_responses,
    )
    if ping:
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
    return client


# ---- idempotency keys ---------------------------------------------------------------------------

PENDING = "pending"
DONE = "done"
FAILED = "failed"


class IdempotencyTimeout(TimeoutError):
    """The first holder of a key did not finish within the wait."""


@dataclass(frozen=True, slots=True)
class KeyState:
    """What a key holds: ``status`` is ``pending`` (someone is working on it), ``done`` or
    ``failed`` (with ``result``)."""

    status: str
    result: Any = None
    request_hash: str | None = None
    owner: str | None = None
    at_ms: int = 0

    @property
    def finished(self) -> bool:
        return self.status != PENDING


@dataclass(frozen=True, slots=True)
class Reservation:
    """``acquired``: this caller holds the key and must ``complete`` (or ``release``) it.
    Otherwise ``state`` is what the first caller left: pending, or finished with its result."""

    key: str
    acquired: bool
    state: KeyState


def _encode_state(state: KeyState) -> bytes:
    # "s" first: release()'s script recognises a pending marker by its prefix.
    return json_dumps({"s": state.status, "h": state.request_hash, "o": state.owner, "t": state.at_ms,
                       "r": state.result})


def _decode_state(raw: bytes | str | None) -> KeyState | None:
    if raw is None:
        return None
    d = orjson.loads(raw)
    return KeyState(d.get("s", PENDING), d.get("r"), d.get("h"), d.get("o"), int(d.get("t") or 0))


_RESERVE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return nil
end
return redis.call('GET', KEYS[1])
"""

_RELEASE_PENDING = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 13) == '{"s":"pending' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class IdempotencyKeys:
    """Reserve-once keys in Redis: ``SET NX EX`` with a pending marker, then the result.

    ``prefix`` namespaces the keys; ``ttl`` (seconds) applies from the reservation and again from
    completion. Waiting polls ``GET`` with exponential backoff from ``poll_initial`` to
    ``poll_max``; a pub/sub wake-up would save a few milliseconds but needs a connection per waiter,
    and concurrent duplicates are rare.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str = "idem:",
        ttl: int = DEFAULT_IDEMPOTENCY_TTL,
        wait_timeout: float = 10.0,
        poll_initial: float = 0.002,
        poll_max: float = 0.1,
    ) -> None:
        if ttl < 1:
            raise ValueError("ttl must be >= 1 second")
        self.redis = redis
        self.prefix = prefix
        self.ttl = int(ttl)
        self.wait_timeout = wait_timeout
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self._release = redis.register_script(_RELEASE_PENDING)
        self._reserve = redis.register_script(_RESERVE)

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def reserve(self, key: str, *, request_hash: str | None = None, owner: str | None = None) -> Reservation:
        """Try to take ``key``. Raises :class:`IdempotencyConflict` when the key is held for a
        different request (``request_hash`` given on both sides and different)."""
        pending = KeyState(PENDING, None, request_hash, owner, int(time.time() * 1000))
        # One round trip: SET NX EX, or the current value if the key is taken (atomic script).
        current = await self._reserve(keys=[self._k(key)], args=[_encode_state(pending), self.ttl])
        if current is None:
            return Reservation(key, True, pending)
        state = _decode_state(current)
        assert state is not None
        if request_hash is not None and state.request_hash is not None and state.request_hash != request_hash:
            raise IdempotencyConflict(f"idempotency key {key!r} is held by a different request")
        return Reservation(key, False, state)

    async def complete(self, key: str, result: Any, *, failed: bool = False, request_hash: str | None = None,
                       owner: str | None = None) -> KeyState:
        """Store the outcome (``failed=True``: a definitive failure, e.g. a rejection, that a
        repeat must also get). The TTL restarts from now."""
        state = KeyState(FAILED if failed else DONE, result, request_hash, owner, int(time.time() * 1000))
        await self.redis.set(self._k(key), _encode_state(state), ex=self.ttl)
        return state

    async def get(self, key: str) -> KeyState | None:
        return _decode_state(await self.redis.get(self._k(key)))

    async def ttl_of(self, key: str) -> int:
        """Seconds left (Redis ``TTL``: -2 no key, -1 no expiry)."""
        return int(await self.redis.ttl(self._k(key)))

    async def release(self, key: str) -> bool:
        """Drop a *pending* reservation (the request certainly did not leave), so the operation can
        be tried again. A finished key is kept. True if something was released."""
        return bool(await self._release(keys=[self._k(key)]))

    async def wait(self, key: str, *, timeout: float | None = None) -> KeyState | None:
        """Wait until ``key`` is finished and return its state; None if it disappeared (released
        or expired) meanwhile. Raises :class:`IdempotencyTimeout` after ``timeout`` seconds
        (default ``wait_timeout``)."""
        limit = self.wait_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        delay = self.poll_initial
        while True:
            state = await self.get(key)
            if state is None or state.finished:
                return state
            left = deadline - time.monotonic()
            if left <= 0:
                raise IdempotencyTimeout(f"idempotency key {key!r} still pending after {limit}s")
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, self.poll_max)

    async def reserve_or_wait(
        self,
        key: str,
        *,
        request_hash: str | None = None,
        owner: str | None = None,
        timeout: float | None = None,
    ) -> Reservation:
        """Reserve ``key``; if another caller holds it, wait for its result. Returns either an
        acquired reservation or a finished state (the first caller's result)."""
        limit = self.wait_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            res = await self.reserve(key, request_hash=request_hash, owner=owner)
            if res.acquired or res.state.finished:
                return res
            state = await self.wait(key, timeout=max(0.0, deadline - time.monotonic()))
            if state is not None:
                return Reservation(key, False, state)
            # released by its holder: compete for it again


# ---- dead letters ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    id: str
    source: str
    raw: bytes | str
    error: str
    time: float
    """Seconds since the epoch when it was handed over."""


@dataclass(slots=True)
class ReplayReport:
    replayed: list[str] = field(default_factory=list)
    """Ids handled and deleted."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """``(id, error)`` of entries the handler refused; they stay in the stream."""


@dataclass(slots=True)
class _Item:
    source: str
    raw: bytes | str
    error: str
    at: float
    done: asyncio.Future[str] | None


def _s(v: bytes | str) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


class RedisDeadLetters:
    """Dead letters in a Redis Stream (``XADD ... MAXLEN ~ maxlen``), with inspect and replay.

    Implements the feed's ``DeadLetterSink`` protocol (``put(source, raw, error) -> None``).
    Entries are written in the order they were handed over by one writer task on the sink's event
    loop (pipelined in batches). If Redis refuses a batch, its entries move to a bounded in-memory
    buffer, retried before newer entries on the next write or by ``flush()`` (delivery is at least
    once: a batch that failed half-way can be written twice).

    Counters: ``count`` (every entry handed over), ``written``, ``buffered`` (in the in-memory
    buffer now), ``dropped`` (buffer overflow: lost, and logged).
    """

    BATCH = 256

    def __init__(
        self,
        redis: aioredis.Redis,
        stream: str = "bybit-bot:deadletters",
        *,
        maxlen: int | None = 100_000,
        fallback_capacity: int = 10_000,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.maxlen = maxlen
        self._queue: deque[_Item] = deque()
        self._fallback: deque[_Item] = deque()
        self._fallback_capacity = fallback_capacity
        self._writer: asyncio.Task[None] | None = None
        self._inbound = 0  # handed over from other threads, not yet queued
        self._loop = loop
        if self._loop is None:
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()
        self.count = 0
        self.written = 0
        self.dropped = 0

    @property
    def buffered(self) -> int:
        return len(self._fallback)

    # -- writing --

    def _fields(self, item: _Item) -> Any:
        raw = item.raw
        if isinstance(raw, (bytes, bytearray, memoryview)):
            kind, payload = b"b", bytes(raw)
        else:
            kind, payload = b"s", str(raw).encode("utf-8")
        return {"source": item.source, "raw": payload, "type": kind, "error": item.error, "time": repr(item.at)}

    def _keep(self, item: _Item) -> None:
        if len(self._fallback) >= self._fallback_capacity:
            self._fallback.popleft()
            self.dropped += 1
            log.error("dead-letter buffer full: oldest entry lost")
        self._fallback.append(item)

    def _enqueue(self, item: _Item, *, from_thread: bool = False) -> None:
        if from_thread:
            self._inbound -= 1
        self._queue.append(item)
        if self._writer is None or self._writer.done():
            loop = asyncio.get_running_loop()
            self._loop = loop
            self._writer = loop.create_task(self._drain())

    async def _write_batch(self, batch: list[_Item]) -> list[str]:
        pipe = self.redis.pipeline(transaction=False)
        for item in batch:
            if self.maxlen is None:
                pipe.xadd(self.stream, self._fields(item))
            else:
                pipe.xadd(self.stream, self._fields(item), maxlen=self.maxlen, approximate=True)
        ids = [_s(x) for x in await pipe.execute()]
        self.written += len(ids)
        return ids

    async def _drain(self) -> None:
        while self._queue:
            # Older, previously refused entries go first.
            batch: list[_Item] = []
            while self._fallback and len(batch) < self.BATCH:
                batch.append(self._fallback.popleft())
            while self._queue and len(batch) < self.BATCH:
                batch.append(self._queue.popleft())
            try:
                ids = await self._write_batch(batch)
            except Exception as exc:  # noqa: BLE001 - put() must never raise; keep them
                log.warning("%d dead letters kept in memory, Redis refused them: %s", len(batch), exc)
                for item in batch:
                    if item.done is not None and not item.done.done():
                        item.done.set_exception(exc)
                    else:
                        self._keep(item)
                continue
            for item, xid in zip(batch, ids, strict=True):
                if item.done is not None and not item.done.done():
                    item.done.set_result(xid)

    def put(self, source: str, raw: bytes | str, error: str) -> None:
        """Hand over an unusable message. Never blocks, never raises."""
        self.count += 1
        item = _Item(source, raw, error, time.time(), None)
        try:
            try:
                running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            loop = self._loop
            if running is not None and (loop is None or running is loop):
                self._enqueue(item)
            elif loop is not None and loop.is_running() and not loop.is_closed():
                self._inbound += 1
                try:
                    loop.call_soon_threadsafe(functools.partial(self._enqueue, item, from_thread=True))
                except RuntimeError:  # the loop closed meanwhile
                    self._inbound -= 1
                    self._keep(item)
            else:
                self._keep(item)  # no loop to write from: flush() writes it later
        except Exception:
            log.exception("dead letter from %s could not be scheduled; kept in memory", source)
            self._keep(item)

    async def aput(self, source: str, raw: bytes | str, error: str) -> str:
        """Write one entry (after those handed over before it); returns its stream id. Raises if
        Redis refuses it (it is then not kept)."""
        self.count += 1
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._enqueue(_Item(source, raw, error, time.time(), fut))
        return await fut

    async def flush(self) -> int:
        """Wait until everything handed over so far is written, then retry the in-memory buffer;
        returns how many entries are still buffered (0: all written)."""
        while self._inbound > 0 or self._queue or (self._writer is not None and not self._writer.done()):
            if self._writer is not None and not self._writer.done():
                await asyncio.shield(self._writer)
            else:
                await asyncio.sleep(0)
        while self._fallback:
            batch = [self._fallback.popleft() for _ in range(min(self.BATCH, len(self._fallback)))]
            try:
                await self._write_batch(batch)
            except Exception as exc:  # noqa: BLE001
                log.warning("dead-letter buffer still not writable: %s", exc)
                self._fallback.extendleft(reversed(batch))
                break
        return len(self._fallback)

    async def length(self) -> int:
        return int(await self.redis.xlen(self.stream))

    @staticmethod
    def _entry(xid: bytes | str, f: dict[Any, Any]) -> DeadLetterEntry:
        g = {_s(k): v for k, v in f.items()}
        raw_b = g.get("raw", b"")
        raw_b = raw_b if isinstance(raw_b, bytes) else str(raw_b).encode("utf-8")
        raw: bytes | str = raw_b if _s(g.get("type", b"b")) == "b" else raw_b.decode("utf-8", "replace")
        return DeadLetterEntry(_s(xid), _s(g.get("source", b"")), raw, _s(g.get("error", b"")),
                               float(_s(g.get("time", b"0"))))

    async def entries(self, *, start: str = "-", end: str = "+", count: int | None = None) -> list[DeadLetterEntry]:
        """Entries oldest first (``XRANGE``)."""
        rows: Any = await self.redis.xrange(self.stream, min=start, max=end, count=count)
        return [self._entry(xid, f) for xid, f in rows or []]

    async def delete(self, *ids: str) -> int:
        return int(await self.redis.xdel(self.stream, *ids)) if ids else 0

    async def replay(
        self,
        handler: Callable[[DeadLetterEntry], Awaitable[Any] | Any],
        *,
        count: int | None = None,
        start: str = "-",
        end: str = "+",
        stop_on_error: bool = False,
    ) -> ReplayReport:
        """Hand each entry (oldest first) to ``handler``; delete it once the handler returned
        without raising. Entries the handler raises on stay, with the error in the report."""
        report = ReplayReport()
        for entry in await self.entries(start=start, end=end, count=count):
            try:
                out = handler(entry)
                if asyncio.iscoroutine(out) or isinstance(out, asyncio.Future):
                    await out
            except Exception as exc:  # noqa: BLE001 - reported per entry
                report.failed.append((entry.id, f"{type(exc).__name__}: {exc}"))
                if stop_on_error:
                    break
                continue
            await self.redis.xdel(self.stream, entry.id)
            report.replayed.append(entry.id)
        return report

    def stats(self) -> dict[str, int]:
        return {"count": self.count, "written": self.written, "buffered": self.buffered, "dropped": self.dropped}


# ---- TTL cache ---------------------------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class RedisTTLCache:
    """JSON values under ``<namespace>:<key>`` with a TTL (seconds, default one hour).

    ``Decimal`` values come back as strings (JSON); store exchange values as the strings they
    arrived as. ``get_or_load`` calls the loader at most once at a time per key in this process.
    """

    def __init__(self, redis: aioredis.Redis, namespace: str, *, ttl: float = DEFAULT_CACHE_TTL) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be > 0")
        self.redis = redis
        self.namespace = namespace
        self.ttl = ttl
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    def _k(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    async def get(self, key: str, default: Any = MISSING) -> Any:
        raw = await self.redis.get(self._k(key))
        return default if raw is None else orjson.loads(raw)

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        await self.redis.set(self._k(key), json_dumps(value), px=int((ttl or self.ttl) * 1000))

    async def delete(self, key: str) -> bool:
        return bool(await self.redis.delete(self._k(key)))

    async def ttl_of(self, key: str) -> float:
        """Seconds left; negative as Redis ``PTTL`` (-2 missing, -1 no expiry), in seconds."""
        ms = int(await self.redis.pttl(self._k(key)))
        return ms / 1000 if ms >= 0 else float(ms)

    async def get_or_load(self, key: str, loader: Callable[[], Awaitable[Any]], *, ttl: float | None = None) -> Any:
        """The cached value, or ``await loader()`` stored with the TTL. Concurrent calls for the
        same key in this process share one load."""
        value = await self.get(key)
        if value is not MISSING:
            return value
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            value = await loader()
            await self.set(key, value, ttl=ttl)
            fut.set_result(value)
            return value
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters re-raise it
            raise
        finally:
            self._inflight.pop(key, None)


__all__ = [
    "DEFAULT_CACHE_TTL",
    "DEFAULT_IDEMPOTENCY_TTL",
    "DONE",
    "FAILED",
    "MISSING",
    "PENDING",
    "DeadLetterEntry",
    "IdempotencyKeys",
    "IdempotencyTimeout",
    "KeyState",
    "RedisDeadLetters",
    "RedisTTLCache",
    "ReplayReport",
    "Reservation",
    "create_redis",
]
