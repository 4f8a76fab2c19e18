"""Symbol groups, base assets and the return-correlation tracker."""

from __future__ import annotations

import math
from decimal import Decimal as D

import pytest

from pysrc.risk import CorrelationTracker, SymbolGroups, base_asset
from pysrc.risk.instrument import ceil_to_step, floor_to_step, nearest_step


def test_base_asset_and_groups() -> None:
    assert [base_asset(s) for s in ("BTCUSDT", "ethusdc", "SOL-PERP", "AAVE/USDT", "1000PEPEUSDT", "XYZ")] == [
        "BTC",
        "ETH",
        "SOL",
        "AAVE",
        "1000PEPE",
        "XYZ",
    ]
    g = SymbolGroups()
    assert g.group_of("BTCUSDT") == "majors" and g.group_of("UNIUSDT") == "defi" and g.group_of("NEARUSDT") == "layer1"
    assert g.same_group("SOLUSDT", "AVAXUSDT") and not g.same_group("BTCUSDT", "SOLUSDT")
    assert not g.same_group("XRPUSDT", "ADAUSDT")  # ungrouped symbols are not a group together
    with pytest.raises(ValueError, match="two groups"):
        SymbolGroups({"a": ["BTC"], "b": ["btc"]})


def test_tracker_correlations() -> None:
    t = CorrelationTracker(window=30, min_samples=5)
    series = [0.01, -0.02, 0.015, 0.0, -0.005, 0.02, -0.01]
    for i, r in enumerate(series):
        t.observe({"A": r, "B": 3 * r + 0.001, "C": -r, "Z": 0.0})
        if i < 4:
            assert t.correlation("A", "B") is None  # fewer than min_samples common steps
    assert t.correlation("A", "B") == pytest.approx(1.0)
    assert t.correlation("A", "C") == pytest.approx(-1.0)
    assert t.correlation("A", "Z") is None  # zero variance
    assert t.correlation("A", "A") == 1.0 and t.correlation("A", "nope") is None
    # misaligned steps only count where both have a value
    t.observe({"A": 0.5})
    assert t.correlation("A", "B") == pytest.approx(1.0)


def test_tracker_from_prices() -> None:
    t = CorrelationTracker(window=10, min_samples=3)
    for p in (100.0, 101.0, 99.0, 102.0, 100.0):
        t.observe_prices({"A": p, "B": p * 2, "C": 0.0})  # C's price is invalid and ignored
    assert t.correlation("A", "B") == pytest.approx(1.0)
    with pytest.raises(ValueError):
        CorrelationTracker(window=2)
    assert math.isfinite(t.correlation("B", "A") or 0.0)


def test_exact_rounding() -> None:
    assert floor_to_step(D("1.239"), D("0.01")) == D("1.23")
    assert ceil_to_step(D("1.231"), D("0.01")) == D("1.24")
    assert ceil_to_step(D("1.23"), D("0.01")) == D("1.23")
    assert floor_to_step(D("100.07"), D("0.025")) == D("100.050")
    assert floor_to_step(D("-1.231"), D("0.01")) == D("-1.24")
    assert nearest_step(D("1.235"), D("0.01")) == D("1.24") and nearest_step(D("1.2349"), D("0.01")) == D("1.23")
    # no 28-digit division artefacts: a value a hair under a step stays under
    assert floor_to_step(D("0.99999999999999999999999999999"), D(1)) == 0
    with pytest.raises(ValueError):
        floor_to_step(D(1), D(0))
