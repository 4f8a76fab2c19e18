"""The strategy interface: Signal, MarketData, parameters, the ML pass-through."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import numpy as np
import orjson
import pytest

from pysrc.analytics import FEATURE_NAMES, FeatureReader, FeatureVector
from pysrc.book import BookEngine
from pysrc.strategy import (
    MarketData,
    Param,
    ParameterError,
    PassThroughValidator,
    Side,
    Signal,
    SignalKind,
    SignalValidator,
    Strategy,
)


def _signal(**kw: Any) -> Signal:
    base: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "kind": SignalKind.IMBALANCE,
        "strength": 0.5,
        "confidence": 0.7,
        "price": Decimal("100.1"),
        "ts": 1,
        "strategy": "s",
    }
    base.update(kw)
    return Signal(**base)


class Dummy(Strategy):
    NAME: ClassVar[str] = "dummy"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("threshold", float, 0.5, 0.0, 1.0),
        Param("levels", int, 5, choices=(1, 5, 10)),
        Param("enabled_rule", bool, True),
        Param("min_confidence", float, 0.6, 0.0, 1.0),
    )

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.resets = 0
        super().__init__(params)

    def analyze(self, symbol: str, market_data: MarketData) -> Signal | None:
        return None

    def reset(self) -> None:
        self.resets += 1


# ---- Signal -----------------------------------------------------------------------------------


def test_signal_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="confidence"):
        _signal(confidence=1.5)
    with pytest.raises(ValueError, match="strength"):
        _signal(strength=-0.1)
    with pytest.raises(TypeError, match="Decimal"):
        _signal(price=100.1)  # a float price is refused: money is exact
    with pytest.raises(ValueError, match="positive"):
        _signal(price=Decimal(0))
    with pytest.raises(ValueError, match="ml_score"):
        _signal(ml_score=0.9)  # no score without a validator that produced it
    assert _signal(side="Sell").side is Side.SELL


def test_signal_features_are_a_read_only_record() -> None:
    feats = {"imbalance_5": 0.8}
    s = _signal(features=feats)
    feats["imbalance_5"] = 0.0
    assert s.features["imbalance_5"] == 0.8
    with pytest.raises(TypeError):
        s.features["x"] = 1.0  # type: ignore[index]
    d = s.to_dict()
    assert d["price"] == "100.1" and d["validated_by"] == "none" and d["ml_score"] is None
    assert d["kind"] == "imbalance" and d["side"] == "Buy"
    orjson.dumps(d)  # JSON-ready


def test_pass_through_validator_is_honest() -> None:
    v = PassThroughValidator()
    assert isinstance(v, SignalValidator)
    verdict = v.validate(_signal(), None)  # type: ignore[arg-type]
    assert verdict.accepted and verdict.validated_by == "none" and verdict.score is None
    stamped = _signal().with_validation("model-v1", 0.83)
    assert stamped.validated_by == "model-v1" and stamped.ml_score == 0.83


# ---- MarketData ---------------------------------------------------------------------------------


def test_market_data_from_the_native_engine() -> None:
    engine = BookEngine("bybit", features=True)
    reader = FeatureReader(engine)
    engine.apply(
        orjson.dumps(
            {
                "topic": "orderbook.50.ETHUSDT",
                "type": "snapshot",
                "ts": 5_000,
                "data": {"s": "ETHUSDT", "b": [["2000.10", "3"]], "a": [["2000.20", "1"]], "u": 1},
            }
        )
    )
    md = MarketData.from_engine(engine, reader, "ETHUSDT")
    assert md.best_bid == Decimal("2000.10") and md.best_ask == Decimal("2000.20")  # exact strings
    assert md.mid == Decimal("2000.15")
    assert md.ts == 5_000 and md.live and md.updates == 1
    assert md.feature("imbalance_1") == pytest.approx((3 - 1) / 4)
    assert md.feature("ofi") is None  # missing: no previous update (the mask is honoured)
    assert md.feature("bid_levels") == 1.0
    assert md.present("imbalance_1", "ofi") is None
    assert md.present("imbalance_1", "bid_levels") == {"imbalance_1": 0.5, "bid_levels": 1.0}
    with pytest.raises(KeyError):
        md.feature("imbalance_7")  # a typo fails loudly
    # The view is a copy: a later read into the same buffers does not change it.
    engine.apply(
        orjson.dumps(
            {
                "topic": "orderbook.50.ETHUSDT",
                "type": "delta",
                "ts": 6_000,
                "data": {"s": "ETHUSDT", "b": [["2000.10", "1"]], "a": [], "u": 2},
            }
        )
    )
    reader.read("ETHUSDT", copy=False)
    assert md.feature("imbalance_1") == pytest.approx(0.5)


def test_market_data_from_vector_without_names_uses_the_schema() -> None:
    values = np.zeros(len(FEATURE_NAMES))
    mask = np.zeros(len(FEATURE_NAMES), dtype=bool)
    i = FEATURE_NAMES.index("spread_bps")
    values[i], mask[i] = 1.5, True
    md = MarketData.from_vector("X", 1, FeatureVector(values, mask, 7), "1.0", "1.1")
    assert md.feature("spread_bps") == 1.5 and md.feature("mid") is None and md.updates == 7
    with pytest.raises(TypeError):
        MarketData.from_vector("X", 1, FeatureVector(values, mask, 7), 1.0, "1.1")  # type: ignore[arg-type]


def test_market_data_from_mapping() -> None:
    md = MarketData.from_mapping("X", 3, {"a": 1.0, "b": None}, "10", "11")
    assert md.feature("a") == 1.0 and md.feature("b") is None and md.as_dict() == {"a": 1.0, "b": None}
    assert md.mid == Decimal("10.5")


# ---- parameters ---------------------------------------------------------------------------------


def test_parameters_are_validated_and_name_the_key() -> None:
    s = Dummy()
    assert s.get_name() == "dummy"
    assert s.get_parameters() == {"threshold": 0.5, "levels": 5, "enabled_rule": True, "min_confidence": 0.6}
    s.update_parameters({"threshold": 0.7, "levels": 10})
    assert s.get_parameters()["threshold"] == 0.7 and s.get_parameters()["levels"] == 10
    cases: list[tuple[dict[str, Any], str]] = [
        ({"nope": 1}, "nope"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "high"}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"levels": 7}, "levels"),
        ({"levels": 2.5}, "levels"),
        ({"enabled_rule": 1}, "enabled_rule"),
    ]
    for params, key in cases:
        with pytest.raises(ParameterError) as err:
            s.update_parameters(params)
        assert err.value.key == key and str(err.value).startswith(f"{key}:")


def test_parameter_update_is_all_or_nothing() -> None:
    s = Dummy()
    with pytest.raises(ParameterError, match="levels"):
        s.update_parameters({"threshold": 0.9, "levels": 3})
    assert s.get_parameters()["threshold"] == 0.5


def test_initialize_applies_config_and_resets_state() -> None:
    s = Dummy()
    s.initialize({"threshold": 0.1})
    assert s.get_parameters()["threshold"] == 0.1 and s.resets == 1
    with pytest.raises(ParameterError):
        s.initialize({"bogus": True})
    assert [p["name"] for p in s.describe_parameters()] == ["threshold", "levels", "enabled_rule", "min_confidence"]


def test_validate_signal_checks_owner_and_min_confidence() -> None:
    s = Dummy()
    assert s.validate_signal(_signal(strategy="dummy", confidence=0.6))
    assert not s.validate_signal(_signal(strategy="dummy", confidence=0.59))
    assert not s.validate_signal(_signal(strategy="other"))
