"""Per-pair queues: book notifications coalesce, other events drop the oldest, the producer
never waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from pysrc.feed.events import BookUpdated, Ticker, Trade, Trades
from pysrc.feed.queue import FeedClosed, SymbolQueue


def trades(n: int) -> Trades:
    return Trades("X", n, (Trade(n, "1.0", "2", "Buy", str(n)),))


def test_book_notifications_coalesce_to_one() -> None:
    q = SymbolQueue("X", maxsize=4)
    for _ in range(1000):
        q.put_book()
    assert q.qsize() == 1 and q.coalesced == 999
    assert q.get_nowait() == BookUpdated("X")
    assert q.empty() and not q.book_pending
    q.put_book()
    assert q.qsize() == 1


def test_drop_oldest_with_counter_and_lagging_flag() -> None:
    q = SymbolQueue("X", maxsize=3)
    for i in range(5):
        q.put(trades(i))
    assert q.dropped == 2 and q.lagging
    got = [q.get_nowait() for _ in range(3)]
    assert [e.ts for e in got if isinstance(e, Trades)] == [2, 3, 4]  # newest kept, in order
    assert not q.lagging  # caught up
    assert q.high_water == 3


def test_book_notification_is_never_dropped_and_takes_no_room() -> None:
    q = SymbolQueue("X", maxsize=2)
    q.put(trades(0))
    q.put_book()
    q.put(trades(1))
    q.put(trades(2))  # full: drops trades(0), the oldest event
    q.put(trades(3))  # full: the book notification is now oldest; trades(1) goes
    assert q.dropped == 2
    order = [q.get_nowait() for _ in range(q.qsize())]
    assert order == [BookUpdated("X"), trades(2), trades(3)]


def test_put_book_event_goes_through_coalescing() -> None:
    q = SymbolQueue("X", maxsize=2)
    q.put(BookUpdated("X"))
    q.put(BookUpdated("X"))
    assert q.qsize() == 1 and q.coalesced == 1


def test_slow_consumer_never_blocks_producer(arun: Callable[..., Any]) -> None:
    async def main() -> tuple[int, list[object]]:
        q = SymbolQueue("X", maxsize=10)
        seen: list[object] = []
        release = asyncio.Event()

        async def consumer() -> None:
            await release.wait()  # a consumer stuck elsewhere
            async for event in q:
                seen.append(event)

        task = asyncio.create_task(consumer())
        for i in range(10_000):  # never awaits: synchronous puts only
            q.put(trades(i))
            q.put_book()
            q.put(Ticker("X", i, "delta", {}, {}))
        dropped = q.dropped
        release.set()
        await asyncio.sleep(0)
        q.close()
        await task
        return dropped, seen

    dropped, seen = arun(main())
    assert dropped == 2 * 10_000 - 10
    assert len(seen) == 11  # the 10 newest events + one book notification
    assert sum(isinstance(e, BookUpdated) for e in seen) == 1


def test_get_wakes_up_and_close_ends_iteration(arun: Callable[..., Any]) -> None:
    async def main() -> None:
        q = SymbolQueue("X")
        getter = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        q.put_book()
        assert await getter == BookUpdated("X")
        # a cancelled waiter does not swallow the next event
        cancelled = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        cancelled.cancel()
        q.put(trades(1))
        second = asyncio.create_task(q.get())
        assert await second == trades(1)
        waiting = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        q.close()
        with pytest.raises(FeedClosed):
            await waiting
        with pytest.raises(FeedClosed):
            q.get_nowait()

    arun(main())


def test_empty_get_nowait_raises_queue_empty() -> None:
    with pytest.raises(asyncio.QueueEmpty):
        SymbolQueue("X").get_nowait()
    with pytest.raises(ValueError):
        SymbolQueue("X", maxsize=0)
