"""PublicFeed against a scripted Bybit-like server on loopback: the pool, subscriptions and
acks, pings, watchdogs, reconnects and resyncs, frame by frame.

The server here only speaks the control protocol and sends the frames each test pushes; the
market-driven integration tests against the local exchange are in test_feed_sim.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pysrc.book import BookEngine
from pysrc.feed import Backoff, BookUpdated, FeedClosed, MemoryDeadLetters, PublicFeed

SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT", "EEEUSDT"]
FAST: dict[str, Any] = {
    "ping_interval": 0.2,
    "pong_timeout": 0.5,
    "tick": 0.05,
    "backoff": lambda: Backoff(base=0.05, cap=0.2),
    "resync_min_interval": 0.05,
    "snapshot_timeout": 5.0,
}


def snapshot_on_subscribe(server: Any, book_msg: Callable[..., bytes], u_start: dict[str, int]) -> None:
    """Server behaviour: answer an orderbook subscription with a snapshot, as Bybit does."""

    async def on_subscribe(conn: Any, topic: str) -> None:
        if topic.startswith("orderbook."):
            symbol = topic.rpartition(".")[2]
            u = u_start.get(symbol, 100)
            u_start[symbol] = u + 1000
            await conn.ws.send_str(
                book_msg(symbol, "snapshot", u, [["10.0", "1"], ["9.5", "2"]], [["10.5", "3"]]).decode()
            )

    server.on_subscribe = on_subscribe


def test_pool_subscribes_every_topic_and_books_go_live(
    arun: Callable[..., Any], scripted_server: Callable[[], Any], book_msg: Callable[..., bytes],
    until: Callable[..., Awaitable[None]],
) -> None:
    async def main() -> None:
        server = scripted_server()
        await server.start()
        snapshot_on_subscribe(server, book_msg, {})
        engine = BookEngine("bybit")
        feed = PublicFeed(server.url, engine, symbols=SYMBOLS, pairs_per_connection=2, **FAST)
        async with feed:
            assert feed.plan == [SYMBOLS[:2], SYMBOLS[2:4], SYMBOLS[4:]]
            assert await feed.wait_usable(timeout=10)
            await until(lambda: set(feed.subscriptions().values()) == {"active"}, what="all acks")
            assert len(feed.subscriptions()) == 10
            assert server.connections_accepted == 3
            req_ids = [r["req_id"] for r in server.all_requests]
            assert len(req_ids) == len(set(req_ids))  # every request has its own req_id
            for conn in server.live:  # each socket carries only its own symbols' topics
                symbols = {t.rpartition(".")[2] for t in conn.topics}
                assert symbols in ({"AAAUSDT", "BBBUSDT"}, {"CCCUSDT", "DDDUSDT"}, {"EEEUSDT"})
            assert feed.levels("AAAUSDT", 5) == ([("10.0", "1"), ("9.5", "2")], [("10.5", "3")])
            m = feed.metrics()
            assert m["totals"]["connected"] == 3 and m["totals"]["usable"] == 5
            assert all(c["connects"] == 1 for c in m["connections"].values())
            # consumers were told
            assert feed.queue("AAAUSDT").get_nowait() == BookUpdated("AAAUSDT")
        await server.stop()

    arun(main())


def test_ping_pong_rtt_and_dead_socket_detection(
    arun: Callable[..., Any], scripted_server: Callable[[], Any], book_msg: Callable[..., bytes],
    until: Callable[..., Awaitable[None]],
) -> None:
    async def main() -> None:
        server = scripted_server()
        await server.start()
        snapshot_on_subscribe(server, book_msg, {})
        engine = BookEngine("bybit")
        feed = PublicFeed(server.url, engine, symbols=SYMBOLS[:1], silence_timeout=None, **FAST)
        async with feed:
            conn = feed.connections[0]
            await until(lambda: conn.metrics.pongs >= 2, what="pongs")
            assert server.requests("ping")[0]["op"] == "ping"  # JSON ping, Bybit's shape
            assert conn.metrics.rtt_ms is not None and conn.metrics.rtt_ms >= 0
            # the server stops answering and sends nothing: a dead socket
            server.answer_pings = False
            await until(lambda: conn.metrics.dead_socket >= 1, what="dead socket")
            await until(lambda: conn.metrics.connects >= 2, what="reconnect")
            assert "dead socket" in conn.metrics.last_disconnect_reason
            server.answer_pings = True
            assert await feed.wait_usable(timeout=10)  # resubscribed, snapshot again
        await server.stop()

    arun(main())


def test_data_silence_watchdog_reconnects_while_pongs_still_come(
    arun: Callable[..., Any], scripted_server: Callable[[], Any], book_msg: Callable[..., bytes],
    until: Callable[..., Awaitable[None]],
) -> None:
    async def main() -> None:
        server = scripted_server()
        await server.start()
        snapshot_on_subscribe(server, book_msg, {})
        engine = BookEngine("bybit")
        feed = PublicFeed(server.url, engine, symbols=SYMBOLS[:1], silence_timeout=0.6, **FAST)
        async with feed:
            conn = feed.connections[0]
            await until(lambda: conn.metrics.silence >= 1, what="silence detected")
            await until(lambda: conn.metrics.connects >= 2, what="reconnect")
            assert conn.metrics.pongs >= 1 and conn.metrics.dead_socket == 0
            assert "data silence" in conn.metrics.last_disconnect_reason
        await server.stop()

    arun(main())


def test_failed_subscription_is_retried_topic_by_topic(
    arun: Callable[..., Any], scripted_server: Callable[[], Any], book_msg: Callable[..., bytes],
    until: Callable[..., Awaitable[None]],
) -> None:
    async def main() -> None:
        server = scripted_server()
        await server.start()
        snapshot_on_subscribe(server, book_msg, {})
        server.fail_topics = {"publicTrade.BBBUSDT": 2}  # the request with it fails, then it alone once
        engine = BookEngine("bybit")
        feed = PublicFeed(server.url, engine, symbols=SYMBOLS[:3], max_args_per_request=4, **FAST)
        async with feed:
            await until(lambda: set(feed.subscriptions().values()) == {"active"}, timeout=15, what="all active")
            subs = [tuple(r["args"]) for r in server.requests("subscribe")]
            first = subs[0]
            assert len(first) == 4 and "publicTrade.BBBUSDT" in first
            # after the failure each topic of the failed request went alone
            singles = [s for s in subs[1:] if len(s) == 1]
            assert {s[0] for s in singles} >= set(first)
            assert singles.count(("publicTrade.BBBUSDT",)) == 2  # failed alone once, then worked
            assert feed.connections[0].tracker.failures() == 1
            assert await feed.wait_usable(timeout=10)
        await server.stop()

    arun(main())


def test_gap_triggers_resync_of_that_symbol_only(
    arun: Callable[..., Any], scripted_server: Callable[[], Any], book_msg: Callable[..., bytes],
    until: Callable[..., Awaitable[None]],
) -> None:
    async def main() -> None:
        server = scripted_server()
        await server.start()
        u_start: dict[str, int] = {}
        snapshot_on_subscribe(server, book_msg, u_start)
        engine = BookEngine("bybit")
        feed = PublicFeed(server.url, engine, symbols=SYMBOLS[:2], **FAST)
        async with feed:
            assert await feed.wait_usable(timeout=10)
            topic = "orderbook.50.AAAUSDT"
            await server.push(topic, book_msg("AAAUSDT", "delta", 101, [["10.0", "5"]], []))
            await until(lambda: feed.levels("AAAUSDT", 1) == ([("10.0", "5")], [("10.5", "3")]))
            n_unsub = len(server.requests("unsubscribe"))
            await server.push(topic, book_msg("AAAUSDT", "delta", 105, [["10.0", "6"]], []))  # gap
            await until(lambda: len(server.requests("unsubscribe")) > n_unsub, what="unsubscribe")
            unsub = server.requests("unsubscribe")[-1]
            assert unsub["args"] == [topic]
            await until(lambda: server.requests("subscribe")[-1]["args"] == [topic], what="resubscribe")
            assert await feed.wait_usable(["AAAUSDT"], timeout=10)  # rebuilt from the new snapshot
            assert engine.update_id("AAAUSDT") == 1100
            m = feed.metrics()["symbols"]
            assert (m["AAAUSDT"]["gaps"], m["AAAUSDT"]["resyncs"]) == (1, 1)
            assert (m["BBBUSDT"]["gaps"], m["BBBUSDT"]["resyncs"]) == (0, 0)
            # duplicate and stale deltas are dropped, the book stays live
            await server.push(topic, book_msg("AAAUSDT", "delta", 1100, [["10.0", "9"]], []))
            await server.push(topic, book_msg("AAAUSDT", "delta", 1101, [["10.0", "7"]], []))
            await until(lambda: engine.update_id("AAAUSDT") == 1101)
            assert feed.metrics()["symbols"]["AAAUSDT"]["stale"] == 1
            assert feed.levels("AAAUSDT", 1) == ([("10.0", "7")], [("10.5", "3")])
        await server.stop()

    arun(main())


def test_dropped_connection_resets_books_and_resubscribes(
    arun: Callable[..., Any], scripted_server: Callable[[], Any], book_msg: Callable[..., bytes],
    until: Callable[..., Awaitable[None]],
) -> None:
    async def main() -> None:
        server = scripted_server()
        await server.start()
        snapshot_on_subscribe(server, book_msg, {})
        engine = BookEngine("bybit")
        feed = PublicFeed(server.url, engine, symbols=SYMBOLS[:4], pairs_per_connection=2, **FAST)
        async with feed:
            assert await feed.wait_usable(timeout=10)
            hold = asyncio.Event()
            original = server.on_subscribe

            async def slow_snapshots(conn: Any, topic: str) -> None:
                await hold.wait()  # keep the new sockets without a snapshot for a moment
                await original(conn, topic)

            server.on_subscribe = slow_snapshots
            await server.drop_all()
            await until(lambda: all(c.metrics.connects >= 2 for c in feed.connections), what="reconnects")
            # reconnected, resubscribed, but no snapshot yet: nothing may be used
            assert not any(feed.is_usable(s) for s in SYMBOLS[:4])
            assert feed.levels("AAAUSDT") is None
            hold.set()
            assert await feed.wait_usable(timeout=10)
            m = feed.metrics()
            assert all(c["disconnects"] >= 1 for c in m["connections"].values())
            assert all(m["symbols"][s]["resets"] >= 1 for s in SYMBOLS[:4])
        await server.stop()

    arun(main())


def test_malformed_frame_is_dead_lettered_and_feed_keeps_running(
    arun: Callable[..., Any], scripted_server: Callable[[], Any], book_msg: Callable[..., bytes],
    until: Callable[..., Awaitable[None]],
) -> None:
    async def main() -> None:
        server = scripted_server()
        await server.start()
        snapshot_on_subscribe(server, book_msg, {})
        dead = MemoryDeadLetters()
        engine = BookEngine("bybit")
        feed = PublicFeed(server.url, engine, symbols=SYMBOLS[:1], dead_letters=dead, **FAST)
        async with feed:
            assert await feed.wait_usable(timeout=10)
            topic = "orderbook.50.AAAUSDT"
            await server.push(topic, '{"topic":"orderbook.50.AAAUSDT","type":"delta","data":{"s":"AAAUSDT","b":[["1e5","x"]]')
            await server.push(topic, book_msg("AAAUSDT", "delta", 101, [["10.0", "4"]], []))
            await until(lambda: engine.update_id("AAAUSDT") == 101, what="next delta applied")
            (letter,) = dead.entries()
            assert isinstance(letter.raw, bytes)  # raw bytes as received (no UTF-8 decode)
            assert letter.raw.startswith(b'{"topic":"orderbook.50.AAAUSDT"')
            assert "Malformed" in letter.error and letter.source == feed.connections[0].name
            assert feed.is_usable("AAAUSDT") and feed.connections[0].metrics.connects == 1
            assert feed.metrics()["totals"]["malformed"] == 1
        await server.stop()

    arun(main())


def test_close_stops_everything_and_releases_consumers(
    arun: Callable[..., Any], scripted_server: Callable[[], Any], book_msg: Callable[..., bytes],
) -> None:
    async def main() -> None:
        server = scripted_server()
        await server.start()
        snapshot_on_subscribe(server, book_msg, {})
        engine = BookEngine("bybit")
        feed = PublicFeed(server.url, engine, symbols=SYMBOLS[:2], **FAST)
        await feed.start()
        assert await feed.wait_usable(timeout=10)
        seen: list[object] = []

        async def consume() -> None:
            async for event in feed.queue("AAAUSDT"):
                seen.append(event)

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        before = {t for t in asyncio.all_tasks() if t.get_name().startswith(feed.name)}
        # run + reader + writer + keeper per connection, and the maintenance task
        assert len(before) == 4 + 1
        await feed.close()
        await asyncio.wait_for(consumer, 5)  # the consumer's loop ended
        assert all(t.done() for t in before)
        assert not any(feed.is_usable(s) for s in SYMBOLS[:2])  # closed books are not current
        try:
            feed.queue("AAAUSDT").get_nowait()
        except FeedClosed:
            pass
        await feed.close()  # idempotent
        await server.stop()

    arun(main())


def test_unreachable_server_backs_off_and_connects_when_it_appears(
    arun: Callable[..., Any], scripted_server: Callable[[], Any], book_msg: Callable[..., bytes],
) -> None:
    async def main() -> None:
        server = scripted_server()
        await server.start()
        url = server.url
        await server.stop()  # nothing listens there now
        engine = BookEngine("bybit")
        feed = PublicFeed(url, engine, symbols=SYMBOLS[:1], **FAST)
        async with feed:
            conn = feed.connections[0]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while conn.metrics.connect_failures < 3 and loop.time() < deadline:
                await asyncio.sleep(0.02)
            assert conn.metrics.connect_failures >= 3
            assert conn.backoff.attempts >= 3 and conn.metrics.connects == 0
    arun(main())
