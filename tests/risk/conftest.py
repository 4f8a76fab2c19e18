"""Shared fixtures of the risk tests (tests cannot import each other under importlib mode)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from pysrc.risk import InstrumentSpec
from pysrc.strategy import Side, Signal, SignalKind


@pytest.fixture
def btc() -> InstrumentSpec:
    return InstrumentSpec(
        "BTCUSDT",
        tick_size=Decimal("0.1"),
        qty_step=Decimal("0.001"),
        min_qty=Decimal("0.001"),
        min_notional=Decimal(5),
        max_qty=Decimal(100),
        max_leverage=Decimal(100),
    )


@pytest.fixture
def make_signal() -> Callable[..., Signal]:
    def make(
        symbol: str = "BTCUSDT", side: Side = Side.BUY, price: str = "50000", confidence: float = 1.0, **kw: Any
    ) -> Signal:
        return Signal(
            symbol=symbol,
            side=side,
            kind=SignalKind.IMBALANCE,
            strength=0.8,
            confidence=confidence,
            price=Decimal(price),
            ts=1,
            strategy="orderbook_scalper",
            **kw,
        )

    return make
