"""Risk settings: the mission's defaults, and validation that names the bad key."""

from __future__ import annotations

from decimal import Decimal
from decimal import Decimal as D
from typing import Any

import pytest

from pysrc.risk import RiskConfigError, RiskLimits, SizingConfig, SizingMode


def test_defaults_are_the_missions() -> None:
    r = RiskLimits()
    assert (r.max_positions, r.max_positions_per_symbol, r.max_correlated_positions) == (10, 1, 3)
    assert (r.max_risk_per_trade, r.max_total_risk, r.max_daily_loss) == (
        Decimal("0.02"),
        Decimal("0.10"),
        Decimal("0.05"),
    )
    assert (r.default_leverage, r.max_leverage) == (D(10), D(50))
    assert (r.leverage_high_vol, r.leverage_medium_vol, r.leverage_low_vol) == (D(5), D(10), D(20))
    assert r.min_order_usdt == 5 and r.max_exposure_usdt == 10_000 and r.correlation_threshold == 0.7
    s = SizingConfig()
    assert s.mode is SizingMode.PERCENT and s.position_size_pct == Decimal("0.01") and s.fixed_size_usdt == 10


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"max_positions": 0}, "max_positions"),
        ({"max_positions": 101}, "max_positions"),
        ({"max_positions": "ten"}, "max_positions"),
        ({"max_positions": True}, "max_positions"),
        ({"max_daily_loss": 0.005}, "max_daily_loss"),
        ({"max_daily_loss": 0.51}, "max_daily_loss"),
        ({"max_daily_loss": float("nan")}, "max_daily_loss"),
        ({"max_daily_loss": "lots"}, "max_daily_loss"),
        ({"max_leverage": 101}, "max_leverage"),
        ({"max_leverage": 8}, "default_leverage"),  # default 10 would exceed it
        ({"max_total_risk": 0.01}, "max_total_risk"),  # below max_risk_per_trade 0.02
        ({"max_positions": 5, "max_positions_per_symbol": 6}, "max_positions_per_symbol"),
        ({"vol_low_bps": 30.0}, "vol_low_bps"),
        ({"correlation_threshold": 1.5}, "correlation_threshold"),
        ({"max_exposure": 5}, "max_exposure"),  # unknown key
    ],
)
def test_limits_validation_names_the_key(changes: dict[str, Any], key: str) -> None:
    with pytest.raises(RiskConfigError) as err:
        RiskLimits().with_updates(changes)
    assert err.value.key == key and str(err.value).startswith(f"{key}:")


def test_updates_are_exact_and_immutable() -> None:
    r = RiskLimits()
    r2 = r.with_updates({"max_daily_loss": 0.03, "max_exposure_usdt": "2500.50", "max_positions": 20.0})
    assert r2.max_daily_loss == Decimal("0.03")  # the number written, not the binary float
    assert r2.max_exposure_usdt == Decimal("2500.50") and r2.max_positions == 20
    assert r.max_daily_loss == Decimal("0.05")
    assert r2.to_dict()["max_daily_loss"] == "0.03"
    assert RiskLimits.from_mapping(r2.to_dict()) == r2  # round trip through JSON-ready values


def test_sizing_validation() -> None:
    assert SizingConfig.from_mapping({"mode": "fixed", "fixed_size_usdt": 25}).fixed_size_usdt == 25
    for changes, key in (
        ({"mode": "yolo"}, "mode"),
        ({"position_size_pct": 2}, "position_size_pct"),
        ({"fixed_size_usdt": 0}, "fixed_size_usdt"),
        ({"min_confidence": -0.1}, "min_confidence"),
        ({"scale_by_confidence": "yes"}, "scale_by_confidence"),
    ):
        with pytest.raises(RiskConfigError) as err:
            SizingConfig().with_updates(changes)
        assert err.value.key == key
