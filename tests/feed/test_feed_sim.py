"""PublicFeed against the real local exchange (``pysrc.sim``, in-process, loopback, port 0):
books across several connections become live and equal the exchange's books exactly, and
connection-level faults (dropped connections, a stalled stream) are recovered from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pysrc.feed import BookUpdated, Kline, Ticker, Trades


def test_books_across_connections_equal_the_exchange(
    arun: Callable[..., Any], sim_rig: Any, until: Callable[..., Awaitable[None]]
) -> None:
    async def main() -> None:
        async with sim_rig(
            symbols=6, seed=11, pairs_per_connection=2,
            topics=("orderbook", "publicTrade", "tickers", "kline"),
        ) as rig:
            feed = rig.feed
            assert len(feed.connections) == 3
            assert await feed.wait_usable(timeout=15)
            await until(lambda: set(feed.subscriptions().values()) == {"active"}, what="all acks")
            await rig.wait_applied(deltas=30)
            await rig.assert_books_equal()
            # every kind of event reached the per-pair queues
            kinds: set[type] = set()
            for s in rig.symbols:
                q = feed.queue(s)
                while not q.empty():
                    kinds.add(type(q.get_nowait()))
            assert {BookUpdated, Trades, Ticker, Kline} <= kinds
            m = feed.metrics()
            assert m["totals"]["gaps"] == 0 and m["totals"]["resyncs"] == 0
            assert m["totals"]["dead_letters"] == 0 and rig.dead.count == 0
            for s in rig.symbols:
                sm = m["symbols"][s]
                assert sm["latency_ms_p50"] is not None and sm["latency_ms_p99"] >= sm["latency_ms_p50"]
                samples = feed.latency_samples(s)
                assert len(samples) == min(sm["latency_samples"], 2048)
                assert min(samples) <= sm["latency_ms_p50"] <= max(samples)
                assert feed.ticker(s) is not None
            for c in m["connections"].values():
                assert c["connects"] == 1 and c["messages"] > 0 and c["bytes"] > 0
            assert rig.engine.totals()["trades"] > 0  # the analytics saw the trades

    arun(main())


def test_dropped_connections_reconnect_resubscribe_and_rebuild(
    arun: Callable[..., Any], sim_rig: Any, until: Callable[..., Awaitable[None]]
) -> None:
    async def main() -> None:
        async with sim_rig(symbols=5, seed=12, pairs_per_connection=2) as rig:
            feed = rig.feed
            assert await feed.wait_usable(timeout=15)
            await rig.wait_applied(deltas=10)
            rig.sim.faults.drop("public")  # cut every public socket now (TCP abort)
            await until(
                lambda: all(c.metrics.connects >= 2 for c in feed.connections), 15, "reconnects"
            )
            assert rig.sim.faults.counts["drop.public"] == 1
            await rig.wait_applied(deltas=10)
            await rig.assert_books_equal()
            # and once more, mid-stream after a number of messages
            rig.sim.faults.drop("public", after_messages=50)
            await until(
                lambda: all(c.metrics.connects >= 3 for c in feed.connections), 15, "second reconnects"
            )
            await rig.wait_applied(deltas=10)
            await rig.assert_books_equal()
            m = feed.metrics()
            for c in m["connections"].values():
                assert c["disconnects"] >= 2
            for s in rig.symbols:
                assert m["symbols"][s]["resets"] >= 2  # each book was thrown away and rebuilt

    arun(main())


def test_stalled_stream_is_detected_as_dead_and_replaced(
    arun: Callable[..., Any], sim_rig: Any, until: Callable[..., Awaitable[None]]
) -> None:
    async def main() -> None:
        # the stall silences data and pongs: the ping/pong check must catch it on its own
        async with sim_rig(
            symbols=3, seed=13, pairs_per_connection=2, ping_interval=0.3, pong_timeout=1.0,
            silence_timeout=None,
        ) as rig:
            feed = rig.feed
            assert await feed.wait_usable(timeout=15)
            await rig.wait_applied(deltas=10)
            rig.sim.faults.stall("public", seconds=6.0)
            await until(
                lambda: all(c.metrics.dead_socket >= 1 for c in feed.connections), 15, "dead sockets"
            )
            await until(lambda: all(c.metrics.connects >= 2 for c in feed.connections), 15, "reconnects")
            await rig.wait_applied(deltas=10)
            await rig.assert_books_equal()
            assert all("dead socket" in c.metrics.last_disconnect_reason for c in feed.connections)

    arun(main())


def test_stalled_stream_is_caught_by_the_data_silence_watchdog(
    arun: Callable[..., Any], sim_rig: Any, until: Callable[..., Awaitable[None]]
) -> None:
    async def main() -> None:
        # pings far apart: the data-silence watchdog is what notices the stall here
        async with sim_rig(symbols=2, seed=14, ping_interval=20.0, silence_timeout=1.0) as rig:
            feed = rig.feed
            assert await feed.wait_usable(timeout=15)
            await rig.wait_applied(deltas=10)
            rig.sim.faults.stall("public", seconds=5.0)
            await until(lambda: feed.connections[0].metrics.silence >= 1, 15, "silence detected")
            await until(lambda: feed.connections[0].metrics.connects >= 2, 15, "reconnect")
            await rig.wait_applied(deltas=10)
            await rig.assert_books_equal()

    arun(main())
