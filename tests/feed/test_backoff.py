"""Reconnect delays: exponential, capped, jittered with an injectable random source."""

from __future__ import annotations

import pytest

from pysrc.feed.backoff import Backoff


def test_schedule_without_jitter() -> None:
    b = Backoff(base=0.5, cap=10.0, factor=2.0, jitter=0.0)
    assert [b.next_delay() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert b.attempts == 8
    b.reset()
    assert b.next_delay() == 0.5


def test_jitter_scales_into_the_configured_band() -> None:
    values = iter([0.0, 0.999999, 0.5, 0.25])
    b = Backoff(base=1.0, cap=100.0, jitter=0.5, random=lambda: next(values))
    d = [b.next_delay() for _ in range(4)]
    assert d[0] == 1.0  # random 0 -> full delay
    assert d[1] == pytest.approx(2.0 * 0.5, rel=1e-5)  # random ~1 -> half
    assert d[2] == 4.0 * 0.75
    assert d[3] == 8.0 * 0.875


def test_full_jitter_and_long_outages() -> None:
    b = Backoff(base=1.0, cap=30.0, jitter=1.0, random=lambda: 0.5)
    assert b.next_delay() == 0.5
    assert b.peek(10_000) == 30.0  # no overflow after a very long outage
    b.attempts = 5000
    assert b.next_delay() == 15.0


@pytest.mark.parametrize(
    "kwargs", [{"base": -1.0}, {"base": 2.0, "cap": 1.0}, {"factor": 0.5}, {"jitter": 1.5}]
)
def test_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]
