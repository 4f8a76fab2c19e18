"""The strategy interface (mission section 5), the signal it emits and the market view it reads.

A strategy is pure: it gets a :class:`MarketData` (one symbol's exact top of book plus the native
feature vector, read once per book update) and returns a :class:`Signal` or ``None``. It never
talks to the exchange, the store or the clock of the machine; time is the exchange timestamp
carried by the data, so a replay behaves exactly like the live run.

Money is exact: the price reference of a signal and any stop hint are ``Decimal`` (taken from the
book's decimal strings, never from the float features). Feature values, strengths and confidences
are floats: they are scores, and nothing sends them to an exchange.

The ML validator comes later. Its hook is here (:class:`SignalValidator`) with an honest default,
:class:`PassThroughValidator`, which accepts every signal and marks it ``validated_by="none"``
with no score: a signal never claims a model looked at it when none did.
"""

from __future__ import annotations

import math
import types
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any, ClassVar, Protocol, runtime_checkable

from pysrc.decimals import to_decimal
from pysrc.domain.values import Side  # one Side for signals, orders and positions

# --------------------------------------------------------------------------------------------
# Small value types


class SignalKind(str, Enum):
    """Why a signal fired (the rule family); stored with the signal for audit and statistics."""

    IMBALANCE = "imbalance"
    CLUSTER_BREAKOUT = "cluster_breakout"
    ABSORPTION = "absorption"


@dataclass(frozen=True, slots=True)
class Trade:
    """One public trade (taker side), for strategies that want the tape beyond the features."""

    ts: int
    side: Side
    price: Decimal
    qty: Decimal


# --------------------------------------------------------------------------------------------
# The signal


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's proposal to open a position. Risk decides whether and how much.

    ``strength`` is the size of the measured effect mapped to [0, 1] (rule-specific, documented per
    rule); ``confidence`` is the strategy's estimate of how reliable this signal is, in [0, 1]; the
    risk manager scales the position size by it. ``features`` holds the feature values that
    produced the signal (feature name -> value, plus a few documented derived values), so a stored
    signal can be explained and replayed. ``stop_price`` is an optional exact stop suggestion (for
    example just beyond the level the signal leans on); risk uses it only if it is on the right side
    and not farther than its own maximum loss.
    """

    symbol: str
    side: Side
    kind: SignalKind | str
    strength: float
    confidence: float
    price: Decimal
    ts: int
    strategy: str
    reason: str = ""
    features: Mapping[str, float] = field(default_factory=dict)
    stop_price: Decimal | None = None
    validated_by: str = "none"
    ml_score: float | None = None

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError("signal: symbol is empty")
        if not isinstance(self.side, Side):
            object.__setattr__(self, "side", Side(self.side))
        for name in ("strength", "confidence"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ValueError(f"signal: {name} must be a number in [0, 1], got {v!r}")
            object.__setattr__(self, name, float(v))
        if not isinstance(self.price, Decimal):
            raise TypeError(f"signal: price must be a Decimal, got {type(self.price).__name__}")
        if not self.price.is_finite() or self.price <= 0:
            raise ValueError(f"signal: price must be positive, got {self.price}")
        if self.stop_price is not None and (
            not isinstance(self.stop_price, Decimal) or not self.stop_price.is_finite() or self.stop_price <= 0
        ):
            raise ValueError(f"signal: stop_price must be a positive Decimal, got {self.stop_price!r}")
        # Honesty invariant: no score without a validator that produced it.
        if self.validated_by == "none" and self.ml_score is not None:
            raise ValueError("signal: ml_score given but validated_by is 'none'")
        if self.ml_score is not None and not 0.0 <= self.ml_score <= 1.0:
            raise ValueError(f"signal: ml_score must be in [0, 1], got {self.ml_score!r}")
        # Read-only copy: a signal is a record, later stages must not edit the evidence.
        object.__setattr__(self, "features", types.MappingProxyType(dict(self.features)))

    @property
    def kind_name(self) -> str:
        return self.kind.value if isinstance(self.kind, SignalKind) else str(self.kind)

    def with_validation(self, validated_by: str, ml_score: float | None) -> Signal:
        """A copy stamped by a validator."""
        return replace(self, validated_by=validated_by, ml_score=ml_score)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (Decimals as exact strings, NaN-free floats)."""
        return {
            "symbol": self.symbol,
            "side": self.side.value,
            "kind": self.kind_name,
            "strength": self.strength,
            "confidence": self.confidence,
            "price": str(self.price),
            "ts": self.ts,
            "strategy": self.strategy,
            "reason": self.reason,
            "features": {k: v for k, v in self.features.items() if math.isfinite(v)},
            "stop_price": None if self.stop_price is None else str(self.stop_price),
            "validated_by": self.validated_by,
            "ml_score": self.ml_score,
        }


# --------------------------------------------------------------------------------------------
# The market view


@lru_cache(maxsize=64)
def _index_of(names: tuple[str, ...]) -> dict[str, int]:
    # Engines hand out the same names tuple on every read, so this is one cached dict per layout.
    return {n: i for i, n in enumerate(names)}


def _default_names() -> tuple[str, ...]:
    from pysrc.analytics import (
        FEATURE_NAMES,  # needs the native core; only when a vector has no names
    )

    names: tuple[str, ...] = FEATURE_NAMES
    return names


@dataclass(frozen=True, slots=True)
class MarketData:
    """One symbol at one book update: the exact top of book and the feature vector.

    The vector is copied into plain lists at construction, so a ``MarketData`` stays valid after the
    reader's buffers are overwritten by the next read, and a lookup is a dict hit plus a list
    index. Look features up by name with :meth:`feature` (``None`` when missing: the mask is always
    honoured, a missing value is never read as 0.0). An unknown name raises ``KeyError``: a typo
    must fail loudly, not look like a missing value.
    """

    symbol: str
    ts: int
    best_bid: Decimal | None
    best_ask: Decimal | None
    names: tuple[str, ...]
    values: Sequence[float]
    mask: Sequence[bool]
    updates: int = 0
    live: bool = True
    trades: tuple[Trade, ...] = ()

    def __post_init__(self) -> None:
        if len(self.values) != len(self.names) or len(self.mask) != len(self.names):
            raise ValueError("market data: names, values and mask differ in length")
        for name in ("best_bid", "best_ask"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, Decimal):
                object.__setattr__(self, name, to_decimal(v, name))
            elif v is not None and not v.is_finite():
                raise ValueError(f"{name}: not finite: {v!r}")

    # ---- construction ------------------------------------------------------------------------

    @classmethod
    def from_vector(
        cls,
        symbol: str,
        ts: int,
        vector: Any,
        best_bid: Decimal | str | None,
        best_ask: Decimal | str | None,
        *,
        live: bool = True,
        trades: Iterable[Trade] = (),
    ) -> MarketData:
        """From a :class:`pysrc.analytics.FeatureVector` (``values``, ``mask``, ``updates``,
        ``names``) and the book's best prices as exact decimal strings."""
        names: tuple[str, ...] = tuple(vector.names) or _default_names()
        return cls(
            symbol=symbol,
            ts=int(ts),
            best_bid=best_bid,  # type: ignore[arg-type]  # converted (and checked) in __post_init__
            best_ask=best_ask,  # type: ignore[arg-type]
            names=names,
            values=vector.values.tolist(),
            mask=vector.mask.astype(bool, copy=False).tolist(),
            updates=int(vector.updates),
            live=live,
            trades=tuple(trades),
        )

    @classmethod
    def from_engine(cls, engine: Any, reader: Any, symbol: str, *, trades: Iterable[Trade] = ()) -> MarketData:
        """Read one symbol from a native ``BookEngine(..., features=True)`` and its
        ``FeatureReader``: best prices from the book's exact strings, ``live`` from the book
        state, ``ts`` the exchange time of the last applied message."""
        bid = engine.best_bid(symbol)
        ask = engine.best_ask(symbol)
        vec = reader.read(symbol, copy=False)  # copied into lists below; no allocation in the reader
        return cls.from_vector(
            symbol,
            engine.last_ts(symbol) or 0,
            vec,
            None if bid is None else bid[0],
            None if ask is None else ask[0],
            live=bool(engine.is_live(symbol)),
            trades=trades,
        )

    @classmethod
    def from_mapping(
        cls,
        symbol: str,
        ts: int,
        features: Mapping[str, float | None],
        best_bid: Decimal | str | None,
        best_ask: Decimal | str | None,
        *,
        updates: int = 1_000,
        live: bool = True,
        trades: Iterable[Trade] = (),
    ) -> MarketData:
        """From name -> value (None = missing): for tests, backtests and stored records."""
        names = tuple(features)
        raw = [features[n] for n in names]
        return cls(
            symbol=symbol,
            ts=int(ts),
            best_bid=None if best_bid is None else to_decimal(best_bid, "best_bid"),
            best_ask=None if best_ask is None else to_decimal(best_ask, "best_ask"),
            names=names,
            values=[0.0 if v is None else float(v) for v in raw],
            mask=[v is not None for v in raw],
            updates=updates,
            live=live,
            trades=tuple(trades),
        )

    # ---- reading ---------------------------------------------------------------------------

    def feature(self, name: str) -> float | None:
        """The value of ``name``, or None when the mask says it is missing."""
        i = _index_of(self.names)[name]
        return self.values[i] if self.mask[i] else None

    def has(self, name: str) -> bool:
        return name in _index_of(self.names)

    def present(self, *names: str) -> dict[str, float] | None:
        """All of ``names`` as a dict, or None if any is missing (a rule needs all its inputs)."""
        out: dict[str, float] = {}
        index = _index_of(self.names)
        for n in names:
            i = index[n]
            if not self.mask[i]:
                return None
            out[n] = self.values[i]
        return out

    def as_dict(self) -> dict[str, float | None]:
        return {n: (v if m else None) for n, v, m in zip(self.names, self.values, self.mask, strict=True)}

    @property
    def mid(self) -> Decimal | None:
        """Exact mid, None while a side is empty."""
        if self.best_bid is None or self.best_ask is None:
            return None
        return (self.best_bid + self.best_ask) / 2


# --------------------------------------------------------------------------------------------
# Parameters


class ParameterError(ValueError):
    """A strategy parameter that was refused; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")


@dataclass(frozen=True, slots=True)
class Param:
    """One tunable parameter: its type, default, inclusive range or allowed values, and meaning."""

    name: str
    kind: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""

    def coerce(self, value: Any) -> Any:
        """The value in this parameter's type, or ParameterError naming the key."""
        key = self.name
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ParameterError(key, f"expected true or false, got {value!r}")
            return value
        if self.kind is str:
            if not isinstance(value, str):
                raise ParameterError(key, f"expected a string, got {value!r}")
            out: Any = value
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise ParameterError(key, f"expected an integer, got {value!r}")
            out = int(value)
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParameterError(key, f"expected a number, got {value!r}")
            out = float(value)
            if not math.isfinite(out):
                raise ParameterError(key, f"must be finite, got {value!r}")
        else:  # pragma: no cover - a programming error in a PARAMS table
            raise TypeError(f"{key}: unsupported parameter type {self.kind}")
        if self.choices is not None and out not in self.choices:
            raise ParameterError(key, f"must be one of {list(self.choices)}, got {value!r}")
        if self.minimum is not None and out < self.minimum:
            raise ParameterError(key, f"must be >= {self.minimum}, got {value!r}")
        if self.maximum is not None and out > self.maximum:
            raise ParameterError(key, f"must be <= {self.maximum}, got {value!r}")
        return out


# --------------------------------------------------------------------------------------------
# The interface


class Strategy(ABC):
    """Base of every strategy: the mission's six methods plus parameter handling.

    Subclasses declare ``NAME`` and ``PARAMS`` and implement :meth:`analyze`. Parameters are
    validated as a whole before any is applied, so a bad update leaves the strategy unchanged;
    :meth:`_check_parameters` adds constraints between parameters.
    """

    NAME: ClassVar[str]
    PARAMS: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self._params: dict[str, Any] = {p.name: p.default for p in self.PARAMS}
        self._check_parameters(self._params)
        if params:
            self.update_parameters(params)

    # -- the interface ----------------------------------------------------------------------

    def initialize(self, config: Mapping[str, Any]) -> None:
        """Apply ``config`` (parameters; unknown keys refused) and forget per-symbol state."""
        self.update_parameters(config)
        self.reset()

    @abstractmethod
    def analyze(self, symbol: str, market_data: MarketData) -> Signal | None:
        """A signal for ``symbol`` from this update, or None."""

    def validate_signal(self, signal: Signal) -> bool:
        """Whether ``signal`` is one this strategy stands behind now (its own, well formed, and
        above its ``min_confidence`` when it has one). The manager drops signals that fail."""
        if signal.strategy != self.get_name():
            return False
        min_conf = self._params.get("min_confidence")
        return not (isinstance(min_conf, float) and signal.confidence < min_conf)

    def get_name(self) -> str:
        return self.NAME

    def get_parameters(self) -> dict[str, Any]:
        return dict(self._params)

    def update_parameters(self, params: Mapping[str, Any]) -> None:
        """Validate every key, then apply all or nothing. Raises ParameterError naming the key."""
        specs = {p.name: p for p in self.PARAMS}
        merged = dict(self._params)
        for key, value in params.items():
            spec = specs.get(key)
            if spec is None:
                raise ParameterError(str(key), f"unknown parameter of {self.get_name()} (known: {sorted(specs)})")
            merged[key] = spec.coerce(value)
        self._check_parameters(merged)
        self._params = merged
        self._on_parameters_changed()

    # -- hooks ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget any per-symbol state (levels seen, counters). Stateless strategies need nothing."""

    def _check_parameters(self, params: Mapping[str, Any]) -> None:
        """Constraints between parameters; raise ParameterError naming the offending key."""

    def _on_parameters_changed(self) -> None:
        """Cache derived values after an update."""

    def describe_parameters(self) -> list[dict[str, Any]]:
        """Schema of the parameters (for the API and the docs)."""
        return [
            {
                "name": p.name,
                "type": p.kind.__name__,
                "default": p.default,
                "value": self._params[p.name],
                "min": p.minimum,
                "max": p.maximum,
                "choices": list(p.choices) if p.choices is not None else None,
                "doc": p.doc,
            }
            for p in self.PARAMS
        ]


# --------------------------------------------------------------------------------------------
# The ML hook


@dataclass(frozen=True, slots=True)
class Verdict:
    """A validator's answer: accept or not, who decided, the model score if there was one."""

    accepted: bool
    validated_by: str
    score: float | None = None
    reason: str = ""


@runtime_checkable
class SignalValidator(Protocol):
    """Confirms or rejects a signal (an ML model later). ``name`` goes into ``validated_by``."""

    name: str

    def validate(self, signal: Signal, market_data: MarketData) -> Verdict: ...


class PassThroughValidator:
    """The honest default while no model exists: accepts everything, scores nothing."""

    name = "none"

    def validate(self, signal: Signal, market_data: MarketData) -> Verdict:
        return Verdict(accepted=True, validated_by="none", score=None, reason="no ML validator configured")


__all__ = [
    "MarketData",
    "Param",
    "ParameterError",
    "PassThroughValidator",
    "Side",
    "Signal",
    "SignalKind",
    "SignalValidator",
    "Strategy",
    "Trade",
    "Verdict",
    "to_decimal",
]
