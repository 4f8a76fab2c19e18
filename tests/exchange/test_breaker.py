"""Circuit breaker state machine on a fake clock."""

from __future__ import annotations

import pytest

from pysrc.exchange.breaker import (
    BreakerBoard,
    BreakerOpenError,
    BreakerState,
    CircuitBreaker,
)

from .conftest import FakeClock


def fail(b: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        b.acquire()
        b.record_failure("boom")


def test_opens_after_five_failures_within_thirty_seconds(fake_clock: FakeClock) -> None:
    b = CircuitBreaker("order", clock=fake_clock)
    fail(b, 4)
    assert b.state is BreakerState.CLOSED
    fake_clock.advance(29.0)
    fail(b)
    assert b.state is BreakerState.OPEN
    with pytest.raises(BreakerOpenError) as e:
        b.acquire()
    assert e.value.retry_after == pytest.approx(60.0)
    assert b.rejected == 1 and b.times_opened == 1


def test_failures_older_than_the_window_do_not_count(fake_clock: FakeClock) -> None:
    b = CircuitBreaker("market", clock=fake_clock)
    fail(b, 4)
    fake_clock.advance(30.5)
    fail(b, 4)
    assert b.state is BreakerState.CLOSED
    fail(b)
    assert b.state is BreakerState.OPEN


def test_half_open_allows_exactly_one_probe_and_success_closes(fake_clock: FakeClock) -> None:
    b = CircuitBreaker("order", clock=fake_clock)
    fail(b, 5)
    fake_clock.advance(59.9)
    with pytest.raises(BreakerOpenError):
        b.acquire()
    fake_clock.advance(0.2)
    assert b.state is BreakerState.HALF_OPEN
    b.acquire()  # the probe
    with pytest.raises(BreakerOpenError) as e:
        b.acquire()  # second caller while the probe is in flight
    assert e.value.state is BreakerState.HALF_OPEN
    b.record_success()
    assert b.state is BreakerState.CLOSED
    b.acquire()
    b.record_success()
    # closing cleared the failure history: 4 more failures do not re-open it
    fail(b, 4)
    assert b.state is BreakerState.CLOSED


def test_failed_probe_reopens_for_another_full_period(fake_clock: FakeClock) -> None:
    b = CircuitBreaker("position", clock=fake_clock)
    fail(b, 5)
    fake_clock.advance(60)
    b.acquire()
    b.record_failure("still down")
    assert b.state is BreakerState.OPEN
    assert b.retry_after() == pytest.approx(60)
    assert b.times_opened == 2


def test_release_frees_the_probe_slot_without_a_verdict(fake_clock: FakeClock) -> None:
    b = CircuitBreaker("account", clock=fake_clock)
    fail(b, 5)
    fake_clock.advance(60)
    b.acquire()
    b.release()  # e.g. cancelled before sending
    assert b.state is BreakerState.HALF_OPEN
    b.acquire()  # another probe allowed
    b.record_success()
    assert b.state is BreakerState.CLOSED


def test_late_failure_of_a_call_started_before_opening_is_ignored(fake_clock: FakeClock) -> None:
    b = CircuitBreaker("order", clock=fake_clock)
    fail(b, 5)
    b.record_failure("late")
    fake_clock.advance(60)
    assert b.state is BreakerState.HALF_OPEN


def test_board_and_snapshot(fake_clock: FakeClock) -> None:
    board = BreakerBoard(["market", "order"], failure_threshold=2, window=10, open_seconds=5, clock=fake_clock)
    fail(board["order"], 2)
    assert board.states() == {"market": "closed", "order": "open"}
    snap = board.snapshot()["order"]
    assert snap["state"] == "open" and snap["failures"] == 2 and snap["times_opened"] == 1
    assert snap["retry_after"] == 5.0 and snap["last_failure"] == "boom"
    fake_clock.advance(5)
    assert board.snapshot()["order"]["state"] == "half_open"
    board["order"].reset()
    assert board.states()["order"] == "closed"


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0)
