"""The public linear stream: acks, pongs, snapshot-then-deltas that rebuild the exchange's book
exactly (native BookEngine and a plain dict applier without truncation), trades, tickers, klines."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp

from pysrc.book import ApplyOutcome, BookEngine
from pysrc.sim import SimExchange


class DictBook:
    """Applies Bybit book messages to dicts without truncating: only works if the server deletes
    every level that leaves the depth window explicitly."""

    def __init__(self) -> None:
        self.b: dict[str, str] = {}
        self.a: dict[str, str] = {}
        self.u = 0

    def apply(self, d: dict[str, Any]) -> None:
        data = d["data"]
        if d["type"] == "snapshot":
            self.b = {p: q for p, q in data["b"]}
            self.a = {p: q for p, q in data["a"]}
        else:
            assert data["u"] == self.u + 1, "u must advance by exactly 1 per delta"
            for side, levels in ((self.b, data["b"]), (self.a, data["a"])):
                for p, q in levels:
                    if q == "0":
                        side.pop(p, None)
                    else:
                        side[p] = q
        self.u = data["u"]

    def levels(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        bids = sorted(self.b.items(), key=lambda kv: Decimal(kv[0]), reverse=True)
        asks = sorted(self.a.items(), key=lambda kv: Decimal(kv[0]))
        return bids, asks


async def _pump_until(pub: Any, on_msg: Any, done: Any, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        left = deadline - loop.time()
        assert left > 0, "condition not reached in time"
        try:
            d, raw = await pub.next(timeout=min(left, 0.5))
        except TimeoutError:
            continue
        on_msg(d, raw)


def test_acks_pongs_and_errors(bybit: Any) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=2, seed=1)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                pub = bybit.Public(await s.ws_connect(sim.ws_public_url))
                await pub.send({"op": "ping", "req_id": "100001"})
                pong, _ = await pub.next(lambda d: d.get("op") == "ping")
                assert pong == {"success": True, "ret_msg": "pong", "conn_id": pong["conn_id"],
                                "req_id": "100001", "op": "ping"}
                await pub.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT"], "req_id": "r1"})
                ack, _ = await pub.next(lambda d: d.get("op") == "subscribe")
                assert ack == {"success": True, "ret_msg": "", "conn_id": ack["conn_id"], "req_id": "r1",
                               "op": "subscribe"}
                await pub.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT"]})
                dup, _ = await pub.next(lambda d: d.get("op") == "subscribe")
                assert dup["success"] is False and "already subscribed" in dup["ret_msg"]
                await pub.send({"op": "subscribe", "args": ["orderbook.50.NOPEUSDT"]})
                bad, _ = await pub.next(lambda d: d.get("op") == "subscribe")
                assert bad["success"] is False and "Invalid symbol" in bad["ret_msg"]
                await pub.send({"op": "subscribe", "args": ["orderbook.500.BTCUSDT"]})
                bad, _ = await pub.next(lambda d: d.get("op") == "subscribe")
                assert bad["success"] is False and "handler not found" in bad["ret_msg"]
                await pub.send({"op": "unsubscribe", "args": ["publicTrade.BTCUSDT"]})
                un, _ = await pub.next(lambda d: d.get("op") == "unsubscribe")
                assert un["success"] is True
                await pub.close()
        finally:
            await sim.stop()

    asyncio.run(main())


def test_orderbook50_deltas_rebuild_the_exchange_book(bybit: Any) -> None:
    """Applying the stream with the native engine (truncating) and with plain dicts (not
    truncating) both end equal to ``sim.book(symbol, 50)`` once the market is paused."""

    async def main() -> None:
        sim = SimExchange(symbols=6, seed=11)
        await sim.start()
        try:
            syms = sim.symbols
            async with aiohttp.ClientSession() as s:
                pub = bybit.Public(await s.ws_connect(sim.ws_public_url))
                await pub.send({"op": "subscribe", "args": [f"orderbook.50.{x}" for x in syms]})
                engine = BookEngine("bybit")
                dicts = {x: DictBook() for x in syms}
                outcomes: dict[int, int] = {}
                counts = {x: 0 for x in syms}
                first_type: dict[str, str] = {}

                def on_msg(d: dict[str, Any], raw: str) -> None:
                    if not d.get("topic", "").startswith("orderbook."):
                        return
                    sym = d["data"]["s"]
                    first_type.setdefault(sym, d["type"])
                    counts[sym] += 1
                    oc, _ = engine.apply(raw)
                    outcomes[oc] = outcomes.get(oc, 0) + 1
                    dicts[sym].apply(d)
                    # prices and sizes carry the instrument's decimals exactly
                    inst = sim.markets[sym].inst
                    for p, q in d["data"]["b"][:3] + d["data"]["a"][:3]:
                        assert (len(p.split(".")[1]) if "." in p else 0) == inst.price_decimals
                        assert q == "0" or (len(q.split(".")[1]) if "." in q else 0) == inst.qty_decimals

                # let the market run until every book has had plenty of deltas
                await _pump_until(pub, on_msg, lambda: min(counts.values()) >= 40)
                sim.pause_market()

                def equal() -> bool:
                    return all(engine.levels(x, 50) == sim.book(x, 50) and dicts[x].levels() == sim.book(x, 50)
                               for x in syms)

                await _pump_until(pub, on_msg, equal)
                assert set(first_type.values()) == {"snapshot"}
                assert set(outcomes) == {int(ApplyOutcome.APPLIED)}, outcomes
                for x in syms:
                    bids, asks = sim.book(x, 50)
                    assert len(bids) == 50 and len(asks) == 50
                    assert len(dicts[x].b) == 50 and len(dicts[x].a) == 50  # explicit deletes, no leftovers
                    assert engine.is_live(x)
                await pub.close()
        finally:
            await sim.stop()

    asyncio.run(main())


def test_every_depth_and_resubscribe_continues_u(bybit: Any) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=2, seed=5)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                pub = bybit.Public(await s.ws_connect(sim.ws_public_url))
                topics = [f"orderbook.{d}.ETHUSDT" for d in (1, 50, 200, 1000)]
                await pub.send({"op": "subscribe", "args": topics})
                engines = {d: BookEngine("bybit") for d in (1, 50, 200, 1000)}
                seen = {d: 0 for d in engines}
                last_u: dict[int, int] = {}
                l1_types: set[str] = set()

                def on_msg(d: dict[str, Any], raw: str) -> None:
                    t = d.get("topic", "")
                    if not t.startswith("orderbook."):
                        return
                    depth = int(t.split(".")[1])
                    if depth == 1:
                        l1_types.add(d["type"])
                        # futures level 1 puts ts before type (doc 1.6)
                        assert list(d)[:3] == ["topic", "ts", "type"]
                    else:
                        assert list(d)[:3] == ["topic", "type", "ts"]
                    oc, _ = engines[depth].apply(raw)
                    assert oc == ApplyOutcome.APPLIED
                    seen[depth] += 1
                    last_u[depth] = d["data"]["u"]

                await _pump_until(pub, on_msg, lambda: min(seen.values()) >= 5)
                assert l1_types == {"snapshot"}, "orderbook.1 is snapshot-only"
                sim.pause_market()
                await _pump_until(pub, on_msg, lambda: all(
                    engines[d].levels("ETHUSDT", d) == sim.book("ETHUSDT", d) for d in engines))
                # level 1 re-pushes its snapshot with the same u after 3 s without change
                u1 = last_u[1]
                repush, _ = await pub.next(lambda d: d.get("topic") == "orderbook.1.ETHUSDT", timeout=10)
                assert repush["type"] == "snapshot" and repush["data"]["u"] == u1

                # unsubscribe + subscribe = a fresh snapshot whose u continues the old count
                u50 = last_u[50]
                await pub.send({"op": "unsubscribe", "args": ["orderbook.50.ETHUSDT"]})
                await pub.next(lambda d: d.get("op") == "unsubscribe")
                await pub.send({"op": "subscribe", "args": ["orderbook.50.ETHUSDT"]})
                snap, _ = await pub.next(lambda d: d.get("topic") == "orderbook.50.ETHUSDT")
                assert snap["type"] == "snapshot" and snap["data"]["u"] > u50
                await pub.close()
        finally:
            await sim.stop()

    asyncio.run(main())


def test_trades_tickers_klines(bybit: Any) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=1, seed=2)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                pub = bybit.Public(await s.ws_connect(sim.ws_public_url))
                await pub.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT", "tickers.BTCUSDT", "kline.1.BTCUSDT"]})
                tsnap, _ = await pub.next(lambda d: d.get("topic") == "tickers.BTCUSDT")
                assert tsnap["type"] == "snapshot" and "cs" in tsnap and "ts" in tsnap
                assert tsnap["data"]["symbol"] == "BTCUSDT" and "bid1Price" in tsnap["data"]
                tdelta, _ = await pub.next(lambda d: d.get("topic") == "tickers.BTCUSDT")
                assert tdelta["type"] == "delta"
                assert tdelta["data"]["symbol"] == "BTCUSDT" and len(tdelta["data"]) < len(tsnap["data"])
                trade, _ = await pub.next(lambda d: d.get("topic") == "publicTrade.BTCUSDT", timeout=15)
                assert trade["type"] == "snapshot"
                t0 = trade["data"][0]
                assert set(t0) == {"T", "s", "S", "v", "p", "L", "i", "BT", "RPI", "seq"}
                assert t0["S"] in ("Buy", "Sell") and t0["BT"] is False and len(t0["i"]) == 36
                assert t0["p"].count(".") == 1 and len(t0["p"].split(".")[1]) == 2
                assert t0["L"] in ("PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick")
                times = [t["T"] for t in trade["data"]]
                assert times == sorted(times)
                k, _ = await pub.next(lambda d: d.get("topic") == "kline.1.BTCUSDT")
                c = k["data"][0]
                assert set(c) == {"start", "end", "interval", "open", "close", "high", "low", "volume",
                                  "turnover", "confirm", "timestamp"}
                assert c["end"] - c["start"] == 59_999 and c["interval"] == "1"
                await pub.close()
        finally:
            await sim.stop()

    asyncio.run(main())
