"""Paper venue properties (hypothesis): random sequences of orders, public trades, book changes and
cancels, on books built through the native engine.

After every step:

* the wallet balance is exactly ``initial - fees + realised PnL`` (summed from the executions);
* no order fills beyond its quantity; each order's executions add up to its ``cumExecQty``;
* the position equals the signed sum of the fills;
* a reduce-only fill only ever closes (``closedSize == execQty``): positions never flip or grow
  on reduce-only;

and at the end every order's pushes (amendments included), fed through the domain's order state machine, are a legal
history that ends where the venue says the order is.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysrc.book import BookEngine
from pysrc.domain.orders import Order, on_exchange_update, on_submit_accepted
from pysrc.domain.values import Execution, OrderType, OrderUpdate, Side, TimeInForce
from pysrc.exchange.bybit.errors import BybitApiError
from pysrc.exchange.instruments import Instrument
from pysrc.execution.paper import PaperVenue
from pysrc.execution.venue import OrderRequest

D = Decimal
SYM = "TSTUSDT"
TICK = D("0.1")
STEP = D("0.001")
INST = Instrument(SYM, "Trading", TICK, STEP, STEP, D("1000"), min_notional=D("1"),
                  max_market_qty=D("1000"))
STATUS = {"New": "ACKNOWLEDGED", "PartiallyFilled": "PARTIALLY_FILLED", "Filled": "FILLED",
          "Cancelled": "CANCELLED"}


def levels(mid_ticks: int, sizes: list[int], bids: bool) -> list[list[str]]:
    out = []
    for k, lots in enumerate(sizes):
        ticks = mid_ticks - 1 - k if bids else mid_ticks + 1 + k
        out.append([str(ticks * TICK), str(lots * STEP)])
    return out


book_st = st.tuples(
    st.integers(990, 1010),  # mid in ticks (price ~ 100)
    st.lists(st.integers(1, 3000), min_size=1, max_size=4),
    st.lists(st.integers(1, 3000), min_size=1, max_size=4),
)
side_st = st.sampled_from(["Buy", "Sell"])
reduce_st = st.sampled_from([False, False, True])
action_st = st.one_of(
    st.tuples(st.just("market"), side_st, st.integers(1, 4000), reduce_st),
    st.tuples(st.just("limit"), side_st, st.integers(-3, 3), st.integers(1, 3000),
              st.sampled_from([None, "GTC", "GTC", "IOC", "FOK", "PostOnly"]), reduce_st),
    st.tuples(st.just("limit"), side_st, st.integers(-3, 3), st.integers(1, 3000),
              st.sampled_from([None, "GTC", "PostOnly"]), reduce_st),
    st.tuples(st.just("trade"), side_st, st.integers(-3, 3), st.integers(1, 4000)),
    st.tuples(st.just("trade"), side_st, st.integers(-3, 3), st.integers(1, 4000)),
    st.tuples(st.just("hit"), st.integers(0, 50), st.integers(1, 4000), st.booleans()),
    st.tuples(st.just("hit"), st.integers(0, 50), st.integers(1, 4000), st.booleans()),
    st.tuples(st.just("book"), book_st),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("amend"), st.integers(0, 50), st.integers(-3, 3), st.integers(0, 3000)),
    st.tuples(st.just("cancel_all")),
)


class Feed:
    def __init__(self) -> None:
        self.engine = BookEngine("bybit")
        self.u = 0
        self.mid = 1000

    def snapshot(self, mid: int, bid_sizes: list[int], ask_sizes: list[int]) -> None:
        self.u += 1
        self.mid = mid
        msg = {"topic": f"orderbook.50.{SYM}", "type": "snapshot", "ts": self.u,
               "data": {"s": SYM, "b": levels(mid, bid_sizes, True), "a": levels(mid, ask_sizes, False),
                        "u": self.u, "seq": self.u}, "cts": self.u}
        assert self.engine.apply(json.dumps(msg))[0] == 0


def check_invariants(venue: PaperVenue, execs: list[dict[str, Any]], orders: list[dict[str, Any]],
                     rows: list[dict[str, Any]], wallet: dict[str, Any]) -> None:
    fees = sum((D(e["execFee"]) for e in execs), D(0))
    pnl = sum((D(e["execPnl"]) for e in execs), D(0))
    assert venue.balance == venue.initial_balance - fees + pnl
    assert venue.balance == venue.initial_balance - venue.total_fees + venue.total_realised
    by_order: dict[str, Decimal] = {}
    for e in execs:
        by_order[e["orderId"]] = by_order.get(e["orderId"], D(0)) + D(e["execQty"])
    for o in orders:
        cum = D(o["cumExecQty"])
        assert cum <= D(o["qty"]), o
        assert by_order.get(o["orderId"], D(0)) == cum, o
        if o["orderStatus"] in ("New", "PartiallyFilled"):
            assert D(o["leavesQty"]) + cum == D(o["qty"])
        if o["orderStatus"] == "Filled":
            assert cum == D(o["qty"])
    ro = {o["orderId"] for o in orders if o["reduceOnly"]}
    for e in execs:
        if e["orderId"] in ro:
            assert D(e["closedSize"]) == D(e["execQty"]), e  # reduce-only only ever closes
    signed = sum((D(e["execQty"]) * (1 if e["side"] == "Buy" else -1) for e in execs), D(0))
    size = D(rows[0]["size"]) * (1 if rows[0]["side"] == "Buy" else -1) if rows[0]["side"] else D(0)
    assert size == signed
    assert D(wallet["totalWalletBalance"]) == venue.balance


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=book_st, opening=st.tuples(side_st, st.integers(0, 3000)),
       actions=st.lists(action_st, min_size=1, max_size=40))
def test_random_sessions_keep_the_books_exact(first: tuple[int, list[int], list[int]],
                                              opening: tuple[str, int],
                                              actions: list[tuple[Any, ...]]) -> None:
    feed = Feed()
    feed.snapshot(*first)
    ticks = iter(range(1_000_000, 10_000_000))
    venue = PaperVenue(feed.engine, [INST], balance=D("10000"), clock=lambda: next(ticks), id_salt="prop")
    requests: dict[str, OrderRequest] = {}
    pushes: list[tuple[str, dict[str, Any]]] = []

    async def handler(topic: str, item: dict[str, Any]) -> None:
        pushes.append((topic, item))

    async def session() -> None:
        await venue.start(handler)
        n = 0
        if opening[1]:  # most sessions start with a position, so reduce-only has work to do
            actions.insert(0, ("market", opening[0], opening[1], False))
        for a in actions:
            kind = a[0]
            try:
                if kind == "market":
                    n += 1
                    r = OrderRequest(SYM, a[1], "Market", a[2] * STEP, f"m{n}", reduce_only=a[3])
                    requests[r.order_link_id] = r
                    await venue.place(r)
                elif kind == "limit":
                    n += 1
                    price = (feed.mid + a[2]) * TICK
                    r = OrderRequest(SYM, a[1], "Limit", a[3] * STEP, f"l{n}", price=price,
                                     time_in_force=a[4], reduce_only=a[5])
                    requests[r.order_link_id] = r
                    await venue.place(r)
                elif kind == "trade":
                    venue.on_trade(SYM, a[1], str((feed.mid + a[2]) * TICK), str(a[3] * STEP), 0)
                elif kind == "hit":  # flow at (or through) the price of one of our resting orders
                    opens = await venue.open_orders()
                    if opens:
                        o = opens[a[1] % len(opens)]
                        buy = o["side"] == "Buy"
                        price = D(o["price"]) + (TICK if a[3] else 0) * (-1 if buy else 1)
                        venue.on_trade(SYM, "Sell" if buy else "Buy", str(price), str(a[2] * STEP), 0)
                elif kind == "amend":  # new price (offset from the mid) and/or new qty (0 = keep)
                    opens = await venue.open_orders()
                    if opens:
                        o = opens[a[1] % len(opens)]
                        await venue.amend(SYM, o["orderLinkId"], price=(feed.mid + a[2]) * TICK,
                                          qty=a[3] * STEP if a[3] else None)
                elif kind == "book":
                    feed.snapshot(*a[1])
                    venue.on_book(SYM)
                elif kind == "cancel":
                    opens = await venue.open_orders()
                    if opens:
                        o = opens[a[1] % len(opens)]
                        await venue.cancel(SYM, o["orderLinkId"])
                else:
                    await venue.cancel_all()
            except BybitApiError as exc:
                assert exc.ret_code in (10001, 110007, 110017, 110094), exc  # business rejects only
            execs = await venue.executions()
            orders = await venue.open_orders() + await venue.order_history()
            check_invariants(venue, execs, orders, await venue.positions(SYM), await venue.wallet())
        await venue.drain()
        await venue.close()

    asyncio.run(session())

    # the pushes are a legal history for the domain's order state machine
    final = {o["orderLinkId"]: o for o in asyncio.run(venue.order_history())}
    final.update({o["orderLinkId"]: o for o in asyncio.run(venue.open_orders())})
    domain: dict[str, Order] = {}
    for topic, item in pushes:
        link = item.get("orderLinkId", "")
        if topic not in ("order", "execution") or link not in requests:
            continue
        order = domain.get(link)
        if order is None:
            r = requests[link]
            order = domain[link] = Order(link, SYM, Side(r.side), OrderType(r.order_type), r.qty, r.price,
                                         TimeInForce(r.time_in_force or "GTC"), r.reduce_only)
            order.submit()
            on_submit_accepted(order, item["orderId"])
        push = OrderUpdate.from_bybit(item) if topic == "order" else Execution.from_bybit(item)
        on_exchange_update(order, push)
    for link, order in domain.items():
        seen = final[link]
        assert order.state.value == STATUS[seen["orderStatus"]], (link, order.state, seen["orderStatus"])
        assert order.filled_qty == D(seen["cumExecQty"])
        assert order.fees == D(seen["cumExecFee"])
