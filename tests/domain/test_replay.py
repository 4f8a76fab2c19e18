"""Rebuilding entities from recorded histories: through the JSON form a repository stores, and
refusals of histories that do not fit."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import orjson
import pytest
from domain_support import OID, SYM, T0, Clock, new_order

from pysrc.domain.fsm import Metadata, ReplayError, transition_from_dict
from pysrc.domain.orders import Order, OrderEvent, OrderState, on_exchange_update
from pysrc.domain.positions import Position, PositionEvent, PositionState, on_execution
from pysrc.domain.values import Execution, OrderUpdate, Side

D = Decimal


def filled_order() -> Order:
    c = Clock()
    o = new_order()
    o.submit(c(), trace_id="t-1")
    on_exchange_update(
        o, Execution("a", SYM, Side.BUY, D("0.4"), D("100.5"), D("0.01"), order_id=OID), c()
    )
    on_exchange_update(
        o,
        OrderUpdate(
            "PartiallyFilled",
            order_id=OID,
            cum_exec_qty=D("0.4"),
            cum_exec_value=D("40.2"),
            qty=D("2"),
            price=D("100"),
            updated_time=5,
        ),
        c(),
    )
    on_exchange_update(
        o,
        OrderUpdate(
            "Filled",
            order_id=OID,
            cum_exec_qty=D("2"),
            cum_exec_value=D("200.7"),
            qty=D("2"),
            price=D("100"),
            updated_time=6,
        ),
        c(),
    )
    on_exchange_update(
        o, Execution("b", SYM, Side.BUY, D("1.6"), D("100.3125"), D("0.02"), order_id=OID), c()
    )
    return o


def test_order_replays_from_stored_json() -> None:
    o = filled_order()
    stored = [orjson.dumps(t.to_dict()) for t in o.history]  # what a repository would keep
    history = [transition_from_dict(orjson.loads(b), OrderState, OrderEvent) for b in stored]
    rebuilt = Order.replay(new_order(), history)
    assert rebuilt == o
    assert (rebuilt.qty, rebuilt.filled_value, rebuilt.fees, rebuilt.exec_ids) == (
        D("2"),
        D("200.7"),
        D("0.03"),
        frozenset({"a", "b"}),
    )
    # a snapshot part-way plus the rest gives the same order
    mid = Order.replay(new_order(), history[:3])
    assert Order.replay(mid, history[3:]) == o


def test_order_replay_refuses_histories_that_do_not_fit() -> None:
    o = filled_order()
    h = o.history
    with pytest.raises(ReplayError, match="does not follow"):
        Order.replay(new_order(), h[1:])  # a gap
    with pytest.raises(ReplayError, match="does not follow"):
        Order.replay(new_order(), [h[0], h[2], h[1], *h[3:]])  # out of order
    wrong_target = dataclasses.replace(h[0], to_state=OrderState.SUBMITTED)
    with pytest.raises(ReplayError, match="recorded SUBMITTED"):
        Order.replay(new_order(), [wrong_target])
    fill = next(i for i, t in enumerate(h) if t.event is OrderEvent.FILL)
    tampered = dataclasses.replace(h[fill], metadata=Metadata({**h[fill].metadata, "filled_qty": "3"}))
    with pytest.raises(ReplayError, match="refused"):
        Order.replay(new_order(), [*h[:fill], tampered])


def test_position_replays_from_stored_json() -> None:
    c = Clock()
    p = Position("p1", SYM, Side.SELL, created_at=T0)
    p.set_protection(stop_loss=D("110"), at=c())
    on_execution(p, Execution("a", SYM, Side.SELL, D("2"), D("100"), D("0.1")), c())
    on_execution(
        p, Execution("f", SYM, Side.SELL, D("2"), D("100"), D("0.3"), exec_type="Funding"), c()
    )
    on_execution(p, Execution("b", SYM, Side.BUY, D("0.5"), D("90"), D("0.02")), c())
    p.request_close("signal", c())
    on_execution(p, Execution("c", SYM, Side.BUY, D("1.5"), D("95"), D("0.05")), c())
    assert p.state is PositionState.CLOSED
    history = [
        transition_from_dict(orjson.loads(orjson.dumps(t.to_dict())), PositionState, PositionEvent)
        for t in p.history
    ]
    assert Position.replay(Position("p1", SYM, Side.SELL, created_at=T0), history) == p
    assert p.realised_pnl == D("12.5") and p.net_pnl == D("12.5") - D("0.17") - D("0.3")
    with pytest.raises(ReplayError):
        Position.replay(Position("p1", SYM, Side.SELL, created_at=T0), history[2:])
