"""The in-memory dead-letter sink keeps raw payloads, errors, times and sources, and counts
everything, including entries evicted when it is full."""

from __future__ import annotations

import pytest

from pysrc.exchange.deadletter import DeadLetterSink, MemoryDeadLetters


def test_keeps_payload_error_time_and_source() -> None:
    sink = MemoryDeadLetters(capacity=4, clock=lambda: 123.5)
    sink.put("conn-0", b"{bad", "MalformedMessage: expected value")
    sink.put("conn-1", "text frame", "unhandled topic")
    entries = sink.entries()
    assert [(e.source, e.raw, e.error, e.time) for e in entries] == [
        ("conn-0", b"{bad", "MalformedMessage: expected value", 123.5),
        ("conn-1", "text frame", "unhandled topic", 123.5),
    ]
    assert sink.count == 2 and len(sink) == 2


def test_bounded_but_counts_overflow() -> None:
    sink = MemoryDeadLetters(capacity=3)
    for i in range(10):
        sink.put("s", str(i), "e")
    assert [e.raw for e in sink.entries()] == ["7", "8", "9"]  # newest kept
    assert sink.count == 10
    assert sink.overflowed == 7
    assert sink.stats() == {"count": 10, "retained": 3, "overflowed": 7, "drained": 0, "capacity": 3}


def test_drain_hands_out_and_keeps_counting() -> None:
    sink = MemoryDeadLetters(capacity=5)
    for i in range(4):
        sink.put("s", str(i), "e")
    drained = sink.drain()
    assert [e.raw for e in drained] == ["0", "1", "2", "3"]
    assert sink.entries() == [] and sink.count == 4 and sink.drained == 4
    sink.put("s", "x", "e")
    assert sink.count == len(sink) + sink.overflowed + sink.drained


def test_satisfies_the_protocol_and_rejects_bad_capacity() -> None:
    assert isinstance(MemoryDeadLetters(), DeadLetterSink)
    with pytest.raises(ValueError):
        MemoryDeadLetters(capacity=0)
