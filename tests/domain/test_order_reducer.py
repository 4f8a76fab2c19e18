"""The reducer from exchange pushes to order events: the real-world disorder it must tolerate, the
contradictions it must refuse, exact fill accounting, and parsing of Bybit's items."""

from __future__ import annotations

from decimal import Decimal

import pytest
from domain_support import LINK, OID, SYM, Clock, new_order

from pysrc.domain.fsm import ForeignUpdate, InvalidTransition
from pysrc.domain.orders import (
    EXCHANGE_STATUS,
    EXCHANGE_STATUS_NOTES,
    Order,
    OrderEvent,
    OrderState,
    UnknownExchangeStatus,
    on_exchange_update,
    on_submit_accepted,
    on_submit_rejected,
)
from pysrc.domain.values import Execution, OrderType, OrderUpdate, Side

D = Decimal
S, E = OrderState, OrderEvent


def upd(
    status: str,
    cum: str = "0",
    value: str | None = None,
    t: int = 1,
    qty: str = "1",
    price: str = "100",
    reject_reason: str = "",
    cancel_type: str = "",
) -> OrderUpdate:
    cum_d = D(cum)
    return OrderUpdate(
        status=status,
        order_link_id=LINK,
        order_id=OID,
        symbol=SYM,
        qty=D(qty),
        price=D(price),
        cum_exec_qty=cum_d,
        cum_exec_value=D(value) if value is not None else cum_d * D(price),
        updated_time=t,
        reject_reason=reject_reason,
        cancel_type=cancel_type,
    )


def ex(
    exec_id: str, qty: str, price: str = "100", fee: str = "0.01", t: int = 1, **kw: object
) -> Execution:
    return Execution(
        exec_id=exec_id,
        symbol=SYM,
        side=Side.BUY,
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        order_id=OID,
        order_link_id=LINK,
        exec_time=t,
        **kw,  # type: ignore[arg-type]
    )


def state_of(o: Order) -> OrderState:
    """The state, read through a call so mypy does not keep an earlier assert's narrowing."""
    return o.state


def submitted(clock: Clock | None = None) -> Order:
    o = new_order()
    o.submit(clock() if clock else None)
    return o


def events(ts: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(t.event.value, t.to_state.value) for t in ts]


# ---- the status mapping ------------------------------------------------------------------------


def test_status_mapping_is_the_missions_plus_the_documented_rest() -> None:
    assert EXCHANGE_STATUS["New"] is S.ACKNOWLEDGED
    assert EXCHANGE_STATUS["PartiallyFilled"] is S.PARTIALLY_FILLED
    assert EXCHANGE_STATUS["Filled"] is S.FILLED
    assert EXCHANGE_STATUS["Cancelled"] is S.CANCELLED
    assert EXCHANGE_STATUS["Rejected"] is S.REJECTED
    assert EXCHANGE_STATUS["PartiallyFilledCanceled"] is S.CANCELLED
    assert EXCHANGE_STATUS["Deactivated"] is S.CANCELLED
    assert EXCHANGE_STATUS["Untriggered"] is S.ACKNOWLEDGED
    assert EXCHANGE_STATUS["Triggered"] is S.ACKNOWLEDGED
    # every status Bybit's enum lists (docs/bybit-v5.md 2.2) is mapped and explained
    assert set(EXCHANGE_STATUS) == set(EXCHANGE_STATUS_NOTES) == {
        "New", "PartiallyFilled", "Untriggered", "Rejected", "PartiallyFilledCanceled",
        "Filled", "Cancelled", "Triggered", "Deactivated",
    }  # fmt: skip


def test_unknown_status_raises_and_changes_nothing() -> None:
    o = submitted()
    before = o.copy()
    with pytest.raises(UnknownExchangeStatus):
        on_exchange_update(o, upd("Suspended"))
    assert o == before


# ---- the happy path and the mission's mapping ------------------------------------------------


def test_normal_life_new_partial_filled() -> None:
    c = Clock()
    o = submitted(c)
    assert events(on_submit_accepted(o, OID, c())) == [("confirm_submit", "SUBMITTED")]
    assert events(on_exchange_update(o, upd("New", t=1), c())) == [("acknowledge", "ACKNOWLEDGED")]
    assert events(on_exchange_update(o, ex("a", "0.25", "100", t=2), c())) == [
        ("partial_fill", "PARTIALLY_FILLED")
    ]
    assert events(on_exchange_update(o, upd("PartiallyFilled", "0.25", t=2), c())) == []
    assert events(on_exchange_update(o, ex("b", "0.75", "101", t=3), c())) == [("fill", "FILLED")]
    assert events(on_exchange_update(o, upd("Filled", "1", "100.75", t=3), c())) == []
    assert o.filled_qty == D("1")
    assert o.filled_value == D("100.75")  # 0.25*100 + 0.75*101, exact
    assert o.avg_fill_price == D("100.75")
    assert o.fees == D("0.02")
    assert o.exchange_order_id == OID
    assert o.version == len(o.history) == 5


# ---- duplicates -------------------------------------------------------------------------------


def test_two_filled_pushes_the_second_is_a_no_op() -> None:
    o = submitted()
    on_exchange_update(o, upd("New", t=1))
    o.request_cancel()
    # Bybit's documented race: the fill wins, then a second Filled carries the rejected cancel
    assert events(on_exchange_update(o, upd("Filled", "1", t=2, reject_reason="EC_NoError"))) == [
        ("fill", "FILLED")
    ]
    second = upd(
        "Filled", "1", t=3, cancel_type="CancelByUser", reject_reason="EC_OrigClOrdIDDoesNotExist"
    )
    before = o.copy()
    assert on_exchange_update(o, second) == []
    assert o == before


def test_repeated_exec_id_is_a_no_op() -> None:
    o = submitted()
    first = on_exchange_update(o, ex("a", "0.5"))
    assert events(first) == [("acknowledge", "ACKNOWLEDGED"), ("partial_fill", "PARTIALLY_FILLED")]
    before = o.copy()
    assert on_exchange_update(o, ex("a", "0.5")) == []
    assert o == before
    assert o.filled_qty == D("0.5") and o.fees == D("0.01")


# ---- fills before the acknowledgement ----------------------------------------------------------


@pytest.mark.parametrize("confirmed", [False, True])
def test_fill_before_ack_implies_acknowledge(confirmed: bool) -> None:
    o = submitted()
    if confirmed:
        on_submit_accepted(o, OID)
    assert events(on_exchange_update(o, ex("a", "1"))) == [
        ("acknowledge", "ACKNOWLEDGED"),
        ("fill", "FILLED"),
    ]
    assert o.history[-2].metadata["order_id"] == OID
    # the late acknowledgement and the late REST answer are no-ops
    assert on_exchange_update(o, upd("New", t=0)) == []
    assert on_submit_accepted(o, OID) == []
    assert o.state is S.FILLED


def test_filled_push_before_anything() -> None:
    o = submitted()
    assert events(on_exchange_update(o, upd("Filled", "1", t=5))) == [
        ("acknowledge", "ACKNOWLEDGED"),
        ("fill", "FILLED"),
    ]


def test_cancel_before_ack_records_the_ack_first() -> None:
    o = submitted()
    got = on_exchange_update(
        o,
        upd("Cancelled", t=5, cancel_type="CancelByUser", reject_reason="EC_PostOnlyWillTakeLiquidity"),
    )
    assert events(got) == [("acknowledge", "ACKNOWLEDGED"), ("confirm_cancel", "CANCELLED")]
    assert o.reason == "CancelByUser"


# ---- cumulative fields never go backwards -------------------------------------------------------


def test_stale_partial_push_after_a_larger_one_is_ignored() -> None:
    o = submitted()
    on_exchange_update(o, upd("PartiallyFilled", "0.6", t=3))
    assert on_exchange_update(o, upd("PartiallyFilled", "0.2", t=2)) == []
    assert on_exchange_update(o, upd("New", t=1)) == []
    assert o.filled_qty == D("0.6") and o.state is S.PARTIALLY_FILLED


def test_push_and_executions_mixed_the_larger_cumulative_wins() -> None:
    o = submitted()
    on_exchange_update(o, upd("PartiallyFilled", "0.5", "50", t=3))  # fills a+b, not seen yet
    assert events(on_exchange_update(o, ex("a", "0.2", t=2))) == [
        ("record_execution", "PARTIALLY_FILLED")
    ]
    assert o.filled_qty == D("0.5") and o.exec_qty == D("0.2")
    assert events(on_exchange_update(o, ex("b", "0.3", t=3))) == [
        ("record_execution", "PARTIALLY_FILLED")
    ]
    assert events(on_exchange_update(o, ex("c", "0.1", "110", t=4))) == [
        ("partial_fill", "PARTIALLY_FILLED")
    ]
    assert o.filled_qty == D("0.6")
    assert o.filled_value == D("61.0")  # from the executions now: 0.5*100 + 0.1*110
    assert o.fees == D("0.03")


def test_executions_after_the_final_push_only_add_their_fees() -> None:
    o = submitted()
    on_exchange_update(o, upd("Filled", "1", "100", t=5))
    assert events(on_exchange_update(o, ex("a", "0.4", fee="0.004"))) == [
        ("record_execution", "FILLED")
    ]
    assert events(on_exchange_update(o, ex("b", "0.6", fee="-0.001"))) == [
        ("record_execution", "FILLED")
    ]
    assert o.fees == D("0.003") and o.exec_qty == D("1.0") == o.filled_qty
    with pytest.raises(InvalidTransition):  # a third fill would be beyond the quantity
        on_exchange_update(o, ex("c", "0.1"))


def test_cancelled_after_partial_fills() -> None:
    o = submitted()
    on_exchange_update(o, upd("New", t=1))
    o.request_cancel()
    got = on_exchange_update(o, upd("Cancelled", "0.3", "30.3", t=4, cancel_type="CancelByUser"))
    assert events(got) == [("partial_fill", "PENDING_CANCEL"), ("confirm_cancel", "CANCELLED")]
    assert o.filled_qty == D("0.3") and o.avg_fill_price == D("101")
    # the fill's execution arrives afterwards: detail only
    assert events(on_exchange_update(o, ex("a", "0.3", "101", t=3))) == [
        ("record_execution", "CANCELLED")
    ]
    # a stale PartiallyFilled after the cancel is harmless
    assert on_exchange_update(o, upd("PartiallyFilled", "0.3", t=3)) == []


def test_pending_cancel_then_filled_the_fill_wins() -> None:
    o = submitted()
    on_exchange_update(o, upd("New", t=1))
    on_exchange_update(o, ex("a", "0.5", t=2))
    o.request_cancel()
    assert events(on_exchange_update(o, ex("b", "0.2", t=3))) == [("partial_fill", "PENDING_CANCEL")]
    assert events(on_exchange_update(o, upd("Filled", "1", t=4))) == [("fill", "FILLED")]
    assert o.state is S.FILLED


def test_unsolicited_cancels_are_legal() -> None:
    o = submitted()
    on_exchange_update(o, ex("a", "0.5", t=2))
    got = on_exchange_update(o, upd("Cancelled", "0.5", t=3, cancel_type="CancelByReduceOnly"))
    assert events(got) == [("confirm_cancel", "CANCELLED")]
    assert o.reason == "CancelByReduceOnly"


def test_spot_partially_filled_canceled_and_deactivated() -> None:
    o = submitted()
    on_exchange_update(o, upd("PartiallyFilledCanceled", "0.4", t=3))
    assert o.state is S.CANCELLED and o.filled_qty == D("0.4")
    c = submitted()
    on_exchange_update(c, upd("Untriggered", t=1))
    assert c.state is S.ACKNOWLEDGED
    on_exchange_update(c, upd("Deactivated", t=2))
    assert state_of(c) is S.CANCELLED


# ---- amendments -------------------------------------------------------------------------------


def test_amend_push_records_new_qty_and_price() -> None:
    o = submitted()
    on_exchange_update(o, upd("New", t=1))
    got = on_exchange_update(o, upd("New", t=2, qty="2", price="99.5"))
    assert events(got) == [("amend", "ACKNOWLEDGED")]
    assert (o.qty, o.price) == (D("2"), D("99.5"))
    assert dict(got[0].metadata)["qty"] == "2"


def test_stale_push_does_not_undo_a_newer_amendment() -> None:
    # qty 1 -> 0.5 (t=3) -> 1 (t=5); the t=3 push arrives last
    o = submitted()
    on_exchange_update(o, upd("New", t=1))
    assert on_exchange_update(o, upd("New", t=5, qty="1")) == []  # newer, agrees: no transition
    assert on_exchange_update(o, upd("New", t=3, qty="0.5")) == []  # older: ignored
    assert o.qty == D("1")


def test_execution_reveals_an_amend_up_not_yet_pushed() -> None:
    o = submitted()
    on_exchange_update(o, upd("New", t=1))
    got = on_exchange_update(o, ex("a", "1.5", t=4, order_qty=D("2"), order_price=D("100")))
    assert events(got) == [("amend", "ACKNOWLEDGED"), ("partial_fill", "PARTIALLY_FILLED")]
    assert o.qty == D("2")


def test_amend_down_to_the_filled_quantity_completes_the_order() -> None:
    o = submitted()
    on_exchange_update(o, ex("a", "0.4", t=2))
    got = on_exchange_update(o, upd("Filled", "0.4", t=3, qty="0.4"))
    # One step: a live order never holds filled == qty, so the new qty travels with the fill.
    assert events(got) == [("fill", "FILLED")]
    assert got[0].metadata["qty"] == "0.4" and o.qty == D("0.4") and o.filled_qty == D("0.4")


def test_market_order_price_is_not_an_amendment() -> None:
    o = new_order(price=None, order_type=OrderType.MARKET)
    o.submit()
    assert events(on_exchange_update(o, upd("New", t=1, price="105.3"))) == [
        ("acknowledge", "ACKNOWLEDGED")
    ]
    assert o.price is None


def test_amend_without_order_qty_on_execution_fast_is_refused_not_guessed() -> None:
    # execution.fast carries no orderQty: a fill beyond the known qty cannot be explained yet
    o = submitted()
    on_exchange_update(o, upd("New", t=1))
    before = o.copy()
    with pytest.raises(InvalidTransition, match="over-fill"):
        on_exchange_update(o, ex("a", "1.5", t=4))
    assert o == before and o.history == before.history


# ---- contradictions are refused, atomically ---------------------------------------------------


def test_reject_push_before_ack_and_refused_after() -> None:
    o = submitted()
    assert events(
        on_exchange_update(o, upd("Rejected", t=1, reject_reason="EC_PostOnlyWillTakeLiquidity"))
    ) == [("reject", "REJECTED")]
    assert o.reason == "EC_PostOnlyWillTakeLiquidity"
    assert on_exchange_update(o, upd("Rejected", t=1)) == []  # duplicate
    with pytest.raises(InvalidTransition):
        on_exchange_update(o, upd("New", t=2))
    a = submitted()
    on_exchange_update(a, upd("New", t=1))
    with pytest.raises(InvalidTransition):
        on_exchange_update(a, upd("Rejected", t=2))


def test_more_fills_after_cancelled_is_refused() -> None:
    o = submitted()
    on_exchange_update(o, upd("Cancelled", "0.3", t=3))
    before = o.copy()
    with pytest.raises(InvalidTransition):
        on_exchange_update(o, upd("PartiallyFilled", "0.5", t=4))
    with pytest.raises(InvalidTransition):
        on_exchange_update(o, ex("a", "0.5", t=4))
    with pytest.raises(InvalidTransition):
        on_exchange_update(o, upd("Filled", "1", t=5))
    assert o == before


def test_any_push_for_a_failed_order_is_refused() -> None:
    o = submitted()
    o.fail("lost before submission")
    with pytest.raises(InvalidTransition, match="reconcile"):
        on_exchange_update(o, upd("New", t=1))


def test_push_for_a_never_submitted_order_is_refused() -> None:
    o = new_order()
    with pytest.raises(InvalidTransition):
        on_exchange_update(o, upd("New"))
    with pytest.raises(InvalidTransition):
        on_exchange_update(o, ex("a", "0.1"))


def test_a_failed_reduction_withdraws_its_earlier_steps() -> None:
    # ack would be recorded, then the fill is refused: the push is applied all or nothing
    o = submitted()
    before = o.copy()
    bad = upd("Filled", "0.5", t=3)  # Filled with cum below qty
    with pytest.raises(InvalidTransition):
        on_exchange_update(o, bad)
    assert o == before and o.history == before.history and o.version == 1


def test_foreign_pushes() -> None:
    o = submitted()
    on_exchange_update(o, upd("New"))
    other = OrderUpdate(status="New", order_link_id="other", symbol=SYM)
    with pytest.raises(ForeignUpdate):
        on_exchange_update(o, other)
    with pytest.raises(ForeignUpdate):
        on_exchange_update(o, OrderUpdate(status="New", order_id="another-id"))
    with pytest.raises(ForeignUpdate):
        on_exchange_update(o, OrderUpdate(status="New", symbol="ETHUSDT"))
    with pytest.raises(ForeignUpdate):
        on_exchange_update(o, Execution("z", SYM, Side.SELL, D("0.1"), D("100"), order_id=OID))


def test_maker_fill_without_link_id_matches_by_order_id() -> None:
    o = submitted()
    on_exchange_update(o, upd("New"))
    fast = Execution(
        "m1", SYM, Side.BUY, D("0.1"), D("100"), order_id=OID, order_link_id="", is_maker=True
    )
    assert events(on_exchange_update(o, fast)) == [("partial_fill", "PARTIALLY_FILLED")]


def test_funding_and_other_non_trade_executions_are_not_fills() -> None:
    o = submitted()
    on_exchange_update(o, upd("New"))
    for kind in ("Funding", "Settle", "Delivery"):
        assert on_exchange_update(o, ex(f"f-{kind}", "0.1", exec_type=kind)) == []
    assert o.filled_qty == 0 and o.exec_ids == frozenset()


# ---- REST answers racing the pushes ------------------------------------------------------------


def test_rest_answers() -> None:
    o = submitted()
    on_exchange_update(o, upd("New"))
    assert on_submit_accepted(o, OID) == []
    with pytest.raises(ForeignUpdate):
        on_submit_accepted(o, "some-other-id")
    with pytest.raises(InvalidTransition):
        on_submit_rejected(o, "110007")  # the exchange has it: a reject is a contradiction
    r = submitted()
    assert events(on_submit_rejected(r, "110007 available balance insufficient")) == [
        ("reject", "REJECTED")
    ]
    assert on_submit_rejected(r, "again") == []
    with pytest.raises(InvalidTransition):
        on_submit_accepted(r, OID)
    with pytest.raises(InvalidTransition):
        on_submit_accepted(new_order(), OID)


# ---- entity validation ------------------------------------------------------------------------


def test_order_refuses_floats_and_bad_values() -> None:
    with pytest.raises(TypeError):
        Order(LINK, SYM, Side.BUY, OrderType.LIMIT, 1.0, D("1"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Order(LINK, SYM, Side.BUY, OrderType.LIMIT, D("0"), D("1"))
    with pytest.raises(ValueError):
        Order(LINK, SYM, Side.BUY, OrderType.LIMIT, D("1"))  # limit without price
    with pytest.raises(ValueError):
        Order("x" * 37, SYM, Side.BUY, OrderType.MARKET, D("1"))
    with pytest.raises(TypeError):
        Execution("e", SYM, Side.BUY, 0.1, D("1"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "meta", "why"),
    [
        (E.PARTIAL_FILL, {"filled_qty": "1", "filled_value": "100"}, "partial fill needs"),
        (E.PARTIAL_FILL, {"filled_qty": "0.1"}, "'filled_value' is required"),
        (E.PARTIAL_FILL, {"filled_qty": "1.1", "filled_value": "110"}, "over-fill"),
        (E.PARTIAL_FILL, {"filled_qty": "0.1", "filled_value": "0"}, "impossible"),
        (E.PARTIAL_FILL, {"filled_qty": "abc", "filled_value": "1"}, "not a decimal"),
        (E.FILL, {"filled_qty": "0.5", "filled_value": "50"}, "filled == qty"),
        (
            E.RECORD_EXECUTION,
            {"exec_id": "a", "exec_qty": "0.1", "exec_price": "1", "exec_fee": "0"},
            "must be a fill",
        ),
        (E.AMEND, {}, "needs qty or price"),
        (E.AMEND, {"price": "-1"}, "not positive"),
        (E.ACKNOWLEDGE, {"order_id": OID, "exchange_time": "x"}, "not an integer"),
    ],
)
def test_payload_rules(event: OrderEvent, meta: dict[str, str], why: str) -> None:
    o = submitted()
    if event is not E.ACKNOWLEDGE:
        o.acknowledge(OID)
    if event is E.RECORD_EXECUTION:  # legal only once something is filled
        o.apply(E.PARTIAL_FILL, None, {"filled_qty": "0.05", "filled_value": "5"})
    before = o.copy()
    with pytest.raises(InvalidTransition, match=why):
        o.apply(event, None, meta)
    assert o == before


def test_exchange_order_id_cannot_change() -> None:
    o = submitted()
    o.confirm_submit(OID)
    with pytest.raises(InvalidTransition, match="exchange order id"):
        o.acknowledge("different")


def test_duplicate_exec_id_through_apply_is_refused() -> None:
    o = submitted()
    on_exchange_update(o, ex("a", "0.5"))
    with pytest.raises(InvalidTransition, match="already recorded"):
        o.apply(
            E.RECORD_EXECUTION,
            None,
            {"exec_id": "a", "exec_qty": "0.1", "exec_price": "1", "exec_fee": "0"},
        )


# ---- parsing Bybit items ----------------------------------------------------------------------


def test_from_bybit_order_item() -> None:
    item = {
        "category": "linear", "orderId": OID, "orderLinkId": LINK, "symbol": SYM, "side": "Buy",
        "orderType": "Limit", "price": "95900.1", "qty": "0.5", "orderStatus": "PartiallyFilled",
        "avgPrice": "95900.1", "leavesQty": "0.3", "cumExecQty": "0.2", "cumExecValue": "19180.02",
        "cumExecFee": "", "cumFeeDetail": {"USDT": "10.549011"}, "timeInForce": "GTC",
        "cancelType": "UNKNOWN", "rejectReason": "EC_NoError", "updatedTime": "1746270400353",
    }  # fmt: skip
    u = OrderUpdate.from_bybit(item)
    assert u.status == "PartiallyFilled"
    assert (u.qty, u.price, u.cum_exec_qty, u.cum_exec_value) == (
        D("0.5"),
        D("95900.1"),
        D("0.2"),
        D("19180.02"),
    )
    assert u.cum_fee == D("10.549011") and u.updated_time == 1746270400353
    no_value = OrderUpdate.from_bybit({**item, "cumExecValue": ""})
    assert no_value.cum_exec_value == D("19180.02")  # avgPrice x cumExecQty
    empty = OrderUpdate.from_bybit({"orderStatus": "New", "avgPrice": "", "cumExecQty": "0"})
    assert empty.avg_price is None and empty.cum_exec_value is None and empty.cum_exec_qty == 0


def test_from_bybit_execution_item() -> None:
    item = {
        "category": "linear", "symbol": "BTCUSDT", "execId": "0ab1bdf7", "execPrice": "95900.1",
        "execQty": "0.5", "execType": "Trade", "execValue": "47950.05", "execFee": "26.3725275",
        "feeRate": "0.00055", "orderId": "9aac161b", "orderLinkId": "", "side": "Sell",
        "execTime": "1746270400353", "isMaker": False, "leavesQty": "0", "orderQty": "0.5",
        "orderPrice": "95000", "feeCurrency": "USDT",
    }  # fmt: skip
    e = Execution.from_bybit(item)
    assert (e.exec_id, e.side, e.qty, e.price, e.fee) == (
        "0ab1bdf7",
        Side.SELL,
        D("0.5"),
        D("95900.1"),
        D("26.3725275"),
    )
    assert e.value == D("47950.05") and e.order_qty == D("0.5") and e.exec_time == 1746270400353
    fast = Execution.from_bybit(
        {
            k: item[k]
            for k in (
                "symbol",
                "orderId",
                "isMaker",
                "orderLinkId",
                "execId",
                "execPrice",
                "execQty",
                "side",
                "execTime",
            )
        }
    )
    assert fast.exec_type == "Trade" and fast.fee == 0 and fast.order_qty is None


def test_from_bybit_refuses_floats() -> None:
    with pytest.raises(TypeError):
        OrderUpdate.from_bybit({"orderStatus": "New", "qty": 0.5})
