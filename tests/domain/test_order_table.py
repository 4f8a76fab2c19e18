"""The order transition table: exactly mission section 6 plus the documented decisions and
extensions, and every (state, event) pair tried on a real ``Order`` (legal ones succeed with the
table's target, illegal ones raise and change nothing)."""

from __future__ import annotations

import itertools

import pytest
from domain_support import Clock, order_in, valid_metadata

from pysrc.domain.fsm import InvalidTransition
from pysrc.domain.orders import (
    ORDER_RULES,
    ORDER_TABLE,
    TERMINAL_STATES,
    OrderEvent,
    OrderState,
)

S, E = OrderState, OrderEvent
NON_TERMINAL = set(S) - {S.FILLED, S.CANCELLED, S.REJECTED, S.FAILED}

# Mission section 6, written out independently of the code (the brief fixes the sources the
# mission leaves implicit for confirm_submit and acknowledge; fail is "any non-terminal").
MISSION: dict[tuple[OrderState, OrderEvent], OrderState] = {
    (S.NEW, E.SUBMIT): S.PENDING_SUBMIT,
    (S.PENDING_SUBMIT, E.CONFIRM_SUBMIT): S.SUBMITTED,
    (S.PENDING_SUBMIT, E.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.SUBMITTED, E.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.ACKNOWLEDGED, E.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, E.FILL): S.FILLED,
    (S.ACKNOWLEDGED, E.REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, E.REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.CONFIRM_CANCEL): S.CANCELLED,
    (S.PENDING_SUBMIT, E.REJECT): S.REJECTED,
    (S.SUBMITTED, E.REJECT): S.REJECTED,
    **{(s, E.FAIL): S.FAILED for s in NON_TERMINAL},
}

# Decided sources (confirm_cancel without our request) and the extensions, with their reasons in
# the code's rules and in docs/state-machines.md.
DECIDED_AND_EXTENSIONS: dict[tuple[OrderState, OrderEvent], OrderState] = {
    (S.ACKNOWLEDGED, E.CONFIRM_CANCEL): S.CANCELLED,
    (S.PARTIALLY_FILLED, E.CONFIRM_CANCEL): S.CANCELLED,
    (S.PENDING_CANCEL, E.PARTIAL_FILL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.FILL): S.FILLED,
    (S.ACKNOWLEDGED, E.AMEND): S.ACKNOWLEDGED,
    (S.PARTIALLY_FILLED, E.AMEND): S.PARTIALLY_FILLED,
    (S.PENDING_CANCEL, E.AMEND): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, E.RECORD_EXECUTION): S.PARTIALLY_FILLED,
    (S.PENDING_CANCEL, E.RECORD_EXECUTION): S.PENDING_CANCEL,
    (S.FILLED, E.RECORD_EXECUTION): S.FILLED,
    (S.CANCELLED, E.RECORD_EXECUTION): S.CANCELLED,
}


def test_table_is_the_mission_table_plus_the_documented_rows() -> None:
    assert ORDER_TABLE.pairs() == {**MISSION, **DECIDED_AND_EXTENSIONS}


def test_every_row_beyond_the_mission_is_marked_and_explained() -> None:
    for rule in ORDER_RULES:
        pairs = {(s, rule.event) for s in rule.sources}
        if pairs <= MISSION.keys():
            continue
        assert rule.origin in ("decided", "extension"), rule
        assert len(rule.why) > 20, rule


def test_the_mission_events_are_all_there_and_only_two_more() -> None:
    mission_events = {
        "submit", "confirm_submit", "acknowledge", "partial_fill", "fill",
        "request_cancel", "confirm_cancel", "reject", "fail",
    }  # fmt: skip
    assert {e.value for e in OrderEvent} == mission_events | {"amend", "record_execution"}
    assert {s.value for s in OrderState} == {
        "NEW", "PENDING_SUBMIT", "SUBMITTED", "ACKNOWLEDGED", "PARTIALLY_FILLED", "FILLED",
        "PENDING_CANCEL", "CANCELLED", "REJECTED", "FAILED",
    }  # fmt: skip


def test_terminal_states_are_never_left() -> None:
    assert TERMINAL_STATES == {S.FILLED, S.CANCELLED, S.REJECTED, S.FAILED}
    for (state, _event), target in ORDER_TABLE.pairs().items():
        if state in TERMINAL_STATES:
            assert target is state
    # the only thing a terminal state accepts is a late execution's detail
    assert {e for (s, e) in ORDER_TABLE.pairs() if s in TERMINAL_STATES} == {E.RECORD_EXECUTION}


def test_fail_reaches_failed_from_every_non_terminal_state() -> None:
    for s in NON_TERMINAL:
        assert ORDER_TABLE.target(s, E.FAIL) is S.FAILED


ALL_PAIRS = list(itertools.product(OrderState, OrderEvent))


@pytest.mark.parametrize(
    ("state", "event"), ALL_PAIRS, ids=[f"{s.value}-{e.value}" for s, e in ALL_PAIRS]
)
def test_every_pair_on_a_real_order(state: OrderState, event: OrderEvent) -> None:
    clock = Clock()
    order = order_in(state, clock)
    assert order.state is state
    before = order.copy()
    expected = ORDER_TABLE.pairs().get((state, event))
    meta = valid_metadata(order, event)
    if expected is None:
        with pytest.raises(InvalidTransition) as info:
            order.apply(event, clock(), meta)
        assert info.value.reason == "not in the transition table"
        assert info.value.log_fields()["state"] == state.value
        assert order == before and order.history == before.history
        return
    t = order.apply(event, clock(), meta)
    assert (t.from_state, t.to_state, t.event) == (state, expected, event)
    assert order.state is expected
    assert order.version == before.version + 1 == t.version
    assert order.history[-1] is t
    assert dict(t.metadata) == meta


def test_pair_counts() -> None:
    # 10 states x 11 events: 19 mission pairs (6 of them fail), 11 decided/extension pairs, 80 refused
    assert len(ALL_PAIRS) == 110
    assert len(MISSION) == 19
    assert len(ORDER_TABLE.pairs()) == 30
