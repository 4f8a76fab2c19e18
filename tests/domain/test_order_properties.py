"""Property tests (hypothesis state machines) of orders.

* ``RandomEvents``: any event with any payload, legal or not. A refused event changes nothing; an
  accepted one goes where the table says; quantities stay within bounds; replaying the recorded
  history rebuilds the identical order.
* ``DisorderedExchange``: a consistent history the exchange could send (``exchange_histories``)
  delivered in any order, any number of times, interleaved with our own REST answers and cancel
  requests. Nothing is ever refused, the order is never in an impossible state, and once every
  push has arrived it ends where the exchange's order ended, with exact totals.
"""

from __future__ import annotations

from decimal import Decimal

from domain_support import (
    LINK,
    OID,
    Clock,
    Truth,
    exchange_histories,
    new_order,
)
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from pysrc.domain.fsm import InvalidTransition
from pysrc.domain.orders import (
    ORDER_TABLE,
    Order,
    OrderEvent,
    OrderState,
    on_exchange_update,
    on_submit_accepted,
    on_submit_rejected,
)

D = Decimal
S, E = OrderState, OrderEvent

amounts = st.sampled_from(["0", "0.1", "0.25", "0.5", "0.75", "1", "1.5", "2", "-0.1", "abc"])
prices = st.sampled_from(["100", "99.5", "101.25", "0", "-1"])


def check_order_invariants(o: Order) -> None:
    """What must hold in every reachable order."""
    assert o.qty > 0
    assert 0 <= o.exec_qty <= o.filled_qty <= o.qty
    assert o.filled_value >= 0 and o.exec_value >= 0
    assert (o.filled_qty > 0) == (o.filled_value > 0)
    assert o.version == len(o.history)
    assert [t.version for t in o.history] == list(range(1, o.version + 1))
    if o.history:
        assert o.history[-1].to_state is o.state
        for a, b in zip(o.history, o.history[1:], strict=False):
            assert a.to_state is b.from_state
            assert ORDER_TABLE.target(b.from_state, b.event) is b.to_state
    if o.state in (S.NEW, S.PENDING_SUBMIT, S.SUBMITTED, S.ACKNOWLEDGED, S.REJECTED):
        assert o.filled_qty == 0
    if o.state is S.PARTIALLY_FILLED:
        assert 0 < o.filled_qty < o.qty
    if o.state is S.PENDING_CANCEL:
        assert o.filled_qty < o.qty
    if o.state is S.FILLED:
        assert o.filled_qty == o.qty


class RandomEvents(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.initial = new_order()
        self.order = self.initial.copy()

    @rule(
        event=st.sampled_from(OrderEvent),
        filled=amounts,
        value=amounts,
        exec_id=st.sampled_from(["a", "b", "c", ""]),
        exec_qty=amounts,
        price=prices,
        fee=st.sampled_from(["0", "0.01", "-0.002"]),
        include=st.sets(st.sampled_from(["filled", "exec", "qty", "price", "order_id"])),
    )
    def apply_any(
        self,
        event: OrderEvent,
        filled: str,
        value: str,
        exec_id: str,
        exec_qty: str,
        price: str,
        fee: str,
        include: set[str],
    ) -> None:
        meta: dict[str, str] = {}
        if "filled" in include:
            meta.update(filled_qty=filled, filled_value=value)
        if "exec" in include:
            meta.update(exec_id=exec_id, exec_qty=exec_qty, exec_price=price, exec_fee=fee)
        if "qty" in include:
            meta["qty"] = filled
        if "price" in include:
            meta["price"] = price
        if "order_id" in include:
            meta["order_id"] = OID
        o = self.order
        before = o.copy()
        legal = ORDER_TABLE.is_legal(o.state, event)
        try:
            t = o.apply(event, self.clock(), meta)
        except InvalidTransition:
            assert o == before and o.history == before.history
            return
        assert legal
        assert t.to_state is ORDER_TABLE.target(before.state, event)

    @invariant()
    def within_bounds(self) -> None:
        check_order_invariants(self.order)

    @invariant()
    def replay_rebuilds_the_same_order(self) -> None:
        assert Order.replay(self.initial, self.order.history) == self.order


class DisorderedExchange(RuleBasedStateMachine):
    truth: Truth

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.delivered: set[int] = set()

    @initialize(truth=exchange_histories())
    def setup(self, truth: Truth) -> None:
        self.truth = truth
        self.initial = new_order(qty=truth.qty, price=truth.price)
        self.order = self.initial.copy()
        self.order.submit(self.clock())

    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.truth.pushes) - 1), label="push")
        on_exchange_update(self.order, self.truth.pushes[i], self.clock())
        self.delivered.add(i)

    @rule()
    def rest_answer(self) -> None:
        # The REST answer agrees with what the exchange did; it may come at any point.
        if self.truth.rejected:
            on_submit_rejected(self.order, "170213 business reject", self.clock())
        else:
            on_submit_accepted(self.order, OID, self.clock())

    @rule()
    def we_request_cancel(self) -> None:
        # Only where the table allows it; the exchange's outcome does not depend on it (the cancel
        # may lose a race with a fill, or arrive after the exchange cancelled on its own).
        if self.order.state not in (S.ACKNOWLEDGED, S.PARTIALLY_FILLED):
            return
        self.order.request_cancel(self.clock())

    @invariant()
    def never_impossible(self) -> None:
        check_order_invariants(self.order)
        assert self.order.filled_qty <= self.truth.cum_qty
        assert self.order.exec_ids <= self.truth.exec_ids

    @invariant()
    def replay_rebuilds_the_same_order(self) -> None:
        assert Order.replay(self.initial, self.order.history) == self.order

    def teardown(self) -> None:
        if not hasattr(self, "truth"):
            return
        o, truth = self.order, self.truth
        for push in truth.pushes:  # whatever has not arrived arrives now (and the rest again)
            on_exchange_update(o, push, self.clock())
        check_order_invariants(o)
        assert Order.replay(self.initial, o.history) == o
        # which disorder cases this example exercised (shown by --hypothesis-show-statistics)
        for t in o.history:
            if t.event is E.ACKNOWLEDGE and t.metadata.get("source") == "execution":
                event("fill before the acknowledgement")
            if t.from_state is S.PENDING_CANCEL and t.event in (E.FILL, E.PARTIAL_FILL):
                event("fill while PENDING_CANCEL")
            if t.event is E.RECORD_EXECUTION and t.from_state in (S.FILLED, S.CANCELLED):
                event("execution after the final push")
            if t.event is E.AMEND:
                event("amendment")
        if truth.final is not None:
            assert o.state is truth.final
        elif truth.cum_qty:
            assert o.state in (S.PARTIALLY_FILLED, S.PENDING_CANCEL)
        else:
            assert o.state in (S.ACKNOWLEDGED, S.PENDING_CANCEL)
        assert o.filled_qty == o.exec_qty == truth.cum_qty
        assert o.filled_value == o.exec_value == truth.cum_value
        assert o.fees == truth.fees
        assert o.exec_ids == truth.exec_ids
        if truth.cum_qty:
            assert o.avg_fill_price is not None
            assert abs(o.avg_fill_price * o.filled_qty - truth.cum_value) < D("1e-20")
        if not truth.rejected:
            assert o.exchange_order_id == OID
            assert (o.qty, o.price) == (truth.final_qty, truth.final_price)
        assert o.order_link_id == LINK


_settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRandomEvents = RandomEvents.TestCase
TestRandomEvents.settings = _settings
TestDisorderedExchange = DisorderedExchange.TestCase
TestDisorderedExchange.settings = _settings
