"""Paper venue edge cases: TP/SL validation, bounded snapshot history, a book being resynced, a
price beyond the visible depth, push delivery (errors in the handler, not started), time that
goes backwards."""

from __future__ import annotations

import asyncio
import json
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
from pysrc.exchange.bybit.orders import CreateStatus
from pysrc.exchange.instruments import Instrument
from pysrc.execution.paper import NO_BOOK_CODE, PaperVenue
from pysrc.execution.venue import OrderRequest

D = Decimal
SYM = "BTCUSDT"
INST = Instrument(SYM, "Trading", D("0.1"), D("0.001"), D("0.001"), D("100"), min_notional=D("5"),
                  min_leverage=D("1"), max_leverage=D("100"), leverage_step=D("0.01"))


class Book:
    def __init__(self, depth: int = 0) -> None:
        self.engine = BookEngine("bybit", depth=depth)
        self.u = 0

    def apply(self, kind: str, bids: list[list[str]], asks: list[list[str]]) -> None:
        self.u += 1
        msg = {"topic": f"orderbook.50.{SYM}", "type": kind, "ts": self.u,
               "data": {"s": SYM, "b": bids, "a": asks, "u": self.u, "seq": self.u}, "cts": self.u}
        assert self.engine.apply(json.dumps(msg))[0] == 0


def make(depth: int = 0, clock: Any = None) -> tuple[PaperVenue, Book]:
    book = Book(depth)
    book.apply("snapshot", [["64999.5", "0.300"], ["64999.0", "1.000"], ["64998.0", "2.000"]],
               [["65000.0", "0.100"], ["65000.5", "0.200"], ["65001.0", "0.500"]])
    ticks = iter(range(1_000, 1_000_000))
    return PaperVenue(book.engine, [INST], clock=clock or (lambda: next(ticks)), id_salt="edge"), book


def limit(side: str, qty: str, link: str, price: str, **kw: Any) -> OrderRequest:
    return OrderRequest(SYM, side, "Limit", D(qty), link, price=D(price), **kw)


def market(side: str, qty: str, link: str, **kw: Any) -> OrderRequest:
    return OrderRequest(SYM, side, "Market", D(qty), link, **kw)


def test_tpsl_on_the_wrong_side_or_on_reduce_only_is_refused() -> None:
    venue, _ = make()
    with pytest.raises(BybitApiError) as e:  # a long's take profit must be above the price
        venue.place_now(limit("Buy", "0.1", "tp-1", "64000.0", take_profit=D("63000.0")))
    assert e.value.ret_code == 10001
    with pytest.raises(BybitApiError) as e:  # a short's stop loss must be above the price
        venue.place_now(limit("Sell", "0.1", "sl-1", "66000.0", stop_loss=D("65000.0")))
    assert e.value.ret_code == 10001
    with pytest.raises(BybitApiError) as e:
        venue.place_now(limit("Buy", "0.1", "tp-2", "64000.0", take_profit=D("65000.05")))  # off tick
    assert e.value.ret_code == 10001
    venue.place_now(market("Buy", "0.1", "open"))
    with pytest.raises(BybitApiError) as e:
        venue.place_now(market("Sell", "0.1", "ro-tp", reduce_only=True, stop_loss=D("60000.0")))
    assert e.value.ret_code == 10001
    with pytest.raises(BybitApiError) as e:  # mark 64999.75: a long's stop loss must be below
        asyncio.run(venue.trading_stop(SYM, stop_loss=D("65100.0")))
    assert e.value.ret_code == 10001 and e.value.path == "/v5/position/trading-stop"
    assert asyncio.run(venue.trading_stop(SYM, take_profit=D("65100.0"))) is True
    assert asyncio.run(venue.positions(SYM))[0]["takeProfit"] == "65100.0"
    assert asyncio.run(venue.trading_stop(SYM, take_profit=D("0"))) is True  # "0" removes it
    assert asyncio.run(venue.positions(SYM))[0]["takeProfit"] == "0"


def test_snapshot_history_is_bounded_but_link_ids_stay_reserved() -> None:
    venue, _ = make()
    for i in range(3):
        venue.place_now(limit("Buy", "0.1", f"h-{i}", "60000.0"))
        asyncio.run(venue.cancel(SYM, f"h-{i}"))
    venue.place_now(market("Buy", "0.2", "h-m"))  # two fills
    state = venue.snapshot(history=1)
    assert [o["link_id"] for o in state["closed_orders"]] == ["h-m"]
    assert len(state["executions"]) == 1
    assert len(venue.snapshot()["executions"]) == 2 and len(venue.snapshot(history=None)["closed_orders"]) == 4
    fresh, _ = make()
    fresh.restore(json.loads(json.dumps(state)))
    dup = fresh.place_now(limit("Buy", "0.1", "h-0", "60000.0"))
    # reserved, but no longer in the history: a duplicate without the record, as BybitRest
    # reports it when its lookup by orderLinkId finds nothing
    assert dup.status is CreateStatus.DUPLICATE and dup.order is None and dup.order_id is None
    assert asyncio.run(fresh.find_order(SYM, "h-0")) is None
    assert asyncio.run(fresh.find_order(SYM, "h-m")) is not None
    with pytest.raises(ValueError):
        fresh.restore({**state, "venue": "bybit"})


def test_book_resync_unanchors_the_queue_and_refuses_new_orders() -> None:
    venue, book = make()
    venue.place_now(limit("Buy", "0.2", "rs-1", "64999.5"))
    assert venue.queue_ahead(SYM, "rs-1") == D("0.3")
    book.engine.reset(SYM)  # the feed lost the book: waiting for a fresh snapshot
    venue.on_book(SYM)
    with pytest.raises(BybitApiError) as e:
        venue.place_now(market("Buy", "0.1", "rs-2"))
    assert e.value.ret_code == NO_BOOK_CODE
    # the mark survives the rebuild
    assert asyncio.run(venue.wallet())["totalEquity"] == "100000"
    book.apply("snapshot", [["64999.5", "0.120"]], [["65000.0", "1"]])
    venue.on_book(SYM)
    # re-anchored at the first sight of the level: no proportional scaling against a stale size
    assert venue.queue_ahead(SYM, "rs-1") == D("0.12")
    book.apply("delta", [["64999.5", "0.060"]], [])
    venue.on_book(SYM)
    assert venue.queue_ahead(SYM, "rs-1") == D("0.06")


def test_price_beyond_the_visible_depth_learns_its_queue_when_it_comes_into_view() -> None:
    venue, book = make(depth=2)  # the engine keeps 2 levels a side: 64998.0 is not visible
    venue.place_now(limit("Buy", "0.1", "deep", "64998.0"))
    assert venue.queue_ahead(SYM, "deep") is None
    venue.on_book(SYM)
    assert venue.queue_ahead(SYM, "deep") is None
    book.apply("delta", [["64999.5", "0"], ["64998.0", "0.700"]], [])  # now bids 64999.0, 64998.0
    venue.on_book(SYM)
    assert venue.queue_ahead(SYM, "deep") == D("0.7")


def test_handler_errors_do_not_stop_the_pushes_and_nothing_is_sent_before_start() -> None:
    venue, _ = make()
    venue.place_now(limit("Buy", "0.1", "pre", "60000.0"))
    assert venue.pushes_dropped == 3  # New, position, wallet: nobody subscribed yet
    seen: list[str] = []

    async def handler(topic: str, item: dict[str, Any]) -> None:
        seen.append(topic)
        if topic == "position":
            raise RuntimeError("handler bug")

    async def main() -> None:
        await venue.start(handler)
        with pytest.raises(RuntimeError):
            await venue.start(handler)
        await venue.place(limit("Buy", "0.1", "post", "60000.0"))
        await venue.cancel(SYM, "post")
        await venue.drain()
        await venue.close()
        await venue.close()  # idempotent

    asyncio.run(main())
    assert seen == ["order", "position", "wallet", "order", "position", "wallet"]
    assert venue.push_errors == 2


def test_times_never_go_backwards_even_if_the_clock_does() -> None:
    times = iter([5_000, 4_000, 3_000, 6_000] + list(range(7_000, 8_000)))
    venue, _ = make(clock=lambda: next(times))
    venue.place_now(limit("Buy", "0.1", "t-1", "60000.0"))
    venue.place_now(limit("Buy", "0.1", "t-2", "60000.0"))
    asyncio.run(venue.cancel(SYM, "t-1"))
    one = asyncio.run(venue.find_order(SYM, "t-1"))
    two = asyncio.run(venue.find_order(SYM, "t-2"))
    assert one is not None and two is not None
    assert int(one["createdTime"]) <= int(two["createdTime"]) <= int(one["updatedTime"])


def test_decimal_money_only() -> None:
    book = Book()
    with pytest.raises(TypeError):
        PaperVenue(book.engine, [INST], balance=100000.0)  # type: ignore[arg-type]
    venue, _ = make()
    with pytest.raises(TypeError):
        venue.on_trade(SYM, "Sell", 64999.5, "0.1")  # type: ignore[arg-type]


def test_amend_keeps_or_loses_the_queue_place_and_can_take() -> None:
    venue, _ = make()
    venue.place_now(limit("Buy", "0.5", "am-1", "64999.5"))
    assert venue.queue_ahead(SYM, "am-1") == D("0.3")
    venue.on_trade(SYM, "Sell", "64999.5", "0.1", 1)
    res = asyncio.run(venue.amend(SYM, "am-1", qty=D("0.4")))  # smaller, same price: keeps its place
    assert res.order_link_id == "am-1" and res.order_id
    assert venue.queue_ahead(SYM, "am-1") == D("0.2")
    o = asyncio.run(venue.find_order(SYM, "am-1"))
    assert o is not None and o["qty"] == "0.400" and o["leavesQty"] == "0.400"
    asyncio.run(venue.amend(SYM, "am-1", qty=D("0.6")))  # larger: back of the queue
    assert venue.queue_ahead(SYM, "am-1") == D("0.3")  # the book's size at the price (no delta came)
    asyncio.run(venue.amend(SYM, "am-1", price=D("64999.9")))  # a new level: nobody ahead
    assert venue.queue_ahead(SYM, "am-1") == D("0")
    asyncio.run(venue.amend(SYM, "am-1", price=D("65000.0")))  # marketable: takes the 0.1 there
    o = asyncio.run(venue.find_order(SYM, "am-1"))
    assert o is not None and o["orderStatus"] == "PartiallyFilled" and o["cumExecQty"] == "0.100"
    assert o["price"] == "65000.0" and o["leavesQty"] == "0.500"
    for kw, code in (({"qty": D("0.1")}, 10001),  # not above the executed qty
                     ({"price": D("65000.0")}, 10001),  # unchanged
                     ({"price": D("65000.05")}, 10001)):  # off the tick
        with pytest.raises(BybitApiError) as e:
            asyncio.run(venue.amend(SYM, "am-1", **kw))
        assert e.value.ret_code == code and e.value.path == "/v5/order/amend"
    venue.place_now(limit("Buy", "0.1", "am-po", "64999.0", time_in_force="PostOnly"))
    with pytest.raises(BybitApiError) as e:
        asyncio.run(venue.amend(SYM, "am-po", price=D("65000.5")))
    assert e.value.ret_code == 10001
    asyncio.run(venue.cancel(SYM, "am-po"))
    with pytest.raises(BybitApiError) as e:
        asyncio.run(venue.amend(SYM, "am-po", qty=D("0.2")))
    assert e.value.ret_code == 110001


def test_amend_pushes_drive_the_domain_state_machine() -> None:
    venue, _ = make()
    pushes: list[tuple[str, dict[str, Any]]] = []

    async def handler(topic: str, item: dict[str, Any]) -> None:
        pushes.append((topic, item))

    async def main() -> str:
        await venue.start(handler)
        res = await venue.place(limit("Sell", "0.4", "am-d", "65002.0"))
        await venue.amend(SYM, "am-d", qty=D("0.3"))
        await venue.amend(SYM, "am-d", price=D("64999.5"))  # takes all 0.3 of the best bid
        await venue.drain()
        await venue.close()
        return res.order_id or ""

    oid = asyncio.run(main())
    order = Order("am-d", SYM, Side.SELL, OrderType.LIMIT, D("0.4"), D("65002.0"), TimeInForce.GTC)
    order.submit()
    on_submit_accepted(order, oid)
    for topic, item in pushes:
        if topic == "order":
            on_exchange_update(order, OrderUpdate.from_bybit(item))
        elif topic == "execution":
            on_exchange_update(order, Execution.from_bybit(item))
    assert order.state is OrderState.FILLED and order.qty == D("0.3") and order.price == D("64999.5")
    assert order.filled_value == D("19499.85")


def test_taken_liquidity_survives_book_updates_that_do_not_touch_the_level() -> None:
    venue, book = make()
    venue.place_now(market("Buy", "0.1", "tk-1"))  # takes 65000.0 x 0.1
    book.apply("delta", [["64999.5", "0.400"]], [])  # another level changes
    venue.on_book(SYM)
    venue.place_now(market("Buy", "0.1", "tk-2"))
    ex = [e for e in asyncio.run(venue.executions(SYM)) if e["orderLinkId"] == "tk-2"]
    assert [(e["execPrice"], e["execQty"]) for e in ex] == [("65000.5", "0.100")]
    book.apply("delta", [], [["65000.0", "0"]])  # the taken level vanishes: its entry is pruned
    venue.on_book(SYM)
    assert venue.stats()["open_orders"] == 0
    book.apply("delta", [], [["65000.0", "0.100"]])  # same size as before, but a new level
    venue.place_now(market("Buy", "0.1", "tk-3"))
    ex = [e for e in asyncio.run(venue.executions(SYM)) if e["orderLinkId"] == "tk-3"]
    assert [(e["execPrice"], e["execQty"]) for e in ex] == [("65000.0", "0.100")]


def test_reduce_only_with_zero_qty_closes_the_whole_position() -> None:
    venue, _ = make()
    venue.place_now(market("Buy", "0.3", "z-open"))
    venue.place_now(market("Sell", "0", "z-close", reduce_only=True, extra={"closeOnTrigger": True}))
    o = asyncio.run(venue.find_order(SYM, "z-close"))
    assert o is not None and o["qty"] == "0.300" and o["orderStatus"] == "Filled" and o["closeOnTrigger"] is True
    assert asyncio.run(venue.positions(SYM))[0]["size"] == "0.000"


def test_deep_books_are_read_past_the_first_levels() -> None:
    book = Book()
    asks = [[f"{65000 + i}.0", "0.010"] for i in range(40)]  # 65000.0 .. 65039.0, 0.01 each
    bids = [[f"{64999 - i}.0", "0.010"] for i in range(40)]  # 64999.0 .. 64960.0
    book.apply("snapshot", bids, asks)
    venue = PaperVenue(book.engine, [INST], id_salt="deep")
    venue.place_now(market("Buy", "0.4", "deep-m"))  # all 40 levels
    ex = asyncio.run(venue.executions(SYM))
    assert len(ex) == 40 and {e["execQty"] for e in ex} == {"0.010"}
    o = asyncio.run(venue.find_order(SYM, "deep-m"))
    # sum(65000 + i for i < 40) x 0.01 = 26007.8 ; avg 65019.5
    assert o is not None and o["cumExecValue"] == "26007.8" and o["avgPrice"] == "65019.5"
    venue.place_now(limit("Buy", "0.1", "deep-l", "64962.0"))  # the 38th bid level
    assert venue.queue_ahead(SYM, "deep-l") == D("0.01")
    venue.place_now(limit("Buy", "0.1", "deep-x", "64950.0"))  # beyond the 40 levels kept
    assert venue.queue_ahead(SYM, "deep-x") is None
