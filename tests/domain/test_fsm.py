"""The generic table machinery: construction checks, records, metadata."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from enum import Enum

import pytest

from pysrc.domain.fsm import (
    InvalidTransition,
    Metadata,
    Rule,
    Transition,
    TransitionTable,
    transition_from_dict,
)
from pysrc.domain.orders import ORDER_TABLE, OrderEvent, OrderState


class St(str, Enum):
    A = "A"
    B = "B"
    Z = "Z"


class Ev(str, Enum):
    GO = "go"
    NOTE = "note"


def test_table_refuses_duplicates_and_leaving_terminal() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        TransitionTable(
            "t",
            St,
            Ev,
            [Rule(Ev.GO, frozenset({St.A}), St.B), Rule(Ev.GO, frozenset({St.A}), St.Z)],
            frozenset(),
        )
    with pytest.raises(ValueError, match="leave terminal"):
        TransitionTable("t", St, Ev, [Rule(Ev.GO, frozenset({St.Z}), St.A)], frozenset({St.Z}))
    with pytest.raises(TypeError):
        TransitionTable("t", St, Ev, [Rule(OrderEvent.FILL, frozenset({St.A}), St.B)], frozenset())  # type: ignore[misc]
    ok = TransitionTable("t", St, Ev, [Rule(Ev.NOTE, frozenset({St.Z}), None)], frozenset({St.Z}))
    assert ok.target(St.Z, Ev.NOTE) is St.Z
    assert ok.legal_events(St.Z) == (Ev.NOTE,)
    assert ok.is_terminal(St.Z)
    with pytest.raises(InvalidTransition) as info:
        ok.target(St.A, Ev.GO, "id-1")
    assert info.value.log_fields() == {
        "entity": "t",
        "entity_id": "id-1",
        "state": "A",
        "event": "go",
        "reason": "not in the transition table",
    }


def test_metadata_is_immutable_str_to_str() -> None:
    m = Metadata({"a": "1"})
    assert m == {"a": "1"} and hash(m) == hash(Metadata({"a": "1"}))
    with pytest.raises(TypeError):
        m["b"] = "2"  # type: ignore[index]
    with pytest.raises(TypeError):
        Metadata({"a": 1})  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(m)) == m


def test_transition_round_trips_through_json_form() -> None:
    t = Transition(
        3,
        OrderState.ACKNOWLEDGED,
        OrderState.FILLED,
        OrderEvent.FILL,
        datetime(2025, 1, 1, tzinfo=UTC),
        Metadata({"filled_qty": "1.50"}),
    )
    d = t.to_dict()
    assert d == {
        "version": 3, "from_state": "ACKNOWLEDGED", "to_state": "FILLED", "event": "fill",
        "at": "2025-01-01T00:00:00+00:00", "metadata": {"filled_qty": "1.50"},
    }  # fmt: skip
    back = transition_from_dict(d, OrderState, OrderEvent)
    assert back == t
    assert pickle.loads(pickle.dumps(t)) == t


def test_legal_events_of_the_order_table() -> None:
    assert ORDER_TABLE.legal_events(OrderState.NEW) == (OrderEvent.SUBMIT, OrderEvent.FAIL)
    assert ORDER_TABLE.legal_events(OrderState.REJECTED) == ()
