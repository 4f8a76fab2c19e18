"""The order-book scalper's rules, on vectors from the real native engine where the scenario can be
played as Bybit messages, and on exact hand-set vectors for threshold edges.

Numbers in the comments are the hand computations the assertions check."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from pysrc.analytics import FeatureReader
from pysrc.book import BookEngine
from pysrc.strategy import (
    MarketData,
    OrderBookScalper,
    ParameterError,
    Side,
    SignalKind,
)

MD = Callable[..., MarketData]
SYM = "BTCUSDT"


def engine() -> tuple[Any, FeatureReader]:
    e = BookEngine("bybit", features=True)
    return e, FeatureReader(e)


def read(e: Any, r: FeatureReader) -> MarketData:
    return MarketData.from_engine(e, r, SYM)


# ---- imbalance ---------------------------------------------------------------------------------


def test_imbalance_buy_from_a_real_book(bybit: Any) -> None:
    e, r = engine()
    # bids 10 + 5, asks 1 + 1: imbalance_5 = (15 - 2) / 17 = 0.76471; normalised 0.88235 > 0.75
    e.apply(bybit.snapshot(1_000, [("100.0", "10"), ("99.9", "5")], [("100.1", "1"), ("100.2", "1")]))
    s = OrderBookScalper({"warmup_updates": 0})
    sig = s.analyze(SYM, read(e, r))
    assert sig is not None
    assert sig.side is Side.BUY and sig.kind is SignalKind.IMBALANCE
    assert sig.price == Decimal("100.1")  # exact best ask: what a buyer pays
    assert sig.strength == pytest.approx(13 / 17)
    # confidence = 0.5 + 0.5 * (0.88235 - 0.75) / (1 - 0.75) = 0.76471
    assert sig.confidence == pytest.approx(0.5 + 0.5 * ((30 / 34) - 0.75) / 0.25)
    assert sig.features["imbalance_5"] == pytest.approx(13 / 17)
    assert sig.features["threshold_effective"] == 0.75
    assert "pressure_10" in sig.features and sig.ts == 1_000 and sig.strategy == "orderbook_scalper"
    assert sig.validated_by == "none" and sig.ml_score is None


def test_imbalance_sell_and_balanced_books(bybit: Any) -> None:
    e, r = engine()
    s = OrderBookScalper({"warmup_updates": 0})
    e.apply(bybit.snapshot(1_000, [("100.0", "1")], [("100.1", "4")]))  # (1 - 4) / 5 = -0.6 -> 0.2 < 0.25
    sig = s.analyze(SYM, read(e, r))
    assert sig is not None and sig.side is Side.SELL and sig.price == Decimal("100.0")
    assert sig.confidence == pytest.approx(0.5 + 0.5 * (0.25 - 0.2) / 0.25)
    e.apply(bybit.snapshot(2_000, [("100.0", "3")], [("100.1", "2")]))  # 0.2 -> 0.6: inside the band
    assert s.analyze(SYM, read(e, r)) is None


def test_thresholds_adapt_to_volatility() -> None:
    s = OrderBookScalper()
    assert s.thresholds(None) == (0.75, 0.25)
    assert s.thresholds(10.0) == (0.75, 0.25)  # at the reference: unchanged
    # 30 bps: scale = 1 + 0.25 * (30 / 10 - 1) = 1.5 -> margin 0.375
    assert s.thresholds(30.0) == pytest.approx((0.875, 0.125))
    # 100 bps: scale 3.25 -> 0.5 + 0.8125, capped at 0.95 / 0.05
    assert s.thresholds(100.0) == pytest.approx((0.95, 0.05))


def test_volatility_raises_the_bar(make_md: MD) -> None:
    s = OrderBookScalper()
    # imbalance 0.6 -> normalised 0.8: above 0.75 in a quiet book, below 0.875 at 30 bps
    quiet = make_md(imbalance_5=0.6, pressure_10=0.4, realized_vol_10s_bps=5.0)
    busy = make_md(imbalance_5=0.6, pressure_10=0.4, realized_vol_10s_bps=30.0)
    sig = s.analyze(SYM, quiet)
    assert sig is not None and sig.side is Side.BUY and sig.features["realized_vol_10s_bps"] == 5.0
    assert s.analyze(SYM, busy) is None


def test_pressure_must_agree(make_md: MD) -> None:
    s = OrderBookScalper()
    assert s.analyze(SYM, make_md(imbalance_5=0.6, pressure_10=-0.1)) is None
    assert s.filter_counts["pressure_disagrees"] == 1
    s.update_parameters({"require_pressure_agreement": False})
    assert s.analyze(SYM, make_md(imbalance_5=0.6, pressure_10=-0.1)) is not None


def test_imbalance_levels_choose_the_feature(make_md: MD) -> None:
    s = OrderBookScalper({"imbalance_levels": 20})
    assert s.analyze(SYM, make_md(imbalance_5=0.9, imbalance_20=0.0, pressure_10=0.5)) is None
    sig = s.analyze(SYM, make_md(imbalance_5=0.0, imbalance_20=0.9, pressure_10=0.5))
    assert sig is not None and "imbalance_20" in sig.features
    with pytest.raises(ParameterError) as err:
        s.update_parameters({"imbalance_levels": 3})
    assert err.value.key == "imbalance_levels"


# ---- false-signal filters -----------------------------------------------------------------------


def test_filters(bybit: Any, make_md: MD) -> None:
    e, r = engine()
    heavy = ([("100.0", "10")], [("100.1", "1")])
    e.apply(bybit.snapshot(1_000, *heavy))
    s = OrderBookScalper()  # warmup 50: one update is not enough
    assert s.analyze(SYM, read(e, r)) is None and s.filter_counts["warming_up"] == 1

    s = OrderBookScalper({"warmup_updates": 0})
    e.apply(bybit.snapshot(2_000, [("100.0", "10")], [("100.2", "1")]))  # spread 19.99 bps > 10
    assert s.analyze(SYM, read(e, r)) is None and s.filter_counts["spread_too_wide"] == 1

    good = {"imbalance_5": 0.9, "pressure_10": 0.9}
    assert s.analyze(SYM, make_md(live=False, **good)) is None
    assert s.analyze(SYM, make_md(realized_vol_10s_bps=151.0, **good)) is None
    assert s.analyze(SYM, make_md(spoof_score_60s=5.5, **good)) is None
    assert s.analyze(SYM, make_md(layering_score_60s=21.0, **good)) is None
    assert s.analyze(SYM, make_md(spread_bps=None, **good)) is None
    empty = MarketData.from_mapping(SYM, 1, dict(make_md().as_dict()), None, "100.01")
    assert s.analyze(SYM, empty) is None
    assert {
        k: s.filter_counts[k]
        for k in ("book_not_live", "volatility_too_high", "manipulation", "missing_features", "book_side_empty")
    } == {
        "book_not_live": 1,
        "volatility_too_high": 1,
        "manipulation": 2,
        "missing_features": 1,
        "book_side_empty": 1,
    }
    # the same vector without the problems signals
    assert s.analyze(SYM, make_md(**good)) is not None


def test_min_confidence_and_conflicts(make_md: MD) -> None:
    s = OrderBookScalper({"min_confidence": 0.8})
    # normalised 0.8: confidence 0.5 + 0.5 * 0.05 / 0.25 = 0.6 < 0.8
    assert s.analyze(SYM, make_md(imbalance_5=0.6, pressure_10=0.5)) is None
    assert s.filter_counts["low_confidence"] == 1
    assert not s.validate_signal(
        OrderBookScalper({"min_confidence": 0.5}).analyze(SYM, make_md(imbalance_5=0.6, pressure_10=0.5))  # type: ignore[arg-type]
    )
    # imbalance says buy while a support level breaks downward: no view
    s = OrderBookScalper()
    s.analyze(SYM, make_md("100.00", "100.01", ts=1_000, support_dist_bps=20.0))
    broken = make_md(
        "99.70",
        "99.71",
        ts=2_000,
        imbalance_5=0.9,
        pressure_10=0.9,
        trade_volume_10s=200.0,
        buy_ratio_10s=0.1,
        volume_delta_10s=-160.0,
    )
    assert s.analyze(SYM, broken) is None and s.filter_counts["conflicting_rules"] == 1


def test_parameter_cross_checks() -> None:
    for params, key in (
        ({"imbalance_buy_threshold": 0.5}, "imbalance_buy_threshold"),
        ({"imbalance_sell_threshold": 0.5}, "imbalance_sell_threshold"),
        ({"imbalance_buy_threshold": 0.97}, "max_adaptive_threshold"),
        ({"imbalance_sell_threshold": 0.01}, "max_adaptive_threshold"),
        ({"breakout_min_aggressor_ratio": 1.0}, "breakout_min_aggressor_ratio"),
    ):
        with pytest.raises(ParameterError) as err:
            OrderBookScalper(params)
        assert err.value.key == key
    s = OrderBookScalper({"imbalance_buy_threshold": 0.8, "imbalance_sell_threshold": 0.2})
    assert s.thresholds(None) == (0.8, 0.2)


# ---- cluster breakout ---------------------------------------------------------------------------


def _wall_book(bybit: Any, e: Any, until: int) -> None:
    """Bids 100.40 down (5 each); asks 100.41 up (5 each) with a 200 wall at 100.50 (40x the
    median): the largest ask wall, 9.46 bps above the mid, a second older at every update."""
    bids = [(f"{100.40 - i * 0.01:.2f}", "5") for i in range(10)]
    asks = [(f"{100.41 + i * 0.01:.2f}", "200" if i == 9 else "5") for i in range(15)]
    e.apply(bybit.snapshot(0, bids, asks))
    for t in range(1_000, until + 1, 1_000):
        e.apply(bybit.book(t, [("100.31", str(5 + t // 1_000))], []))  # keeps updates flowing


def _eat_the_wall(bybit: Any, ts: int) -> bytes:
    """Every ask up to and including the wall is gone; a bid steps up to 100.50."""
    return bytes(bybit.book(ts, [("100.50", "5")], [(f"{100.41 + i * 0.01:.2f}", "0") for i in range(10)]))


def test_cluster_breakout_from_a_real_book(bybit: Any) -> None:
    e, r = engine()
    s = OrderBookScalper({"warmup_updates": 5})
    _wall_book(bybit, e, 9_000)
    assert s.analyze(SYM, read(e, r)) is None  # wall 9 s old: not a level yet
    e.apply(bybit.book(10_000, [("100.31", "3")], []))
    md = read(e, r)
    assert md.feature("wall_ask_age_s") == 10.0 and md.feature("wall_ask_size_ratio") == 40.0
    assert s.analyze(SYM, md) is None  # remembered now (10 s >= breakout_min_wall_age_s)
    # 150 bought at the wall in the 10 s window, then the wall and all asks below it are gone
    e.apply(bybit.trades([(11_500, "Buy", "100.45", "100"), (11_600, "Buy", "100.50", "50")]))
    e.apply(_eat_the_wall(bybit, 12_000))
    md = read(e, r)
    assert md.best_ask == Decimal("100.51") and md.feature("mid") == pytest.approx(100.505)
    sig = s.analyze(SYM, md)
    assert sig is not None and sig.kind is SignalKind.CLUSTER_BREAKOUT and sig.side is Side.BUY
    assert sig.price == Decimal("100.51")
    # notional = 150 * 100.505 = 15075.75 >= 10000; buy ratio 1.0
    # confidence = 0.5 + 0.25 * 1 + 0.25 * ((15075.75 / 10000 - 1) / 2) = 0.813446875
    assert sig.confidence == pytest.approx(0.813446875)
    assert sig.features["level_price"] == pytest.approx(100.50)
    assert sig.features["trade_notional_10s"] == pytest.approx(15075.75)
    assert sig.features["wall_ask_size_ratio"] == 40.0 and sig.features["level_age_ms"] == 2_000.0
    # fired once: the level is forgotten
    e.apply(bybit.book(12_500, [("100.31", "4")], []))
    assert s.analyze(SYM, read(e, r)) is None


def test_breakout_needs_flow_and_a_fresh_level(bybit: Any) -> None:
    e, r = engine()
    s = OrderBookScalper({"warmup_updates": 5})
    _wall_book(bybit, e, 10_000)
    s.analyze(SYM, read(e, r))
    e.apply(_eat_the_wall(bybit, 12_000))  # no trades: a vanished wall is not a breakout
    assert s.analyze(SYM, read(e, r)) is None

    e2, r2 = engine()
    s2 = OrderBookScalper({"warmup_updates": 5, "breakout_memory_s": 1.0})
    _wall_book(bybit, e2, 10_000)
    s2.analyze(SYM, read(e2, r2))
    e2.apply(bybit.trades([(11_500, "Buy", "100.45", "150")]))
    e2.apply(_eat_the_wall(bybit, 12_000))  # 2 s after the level was last seen > 1 s memory
    assert s2.analyze(SYM, read(e2, r2)) is None


def test_breakdown_through_support(make_md: MD) -> None:
    s = OrderBookScalper()
    # support 20 bps under a mid of 100.005: level 99.805
    assert s.analyze(SYM, make_md("100.00", "100.01", ts=1_000, support_dist_bps=20.0)) is None
    flow = {"trade_volume_10s": 120.0, "buy_ratio_10s": 0.25, "volume_delta_10s": -60.0}
    # still above the level: nothing
    assert s.analyze(SYM, make_md("99.81", "99.82", ts=1_500, **flow)) is None
    sig = s.analyze(SYM, make_md("99.79", "99.80", ts=2_000, **flow))
    assert sig is not None and sig.side is Side.SELL and sig.kind is SignalKind.CLUSTER_BREAKOUT
    assert sig.price == Decimal("99.79")
    # sell ratio 0.75: flow excess (0.75 - 0.6) / 0.4 = 0.375; notional 120 * 99.795 = 11975.4
    assert sig.confidence == pytest.approx(0.5 + 0.25 * 0.375 + 0.25 * ((11975.4 / 10000 - 1) / 2))
    assert sig.features["support_dist_bps"] == 20.0


def test_breakout_waits_for_late_trades(make_md: MD) -> None:
    s = OrderBookScalper()
    # 1 bp over a mid of 100.005: level 100.015
    s.analyze(SYM, make_md("100.00", "100.01", ts=1_000, resistance_dist_bps=1.0))
    # the book shows the breach before the trades arrive ...
    assert s.analyze(SYM, make_md("100.02", "100.03", ts=1_100)) is None
    # ... and a new wall appearing meanwhile does not replace the breached level
    assert s.analyze(SYM, make_md("100.02", "100.03", ts=1_200, resistance_dist_bps=50.0)) is None
    sig = s.analyze(
        SYM, make_md("100.02", "100.03", ts=1_300, trade_volume_10s=150.0, buy_ratio_10s=0.9, volume_delta_10s=120.0)
    )
    assert sig is not None and sig.side is Side.BUY and sig.features["resistance_dist_bps"] == 1.0
    assert sig.features["level_price"] == pytest.approx(100.015)


# ---- absorption ---------------------------------------------------------------------------------


def _absorbing_book(bybit: Any, e: Any, r: FeatureReader, s: OrderBookScalper, until: int) -> list[Any]:
    """A 50 bid wall at the best bid 100.00 (10x the median 5) hit by a 7.5 sell every second from
    t = 4 s; it stays 50 (refilled). Returns the signals at each second."""
    bids = [("100.00", "50")] + [(f"{99.99 - i * 0.01:.2f}", "5") for i in range(9)]
    asks = [(f"{100.01 + i * 0.01:.2f}", "5") for i in range(10)]
    e.apply(bybit.snapshot(0, bids, asks))
    out = []
    for t in range(1_000, until + 1, 1_000):
        if t >= 4_000:
            e.apply(bybit.trades([(t + 100, "Sell", "100.00", "7.5")]))
        e.apply(bybit.book(t, [("100.00", "50"), ("99.91", str(5 + t // 1_000))], []))
        out.append(s.analyze(SYM, read(e, r)))
    return out


def test_absorption_from_a_real_book(bybit: Any) -> None:
    e, r = engine()
    s = OrderBookScalper({"warmup_updates": 5})
    signals = _absorbing_book(bybit, e, r, s, 11_000)
    # before 10 s the wall is too young (and mid_roc_10s_bps is missing): nothing
    assert signals[:9] == [None] * 9
    sig = signals[9]  # t = 10 s: 7 sells of 7.5 = 52.5 against 50 shown: absorbed 1.05x
    assert sig is not None and sig.kind is SignalKind.ABSORPTION and sig.side is Side.BUY
    assert sig.confidence == pytest.approx(0.5 + 0.5 * (1.05 - 1.0) / 3)
    assert sig.features["absorbed_ratio"] == pytest.approx(1.05)
    assert sig.features["trade_count_10s"] == 7.0 and sig.features["buy_ratio_10s"] == 0.0
    # stop hint 5 bps under the wall, exact: 100.00 * (1 - 0.0005) = 99.95
    assert sig.stop_price == Decimal("99.95") and sig.price == Decimal("100.01")
    sig = signals[10]  # t = 11 s: 60 / 50 = 1.2x
    assert sig is not None and sig.confidence == pytest.approx(0.5 + 0.5 * 0.2 / 3)


def test_absorption_conditions(make_md: MD) -> None:
    s = OrderBookScalper()
    half = float(make_md().feature("spread_bps")) / 2  # type: ignore[arg-type]
    base: dict[str, Any] = {
        "wall_bid_dist_bps": half,  # the wall is the best bid: half the spread from the mid
        "wall_bid_age_s": 12.0,
        "wall_bid_size_ratio": 10.0,
        "bid_size_1": 50.0,
        "trade_volume_10s": 80.0,
        "volume_delta_10s": -60.0,  # sells (80 + 60) / 2 = 70 -> 1.4x the 50 shown
        "trade_count_10s": 9.0,
        "buy_ratio_10s": 0.125,
        "trade_vwap_dev_bps": -0.5,
        "mid_roc_10s_bps": -1.0,
    }
    sig = s.analyze(SYM, make_md(**base))
    assert sig is not None and sig.kind is SignalKind.ABSORPTION
    assert sig.confidence == pytest.approx(0.5 + 0.5 * 0.4 / 3)
    for change in (
        {"wall_bid_dist_bps": half + 1.0},  # the wall is not at the touch
        {"wall_bid_age_s": 9.0},  # younger than the trade window
        {"trade_volume_10s": 40.0, "volume_delta_10s": -30.0},  # 35 < 50: not absorbed
        {"trade_count_10s": 4.0},  # not repeatedly
        {"buy_ratio_10s": 0.5},  # sellers not dominant
        {"trade_vwap_dev_bps": -2.0},  # trades happened through the wall
        {"mid_roc_10s_bps": -6.0},  # the price gave way
        {"trade_vwap_dev_bps": None},  # missing input: the rule does not fire
    ):
        assert s.analyze(SYM, make_md(**{**base, **change})) is None, change


def test_ask_absorption_sells(make_md: MD) -> None:
    s = OrderBookScalper()
    half = float(make_md().feature("spread_bps")) / 2  # type: ignore[arg-type]
    sig = s.analyze(
        SYM,
        make_md(
            wall_ask_dist_bps=half,
            wall_ask_age_s=30.0,
            wall_ask_size_ratio=8.0,
            ask_size_1=20.0,
            trade_volume_10s=50.0,
            volume_delta_10s=40.0,  # buys (50 + 40) / 2 = 45 -> 2.25x
            trade_count_10s=12.0,
            buy_ratio_10s=0.9,
            trade_vwap_dev_bps=0.5,
            mid_roc_10s_bps=2.0,
        ),
    )
    assert sig is not None and sig.side is Side.SELL and sig.price == Decimal("100.00")
    assert sig.stop_price == Decimal("100.01") * (1 + Decimal("0.0005"))
    assert sig.confidence == pytest.approx(0.5 + 0.5 * 1.25 / 3)


def test_rules_can_be_switched_off(make_md: MD) -> None:
    s = OrderBookScalper({"imbalance_enabled": False})
    assert s.analyze(SYM, make_md(imbalance_5=0.9, pressure_10=0.9)) is None
    s.initialize({"imbalance_enabled": True})
    assert s.analyze(SYM, make_md(imbalance_5=0.9, pressure_10=0.9)) is not None
