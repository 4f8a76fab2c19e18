"""The resync controller: reset + resubscribe, with a per-symbol rate limit, no socket needed."""

from __future__ import annotations

import itertools

import pytest

from pysrc.book import BookEngine
from pysrc.feed.resync import ResyncController

SNAP = (
    b'{"topic":"orderbook.50.X","type":"snapshot","ts":1,'
    b'"data":{"s":"X","b":[["10","1"]],"a":[["11","1"]],"u":5,"seq":1}}'
)


def delta(u: int) -> bytes:
    return (
        b'{"topic":"orderbook.50.X","type":"delta","ts":2,"data":{"s":"X","b":[["10","2"]],"a":[],"u":'
        + str(u).encode()
        + b',"seq":2}}'
    )


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def setup() -> tuple[BookEngine, Clock, list[str], list[str], ResyncController]:
    engine = BookEngine("bybit")
    clock = Clock()
    sent: list[str] = []
    resets: list[str] = []
    ctl = ResyncController(
        engine, sent.append, on_reset=resets.append, min_interval=1.0, max_interval=4.0, cooldown=10.0, clock=clock
    )
    return engine, clock, sent, resets, ctl


def test_resync_resets_the_book_then_resubscribes(setup: tuple) -> None:  # type: ignore[type-arg]
    engine, _clock, sent, resets, ctl = setup
    engine.apply(SNAP)
    assert engine.apply(delta(7))[0] == 5  # GAP
    assert engine.state("X") == "needs_resync"
    assert ctl.request("X", "gap") is True
    assert sent == ["X"] and resets == ["X"]
    assert engine.state("X") == "awaiting_snapshot"  # unusable until a snapshot
    assert engine.apply(delta(8))[0] == 4  # WAITING: old deltas are dropped
    engine.apply(SNAP)
    assert engine.is_live("X") and ctl.performed("X") == 1


def test_rate_limit_doubles_and_resets_after_cooldown(setup: tuple) -> None:  # type: ignore[type-arg]
    engine, clock, sent, _, ctl = setup
    engine.apply(SNAP)
    times: list[float] = []
    for _ in range(5):
        engine.apply(SNAP)
        engine.apply(delta(99))  # break it again
        ctl.request("X", "gap")
        while not ctl.poll() and len(sent) < len(times) + 1:
            clock.t += 0.25
        times.append(clock.t)
    # first at once, then +1, +2, +4, +4 (capped) after the previous one
    assert [b - a for a, b in itertools.pairwise(times)] == [1.0, 2.0, 4.0, 4.0]
    assert ctl.deferred("X") == 4
    clock.t += 10.0  # healthy for the cooldown: the next one is immediate again
    engine.apply(SNAP)
    engine.apply(delta(99))
    assert ctl.request("X", "gap") is True


def test_deferred_resync_is_skipped_when_a_snapshot_repaired_the_book(setup: tuple) -> None:  # type: ignore[type-arg]
    engine, clock, sent, _, ctl = setup
    engine.apply(SNAP)
    engine.apply(delta(9))
    ctl.request("X", "gap")
    engine.apply(SNAP)
    engine.apply(delta(9))
    assert ctl.request("X", "gap again") is False
    assert ctl.request("X", "and again") is False  # one pending is enough
    engine.apply(SNAP)  # Bybit pushed a fresh snapshot on its own
    clock.t += 5
    assert ctl.poll() == []
    assert sent == ["X"] and ctl.pending() == {}


def test_forget_drops_a_pending_resync(setup: tuple) -> None:  # type: ignore[type-arg]
    engine, clock, sent, _, ctl = setup
    engine.apply(SNAP)
    ctl.request("X")
    ctl.request("X")
    assert "X" in ctl.pending()
    ctl.forget("X")
    clock.t += 100
    assert ctl.poll() == [] and sent == ["X"]
