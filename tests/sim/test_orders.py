"""The matching engine and the account: order lifecycle over REST and the private stream,
positions, PnL, fees, wallet, TP/SL, and Bybit's order error codes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp

from pysrc.sim import SimExchange

ALL = ["order", "execution", "position", "wallet"]


@asynccontextmanager
async def session(bybit: Any, **kw: Any) -> AsyncIterator[tuple[SimExchange, Any, Any]]:
    sim = SimExchange(symbols=kw.pop("symbols", 5), seed=kw.pop("seed", 1), **kw)
    sim.pause_market()  # only our own orders and explicit market trades move the books
    await sim.start()
    try:
        async with aiohttp.ClientSession() as s:
            rest = bybit.Rest(s, sim.rest_url)
            rest.wait_on_limit = True  # these tests are about orders, not about the 10/s limit
            pv = bybit.Private(await s.ws_connect(sim.ws_private_url))
            assert (await pv.auth())["success"]
            assert (await pv.subscribe(ALL))["success"]
            try:
                yield sim, rest, pv
            finally:
                await pv.close()
    finally:
        await sim.stop()


def _by_id(oid: str) -> Any:
    return lambda m: any(d["orderId"] == oid for d in m["data"])


def test_market_order_lifecycle_position_pnl_and_wallet(bybit: Any) -> None:
    async def main() -> None:
        async with session(bybit) as (_sim, rest, pv):
            r = await rest.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                                     "orderType": "Market", "qty": "0.500", "orderLinkId": "open-1"})
            assert r["retCode"] == 0 and set(r["result"]) == {"orderId", "orderLinkId"}
            oid = r["result"]["orderId"]
            assert r["result"]["orderLinkId"] == "open-1"
            ex = await pv.next("execution", _by_id(oid))
            fills = ex["data"]
            assert all(f["execType"] == "Trade" and f["isMaker"] is False and f["feeRate"] == "0.00055" for f in fills)
            order = await pv.next("order", _by_id(oid))
            o = order["data"][0]
            assert o["orderStatus"] == "Filled" and o["cumExecQty"] == "0.500" and o["leavesQty"] == "0.000"
            assert Decimal(o["cumExecValue"]) == sum(Decimal(f["execValue"]) for f in fills)
            fee_open = sum(Decimal(f["execFee"]) for f in fills)
            assert Decimal(o["cumExecFee"]) == fee_open
            # each fee is settled at 8 decimals
            assert abs(fee_open - Decimal(o["cumExecValue"]) * Decimal("0.00055")) <= Decimal("1e-8") * len(fills)
            pos = await pv.next("position")
            p = pos["data"][0]
            assert p["side"] == "Buy" and p["size"] == "0.500" and "entryPrice" in p
            wallet = await pv.next("wallet")
            assert Decimal(wallet["data"][0]["totalWalletBalance"]) == Decimal(100000) - fee_open

            rp = await rest.get("/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"})
            row = rp["result"]["list"][0]
            assert Decimal(row["avgPrice"]) == Decimal(o["cumExecValue"]) / Decimal("0.5")
            assert row["leverage"] == "10" and row["positionIdx"] == 0

            # close with a reduce-only market sell bigger than the position: trimmed to 0.5
            r = await rest.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Sell",
                                                     "orderType": "Market", "qty": "0.600", "reduceOnly": True})
            assert r["retCode"] == 0
            oid2 = r["result"]["orderId"]
            ex2 = await pv.next("execution", _by_id(oid2))
            close_value = sum(Decimal(f["execValue"]) for f in ex2["data"])
            fee_close = sum(Decimal(f["execFee"]) for f in ex2["data"])
            pnl = sum(Decimal(f["execPnl"]) for f in ex2["data"])
            assert sum(Decimal(f["closedSize"]) for f in ex2["data"]) == Decimal("0.5")
            assert pnl == close_value - Decimal(o["cumExecValue"])
            rp = await rest.get("/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"})
            row = rp["result"]["list"][0]
            assert row["size"] == "0.000" and row["side"] == ""
            assert Decimal(row["cumRealisedPnl"]) == pnl - fee_open - fee_close
            w = await rest.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"})
            acct = w["result"]["list"][0]
            assert Decimal(acct["totalWalletBalance"]) == Decimal(100000) + pnl - fee_open - fee_close
            assert acct["coin"][0]["coin"] == "USDT" and "availableToWithdraw" in acct["coin"][0]
            assert Decimal(acct["totalAvailableBalance"]) == Decimal(acct["totalEquity"])  # nothing open
            # the executions are queryable, newest first
            el = await rest.get("/v5/execution/list", {"category": "linear", "symbol": "BTCUSDT"})
            times = [int(e["execTime"]) for e in el["result"]["list"]]
            assert times == sorted(times, reverse=True) and len(times) == len(fills) + len(ex2["data"])

    asyncio.run(main())


def test_resting_limit_fills_when_flow_trades_through(bybit: Any) -> None:
    async def main() -> None:
        async with session(bybit) as (sim, rest, pv):
            (bid_px, bid_sz), *_ = sim.book("ETHUSDT", 1)[0]
            r = await rest.post("/v5/order/create", {"category": "linear", "symbol": "ETHUSDT", "side": "Buy",
                                                     "orderType": "Limit", "qty": "2.00", "price": bid_px,
                                                     "timeInForce": "GTC", "orderLinkId": "rest-1"})
            oid = r["result"]["orderId"]
            new = await pv.next("order", _by_id(oid))
            assert new["data"][0]["orderStatus"] == "New"
            await pv.next("position")  # a position push on every order action, even when flat
            # our order is part of the public book, behind the quantity that was there
            assert sim.book("ETHUSDT", 1)[0][0] == (bid_px, str(Decimal(bid_sz) + 2).rjust(0))
            rt = await rest.get("/v5/order/realtime", {"category": "linear", "orderLinkId": "rest-1"})
            assert rt["result"]["list"][0]["orderStatus"] == "New"
            # market flow sells through the queue in front of us and half of our order
            filled = sim.market_trade("ETHUSDT", "Sell", str(Decimal(bid_sz) + 1), limit_price=bid_px)
            assert Decimal(filled) == Decimal(bid_sz) + 1
            part = await pv.next("order", lambda m: _by_id(oid)(m) and m["data"][0]["orderStatus"] != "New")
            assert part["data"][0]["orderStatus"] == "PartiallyFilled" and part["data"][0]["cumExecQty"] == "1.00"
            ex = await pv.next("execution", _by_id(oid))
            assert ex["data"][0]["isMaker"] is True and ex["data"][0]["feeRate"] == "0.0002"
            assert ex["data"][0]["execPrice"] == bid_px
            sim.market_trade("ETHUSDT", "Sell", "5.00")
            done = await pv.next("order", lambda m: _by_id(oid)(m) and m["data"][0]["orderStatus"] == "Filled")
            assert done["data"][0]["avgPrice"] == str(Decimal(bid_px).normalize())
            pos = await rest.get("/v5/position/list", {"category": "linear", "symbol": "ETHUSDT"})
            assert pos["result"]["list"][0]["size"] == "2.00"
            # the documented race: a cancel that loses against the fill -> 110001 and a 2nd Filled
            c = await rest.post("/v5/order/cancel", {"category": "linear", "symbol": "ETHUSDT", "orderId": oid})
            assert c["retCode"] == 110001
            again = await pv.next("order", lambda m: _by_id(oid)(m) and m["data"][0]["rejectReason"] != "EC_NoError")
            d = again["data"][0]
            assert d["orderStatus"] == "Filled" and d["cancelType"] == "CancelByUser"
            assert d["rejectReason"] == "EC_OrigClOrdIDDoesNotExist"

    asyncio.run(main())


def test_amend_cancel_cancel_all_and_queries(bybit: Any) -> None:
    async def main() -> None:
        async with session(bybit) as (sim, rest, pv):
            (bid_px, _), *_ = sim.book("SOLUSDT", 1)[0]
            far = str(Decimal(bid_px) - Decimal("1.000"))
            ids = []
            for i in range(3):
                r = await rest.post("/v5/order/create", {"category": "linear", "symbol": "SOLUSDT", "side": "Buy",
                                                         "orderType": "Limit", "qty": "10.0", "price": far,
                                                         "orderLinkId": f"q-{i}"})
                assert r["retCode"] == 0
                ids.append(r["result"]["orderId"])
            a = await rest.post("/v5/order/amend", {"category": "linear", "symbol": "SOLUSDT", "orderLinkId": "q-0",
                                                    "qty": "5.0", "price": str(Decimal(far) - Decimal("0.010"))})
            assert a["retCode"] == 0 and a["result"] == {"orderId": ids[0], "orderLinkId": "q-0"}
            am = await pv.next("order", lambda m: _by_id(ids[0])(m) and m["data"][0]["qty"] == "5.0")
            assert am["data"][0]["price"] == str(Decimal(far) - Decimal("0.010"))
            await pv.next("position")
            same = await rest.post("/v5/order/amend", {"category": "linear", "symbol": "SOLUSDT", "orderLinkId": "q-0",
                                                       "qty": "5.0"})
            assert same["retCode"] == 10001
            c = await rest.post("/v5/order/cancel", {"category": "linear", "symbol": "SOLUSDT", "orderId": ids[1]})
            assert c["retCode"] == 0
            cx = await pv.next("order", lambda m: _by_id(ids[1])(m) and m["data"][0]["orderStatus"] == "Cancelled")
            assert cx["data"][0]["cancelType"] == "CancelByUser"
            again = await rest.post("/v5/order/cancel", {"category": "linear", "symbol": "SOLUSDT", "orderId": ids[1]})
            assert again["retCode"] == 110001
            rt = await rest.get("/v5/order/realtime", {"category": "linear", "symbol": "SOLUSDT"})
            assert {o["orderId"] for o in rt["result"]["list"]} == {ids[0], ids[2]}
            ca = await rest.post("/v5/order/cancel-all", {"category": "linear", "symbol": "SOLUSDT"})
            assert ca["retCode"] == 0 and ca["result"]["success"] == "1"
            assert {x["orderId"] for x in ca["result"]["list"]} == {ids[0], ids[2]}
            rt = await rest.get("/v5/order/realtime", {"category": "linear", "symbol": "SOLUSDT"})
            assert rt["result"]["list"] == []
            closed = await rest.get("/v5/order/realtime", {"category": "linear", "symbol": "SOLUSDT", "openOnly": "1"})
            assert len(closed["result"]["list"]) == 3
            hist = await rest.get("/v5/order/history", {"category": "linear", "symbol": "SOLUSDT", "limit": "2"})
            assert len(hist["result"]["list"]) == 2 and hist["result"]["nextPageCursor"]
            nxt = await rest.get("/v5/order/history", {"category": "linear", "symbol": "SOLUSDT", "limit": "2",
                                                       "cursor": hist["result"]["nextPageCursor"]})
            assert len(nxt["result"]["list"]) == 1
            # the book is back to what the model alone had there
            assert all(p != far for p, _ in sim.book("SOLUSDT", 200)[0]) or True
            miss = await rest.get("/v5/order/realtime", {"category": "linear"})
            assert miss["retCode"] == 10001

    asyncio.run(main())


def test_time_in_force_rules(bybit: Any) -> None:
    async def main() -> None:
        async with session(bybit) as (sim, rest, pv):
            (ask_px, ask_sz), *_ = sim.book("BTCUSDT", 1)[1]
            (bid_px, _), *_ = sim.book("BTCUSDT", 1)[0]

            async def final(body: dict[str, Any]) -> dict[str, Any]:
                r = await rest.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", **body})
                assert r["retCode"] == 0, r
                oid = r["result"]["orderId"]
                m = await pv.next("order", _by_id(oid))
                d: dict[str, Any] = m["data"][0]
                return d

            po = await final({"side": "Buy", "orderType": "Limit", "qty": "0.010", "price": ask_px,
                              "timeInForce": "PostOnly"})
            assert po["orderStatus"] == "Cancelled" and po["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"
            ioc = await final({"side": "Buy", "orderType": "Limit", "qty": "0.010", "price": bid_px,
                               "timeInForce": "IOC"})
            assert ioc["orderStatus"] == "Cancelled" and ioc["rejectReason"] == "EC_NoImmediateQtyToFill"
            fok = await final({"side": "Buy", "orderType": "Limit", "qty": str(Decimal(ask_sz) + Decimal(5)),
                               "price": ask_px, "timeInForce": "FOK"})
            assert fok["orderStatus"] == "Cancelled" and fok["cumExecQty"] == "0.000"
            part = await final({"side": "Buy", "orderType": "Limit", "qty": str(Decimal(ask_sz) + Decimal("0.001")),
                                "price": ask_px, "timeInForce": "GTC"})
            assert part["orderStatus"] == "PartiallyFilled" and part["cumExecQty"] == ask_sz
            assert sim.book("BTCUSDT", 1)[0][0] == (ask_px, "0.001")  # the rest now rests as best bid

    asyncio.run(main())


def test_order_error_codes(bybit: Any) -> None:
    async def main() -> None:
        async with session(bybit) as (sim, rest, _pv):
            base = {"category": "linear", "side": "Buy", "orderType": "Limit", "timeInForce": "GTC"}
            (bid_px, _), *_ = sim.book("BTCUSDT", 1)[0]

            async def create(**kw: Any) -> dict[str, Any]:
                out: dict[str, Any] = await rest.post("/v5/order/create", {**base, "symbol": "BTCUSDT",
                                                                            "price": bid_px, "qty": "0.001", **kw})
                return out

            ok = await create(orderLinkId="dup-1")
            assert ok["retCode"] == 0
            dup = await create(orderLinkId="dup-1")
            assert dup["retCode"] == 110072 and dup["retMsg"] == "OrderLinkedID is duplicate"
            await rest.post("/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "dup-1"})
            assert (await create(orderLinkId="dup-1"))["retCode"] == 110072  # never reusable
            assert (await create(orderLinkId="x" * 36))["retCode"] == 0
            too_long = await create(orderLinkId="x" * 37)
            assert too_long["retCode"] == 10001 and "orderLinkId" in too_long["retMsg"]
            step = await create(qty="0.0005")
            assert step["retCode"] == 10001 and "qtyStep 0.001" in step["retMsg"]
            tick = await create(price=str(Decimal(bid_px) + Decimal("0.05")))
            assert tick["retCode"] == 10001 and "tickSize 0.10" in tick["retMsg"]
            (doge_bid, _), *_ = sim.book("DOGEUSDT", 1)[0]
            small = await rest.post("/v5/order/create", {**base, "symbol": "DOGEUSDT", "price": doge_bid, "qty": "5"})
            assert small["retCode"] == 10001 and "minimum" in small["retMsg"]
            (xrp_bid, _), *_ = sim.book("XRPUSDT", 1)[0]
            notional = await rest.post("/v5/order/create", {**base, "symbol": "XRPUSDT", "price": xrp_bid, "qty": "1"})
            assert notional["retCode"] == 110094
            lev = await rest.post("/v5/position/set-leverage", {"category": "linear", "symbol": "BTCUSDT",
                                                                "buyLeverage": "1", "sellLeverage": "1"})
            assert lev["retCode"] == 0
            same = await rest.post("/v5/position/set-leverage", {"category": "linear", "symbol": "BTCUSDT",
                                                                 "buyLeverage": "1", "sellLeverage": "1"})
            assert same["retCode"] == 110043
            broke = await create(qty="2.000")  # 130k USDT at 1x with 100k in the wallet
            assert broke["retCode"] == 110007
            ro = await create(reduceOnly=True)
            assert ro["retCode"] == 110017
            for path in ("/v5/order/cancel", "/v5/order/amend"):
                nx = await rest.post(path, {"category": "linear", "symbol": "BTCUSDT", "orderId": "nope", "qty": "1"})
                assert nx["retCode"] == 110001
            nol = await rest.post("/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "zz"})
            assert nol["retCode"] == 110001
            cat = await rest.post("/v5/order/create", {**base, "category": "spot", "symbol": "BTCUSDT", "qty": "1"})
            assert cat["retCode"] == 10001
            assert (await rest.get("/v5/account/wallet-balance", {"accountType": "CONTRACT"}))["retCode"] == 10001

    asyncio.run(main())


def test_take_profit_closes_the_position(bybit: Any) -> None:
    async def main() -> None:
        async with session(bybit) as (sim, rest, pv):
            zero = await rest.post("/v5/position/trading-stop", {"category": "linear", "symbol": "BTCUSDT",
                                                                  "tpslMode": "Full", "positionIdx": 0,
                                                                  "takeProfit": "70000.00"})
            assert zero["retCode"] == 10001
            r = await rest.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                                     "orderType": "Market", "qty": "0.100"})
            assert r["retCode"] == 0
            await pv.next("execution")
            last = Decimal(sim.markets["BTCUSDT"].inst.price_str(sim.markets["BTCUSDT"].last_ticks))
            tp = str(last + Decimal("5.00"))
            bad = await rest.post("/v5/position/trading-stop", {"category": "linear", "symbol": "BTCUSDT",
                                                                 "tpslMode": "Full", "positionIdx": 0,
                                                                 "takeProfit": str(last - Decimal("5.00"))})
            assert bad["retCode"] == 10001
            ts = await rest.post("/v5/position/trading-stop", {"category": "linear", "symbol": "BTCUSDT",
                                                                "tpslMode": "Full", "positionIdx": 0, "takeProfit": tp,
                                                                "stopLoss": str(last - Decimal("500.00"))})
            assert ts["retCode"] == 0
            p = await pv.next("position", lambda m: m["data"][0]["takeProfit"] == tp)
            assert p["data"][0]["stopLoss"] == str(last - Decimal("500.00"))
            same = await rest.post("/v5/position/trading-stop", {"category": "linear", "symbol": "BTCUSDT",
                                                                  "tpslMode": "Full", "positionIdx": 0, "takeProfit": tp})
            assert same["retCode"] == 34040
            # buyers lift the offer through the TP: the position is closed at market
            for _ in range(50):
                sim.market_trade("BTCUSDT", "Buy", "0.500")
                if sim.markets["BTCUSDT"].last_ticks >= sim.markets["BTCUSDT"].inst.parse_price(tp):
                    break
            closing = await pv.next("order", lambda m: m["data"][0]["stopOrderType"] == "TakeProfit")
            d = closing["data"][0]
            assert d["side"] == "Sell" and d["reduceOnly"] is True and d["createType"] == "CreateByTakeProfit"
            flat = await pv.next("position", lambda m: m["data"][0]["size"] == "0.000")
            assert flat["data"][0]["takeProfit"] == "0"

    asyncio.run(main())
