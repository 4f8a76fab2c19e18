"""Risk limits and sizing settings, validated on creation and on every update.

Each setting has a type and an inclusive range in its field metadata; a refused value raises
:class:`RiskConfigError` whose ``key`` names it (the API turns that into a 422 naming the field).
Money-like fractions and amounts are ``Decimal``. Values from YAML or JSON may arrive as floats
(``0.05``); they are converted through their shortest repr (``Decimal("0.05")``), which is the
number the person wrote, not the binary float's expansion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Self


class RiskConfigError(ValueError):
    """A refused setting; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")


class SizingMode(str, Enum):
    PERCENT = "percent"  # margin = balance x position_size_pct
    FIXED = "fixed"  # margin = fixed_size_usdt
    EXCHANGE_MIN = "exchange_min"  # the smallest order the exchange and min_order_usdt accept


def setting(kind: type, lo: Any = None, hi: Any = None, *, optional: bool = False) -> dict[str, Any]:
    """Field metadata of a :class:`ValidatedConfig` setting: its type and inclusive range
    (``field(default=..., metadata=setting(Decimal, lo, hi))``)."""
    return {"kind": kind, "lo": lo, "hi": hi, "optional": optional}


def coerce_decimal(key: str, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise RiskConfigError(key, f"expected a number, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RiskConfigError(key, f"must be finite, got {value!r}")
        value = repr(value)
    if isinstance(value, (int, str, Decimal)):
        try:
            d = Decimal(value)
        except InvalidOperation:
            raise RiskConfigError(key, f"not a decimal number: {value!r}") from None
        if not d.is_finite():
            raise RiskConfigError(key, f"must be finite, got {value!r}")
        return d
    raise RiskConfigError(key, f"expected a number, got {type(value).__name__}")


def _coerce(key: str, kind: type, value: Any) -> Any:
    if kind is Decimal:
        return coerce_decimal(key, value)
    if kind is bool:
        if not isinstance(value, bool):
            raise RiskConfigError(key, f"expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise RiskConfigError(key, f"expected an integer, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise RiskConfigError(key, f"expected a number, got {value!r}")
        f = float(value)
        if not math.isfinite(f):
            raise RiskConfigError(key, f"must be finite, got {value!r}")
        return f
    if kind is str:
        if not isinstance(value, str) or not value:
            raise RiskConfigError(key, f"expected a non-empty string, got {value!r}")
        return value
    if issubclass(kind, Enum):
        try:
            return kind(value)
        except ValueError:
            raise RiskConfigError(key, f"must be one of {[m.value for m in kind]}, got {value!r}") from None
    raise TypeError(f"{key}: unsupported setting type {kind}")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class ValidatedConfig:
    """Coerces and range-checks every field from its metadata, then runs :meth:`_cross_check`."""

    def __post_init__(self) -> None:
        for f in fields(self):
            key, meta = f.name, f.metadata
            value = getattr(self, key)
            if value is None and meta.get("optional"):
                continue
            value = _coerce(key, meta["kind"], value)
            lo, hi = meta.get("lo"), meta.get("hi")
            if lo is not None and value < lo:
                raise RiskConfigError(key, f"must be >= {lo}, got {value}")
            if hi is not None and value > hi:
                raise RiskConfigError(key, f"must be <= {hi}, got {value}")
            object.__setattr__(self, key, value)
        self._cross_check()

    def _cross_check(self) -> None:
        pass

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Self:
        cls._check_keys(data)
        return cls(**dict(data))

    def with_updates(self, changes: Mapping[str, Any]) -> Self:
        """A validated copy with ``changes``; unknown keys and bad values raise RiskConfigError."""
        self._check_keys(changes)
        return replace(self, **dict(changes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (Decimals as strings, enums as values)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, Decimal) else v.value if isinstance(v, Enum) else v
        return out

    @classmethod
    def _check_keys(cls, data: Mapping[str, Any]) -> None:
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise RiskConfigError(str(key), f"unknown setting (known: {sorted(known)})")


@dataclass(frozen=True, slots=True)
class SizingConfig(ValidatedConfig):
    """How big a new position is (mission section 7), and where its stop and target go."""

    mode: SizingMode = field(default=SizingMode.PERCENT, metadata=setting(SizingMode))
    position_size_pct: Decimal = field(
        default=Decimal("0.01"), metadata=setting(Decimal, Decimal("0.0001"), Decimal(1))
    )
    fixed_size_usdt: Decimal = field(default=Decimal(10), metadata=setting(Decimal, Decimal("0.01"), Decimal(10) ** 9))
    scale_by_confidence: bool = field(default=True, metadata=setting(bool))
    min_confidence: float = field(default=0.0, metadata=setting(float, 0.0, 1.0))
    stop_loss_pct: Decimal = field(default=Decimal("0.02"), metadata=setting(Decimal, Decimal("0.001"), Decimal("0.5")))
    take_profit_pct: Decimal = field(default=Decimal("0.03"), metadata=setting(Decimal, Decimal("0.001"), Decimal(5)))


@dataclass(frozen=True, slots=True)
class RiskLimits(ValidatedConfig):
    """Limits every new position must respect (mission section 7)."""

    max_positions: int = field(default=10, metadata=setting(int, 1, 100))
    max_positions_per_symbol: int = field(default=1, metadata=setting(int, 1, 10))
    max_risk_per_trade: Decimal = field(
        default=Decimal("0.02"), metadata=setting(Decimal, Decimal("0.0001"), Decimal("0.1"))
    )
    max_total_risk: Decimal = field(
        default=Decimal("0.10"), metadata=setting(Decimal, Decimal("0.0001"), Decimal("0.5"))
    )
    max_daily_loss: Decimal = field(default=Decimal("0.05"), metadata=setting(Decimal, Decimal("0.01"), Decimal("0.5")))
    max_exposure_usdt: Decimal = field(
        default=Decimal(10_000), metadata=setting(Decimal, Decimal(1), Decimal(10) ** 12)
    )
    max_symbol_exposure_usdt: Decimal | None = field(
        default=None, metadata=setting(Decimal, Decimal(1), Decimal(10) ** 12, optional=True)
    )
    min_order_usdt: Decimal = field(default=Decimal(5), metadata=setting(Decimal, Decimal(0), Decimal(10) ** 9))
    max_correlated_positions: int = field(default=3, metadata=setting(int, 1, 100))
    correlation_threshold: float = field(default=0.7, metadata=setting(float, 0.0, 1.0))
    default_leverage: Decimal = field(default=Decimal(10), metadata=setting(Decimal, Decimal(1), Decimal(100)))
    max_leverage: Decimal = field(default=Decimal(50), metadata=setting(Decimal, Decimal(1), Decimal(100)))
    adaptive_leverage: bool = field(default=True, metadata=setting(bool))
    leverage_high_vol: Decimal = field(default=Decimal(5), metadata=setting(Decimal, Decimal(1), Decimal(100)))
    leverage_medium_vol: Decimal = field(default=Decimal(10), metadata=setting(Decimal, Decimal(1), Decimal(100)))
    leverage_low_vol: Decimal = field(default=Decimal(20), metadata=setting(Decimal, Decimal(1), Decimal(100)))
    vol_high_bps: float = field(default=25.0, metadata=setting(float, 0.0, 1e6))
    vol_low_bps: float = field(default=5.0, metadata=setting(float, 0.0, 1e6))
    volatility_feature: str = field(default="realized_vol_10s_bps", metadata=setting(str))

    def _cross_check(self) -> None:
        if self.max_total_risk < self.max_risk_per_trade:
            raise RiskConfigError("max_total_risk", "must be >= max_risk_per_trade")
        if self.max_positions_per_symbol > self.max_positions:
            raise RiskConfigError("max_positions_per_symbol", "must be <= max_positions")
        for key in ("default_leverage", "leverage_high_vol", "leverage_medium_vol", "leverage_low_vol"):
            if getattr(self, key) > self.max_leverage:
                raise RiskConfigError(key, f"must be <= max_leverage ({self.max_leverage})")
        if self.vol_low_bps >= self.vol_high_bps:
            raise RiskConfigError("vol_low_bps", "must be < vol_high_bps")


__all__ = [
    "RiskConfigError",
    "RiskLimits",
    "SizingConfig",
    "SizingMode",
    "ValidatedConfig",
    "coerce_decimal",
    "setting",
]
