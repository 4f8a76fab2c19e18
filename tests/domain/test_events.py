"""Domain events are derived from recorded transitions and serialise to plain JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from domain_support import SYM, T0, new_order

from pysrc.domain.events import (
    OrderTransitioned,
    PositionClosed,
    PositionOpened,
    order_transitioned,
    position_events,
    transition_refused,
)
from pysrc.domain.fsm import InvalidTransition
from pysrc.domain.positions import Position, on_execution
from pysrc.domain.values import Execution, Side

D = Decimal


def test_order_transitioned() -> None:
    o = new_order()
    t = o.submit(T0, trace_id="abc")
    ev = order_transitioned(o, t)
    assert isinstance(ev, OrderTransitioned)
    d = ev.to_dict()
    assert d["type"] == "OrderTransitioned" and d["to_state"] == "PENDING_SUBMIT" and d["version"] == 1
    assert (
        d["metadata"] == {"trace_id": "abc"} and d["filled_qty"] == "0" and d["avg_fill_price"] is None
    )
    assert orjson.loads(orjson.dumps(d)) == d


def test_position_events_open_and_close() -> None:
    p = Position("p1", SYM, Side.BUY, created_at=T0)
    t1 = on_execution(p, Execution("a", SYM, Side.BUY, D("1"), D("100"), D("0.1")), T0).transitions[0]
    kinds = [type(e) for e in position_events(p, t1)]
    assert kinds[1] is PositionOpened
    t2 = on_execution(p, Execution("b", SYM, Side.SELL, D("1"), D("105"), D("0.1")), T0).transitions[0]
    closed = position_events(p, t2)[1]
    assert isinstance(closed, PositionClosed)
    assert closed.to_dict()["net_pnl"] == "4.8"
    orjson.dumps(closed.to_dict())


def test_refusal_event() -> None:
    o = new_order()
    with pytest.raises(InvalidTransition) as info:
        o.acknowledge()
    ev = transition_refused(info.value, datetime(2025, 1, 1, tzinfo=UTC))
    assert ev.to_dict()["event"] == "acknowledge" and ev.entity == "order"
