"""Shared fixtures of the strategy tests: raw Bybit message builders for the native engine, and
full-layout feature mappings for rule tests that need exact feature values.

Tests run with ``--import-mode=importlib`` and cannot import each other, so helpers are fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson
import pytest

from pysrc.analytics import FEATURE_NAMES
from pysrc.strategy import MarketData

Level = tuple[str, str]


class Bybit:
    """Builds ``orderbook.50`` snapshots/deltas with a consistent ``u`` chain, and trades."""

    def __init__(self, symbol: str = "BTCUSDT") -> None:
        self.symbol = symbol
        self.u = 0

    def book(self, ts: int, bids: Sequence[Level], asks: Sequence[Level], kind: str = "delta") -> bytes:
        self.u = 1 if kind == "snapshot" else self.u + 1
        return orjson.dumps(
            {
                "topic": f"orderbook.50.{self.symbol}",
                "type": kind,
                "ts": ts,
                "data": {"s": self.symbol, "b": [list(b) for b in bids], "a": [list(a) for a in asks], "u": self.u},
            }
        )

    def snapshot(self, ts: int, bids: Sequence[Level], asks: Sequence[Level]) -> bytes:
        return self.book(ts, bids, asks, "snapshot")

    def trades(self, rows: Sequence[tuple[int, str, str, str]]) -> bytes:
        """rows of (T, "Buy" | "Sell", price, size)."""
        return orjson.dumps(
            {
                "topic": f"publicTrade.{self.symbol}",
                "type": "snapshot",
                "ts": rows[-1][0],
                "data": [
                    {"T": t, "s": self.symbol, "S": side, "v": v, "p": p, "i": f"{t}-{n}", "BT": False}
                    for n, (t, side, p, v) in enumerate(rows)
                ],
            }
        )


@pytest.fixture
def bybit() -> Bybit:
    return Bybit()


@pytest.fixture
def make_md() -> Callable[..., MarketData]:
    """``make_md(bid, ask, ts=..., updates=..., **features)``: a MarketData in the full schema
    layout with every feature missing except those given (and the book basics derived from the
    prices: mid, spread, spread_bps), so a rule test states exactly what it relies on."""

    def make(
        bid: str = "100.00",
        ask: str = "100.01",
        *,
        ts: int = 100_000,
        updates: int = 1_000,
        live: bool = True,
        **features: Any,
    ) -> MarketData:
        values: dict[str, float | None] = dict.fromkeys(FEATURE_NAMES)
        b, a = Decimal(bid), Decimal(ask)
        mid = (b + a) / 2
        values.update(
            best_bid=float(b),
            best_ask=float(a),
            mid=float(mid),
            spread=float(a - b),
            spread_bps=float((a - b) / mid * 10_000),
            spoof_score_60s=0.0,
            layering_score_60s=0.0,
            trade_volume_10s=0.0,
            trade_count_10s=0.0,
            volume_delta_10s=0.0,
        )
        for k, v in features.items():
            if k not in values:
                raise KeyError(k)
            values[k] = v
        return MarketData.from_mapping("BTCUSDT", ts, values, bid, ask, updates=updates, live=live)

    return make
