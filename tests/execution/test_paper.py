"""Paper venue: hand-checked fills on small books built through the real native engine from
Bybit ``orderbook`` messages; every push parsed by the domain and driven through the order state
machine; errors shaped like the live client's.

Book used by most tests (BTCUSDT, tick 0.1, qty step 0.001)::

    asks  65001.0 x 0.500
          65000.5 x 0.200
          65000.0 x 0.100
    bids  64999.5 x 0.300
          64999.0 x 1.000
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from pysrc.book import BookEngine
from pysrc.domain.orders import (
    Order,
    OrderState,
    on_exchange_update,
    on_submit_accepted,
)
from pysrc.domain.values import Execution, OrderType, OrderUpdate, Side, TimeInForce
from pysrc.exchange.bybit.errors import BybitApiError
from pysrc.exchange.bybit.orders import CancelStatus, CreateStatus
from pysrc.exchange.errors import RetryClass
from pysrc.exchange.instruments import Instrument
from pysrc.execution.paper import NO_BOOK_CODE, PaperVenue
from pysrc.execution.venue import OrderRequest, Venue
from pysrc.feed.events import Trade, Trades

D = Decimal
SYM = "BTCUSDT"
BIDS = [["64999.5", "0.300"], ["64999.0", "1.000"]]
ASKS = [["65000.0", "0.100"], ["65000.5", "0.200"], ["65001.0", "0.500"]]

INST = Instrument(
    symbol=SYM, status="Trading", tick_size=D("0.1"), qty_step=D("0.001"), min_qty=D("0.001"),
    max_qty=D("100"), min_price=D("0.1"), max_price=D("1999999.8"), max_market_qty=D("50"),
    min_notional=D("5"), min_leverage=D("1"), max_leverage=D("100"), leverage_step=D("0.01"),
    base_coin="BTC", quote_coin="USDT", settle_coin="USDT", contract_type="LinearPerpetual",
)


class Book:
    """Feeds Bybit v5 ``orderbook.50`` messages into a real native engine."""

    def __init__(self, symbol: str = SYM) -> None:
        self.engine = BookEngine("bybit")
        self.symbol = symbol
        self.u = 0

    def _msg(self, kind: str, bids: list[list[str]], asks: list[list[str]]) -> None:
        self.u += 1
        msg = {"topic": f"orderbook.50.{self.symbol}", "type": kind, "ts": 1_700_000_000_000 + self.u,
               "data": {"s": self.symbol, "b": bids, "a": asks, "u": self.u, "seq": self.u},
               "cts": 1_700_000_000_000 + self.u}
        outcome, _ = self.engine.apply(json.dumps(msg).encode())
        assert outcome == 0, f"book message not applied: {outcome}"

    def snapshot(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        self._msg("snapshot", bids, asks)

    def delta(self, bids: list[list[str]] | None = None, asks: list[list[str]] | None = None) -> None:
        self._msg("delta", bids or [], asks or [])


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        self.ms += 1
        return self.ms


Pushes = list[tuple[str, dict[str, Any]]]


def make(balance: str = "100000", **kw: Any) -> tuple[PaperVenue, Book]:
    book = Book()
    book.snapshot(BIDS, ASKS)
    venue = PaperVenue(book.engine, [INST], balance=D(balance), clock=Clock(), id_salt="test", **kw)
    return venue, book


def run(venue: PaperVenue, body: Callable[[Pushes], Awaitable[None]]) -> Pushes:
    """Start the venue with a collecting handler, run ``body``, drain, return every push."""
    pushes: Pushes = []

    async def handler(topic: str, item: dict[str, Any]) -> None:
        pushes.append((topic, item))

    async def main() -> None:
        await venue.start(handler)
        try:
            await body(pushes)
            await venue.drain()
        finally:
            await venue.close()

    asyncio.run(main())
    for topic, item in pushes:  # every push parses with the domain's parsers
        if topic == "order":
            OrderUpdate.from_bybit(item)
        elif topic == "execution":
            Execution.from_bybit(item)
    return pushes


def req(side: str, qty: str, link: str, price: str | None = None, tif: str | None = None,
        reduce_only: bool = False, **kw: Any) -> OrderRequest:
    return OrderRequest(SYM, side, "Limit" if price else "Market", D(qty), link,
                        price=D(price) if price else None, time_in_force=tif, reduce_only=reduce_only, **kw)


def of(pushes: Pushes, topic: str, link: str | None = None) -> list[dict[str, Any]]:
    return [i for t, i in pushes if t == topic and (link is None or i.get("orderLinkId") == link)]


def drive(pushes: Pushes, request: OrderRequest, order_id: str) -> Order:
    """Feed the order's pushes through the domain state machine, as the execution layer will."""
    order = Order(request.order_link_id, request.symbol, Side(request.side), OrderType(request.order_type),
                  request.qty, request.price, TimeInForce(request.time_in_force or "GTC"), request.reduce_only)
    order.submit()
    on_submit_accepted(order, order_id)
    for topic, item in pushes:
        if item.get("orderLinkId") != request.order_link_id:
            continue
        if topic == "order":
            on_exchange_update(order, OrderUpdate.from_bybit(item))
        elif topic == "execution":
            on_exchange_update(order, Execution.from_bybit(item))
    return order


# ---- market orders ------------------------------------------------------------------------------


def test_is_a_venue() -> None:
    venue, _ = make()
    assert isinstance(venue, Venue) and venue.name == "paper"


def test_market_buy_walks_three_levels_exact_vwap_fees_pnl_wallet() -> None:
    venue, _ = make()
    r = req("Buy", "0.5", "mkt-1")

    async def body(pushes: Pushes) -> None:
        res = await venue.place(r)
        assert res.status is CreateStatus.ACCEPTED and res.order_link_id == "mkt-1" and res.order_id
        assert res.order is None and res.error is None

    pushes = run(venue, body)
    # Bybit's order of events: order New -> executions -> order Filled -> position -> wallet
    assert [t for t, _ in pushes] == ["order", "execution", "execution", "execution", "order", "position", "wallet"]
    new, filled = of(pushes, "order")
    assert new["orderStatus"] == "New" and new["cumExecQty"] == "0.000" and new["leavesQty"] == "0.500"
    execs = of(pushes, "execution")
    assert [(e["execPrice"], e["execQty"], e["execValue"], e["execFee"]) for e in execs] == [
        ("65000.0", "0.100", "6500", "3.575"),
        ("65000.5", "0.200", "13000.1", "7.150055"),
        ("65001.0", "0.200", "13000.2", "7.15011"),
    ]
    assert all(e["isMaker"] is False and e["feeRate"] == "0.00055" and e["execType"] == "Trade" for e in execs)
    assert [e["leavesQty"] for e in execs] == ["0.400", "0.200", "0.000"]
    assert filled["orderStatus"] == "Filled" and filled["cumExecQty"] == "0.500"
    assert filled["cumExecValue"] == "32500.3" and filled["avgPrice"] == "65000.6"
    assert filled["cumFeeDetail"] == {"USDT": "17.875165"} and filled["leavesQty"] == "0.000"
    assert filled["timeInForce"] == "IOC" and filled["price"] == "65001.0"  # worst price reached
    pos = of(pushes, "position")[-1]
    assert pos["side"] == "Buy" and pos["size"] == "0.500" and pos["entryPrice"] == "65000.6"
    assert pos["positionValue"] == "32500.3" and pos["leverage"] == "10"
    # mark = mid = (64999.5 + 65000.0) / 2 = 64999.75 ; upl = 0.5 x 64999.75 - 32500.3
    assert pos["markPrice"] == "64999.75" and pos["unrealisedPnl"] == "-0.425"
    assert pos["cumRealisedPnl"] == "-17.875165" and pos["curRealisedPnl"] == "-17.875165"
    wallet = of(pushes, "wallet")[-1]
    assert wallet["totalWalletBalance"] == "99982.124835"
    assert wallet["coin"][0]["walletBalance"] == "99982.124835"
    assert wallet["totalEquity"] == "99981.699835"  # balance + upl
    # position IM 32500.3 / 10 = 3250.03
    assert wallet["totalInitialMargin"] == "3250.03" and wallet["totalAvailableBalance"] == "96731.669835"
    order = drive(pushes, r, filled["orderId"])
    assert order.state is OrderState.FILLED and order.fees == D("17.875165")
    assert order.filled_value == D("32500.3")


def test_market_order_on_thin_book_is_partially_filled_then_cancelled_and_liquidity_is_not_reused() -> None:
    venue, _ = make()
    first, second = req("Buy", "0.5", "thin-1"), req("Buy", "0.5", "thin-2")

    async def body(pushes: Pushes) -> None:
        await venue.place(first)
        await venue.place(second)  # only 0.3 left at 65001.0: the first took the rest

    pushes = run(venue, body)
    execs = of(pushes, "execution", "thin-2")
    assert [(e["execPrice"], e["execQty"]) for e in execs] == [("65001.0", "0.300")]
    last = of(pushes, "order", "thin-2")[-1]
    assert last["orderStatus"] == "Cancelled" and last["cumExecQty"] == "0.300" and last["leavesQty"] == "0.000"
    assert last["rejectReason"] == "EC_NoError"
    order = drive(pushes, second, last["orderId"])
    assert order.state is OrderState.CANCELLED and order.filled_qty == D("0.3")

    venue2, _ = make()

    async def third(pushes: Pushes) -> None:
        # the whole ask side is taken: nothing to fill at all
        await venue2.place(req("Buy", "0.1", "thin-3"))

    venue2.place_now(req("Buy", "0.8", "eat-all"))
    pushes = run(venue2, third)
    last = of(pushes, "order", "thin-3")[-1]
    assert last["orderStatus"] == "Cancelled" and last["cumExecQty"] == "0.000"
    assert last["rejectReason"] == "EC_NoImmediateQtyToFill"


def test_taken_liquidity_returns_when_the_feed_refreshes_the_level() -> None:
    venue, book = make()
    venue.place_now(req("Buy", "0.1", "a1"))  # takes 65000.0 x 0.1
    book.delta(asks=[["65000.0", "0.250"]])  # new size at that level: the overlay is dropped
    venue.place_now(req("Buy", "0.2", "a2"))
    ex = [e for e in asyncio.run(venue.executions(SYM)) if e["orderLinkId"] == "a2"]
    assert [(e["execPrice"], e["execQty"]) for e in ex] == [("65000.0", "0.200")]


def test_market_slippage_tolerance_caps_the_walk() -> None:
    venue, _ = make()
    r = req("Buy", "0.5", "cap-1", extra={"slippageToleranceType": "TickSize", "slippageTolerance": "5"})
    venue.place_now(r)  # cap = 65000.0 + 5 x 0.1 = 65000.5
    o = asyncio.run(venue.find_order(SYM, "cap-1"))
    assert o is not None and o["price"] == "65000.5" and o["cumExecQty"] == "0.300"
    assert o["orderStatus"] == "Cancelled"


# ---- limit orders -------------------------------------------------------------------------------


def test_limit_rests_and_fills_after_queue_ahead_is_consumed_by_trades() -> None:
    venue, _ = make()
    r = req("Buy", "0.2", "q-1", price="64999.5")
    oid = ""

    async def body(pushes: Pushes) -> None:
        nonlocal oid
        res = await venue.place(r)
        oid = res.order_id or ""
        assert venue.queue_ahead(SYM, "q-1") == D("0.300")  # the book's size at the price
        venue.on_trade(SYM, "Buy", "64999.5", "1", 1)  # buy aggressor: does not touch bids
        venue.on_trade(SYM, "Sell", "64999.5", "0.100", 2)
        assert venue.queue_ahead(SYM, "q-1") == D("0.200")
        venue.on_trade(SYM, "Sell", "64999.5", "0.250", 3)  # 0.2 queue, then 0.05 for us
        assert venue.queue_ahead(SYM, "q-1") == D("0")
        # through the feed's Trades event (a block trade is off-book and ignored)
        venue.on_trades(Trades(SYM, 4, (Trade(4, "64999.5", "5", "Sell", "t1", block=True),
                                        Trade(4, "64999.5", "0.200", "Sell", "t2"))))

    pushes = run(venue, body)
    assert [t for t, _ in pushes] == [
        "order", "position", "wallet",  # New
        "execution", "order", "position", "wallet",  # 0.05 maker
        "execution", "order", "position", "wallet",  # 0.15 maker
    ]
    orders = of(pushes, "order")
    assert [(o["orderStatus"], o["cumExecQty"]) for o in orders] == [
        ("New", "0.000"), ("PartiallyFilled", "0.050"), ("Filled", "0.200")]
    execs = of(pushes, "execution")
    # 0.05 x 64999.5 = 3249.975 ; fee 0.0002 -> 0.649995 ; 0.15 x 64999.5 = 9749.925 -> 1.949985
    assert [(e["execQty"], e["execValue"], e["execFee"], e["isMaker"], e["feeRate"]) for e in execs] == [
        ("0.050", "3249.975", "0.649995", True, "0.0002"),
        ("0.150", "9749.925", "1.949985", True, "0.0002"),
    ]
    assert of(pushes, "wallet")[-1]["totalWalletBalance"] == "99997.40002"
    order = drive(pushes, r, oid)
    assert order.state is OrderState.FILLED and order.fees == D("2.59998")


def test_queue_shrinks_in_proportion_to_cancellations_not_explained_by_trades() -> None:
    venue, book = make()
    venue.place_now(req("Buy", "0.2", "p-1", price="64999.5"))
    assert venue.queue_ahead(SYM, "p-1") == D("0.3")
    book.delta(bids=[["64999.5", "0.150"]])  # 0.15 cancelled out of 0.3, no trade
    venue.on_book(SYM)
    assert venue.queue_ahead(SYM, "p-1") == D("0.15")  # 0.3 x 0.15 / 0.3
    venue.on_trade(SYM, "Sell", "64999.5", "0.050", 1)
    assert venue.queue_ahead(SYM, "p-1") == D("0.1")
    book.delta(bids=[["64999.5", "0.100"]])  # the decrease is the trade: no cancellation
    venue.on_book(SYM)
    assert venue.queue_ahead(SYM, "p-1") == D("0.1")
    book.delta(bids=[["64999.5", "0.030"]])  # 0.07 cancelled out of 0.1
    venue.on_book(SYM)
    assert venue.queue_ahead(SYM, "p-1") == D("0.03")
    book.delta(bids=[["64999.5", "0.900"]])  # growth joins behind us
    venue.on_book(SYM)
    assert venue.queue_ahead(SYM, "p-1") == D("0.03")
    book.delta(bids=[["64999.5", "0.450"]])  # 0.03 x 0.45 / 0.9 = 0.015
    venue.on_book(SYM)
    assert venue.queue_ahead(SYM, "p-1") == D("0.015")
    book.delta(bids=[["64999.5", "0.200"]])  # 0.015 x 0.2 / 0.45 = 0.00666.. -> up to 0.007
    venue.on_book(SYM)
    assert venue.queue_ahead(SYM, "p-1") == D("0.007")
    book.delta(bids=[["64999.5", "0"]])  # level gone: front of the queue
    venue.on_book(SYM)
    assert venue.queue_ahead(SYM, "p-1") == D("0")


def test_new_price_level_has_no_queue_and_own_orders_keep_time_priority() -> None:
    venue, _ = make()
    venue.place_now(req("Sell", "0.1", "s-1", price="65000.3"))  # no level at that price
    venue.place_now(req("Sell", "0.1", "s-2", price="65000.3"))
    assert venue.queue_ahead(SYM, "s-1") == 0 and venue.queue_ahead(SYM, "s-2") == 0
    venue.on_trade(SYM, "Buy", "65000.3", "0.150", 1)  # 0.1 to s-1, 0.05 to s-2
    one = asyncio.run(venue.find_order(SYM, "s-1"))
    two = asyncio.run(venue.find_order(SYM, "s-2"))
    assert one is not None and two is not None
    assert (one["orderStatus"], one["cumExecQty"]) == ("Filled", "0.100")
    assert (two["orderStatus"], two["cumExecQty"]) == ("PartiallyFilled", "0.050")


def test_trade_through_the_price_fills_a_queued_order() -> None:
    venue, _ = make()
    venue.place_now(req("Buy", "0.2", "t-1", price="64999.5"))
    venue.on_trade(SYM, "Sell", "64999.0", "0.150", 1)  # printed below us: our level was eaten
    o = asyncio.run(venue.find_order(SYM, "t-1"))
    assert o is not None and o["cumExecQty"] == "0.150" and o["avgPrice"] == "64999.5"
    assert venue.queue_ahead(SYM, "t-1") == 0


def test_crossing_book_fills_the_resting_order_in_full_at_its_price() -> None:
    venue, book = make()
    r = req("Buy", "0.4", "x-1", price="64999.5")

    async def body(pushes: Pushes) -> None:
        await venue.place(r)
        # the bid level goes and the asks come down to our price
        book.delta(bids=[["64999.5", "0"]], asks=[["64999.5", "0.050"]])
        venue.on_book(SYM)

    pushes = run(venue, body)
    execs = of(pushes, "execution")
    assert [(e["execPrice"], e["execQty"], e["isMaker"], e["execFee"]) for e in execs] == [
        ("64999.5", "0.400", True, "5.19996")]  # 25999.8 x 0.0002
    assert of(pushes, "order")[-1]["orderStatus"] == "Filled"
    assert drive(pushes, r, execs[0]["orderId"]).state is OrderState.FILLED


def test_marketable_limit_takes_then_rests_partially_filled_then_full() -> None:
    venue, book = make()
    r = req("Buy", "0.5", "ml-1", price="65000.5")

    async def body(pushes: Pushes) -> None:
        await venue.place(r)  # takes 0.1 @ 65000.0 and 0.2 @ 65000.5, rests 0.2 at 65000.5
        assert venue.queue_ahead(SYM, "ml-1") == 0  # a new bid level
        venue.on_book(SYM)  # the asks it took are still in the feed's book: not a crossing
        venue.on_trade(SYM, "Sell", "65000.5", "0.050", 1)
        book.delta(asks=[["65000.0", "0.300"]])  # the feed refreshes the level: now crossed
        venue.on_book(SYM)

    pushes = run(venue, body)
    orders = of(pushes, "order")
    assert [(o["orderStatus"], o["cumExecQty"]) for o in orders] == [
        ("New", "0.000"), ("PartiallyFilled", "0.300"), ("PartiallyFilled", "0.350"), ("Filled", "0.500")]
    execs = of(pushes, "execution")
    assert [(e["execPrice"], e["execQty"], e["isMaker"]) for e in execs] == [
        ("65000.0", "0.100", False), ("65000.5", "0.200", False),
        ("65000.5", "0.050", True), ("65000.5", "0.150", True)]
    assert drive(pushes, r, orders[0]["orderId"]).state is OrderState.FILLED


def test_post_only_rejected_when_marketable_rests_otherwise() -> None:
    venue, _ = make()
    bad = req("Buy", "0.1", "po-1", price="65000.0", tif="PostOnly")
    good = req("Buy", "0.1", "po-2", price="64999.9", tif="PostOnly")

    async def body(pushes: Pushes) -> None:
        res = await venue.place(bad)
        assert res.status is CreateStatus.ACCEPTED  # Bybit accepts, then cancels it
        await venue.place(good)

    pushes = run(venue, body)
    first = of(pushes, "order", "po-1")
    assert len(first) == 1 and first[0]["orderStatus"] == "Cancelled"
    assert first[0]["rejectReason"] == "EC_PostOnlyWillTakeLiquidity" and first[0]["cumExecQty"] == "0.000"
    assert not of(pushes, "execution")
    assert drive(pushes, bad, first[0]["orderId"]).state is OrderState.CANCELLED
    assert [o["orderStatus"] for o in of(pushes, "order", "po-2")] == ["New"]


def test_ioc_and_fok() -> None:
    venue, _ = make()
    venue.place_now(req("Buy", "0.5", "ioc-1", price="65000.5", tif="IOC"))
    ioc = asyncio.run(venue.find_order(SYM, "ioc-1"))
    assert ioc is not None and (ioc["orderStatus"], ioc["cumExecQty"]) == ("Cancelled", "0.300")
    venue2, _ = make()
    venue2.place_now(req("Buy", "0.5", "fok-1", price="65000.5", tif="FOK"))
    fok = asyncio.run(venue2.find_order(SYM, "fok-1"))
    assert fok is not None and (fok["orderStatus"], fok["cumExecQty"]) == ("Cancelled", "0.000")
    assert fok["rejectReason"] == "EC_CancelForNoFullFill"
    venue2.place_now(req("Buy", "0.3", "fok-2", price="65000.5", tif="FOK"))
    fok2 = asyncio.run(venue2.find_order(SYM, "fok-2"))
    assert fok2 is not None and (fok2["orderStatus"], fok2["cumExecQty"]) == ("Filled", "0.300")
    assert not asyncio.run(venue2.open_orders())


# ---- reduce-only, balance, validation -----------------------------------------------------------


def test_reduce_only_rejected_without_position_and_clamped_to_it() -> None:
    venue, book = make()
    with pytest.raises(BybitApiError) as e:
        venue.place_now(req("Sell", "0.1", "ro-0", reduce_only=True))
    assert e.value.ret_code == 110017 and e.value.retry is RetryClass.FATAL
    venue.place_now(req("Buy", "0.3", "ro-open"))  # long 0.3
    book.snapshot([["65010.0", "5"]], [["65011.0", "5"]])
    venue.place_now(req("Sell", "0.8", "ro-1", reduce_only=True))  # trimmed to 0.3
    o = asyncio.run(venue.find_order(SYM, "ro-1"))
    assert o is not None and o["qty"] == "0.300" and o["cumExecQty"] == "0.300" and o["orderStatus"] == "Filled"
    pos = asyncio.run(venue.positions(SYM))[0]
    assert pos["size"] == "0.000" and pos["side"] == ""  # flat, never short
    with pytest.raises(BybitApiError) as e:
        venue.place_now(req("Sell", "0.1", "ro-2", reduce_only=True))
    assert e.value.ret_code == 110017


def test_resting_reduce_only_is_trimmed_then_cancelled_as_the_position_shrinks() -> None:
    venue, book = make()
    venue.place_now(req("Buy", "0.4", "open"))  # long 0.4 (0.1 + 0.2 + 0.1)
    book.snapshot([["64990.0", "5"]], [["65020.0", "5"]])
    ro = req("Sell", "0.4", "ro-rest", price="65019.0", reduce_only=True)

    async def body(pushes: Pushes) -> None:
        await venue.place(ro)
        await venue.place(req("Sell", "0.3", "cut"))  # long 0.1 left: ro trimmed to 0.1
        await venue.place(req("Sell", "0.1", "cut-2"))  # flat: ro cancelled

    pushes = run(venue, body)
    states = [(o["orderStatus"], o["qty"], o["cancelType"]) for o in of(pushes, "order", "ro-rest")]
    assert states == [("New", "0.400", "UNKNOWN"), ("New", "0.100", "UNKNOWN"),
                      ("Cancelled", "0.100", "CancelByReduceOnly")]
    order = drive(pushes, ro, of(pushes, "order", "ro-rest")[0]["orderId"])
    assert order.state is OrderState.CANCELLED and order.qty == D("0.1")


def test_insufficient_balance_counts_initial_margin_and_fees() -> None:
    venue, _ = make(balance="1000")
    # 0.2 x 64000 = 12800 -> IM 1280 + fee 7.04 > 1000
    with pytest.raises(BybitApiError) as e:
        venue.place_now(req("Buy", "0.2", "bal-1", price="64000.0"))
    assert e.value.ret_code == 110007 and e.value.path == "/v5/order/create"
    assert e.value.retry is RetryClass.FATAL
    venue.place_now(req("Buy", "0.1", "bal-2", price="64000.0"))  # 640 + 3.52 = 643.52
    w = asyncio.run(venue.wallet())
    assert w["coin"][0]["totalOrderIM"] == "643.52" and w["totalAvailableBalance"] == "356.48"
    with pytest.raises(BybitApiError) as e:
        venue.place_now(req("Buy", "0.1", "bal-3", price="64000.0"))
    assert e.value.ret_code == 110007
    # a rejected create does not use up its orderLinkId
    asyncio.run(venue.cancel(SYM, "bal-2"))
    venue.place_now(req("Buy", "0.1", "bal-3", price="64000.0"))
    assert asyncio.run(venue.find_order(SYM, "bal-3")) is not None


def test_validation_errors_match_bybit_codes() -> None:
    venue, _ = make()
    cases = [
        (req("Buy", "0.0005", "v1", price="64000.0"), 10001),  # qty off the step
        (req("Buy", "0.001", "v2", price="64000.05"), 10001),  # price off the tick
        (req("Buy", "0", "v3", price="64000.0"), 10001),  # nothing to trade
        (req("Buy", "101", "v4", price="64000.0"), 10001),  # above maxOrderQty
        (req("Buy", "51", "v5"), 10001),  # above maxMktOrderQty
        (OrderRequest("ETHUSDT", "Buy", "Market", D("1"), "v6"), 10001),  # unknown symbol
        (req("Buy", "0.001", "v7", price="64000.0", tif="RPI"), 10001),
        (req("Buy", "0.001", "v8", price="64000.0", extra={"positionIdx": 1}), 10001),
    ]
    for r, code in cases:
        with pytest.raises(BybitApiError) as e:
            venue.place_now(r)
        assert e.value.ret_code == code, r
    tiny = Instrument(SYM, "Trading", D("0.1"), D("0.001"), D("0.001"), D("100"), min_notional=D("100"))
    venue.set_instruments([tiny])
    with pytest.raises(BybitApiError) as e:
        venue.place_now(req("Buy", "0.001", "v9", price="64000.0"))  # 64 < 100 USDT
    assert e.value.ret_code == 110094
    with pytest.raises(ValueError):
        venue.place_now(req("Buy", "0.001", "x" * 37, price="64000.0"))  # as BybitRest refuses it
    with pytest.raises(ValueError):
        venue.place_now(req("Buy", "0.001", "bad id!", price="64000.0"))
    assert not asyncio.run(venue.open_orders())


def test_duplicate_order_link_id_answers_like_the_live_client() -> None:
    venue, _ = make()
    first = venue.place_now(req("Buy", "0.1", "dup-1", price="64000.0"))
    again = venue.place_now(req("Buy", "0.1", "dup-1", price="64000.0"))
    assert again.status is CreateStatus.DUPLICATE and again.exists and not again.safe_to_retry
    assert again.order_id == first.order_id and again.order is not None
    assert again.order["orderLinkId"] == "dup-1" and again.order["orderStatus"] == "New"
    assert isinstance(again.error, BybitApiError) and again.error.ret_code == 110072
    assert again.error.retry is RetryClass.DUPLICATE
    assert len(asyncio.run(venue.open_orders())) == 1
    asyncio.run(venue.cancel(SYM, "dup-1"))  # still a duplicate once closed
    assert venue.place_now(req("Buy", "0.1", "dup-1", price="64000.0")).status is CreateStatus.DUPLICATE


def test_book_not_live_refuses_orders_with_a_retryable_code() -> None:
    book = Book()
    venue = PaperVenue(book.engine, [INST], clock=Clock(), id_salt="t")
    with pytest.raises(BybitApiError) as e:
        venue.place_now(req("Buy", "0.1", "nb-1"))
    assert e.value.ret_code == NO_BOOK_CODE and e.value.retry is RetryClass.BACKOFF


# ---- cancel and queries -------------------------------------------------------------------------


def test_cancel_and_cancel_all() -> None:
    venue, _ = make()
    r = req("Buy", "0.1", "c-1", price="64000.0")

    async def body(pushes: Pushes) -> None:
        await venue.place(r)
        await venue.place(req("Sell", "0.1", "c-2", price="66000.0"))
        await venue.place(req("Sell", "0.1", "c-3", price="66000.0"))
        res = await venue.cancel(SYM, "c-1")
        assert res.status is CancelStatus.CANCELLED and res.order_link_id == "c-1" and res.order_id
        with pytest.raises(BybitApiError) as e:
            await venue.cancel(SYM, "c-1")
        assert e.value.ret_code == 110001 and e.value.retry is RetryClass.ORDER_GONE
        with pytest.raises(BybitApiError):
            await venue.cancel(SYM, "never")
        assert [o["orderLinkId"] for o in await venue.open_orders(SYM)] == ["c-3", "c-2"]  # newest first
        done = await venue.cancel_all(SYM)
        assert [d["orderLinkId"] for d in done] == ["c-2", "c-3"]
        assert await venue.open_orders() == [] and await venue.cancel_all() == []
        found = await venue.find_order(SYM, "c-1")
        assert found is not None and found["orderStatus"] == "Cancelled" and found["cancelType"] == "CancelByUser"
        assert await venue.find_order(SYM, "nope") is None
        assert [o["orderLinkId"] for o in await venue.order_history(SYM)] == ["c-3", "c-2", "c-1"]

    pushes = run(venue, body)
    assert [o["orderStatus"] for o in of(pushes, "order", "c-1")] == ["New", "Cancelled"]
    order = drive(pushes, r, of(pushes, "order", "c-1")[0]["orderId"])
    assert order.state is OrderState.CANCELLED
    # a cancel is followed by position and wallet pushes, as on Bybit
    i = next(k for k, (t, it) in enumerate(pushes) if t == "order" and it["orderStatus"] == "Cancelled")
    assert [t for t, _ in pushes[i:i + 3]] == ["order", "position", "wallet"]


def test_round_trip_pnl_and_wallet_exact_to_the_cent() -> None:
    venue, book = make()
    venue.place_now(req("Buy", "0.5", "rt-open"))  # 32500.3, fee 17.875165
    book.snapshot([["65100.0", "2.000"], ["65099.5", "1"]], [["65100.5", "1"]])
    venue.on_book(SYM)
    pos = asyncio.run(venue.positions(SYM))[0]
    # mid 65100.25 -> upl 0.5 x 65100.25 - 32500.3 = 49.825
    assert pos["avgPrice"] == "65000.6" and pos["unrealisedPnl"] == "49.825" and pos["markPrice"] == "65100.25"
    assert asyncio.run(venue.positions()) == [pos]
    venue.place_now(req("Sell", "0.2", "rt-part", reduce_only=True))
    # released cost 32500.3 x 0.2 / 0.5 = 13000.12 ; exit 13020 ; pnl 19.88 ; fee 7.161
    ex = [e for e in asyncio.run(venue.executions(SYM)) if e["orderLinkId"] == "rt-part"]
    assert [(e["execPnl"], e["execFee"], e["closedSize"]) for e in ex] == [("19.88", "7.161", "0.200")]
    venue.place_now(req("Sell", "0.3", "rt-close", reduce_only=True))
    # released 19500.18 ; exit 19530 ; pnl 29.82 ; fee 10.7415
    pos = asyncio.run(venue.positions(SYM))[0]
    assert pos["size"] == "0.000" and pos["unrealisedPnl"] == "0" and pos["positionValue"] == "0"
    # 49.7 - 17.875165 - 7.161 - 10.7415
    assert pos["cumRealisedPnl"] == "13.922335"
    w = asyncio.run(venue.wallet())
    assert w["totalWalletBalance"] == "100013.922335" and w["totalEquity"] == "100013.922335"
    assert w["totalAvailableBalance"] == "100013.922335" and w["coin"][0]["cumRealisedPnl"] == "13.922335"
    assert venue.total_realised == D("49.7") and venue.total_fees == D("35.777665")
    assert venue.balance == venue.initial_balance - venue.total_fees + venue.total_realised


def test_short_flip_and_short_pnl() -> None:
    venue, book = make()
    venue.place_now(req("Sell", "1.000", "sh-1"))  # 0.3 @ 64999.5 + 0.7 @ 64999.0 = 64999.15
    pos = asyncio.run(venue.positions(SYM))[0]
    assert pos["side"] == "Sell" and pos["size"] == "1.000" and pos["positionValue"] == "64999.15"
    book.snapshot([["64000.0", "5"]], [["64000.5", "5"]])
    venue.place_now(req("Buy", "1.500", "flip"))  # closes 1.0 at 64000.5, opens long 0.5
    pos = asyncio.run(venue.positions(SYM))[0]
    assert pos["side"] == "Buy" and pos["size"] == "0.500" and pos["avgPrice"] == "64000.5"
    ex = [e for e in asyncio.run(venue.executions(SYM)) if e["orderLinkId"] == "flip"]
    assert [(e["execPnl"], e["closedSize"]) for e in ex] == [("998.65", "1.000")]  # 64999.15 - 64000.5
    assert venue.balance == venue.initial_balance - venue.total_fees + venue.total_realised


def test_take_profit_attached_to_the_order_closes_at_market() -> None:
    venue, book = make()
    venue.place_now(req("Buy", "0.1", "tp-open", take_profit=D("65100.0"), stop_loss=D("64000.0")))
    pos = asyncio.run(venue.positions(SYM))[0]
    assert pos["takeProfit"] == "65100.0" and pos["stopLoss"] == "64000.0"
    book.snapshot([["65100.0", "1"]], [["65100.5", "1"]])
    venue.on_trade(SYM, "Buy", "65100.0", "0.01", 1)
    pos = asyncio.run(venue.positions(SYM))[0]
    assert pos["size"] == "0.000" and pos["takeProfit"] == "0"
    closing = [o for o in asyncio.run(venue.order_history(SYM)) if o["stopOrderType"] == "TakeProfit"]
    assert len(closing) == 1 and closing[0]["orderLinkId"] == "" and closing[0]["reduceOnly"] is True
    assert closing[0]["createType"] == "CreateByTakeProfit" and closing[0]["orderStatus"] == "Filled"
    with pytest.raises(BybitApiError) as e:  # flat: nothing to protect
        asyncio.run(venue.trading_stop(SYM, stop_loss=D("60000.0")))
    assert e.value.ret_code == 10001


def test_trading_stop_sets_and_triggers_a_stop_loss() -> None:
    venue, book = make()
    venue.place_now(req("Sell", "0.1", "sl-open"))  # short 0.1 at 64999.5
    assert asyncio.run(venue.trading_stop(SYM, stop_loss=D("65050.0"))) is True
    assert asyncio.run(venue.trading_stop(SYM, stop_loss=D("65050.0"))) is False  # 34040: not modified
    venue.on_trade(SYM, "Buy", "65049.9", "0.01", 1)
    assert asyncio.run(venue.positions(SYM))[0]["size"] == "0.100"
    book.snapshot([["65049.5", "1"]], [["65050.0", "1"]])
    venue.on_trade(SYM, "Buy", "65050.0", "0.01", 2)
    assert asyncio.run(venue.positions(SYM))[0]["size"] == "0.000"
    closing = [o for o in asyncio.run(venue.order_history(SYM)) if o["stopOrderType"] == "StopLoss"]
    assert len(closing) == 1 and closing[0]["side"] == "Buy" and closing[0]["avgPrice"] == "65050"


def test_leverage_changes_margin() -> None:
    venue, _ = make()
    assert asyncio.run(venue.set_leverage(SYM, D("10"))) is False  # 110043: not modified
    assert asyncio.run(venue.set_leverage(SYM, D("5"))) is True
    venue.place_now(req("Buy", "0.1", "lev", price="64000.0"))
    w = asyncio.run(venue.wallet())
    assert w["coin"][0]["totalOrderIM"] == "1283.52"  # 6400 / 5 + 3.52
    with pytest.raises(BybitApiError) as e:
        asyncio.run(venue.set_leverage(SYM, D("1000")))
    assert e.value.ret_code == 10001


# ---- persistence --------------------------------------------------------------------------------


def test_snapshot_restore_round_trip_keeps_positions_orders_queue_and_ids() -> None:
    venue, _ = make()
    venue.place_now(req("Buy", "0.5", "s-open"))
    venue.place_now(req("Buy", "0.2", "s-rest", price="64999.5"))
    venue.on_trade(SYM, "Sell", "64999.5", "0.1", 1)
    venue.place_now(req("Sell", "0.2", "s-tp", price="65500.0", reduce_only=True))
    state = venue.snapshot()
    text = json.dumps(state)  # JSON-safe
    restored_state = json.loads(text)

    book2 = Book()
    book2.snapshot(BIDS, ASKS)
    fresh = PaperVenue(book2.engine, [INST], clock=Clock(), id_salt="other")
    fresh.restore(restored_state)
    for name in ("positions", "open_orders", "executions", "wallet", "order_history"):
        assert asyncio.run(getattr(fresh, name)()) == asyncio.run(getattr(venue, name)()), name
    again = fresh.snapshot()
    state.pop("taken_at")
    again.pop("taken_at")
    assert again == state
    assert fresh.queue_ahead(SYM, "s-rest") == D("0.2")
    # ids are not reused after a restart, and the used orderLinkIds stay reserved
    assert fresh.place_now(req("Buy", "0.1", "s-open")).status is CreateStatus.DUPLICATE
    new = fresh.place_now(req("Buy", "0.1", "after", price="60000.0"))
    assert new.order_id not in {o["orderId"] for o in asyncio.run(venue.order_history())}
    # the restored resting order keeps filling in the new process
    fresh.on_trade(SYM, "Sell", "64999.5", "0.3", 2)  # 0.2 queue, 0.1 for us
    o = asyncio.run(fresh.find_order(SYM, "s-rest"))
    assert o is not None and o["orderStatus"] == "PartiallyFilled" and o["cumExecQty"] == "0.100"
    with pytest.raises(ValueError):
        fresh.restore({"version": 999})
