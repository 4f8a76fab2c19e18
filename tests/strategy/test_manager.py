"""The strategy manager: registry, run-time control, cooldown, validator hook, counters."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from pysrc.strategy import (
    MarketData,
    Param,
    ParameterError,
    Side,
    Signal,
    SignalKind,
    Strategy,
    StrategyManager,
    UnknownStrategy,
    Verdict,
)


class Always(Strategy):
    """Signals on every update, with the configured confidence."""

    NAME: ClassVar[str] = "always"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("confidence", float, 0.8, 0.0, 1.0),
        Param("min_confidence", float, 0.5, 0.0, 1.0),
    )

    def __init__(self, params: Mapping[str, Any] | None = None, name: str = "always") -> None:
        self._name = name
        self.calls = 0
        super().__init__(params)

    def get_name(self) -> str:
        return self._name

    def analyze(self, symbol: str, market_data: MarketData) -> Signal | None:
        self.calls += 1
        return Signal(
            symbol=symbol,
            side=Side.BUY,
            kind=SignalKind.IMBALANCE,
            strength=0.5,
            confidence=self._params["confidence"],
            price=market_data.best_ask or Decimal(1),
            ts=market_data.ts,
            strategy=self.get_name(),
        )


class Broken(Strategy):
    NAME: ClassVar[str] = "broken"

    def analyze(self, symbol: str, market_data: MarketData) -> Signal | None:
        raise RuntimeError("boom")


def md(ts: int, symbol: str = "BTCUSDT") -> MarketData:
    return MarketData.from_mapping(symbol, ts, {}, "100", "100.1")


def test_registry_and_run_time_control() -> None:
    m = StrategyManager(default_cooldown_s=0)
    a = Always()
    m.register(a)
    with pytest.raises(ValueError, match="already registered"):
        m.register(Always())
    assert m.names() == ["always"] and m.is_enabled("always") and m.get("always") is a
    assert len(m.on_update("BTCUSDT", md(1))) == 1
    m.disable("always")
    assert m.on_update("BTCUSDT", md(2)) == [] and a.calls == 1  # disabled: not even analysed
    m.enable("always")
    assert len(m.on_update("BTCUSDT", md(3))) == 1
    with pytest.raises(UnknownStrategy):
        m.enable("nope")
    assert m.unregister("always") is a and m.names() == []


def test_register_with_config_and_reparameterise() -> None:
    m = StrategyManager(default_cooldown_s=0)
    m.register(Always(), config={"confidence": 0.9})
    assert m.on_update("X", md(1, "X"))[0].confidence == 0.9
    assert m.update_parameters("always", {"confidence": 0.7})["confidence"] == 0.7
    assert m.on_update("X", md(2, "X"))[0].confidence == 0.7
    with pytest.raises(ParameterError) as err:
        m.update_parameters("always", {"confidence": 2})
    assert err.value.key == "confidence"
    # below the strategy's own min_confidence: refused by validate_signal and counted
    m.update_parameters("always", {"confidence": 0.3})
    assert m.on_update("X", md(3, "X")) == []
    st = m.stats("always")
    assert st.invalid == 1 and st.signals == 3 and st.emitted == 2
    assert [r.stage for r in m.drain_rejections()] == ["invalid"]


def test_cooldown_per_strategy_and_symbol() -> None:
    m = StrategyManager(default_cooldown_s=5.0)
    m.register(Always())
    m.register(Always(name="second"), cooldown_s=1.0)
    out = m.on_update("BTCUSDT", md(10_000))
    assert [s.strategy for s in out] == ["always", "second"]
    # 1.5 s later: "always" (5 s) is cooling down, "second" (1 s) is not
    assert [s.strategy for s in m.on_update("BTCUSDT", md(11_500))] == ["second"]
    # another symbol has its own cooldown
    assert [s.strategy for s in m.on_update("ETHUSDT", md(11_600, "ETHUSDT"))] == ["always", "second"]
    # exactly 5 s after the last emitted signal: allowed again
    assert "always" in [s.strategy for s in m.on_update("BTCUSDT", md(15_000))]
    st = m.stats("always")
    assert st.suppressed_cooldown == 1 and st.emitted == 3 and st.last_signal_ts == 15_000
    m.set_cooldown("always", 0)
    assert "always" in [s.strategy for s in m.on_update("BTCUSDT", md(15_001))]


def test_validator_hook() -> None:
    class Model:
        name = "model-v1"

        def __init__(self) -> None:
            self.seen = 0

        def validate(self, signal: Signal, market_data: MarketData) -> Verdict:
            self.seen += 1
            ok = signal.symbol == "BTCUSDT"
            return Verdict(ok, self.name, 0.9 if ok else 0.2, "" if ok else "probability 0.2 < 0.8")

    m = StrategyManager(default_cooldown_s=0)
    m.register(Always())
    s = m.on_update("BTCUSDT", md(1))[0]
    assert s.validated_by == "none" and s.ml_score is None  # default pass-through: no fake score
    model = Model()
    m.set_validator(model)
    s = m.on_update("BTCUSDT", md(2))[0]
    assert s.validated_by == "model-v1" and s.ml_score == 0.9
    assert m.on_update("ETHUSDT", md(3, "ETHUSDT")) == []
    assert m.stats("always").rejected_by_validator == 1
    rej = m.drain_rejections()
    assert rej[-1].stage == "validator" and "0.2" in rej[-1].reason


def test_a_failing_strategy_is_isolated_then_disabled() -> None:
    m = StrategyManager(default_cooldown_s=0, max_consecutive_errors=3)
    m.register(Broken())
    m.register(Always())
    for ts in range(3):
        assert len(m.on_update("BTCUSDT", md(ts))) == 1  # the other strategy still runs
    st = m.stats("broken")
    assert st.errors == 3 and st.last_error == "RuntimeError: boom"
    assert not m.is_enabled("broken")
    row = next(r for r in m.status() if r["name"] == "broken")
    assert "3 consecutive errors" in row["disabled_reason"]
    m.enable("broken")
    assert m.is_enabled("broken") and m.stats("broken").consecutive_errors == 0
