"""The market scanner: explosion detection (hand-computed windows) and prioritisation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pysrc.strategy import MarketScanner, ScannerConfig, ScannerConfigError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def baseline(sc: MarketScanner, symbol: str, seconds: int, price: float = 100.0, volume: float = 1.0) -> None:
    for t in range(seconds):
        sc.update(symbol, price, volume, ts=float(t))


def test_explosion_up_hand_computed() -> None:
    sc = MarketScanner()  # window 60 s, baseline 1800 s (>= 300 s needed), 3 %, 3x
    baseline(sc, "X", 600)  # t = 0..599: price 100, volume 1 per second -> cumulative 600
    assert sc.update("X", 100, 10, ts=600.0) is None  # cumulative 610
    for t in range(601, 660):
        assert sc.update("X", 100, 10, ts=float(t)) is None  # volume up, price flat: no explosion
    ev = sc.update("X", Decimal(103), 10, ts=660.0)
    # reference = the sample at t = 600 (the last one at or before 660 - 60): price 100, cum 610
    # move = 103 / 100 - 1 = 3 %; window volume = 60 x 10 = 600
    # baseline: t = 0 (cum 1) .. t = 600 (cum 610): 609 over 600 s -> 60.9 per 60 s -> 9.852x
    assert ev is not None and ev.direction == "up" and ev.symbol == "X"
    assert ev.price_change == pytest.approx(0.03)
    assert ev.volume_multiple == pytest.approx(600 / 60.9)
    assert ev.ts == 660.0 and ev.window_s == 60.0
    # cooldown: one explosion per 60 s per symbol
    assert sc.update("X", 104, 10, ts=661.0) is None
    act = sc.activity("X", now=661.0)
    assert act.exploding and act.score > 2
    assert not sc.activity("X", now=722.0).exploding


def test_explosion_down_and_non_explosions() -> None:
    sc = MarketScanner()
    baseline(sc, "D", 600)
    for t in range(600, 660):
        sc.update("D", 100, 10, ts=float(t))
    ev = sc.update("D", 96.5, 10, ts=660.0)
    assert ev is not None and ev.direction == "down" and ev.price_change == pytest.approx(-0.035)

    # price jump with ordinary volume: no explosion (1 per second vs 1 per second average)
    sc = MarketScanner()
    baseline(sc, "P", 660)
    assert sc.update("P", 105, 1, ts=660.0) is None
    # volume without the price: no explosion
    sc = MarketScanner()
    baseline(sc, "V", 600)
    assert all(sc.update("V", 100.5, 50, ts=float(t)) is None for t in range(600, 700))


def test_no_explosion_without_enough_baseline() -> None:
    sc = MarketScanner()
    baseline(sc, "N", 200)  # 200 s of history < min_baseline_s 300
    assert sc.update("N", 110, 1_000, ts=260.0) is None
    assert sc.activity("N", now=260.0).volume_multiple is None


def test_injected_clock_and_input_checks() -> None:
    clock = Clock()
    sc = MarketScanner(ScannerConfig(window_s=10, baseline_s=100, min_baseline_s=50), clock=clock)
    for t in range(100):
        clock.now = float(t)
        sc.update("C", 10.0, 1.0)
    clock.now = 100.0
    ev = sc.update("C", 10.5, 40.0)
    # reference t = 90 (cum 91); window volume 140 - 91 = 49; baseline t = 0..90: 90 in 90 s
    # -> 10 per 10 s -> 4.9x; move +5 %
    assert ev is not None and ev.ts == 100.0
    assert ev.volume_multiple == pytest.approx(4.9) and ev.price_change == pytest.approx(0.05)
    clock.now = 50.0  # time going backwards is clamped per symbol
    sc.update("C", 10.5, 0.0)
    with pytest.raises(ValueError, match="price"):
        sc.update("C", 0.0, 1.0)
    with pytest.raises(ValueError, match="volume"):
        sc.update("C", 1.0, -1.0)


def test_prioritisation_under_load() -> None:
    sc = MarketScanner(ScannerConfig(max_skip_rounds=3))
    for sym, vol in (("HOT", 10.0), ("WARM", 3.0), ("COLD", 1.0), ("ICE", 1.0)):
        baseline(sc, sym, 600)
        for t in range(600, 660):
            sc.update(sym, 100, vol, ts=float(t))
    assert sc.update("HOT", 104, 10, ts=660.0) is not None  # HOT explodes
    sc.update("WARM", 101, 3, ts=660.0)
    ranking = [a.symbol for a in sc.ranking(now=660.0)]
    assert ranking[:2] == ["HOT", "WARM"] and set(ranking[2:]) == {"COLD", "ICE"}
    pending = ["ICE", "COLD", "WARM", "HOT", "NEW"]
    # under budget: everyone, in priority order
    chosen, deferred = sc.prioritize(pending, 10, now=660.0)
    assert chosen[:2] == ["HOT", "WARM"] and deferred == [] and len(chosen) == 5
    # over budget: the top two, the rest deferred ...
    chosen, deferred = sc.prioritize(pending, 2, now=660.0)
    assert chosen == ["HOT", "WARM"] and sorted(deferred) == ["COLD", "ICE", "NEW"]
    sc.prioritize(pending, 2, now=660.0)
    sc.prioritize(pending, 2, now=660.0)
    # ... until they have waited max_skip_rounds rounds: then they go first (no starvation)
    chosen, deferred = sc.prioritize(pending, 2, now=660.0)
    assert chosen == ["COLD", "ICE"] and "HOT" in deferred
    with pytest.raises(ValueError):
        sc.prioritize(pending, -1)


def test_config_validation_names_the_key() -> None:
    for kw, key in (
        ({"window_s": 0}, "window_s"),
        ({"min_price_move": 3.0}, "min_price_move"),
        ({"min_baseline_s": 5000.0}, "min_baseline_s"),
        ({"min_volume_multiple": float("inf")}, "min_volume_multiple"),
        ({"max_skip_rounds": True}, "max_skip_rounds"),
    ):
        with pytest.raises(ScannerConfigError) as err:
            ScannerConfig(**kw)
        assert err.value.key == key
    cfg = ScannerConfig().with_updates({"min_price_move": 0.05})
    assert cfg.min_price_move == 0.05
    with pytest.raises(ScannerConfigError) as err:
        cfg.with_updates({"bogus": 1})
    assert err.value.key == "bogus"
