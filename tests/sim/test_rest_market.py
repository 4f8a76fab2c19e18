"""Public REST endpoints of the local exchange: Bybit's envelope and shapes, exact decimals."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp

from pysrc.sim import SimExchange


async def _get(s: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with s.get(url) as r:
        assert r.status == 200
        body: dict[str, Any] = await r.json()
        return body


def test_market_endpoints_answer_with_bybit_shapes() -> None:
    async def main() -> None:
        sim = SimExchange(symbols=25, seed=7)
        await sim.start()
        try:
            base = sim.rest_url
            async with aiohttp.ClientSession() as s:
                t = await _get(s, f"{base}/v5/market/time")
                assert set(t) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
                assert t["retCode"] == 0 and t["retMsg"] == "OK"
                assert int(t["result"]["timeNano"]) // 10**9 == int(t["result"]["timeSecond"])

                info = await _get(s, f"{base}/v5/market/instruments-info?category=linear")
                items = info["result"]["list"]
                assert [i["symbol"] for i in items] == sim.symbols
                assert sim.symbols[:3] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
                assert sim.symbols[-1].startswith("SYN") and len(set(sim.symbols)) == 25
                btc = items[0]
                assert btc["contractType"] == "LinearPerpetual" and btc["status"] == "Trading"
                assert btc["priceFilter"]["tickSize"] == "0.10"
                assert btc["lotSizeFilter"]["qtyStep"] == "0.001"
                assert btc["lotSizeFilter"]["minNotionalValue"] == "5"
                assert set(btc["leverageFilter"]) == {"minLeverage", "maxLeverage", "leverageStep"}
                paged = await _get(s, f"{base}/v5/market/instruments-info?category=linear&limit=10")
                assert len(paged["result"]["list"]) == 10 and paged["result"]["nextPageCursor"] == "10"

                ob = await _get(s, f"{base}/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=5")
                r = ob["result"]
                assert set(r) == {"s", "b", "a", "ts", "u", "seq", "cts"}
                assert len(r["b"]) == 5 and len(r["a"]) == 5
                bids = [Decimal(p) for p, _ in r["b"]]
                asks = [Decimal(p) for p, _ in r["a"]]
                assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
                for p, q in r["b"] + r["a"]:
                    assert len(p.split(".")[1]) == 2 and len(q.split(".")[1]) == 3  # tick/step decimals

                kl = await _get(s, f"{base}/v5/market/kline?category=linear&symbol=ETHUSDT&interval=1&limit=50")
                rows = kl["result"]["list"]
                assert len(rows) == 50 and all(len(row) == 7 for row in rows)
                starts = [int(row[0]) for row in rows]
                assert starts == sorted(starts, reverse=True), "kline list is newest first"
                assert starts[0] - starts[1] == 60_000
                k5 = await _get(s, f"{base}/v5/market/kline?category=linear&symbol=ETHUSDT&interval=5&limit=3")
                assert all(int(row[0]) % 300_000 == 0 for row in k5["result"]["list"])

                tk = await _get(s, f"{base}/v5/market/tickers?category=linear&symbol=SOLUSDT")
                tick = tk["result"]["list"][0]
                for field in ("lastPrice", "markPrice", "indexPrice", "bid1Price", "ask1Price", "volume24h",
                              "turnover24h", "fundingRate", "nextFundingTime", "highPrice24h", "lowPrice24h"):
                    assert field in tick
                assert Decimal(tick["bid1Price"]) < Decimal(tick["ask1Price"])
                all_t = await _get(s, f"{base}/v5/market/tickers?category=linear")
                assert len(all_t["result"]["list"]) == 25

                # wait for the model to print a trade, then read it back
                for _ in range(200):
                    rt = await _get(s, f"{base}/v5/market/recent-trade?category=linear&symbol=BTCUSDT&limit=5")
                    if rt["result"]["list"]:
                        break
                    await asyncio.sleep(0.05)
                tr = rt["result"]["list"][0]
                assert set(tr) >= {"execId", "symbol", "price", "size", "side", "time", "isBlockTrade", "seq"}
                assert tr["side"] in ("Buy", "Sell")

                bad = await _get(s, f"{base}/v5/market/orderbook?category=linear&symbol=NOPEUSDT")
                assert bad["retCode"] == 10001 and bad["result"] == {}
                bad = await _get(s, f"{base}/v5/market/kline?category=linear&symbol=BTCUSDT&interval=7")
                assert bad["retCode"] == 10001
                async with s.get(f"{base}/v5/no/such/path") as resp:
                    assert resp.status == 404
        finally:
            await sim.stop()

    asyncio.run(main())


def test_rest_orderbook_u_follows_the_1000_level_stream(bybit: Any) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=2, seed=3)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                pub = bybit.Public(await s.ws_connect(sim.ws_public_url))
                await pub.send({"op": "subscribe", "args": ["orderbook.1000.BTCUSDT"]})
                snap, _ = await pub.next(lambda d: d.get("type") == "snapshot")
                sim.pause_market()
                await asyncio.sleep(0.5)  # let the last 200 ms push go out
                ob = await _get(s, f"{sim.rest_url}/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=1000")
                assert ob["result"]["u"] == sim.publisher.books[("BTCUSDT", 1000)].u >= snap["data"]["u"]
                b, a = sim.book("BTCUSDT", 1000)
                assert [tuple(x) for x in ob["result"]["b"]] == b and [tuple(x) for x in ob["result"]["a"]] == a
                await pub.close()
        finally:
            await sim.stop()

    asyncio.run(main())
