"""Book-level faults of the local exchange and how the feed recovers, against the real server:

* a ``u`` gap and an out-of-order delta -> GAP -> resync (unsubscribe + subscribe, fresh
  snapshot) -> the book equals the exchange's again;
* a duplicated delta -> dropped as stale, no resync, still equal;
* a fresh snapshot mid-stream and a ``u == 1`` restart -> taken as full replacements, no resync,
  equal;
* a malformed frame -> dead letter with the raw payload; the socket and the books carry on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest


@pytest.mark.parametrize("fault", ["gap", "out_of_order"])
def test_gap_and_out_of_order_delta_trigger_a_resync(
    fault: str, arun: Callable[..., Any], sim_rig: Any, until: Callable[..., Awaitable[None]]
) -> None:
    async def main() -> None:
        async with sim_rig(symbols=4, seed=21, pairs_per_connection=2) as rig:
            feed, sim = rig.feed, rig.sim
            assert await feed.wait_usable(timeout=15)
            await rig.wait_applied(deltas=10)
            target, other = rig.symbols[1], rig.symbols[0]
            sim.faults.book(target, fault, depth=50)
            await until(lambda: sim.faults.counts[f"book.{fault}"] >= 1, 15, "fault fired")
            await until(lambda: feed.metrics()["symbols"][target]["resyncs"] >= 1, 15, "resync")
            m = feed.metrics()["symbols"]
            assert m[target]["gaps"] >= 1
            assert m[other]["resyncs"] == 0 and m[other]["gaps"] == 0  # only that book
            # the resync went over the symbol's own socket, and its book came back
            assert feed.connection_of(target).metrics.connects == 1
            assert await feed.wait_usable([target], timeout=15)
            await rig.wait_applied(deltas=10)
            await rig.assert_books_equal()
            assert rig.dead.count == 0

    arun(main())


def test_duplicate_delta_is_dropped_as_stale(
    arun: Callable[..., Any], sim_rig: Any, until: Callable[..., Awaitable[None]]
) -> None:
    async def main() -> None:
        async with sim_rig(symbols=3, seed=22) as rig:
            feed, sim = rig.feed, rig.sim
            assert await feed.wait_usable(timeout=15)
            await rig.wait_applied(deltas=10)
            target = rig.symbols[2]
            sim.faults.duplicate_delta(target, depth=50)
            await until(lambda: feed.metrics()["symbols"][target]["stale"] >= 1, 15, "stale delta")
            await rig.wait_applied(deltas=10)
            await rig.assert_books_equal()
            m = feed.metrics()["symbols"][target]
            assert m["resyncs"] == 0 and m["gaps"] == 0
            assert sim.faults.counts["book.duplicate"] == 1

    arun(main())


@pytest.mark.parametrize("fault", ["snapshot", "restart"])
def test_fresh_snapshot_and_restart_replace_the_book(
    fault: str, arun: Callable[..., Any], sim_rig: Any, until: Callable[..., Awaitable[None]]
) -> None:
    async def main() -> None:
        async with sim_rig(symbols=3, seed=23) as rig:
            feed, sim, engine = rig.feed, rig.sim, rig.engine
            assert await feed.wait_usable(timeout=15)
            await rig.wait_applied(deltas=10)
            target = rig.symbols[0]
            before = engine.update_id(target)
            sim.faults.book(target, fault, depth=50)
            await until(lambda: sim.faults.counts[f"book.{fault}"] >= 1, 15, "fault fired")
            if fault == "restart":
                # u restarted at 1: the engine took the snapshot as a full replacement
                await until(lambda: engine.update_id(target) < before, 15, "u restarted")
            await rig.wait_applied(deltas=10)
            await rig.assert_books_equal()
            m = feed.metrics()["symbols"][target]
            assert m["resyncs"] == 0 and m["gaps"] == 0 and m["waiting"] == 0
            assert feed.connection_of(target).metrics.connects == 1

    arun(main())


def test_malformed_frame_goes_to_dead_letters_and_the_feed_keeps_running(
    arun: Callable[..., Any], sim_rig: Any, until: Callable[..., Awaitable[None]]
) -> None:
    # The exchange's fault API has no malformed-frame kind, so the test writes a broken frame
    # through the exchange's own server-side connection (pysrc.sim.wsconn), exactly as a
    # corrupted push would arrive.
    from pysrc.sim.wsconn import text_frame

    async def main() -> None:
        async with sim_rig(symbols=3, seed=24) as rig:
            feed, sim = rig.feed, rig.sim
            assert await feed.wait_usable(timeout=15)
            await rig.wait_applied(deltas=10)
            target = rig.symbols[1]
            bad = (
                b'{"topic":"orderbook.50.' + target.encode()
                + b'","type":"delta","ts":1,"data":{"s":"' + target.encode()
                + b'","b":[["-1","x"]],"a":[],"u":5}}'
            )
            garbage = b"\x00not json"
            (conn,) = sim.publisher.conns
            assert conn.send(text_frame(bad)) and conn.send(text_frame(garbage))
            await until(lambda: rig.dead.count >= 2, 15, "dead letters")
            raws = [e.raw for e in rig.dead.entries()]
            assert bad in raws and garbage in raws
            assert all(e.error and e.source == feed.connections[0].name for e in rig.dead.entries())
            await rig.wait_applied(deltas=10)  # still applying the real stream
            await rig.assert_books_equal()
            m = feed.metrics()
            assert m["totals"]["malformed"] >= 2 and m["totals"]["resyncs"] == 0
            assert feed.connections[0].metrics.connects == 1  # same socket all along

    arun(main())
