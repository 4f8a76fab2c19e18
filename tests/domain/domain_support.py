"""Builders and hypothesis strategies shared by the domain tests (imported as a plain module; see
``conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from pysrc.domain.orders import Order, OrderEvent, OrderState
from pysrc.domain.values import Execution, OrderType, OrderUpdate, Side

D = Decimal
T0 = datetime(2025, 1, 1, tzinfo=UTC)
LINK = "0m5xg1a2b_BTCUSDT_test_00000001"
OID = "9aac161b-0000-4000-8000-000000000001"
SYM = "BTCUSDT"
LOT = D("0.001")
ZERO, ONE, HUNDRED = D(0), D(1), D(100)


class Clock:
    """Deterministic, strictly increasing transition times (replay compares them)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> datetime:
        self.n += 1
        return T0 + timedelta(milliseconds=self.n)


def new_order(
    qty: Decimal = ONE,
    price: Decimal | None = HUNDRED,
    order_type: OrderType = OrderType.LIMIT,
    side: Side = Side.BUY,
    link: str = LINK,
) -> Order:
    return Order(link, SYM, side, order_type, qty, price, strategy="test", created_at=T0)


def fill_meta(filled: Decimal, price: Decimal = HUNDRED) -> dict[str, str]:
    return {"filled_qty": str(filled), "filled_value": str(filled * price)}


def order_in(state: OrderState, clock: Clock | None = None) -> Order:
    """A 1.0 @ 100 buy order brought to ``state`` by legal events (0.4 filled where a fill fits)."""
    c = clock or Clock()
    o = new_order()
    S, E = OrderState, OrderEvent
    if state is S.NEW:
        return o
    o.apply(E.SUBMIT, c())
    if state is S.PENDING_SUBMIT:
        return o
    if state is S.SUBMITTED:
        o.apply(E.CONFIRM_SUBMIT, c(), {"order_id": OID})
        return o
    if state in (S.REJECTED, S.FAILED):
        o.apply(E.REJECT if state is S.REJECTED else E.FAIL, c(), {"reason": "test"})
        return o
    o.apply(E.ACKNOWLEDGE, c(), {"order_id": OID})
    if state is S.ACKNOWLEDGED:
        return o
    if state is S.FILLED:
        o.apply(E.FILL, c(), fill_meta(D("1")))
        return o
    o.apply(E.PARTIAL_FILL, c(), fill_meta(D("0.4")))
    if state is S.PARTIALLY_FILLED:
        return o
    if state is S.CANCELLED:
        o.apply(E.CONFIRM_CANCEL, c(), {"reason": "test"})
        return o
    assert state is S.PENDING_CANCEL
    o.apply(E.REQUEST_CANCEL, c())
    return o


def valid_metadata(order: Order, event: OrderEvent) -> dict[str, str]:
    """Metadata that satisfies the entity's payload rules for ``event`` on ``order`` (so that
    only the table can refuse it)."""
    E = OrderEvent
    if event is E.PARTIAL_FILL:
        return fill_meta(order.filled_qty + D("0.1"))
    if event is E.FILL:
        return fill_meta(order.qty)
    if event is E.RECORD_EXECUTION:
        return {"exec_id": "rx", "exec_qty": "0.1", "exec_price": "100", "exec_fee": "0.01"}
    if event is E.AMEND:
        return {"qty": "2", "price": "99"}
    if event in (E.ACKNOWLEDGE, E.CONFIRM_SUBMIT):
        return {"order_id": OID}
    return {"reason": "test"}


# ---- a consistent exchange history of one order ----------------------------------------------


@dataclass
class Truth:
    """What the exchange did with one order, as the pushes it sent (in the order it sent them)
    and the totals they imply."""

    qty: Decimal
    price: Decimal
    pushes: list[OrderUpdate | Execution] = field(default_factory=list)
    final: OrderState | None = None
    """``None``: the order is still open on the exchange."""
    rejected: bool = False
    cum_qty: Decimal = ZERO
    cum_value: Decimal = ZERO
    fees: Decimal = ZERO
    exec_ids: set[str] = field(default_factory=set)
    final_qty: Decimal = ZERO
    final_price: Decimal = ZERO


def _times(start: int = 1_000) -> Iterator[int]:
    t = start
    while True:
        t += 1
        yield t


@st.composite
def exchange_histories(draw: st.DrawFn) -> Truth:
    """A history Bybit could send for one limit buy order: optional trigger phase, fills
    (executions plus cumulative order pushes), amendments, then an end (open, cancelled by
    anyone, filled; sometimes the documented second ``Filled`` of a cancel/fill race)."""
    lots = draw(st.integers(1, 40))
    price = D(draw(st.integers(9_000, 11_000))) / 100
    truth = Truth(qty=lots * LOT, price=price)
    clock = _times()
    cur_lots, cur_price, cum_lots = lots, price, 0

    def push(status: str, t: int | None = None, reject_reason: str = "", cancel_type: str = "") -> None:
        truth.pushes.append(
            OrderUpdate(
                status=status,
                order_link_id=LINK,
                order_id=OID,
                symbol=SYM,
                qty=cur_lots * LOT,
                price=cur_price,
                cum_exec_qty=cum_lots * LOT,
                cum_exec_value=truth.cum_value,
                updated_time=next(clock) if t is None else t,
                reject_reason=reject_reason,
                cancel_type=cancel_type,
            )
        )

    def live_status() -> str:
        return "New" if cum_lots == 0 else "PartiallyFilled"

    def execute(n_lots: int) -> None:
        nonlocal cum_lots
        p = D(draw(st.integers(9_000, 11_000))) / 100
        fee = D(draw(st.integers(-200, 2_000))) / 10**6  # a negative fee is a maker rebate
        t = next(clock)
        exec_id = f"x{len(truth.exec_ids)}"
        truth.pushes.append(
            Execution(
                exec_id=exec_id,
                symbol=SYM,
                side=Side.BUY,
                qty=n_lots * LOT,
                price=p,
                fee=fee,
                order_id=OID,
                # execution.fast maker fills come without orderLinkId: matched by orderId
                order_link_id=LINK if draw(st.booleans()) else "",
                exec_time=t,
                order_qty=cur_lots * LOT,
                order_price=cur_price,
            )
        )
        truth.exec_ids.add(exec_id)
        cum_lots += n_lots
        truth.cum_value += p * n_lots * LOT
        truth.fees += fee
        push("Filled" if cum_lots == cur_lots else "PartiallyFilled", t)

    def finish() -> Truth:
        truth.cum_qty = cum_lots * LOT
        truth.final_qty = cur_lots * LOT
        truth.final_price = cur_price
        return truth

    if draw(st.integers(0, 9)) == 0:
        push("Rejected", reject_reason="EC_PostOnlyWillTakeLiquidity")
        truth.final, truth.rejected = OrderState.REJECTED, True
        return finish()
    if draw(st.booleans()):  # a conditional order
        push("Untriggered")
        if draw(st.integers(0, 3)) == 0:
            push("Deactivated", cancel_type="CancelByUser")
            truth.final = OrderState.CANCELLED
            return finish()
        push("Triggered")
    push("New")

    for _ in range(draw(st.integers(0, 6))):
        action = draw(st.sampled_from(("fill", "fill", "amend_qty", "amend_price")))
        if action == "fill":
            execute(draw(st.integers(1, cur_lots - cum_lots)))
            if cum_lots == cur_lots:
                truth.final = OrderState.FILLED
                return finish()
        elif action == "amend_qty":
            new = draw(st.integers(cum_lots + 1, cum_lots + 40))
            if new != cur_lots:
                cur_lots = new
                push(live_status())
        else:
            new_price = D(draw(st.integers(9_000, 11_000))) / 100
            if new_price != cur_price:
                cur_price = new_price
                push(live_status())

    ending = draw(st.sampled_from(("open", "cancel", "fill_rest", "fill_rest_race")))
    if ending == "cancel":
        statuses = ["Cancelled"] + (["PartiallyFilledCanceled"] if cum_lots else [])
        push(
            draw(st.sampled_from(statuses)),
            cancel_type=draw(st.sampled_from(("CancelByUser", "CancelByReduceOnly"))),
        )
        truth.final = OrderState.CANCELLED
    elif ending.startswith("fill_rest"):
        execute(cur_lots - cum_lots)
        if ending == "fill_rest_race":
            # Bybit: a cancel colliding with the fill yields a second Filled with these fields.
            push("Filled", cancel_type="CancelByUser", reject_reason="EC_OrigClOrdIDDoesNotExist")
        truth.final = OrderState.FILLED
    return finish()
