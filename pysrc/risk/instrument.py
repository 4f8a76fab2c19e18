"""Instrument trading rules as the risk and position logic need them, and exact Decimal rounding.

This is deliberately a small local type (not the exchange layer's instrument cache): risk and
position management are pure logic and must not import the exchange package. The bot's wiring
converts one into the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pysrc.strategy.base import to_decimal


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` that is <= ``value`` (exact; ``value`` may be negative)."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    q = value // step  # exact integer division, truncates toward zero
    if q * step > value:
        q -= 1
    return q * step


def ceil_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of ``step`` that is >= ``value`` (exact)."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    q = value // step
    if q * step < value:
        q += 1
    return q * step


def nearest_step(value: Decimal, step: Decimal) -> Decimal:
    """Nearest multiple of ``step``, ties up for positive values (prices with no side to favour)."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    low = floor_to_step(value, step)
    rest = value - low  # exact, in [0, step)
    if rest * 2 > step or (rest * 2 == step and value > 0):
        return low + step
    return low


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """Tick size, quantity step and limits of one symbol (Bybit ``priceFilter`` / ``lotSizeFilter``
    / ``leverageFilter``). All Decimal; ``max_qty`` None means no limit known."""

    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    min_notional: Decimal = Decimal(0)
    max_qty: Decimal | None = None
    max_leverage: Decimal = Decimal(100)

    def __post_init__(self) -> None:
        for name in ("tick_size", "qty_step", "min_qty", "min_notional", "max_leverage"):
            object.__setattr__(self, name, to_decimal(getattr(self, name), name))
        if self.max_qty is not None:
            object.__setattr__(self, "max_qty", to_decimal(self.max_qty, "max_qty"))
        if self.tick_size <= 0 or self.qty_step <= 0:
            raise ValueError(f"{self.symbol}: tick_size and qty_step must be positive")
        if self.min_qty < 0 or self.min_notional < 0:
            raise ValueError(f"{self.symbol}: min_qty and min_notional must be >= 0")
        if self.max_leverage < 1:
            raise ValueError(f"{self.symbol}: max_leverage must be >= 1")
        if self.max_qty is not None and self.max_qty < self.min_qty:
            raise ValueError(f"{self.symbol}: max_qty below min_qty")

    @classmethod
    def from_mapping(cls, symbol: str, data: dict[str, Any]) -> InstrumentSpec:
        """From a plain dict of decimal strings (a stored or API record)."""
        return cls(
            symbol=symbol,
            tick_size=to_decimal(data["tick_size"], "tick_size"),
            qty_step=to_decimal(data["qty_step"], "qty_step"),
            min_qty=to_decimal(data["min_qty"], "min_qty"),
            min_notional=to_decimal(data.get("min_notional", "0"), "min_notional"),
            max_qty=None if data.get("max_qty") in (None, "") else to_decimal(data["max_qty"], "max_qty"),
            max_leverage=to_decimal(data.get("max_leverage", "100"), "max_leverage"),
        )

    def floor_qty(self, qty: Decimal) -> Decimal:
        return floor_to_step(qty, self.qty_step)

    def ceil_qty(self, qty: Decimal) -> Decimal:
        return ceil_to_step(qty, self.qty_step)

    def price_down(self, price: Decimal) -> Decimal:
        return floor_to_step(price, self.tick_size)

    def price_up(self, price: Decimal) -> Decimal:
        return ceil_to_step(price, self.tick_size)

    def price_nearest(self, price: Decimal) -> Decimal:
        return nearest_step(price, self.tick_size)


__all__ = ["InstrumentSpec", "ceil_to_step", "floor_to_step", "nearest_step"]
