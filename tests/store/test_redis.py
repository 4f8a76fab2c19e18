"""Redis: idempotency keys (SET NX EX, concurrent duplicates wait for the first result), the
dead-letter stream (put / read / replay) and the TTL cache, on a real server."""

from __future__ import annotations

import asyncio
import threading

import pytest
from redis.exceptions import RedisError

from pysrc.exchange.deadletter import DeadLetterSink
from pysrc.store.redis import (
    DEFAULT_IDEMPOTENCY_TTL,
    MISSING,
    IdempotencyKeys,
    IdempotencyTimeout,
    RedisDeadLetters,
    RedisTTLCache,
    create_redis,
)
from pysrc.store.repositories import IdempotencyConflict


def test_reserve_once_with_ttl(store) -> None:
    async def body(ctx):
        keys = IdempotencyKeys(ctx.redis, prefix=ctx.prefix)
        r1 = await keys.reserve("1700000000_BTCUSDT_mom_ab12cd34", request_hash="h1", owner="w1")
        assert r1.acquired and r1.state.status == "pending"
        ttl = await keys.ttl_of("1700000000_BTCUSDT_mom_ab12cd34")
        assert DEFAULT_IDEMPOTENCY_TTL - 60 < ttl <= DEFAULT_IDEMPOTENCY_TTL == 86_400
        r2 = await keys.reserve("1700000000_BTCUSDT_mom_ab12cd34", request_hash="h1")
        assert not r2.acquired and r2.state.status == "pending" and r2.state.owner == "w1"
        with pytest.raises(IdempotencyConflict):
            await keys.reserve("1700000000_BTCUSDT_mom_ab12cd34", request_hash="other")
        await keys.complete("1700000000_BTCUSDT_mom_ab12cd34", {"orderId": "X1"})
        r3 = await keys.reserve("1700000000_BTCUSDT_mom_ab12cd34", request_hash="h1")
        assert not r3.acquired and r3.state.finished and r3.state.result == {"orderId": "X1"}
        assert await keys.ttl_of("1700000000_BTCUSDT_mom_ab12cd34") > DEFAULT_IDEMPOTENCY_TTL - 60
        # Many racing reservations: exactly one wins.
        results = await asyncio.gather(*(keys.reserve("race") for _ in range(25)))
        assert sum(r.acquired for r in results) == 1

    store.run(body)


def test_concurrent_duplicate_waits_for_first_result(store) -> None:
    async def body(ctx):
        keys = IdempotencyKeys(ctx.redis, prefix=ctx.prefix, wait_timeout=30)
        first = await keys.reserve("k", request_hash="h")
        assert first.acquired
        dup = asyncio.create_task(keys.reserve_or_wait("k", request_hash="h"))
        for _ in range(10):
            await asyncio.sleep(0.005)
        assert not dup.done()  # it is waiting: the first caller has not finished
        await keys.complete("k", {"orderId": "X9", "status": "New"})
        res = await dup
        assert not res.acquired and res.state.status == "done"
        assert res.state.result == {"orderId": "X9", "status": "New"}
        # A definitive failure is also what a repeat gets.
        assert (await keys.reserve("f")).acquired
        waiter = asyncio.create_task(keys.reserve_or_wait("f"))
        await asyncio.sleep(0.01)
        await keys.complete("f", {"retCode": 110007}, failed=True)
        assert (await waiter).state.status == "failed"

    store.run(body)


def test_released_key_is_taken_by_a_waiter_and_timeouts(store) -> None:
    async def body(ctx):
        keys = IdempotencyKeys(ctx.redis, prefix=ctx.prefix)
        assert (await keys.reserve("r")).acquired
        waiter = asyncio.create_task(keys.reserve_or_wait("r", timeout=30))
        await asyncio.sleep(0.01)
        assert await keys.release("r")  # the first caller never sent anything
        got = await waiter
        assert got.acquired  # the waiter may now do the work itself
        await keys.complete("r", 1)
        assert not await keys.release("r")  # finished keys are not released
        assert (await keys.get("r")).result == 1
        assert (await keys.reserve("slow")).acquired
        with pytest.raises(IdempotencyTimeout):
            await keys.wait("slow", timeout=0.05)
        assert await keys.wait("never-reserved") is None

    store.run(body)


def test_dead_letters_put_read_replay(store) -> None:
    async def body(ctx):
        dlq = RedisDeadLetters(ctx.redis, stream=ctx.prefix + "dlq")
        assert isinstance(dlq, DeadLetterSink)  # the feed's protocol
        dlq.put("bybit.public/conn-0", b'{"topic":"orderbook.50.BTCUSDT","data":', "truncated JSON")
        dlq.put("bybit.private", '{"op":"weird"}', "unknown op")
        xid = await dlq.aput("internal", b"\x00\xffbinary", "decoder crashed")
        # put() from another thread is handed to the loop the sink is bound to.
        t = threading.Thread(target=dlq.put, args=("thread", b"from-thread", "e"))
        t.start()
        t.join()
        await dlq.flush()
        entries = await dlq.entries()
        assert [(e.source, e.raw, e.error) for e in entries] == [
            ("bybit.public/conn-0", b'{"topic":"orderbook.50.BTCUSDT","data":', "truncated JSON"),
            ("bybit.private", '{"op":"weird"}', "unknown op"),  # str stays str
            ("internal", b"\x00\xffbinary", "decoder crashed"),
            ("thread", b"from-thread", "e"),
        ]
        assert entries[2].id == xid and entries[0].time > 0
        assert dlq.stats() == {"count": 4, "written": 4, "buffered": 0, "dropped": 0}

        seen = []

        async def handler(entry):
            if entry.source == "bybit.private":
                raise ValueError("still cannot parse")
            seen.append(entry.source)

        report = await dlq.replay(handler)
        assert seen == ["bybit.public/conn-0", "internal", "thread"]
        assert report.replayed == [entries[0].id, entries[2].id, entries[3].id]
        assert report.failed == [(entries[1].id, "ValueError: still cannot parse")]
        left = await dlq.entries()
        assert [e.source for e in left] == ["bybit.private"] and await dlq.length() == 1
        report = await dlq.replay(lambda e: None)  # a sync handler works too
        assert report.replayed == [entries[1].id] and await dlq.length() == 0

    store.run(body)


def test_dead_letters_survive_a_redis_outage(store, tmp_path) -> None:
    async def body(ctx):
        down = await create_redis(f"unix://{tmp_path}/nothing-here.sock", ping=False, socket_timeout=1)
        dlq = RedisDeadLetters(down, stream=ctx.prefix + "dlq2")
        dlq.put("feed", b"x", "bad")  # must not raise
        dlq.put("feed", b"y", "bad")
        assert await dlq.flush() == 2  # still buffered
        assert dlq.stats() == {"count": 2, "written": 0, "buffered": 2, "dropped": 0}
        with pytest.raises((OSError, RedisError)):
            await dlq.aput("feed", b"z", "bad")  # the awaitable form reports the failure
        await down.aclose()
        dlq.redis = ctx.redis  # Redis is back
        dlq.put("feed", b"w", "bad")
        assert await dlq.flush() == 0
        assert [e.raw for e in await dlq.entries()] == [b"x", b"y", b"w"]  # older ones first

    store.run(body)


def test_dead_letters_from_other_threads_and_without_a_loop(store) -> None:
    # Made and fed outside any event loop: entries wait in memory.
    orphan = RedisDeadLetters(None, stream="unused")  # type: ignore[arg-type]
    orphan.put("early", b"0", "before the loop started")
    assert orphan.stats()["buffered"] == 1

    async def body(ctx):
        orphan.redis = ctx.redis
        orphan.stream = ctx.prefix + "dlq3"
        sink = RedisDeadLetters(ctx.redis, stream=ctx.prefix + "dlq3")
        # From worker threads while the loop runs: handed to the sink's loop.
        await asyncio.gather(*(asyncio.to_thread(sink.put, "worker", str(i).encode(), "e") for i in range(20)))
        assert await sink.flush() == 0
        assert await orphan.flush() == 0
        raws = [e.raw for e in await sink.entries()]
        assert sorted(raws) == sorted([b"0"] + [str(i).encode() for i in range(20)])

    store.run(body)


def test_ttl_cache(store) -> None:
    async def body(ctx):
        cache = RedisTTLCache(ctx.redis, ctx.prefix + "instruments")
        assert await cache.get("BTCUSDT") is MISSING
        await cache.set("BTCUSDT", {"tickSize": "0.10", "qtyStep": "0.001"})
        assert await cache.get("BTCUSDT") == {"tickSize": "0.10", "qtyStep": "0.001"}
        assert 3590 < await cache.ttl_of("BTCUSDT") <= 3600
        loads = 0
        gate = asyncio.Event()

        async def loader():
            nonlocal loads
            loads += 1
            await gate.wait()
            return {"tickSize": "0.01"}

        tasks = [asyncio.create_task(cache.get_or_load("ETHUSDT", loader)) for _ in range(5)]
        for _ in range(5):
            await asyncio.sleep(0)
        gate.set()
        assert await asyncio.gather(*tasks) == [{"tickSize": "0.01"}] * 5
        assert loads == 1
        assert await cache.get_or_load("ETHUSDT", loader) == {"tickSize": "0.01"} and loads == 1
        assert await cache.delete("ETHUSDT") and await cache.get("ETHUSDT", None) is None
        await cache.set("short", 1, ttl=7200)
        assert await cache.ttl_of("short") > 3600

    store.run(body)
