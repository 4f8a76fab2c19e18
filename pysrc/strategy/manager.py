"""The strategy manager: registry, run-time control, fan-out per symbol update, flood control.

For every book update of a symbol the manager runs each enabled strategy, drops signals the
strategy itself no longer stands behind (``validate_signal``), suppresses repeats of the same
(strategy, symbol) inside the cooldown, and passes what is left through the ML validator hook.

Time is the data's time (``MarketData.ts``, exchange milliseconds), not the machine's: the
cooldown then behaves the same in a replay as live, and tests need no clock.

A strategy that raises does not stop the others: the manager counts the error, keeps the last
message, and disables the strategy after ``max_consecutive_errors`` failures in a row (a
strategy broken on every update would otherwise flood the logs at the book's message rate).
This is the one place that catches any exception from strategy code, on purpose: strategies are
plug-ins and the manager is their boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pysrc.strategy.base import (
    MarketData,
    PassThroughValidator,
    Signal,
    SignalValidator,
    Strategy,
)

log = logging.getLogger(__name__)


class UnknownStrategy(KeyError):
    """No strategy registered under that name."""


@dataclass(slots=True)
class StrategyStats:
    """Counters of one strategy (cumulative since registration)."""

    updates: int = 0
    signals: int = 0  # returned by analyze
    emitted: int = 0  # passed every stage and handed to the caller
    invalid: int = 0  # refused by the strategy's validate_signal
    suppressed_cooldown: int = 0
    rejected_by_validator: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_signal_ts: int | None = None
    last_error: str | None = None


@dataclass(slots=True)
class _Entry:
    strategy: Strategy
    enabled: bool
    cooldown_ms: int
    stats: StrategyStats = field(default_factory=StrategyStats)
    # (symbol) -> ts of the last emitted signal, for the cooldown
    last_emit: dict[str, int] = field(default_factory=dict)
    disabled_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A signal that did not come out, and why (for the signal log)."""

    signal: Signal
    stage: str  # "invalid" | "cooldown" | "validator"
    reason: str


class StrategyManager:
    """Registers strategies and runs the enabled ones on every symbol update.

    ``default_cooldown_s`` is the minimum time between two emitted signals of the same strategy on
    the same symbol (any side); per-strategy values can be set at registration or later.
    """

    def __init__(
        self,
        validator: SignalValidator | None = None,
        *,
        default_cooldown_s: float = 5.0,
        max_consecutive_errors: int = 10,
    ) -> None:
        if default_cooldown_s < 0:
            raise ValueError("default_cooldown_s: must be >= 0")
        if max_consecutive_errors < 1:
            raise ValueError("max_consecutive_errors: must be >= 1")
        self._entries: dict[str, _Entry] = {}
        self._validator: SignalValidator = validator or PassThroughValidator()
        self._default_cooldown_ms = round(default_cooldown_s * 1000)
        self._max_consecutive_errors = max_consecutive_errors
        self.rejections: list[Rejection] = []  # drained by the caller (bounded below)
        self._max_rejections = 10_000

    # ---- registry ------------------------------------------------------------------------------

    def register(
        self,
        strategy: Strategy,
        *,
        enabled: bool = True,
        config: Mapping[str, Any] | None = None,
        cooldown_s: float | None = None,
    ) -> None:
        name = strategy.get_name()
        if name in self._entries:
            raise ValueError(f"strategy {name!r} is already registered")
        if config is not None:
            strategy.initialize(config)
        cooldown_ms = self._default_cooldown_ms if cooldown_s is None else self._cooldown_ms(cooldown_s)
        self._entries[name] = _Entry(strategy, enabled, cooldown_ms)

    def unregister(self, name: str) -> Strategy:
        self._entry(name)  # UnknownStrategy if absent
        return self._entries.pop(name).strategy

    def get(self, name: str) -> Strategy:
        return self._entry(name).strategy

    def names(self) -> list[str]:
        return list(self._entries)

    def enable(self, name: str) -> None:
        e = self._entry(name)
        e.enabled = True
        e.disabled_reason = None
        e.stats.consecutive_errors = 0

    def disable(self, name: str, reason: str = "disabled by operator") -> None:
        e = self._entry(name)
        e.enabled = False
        e.disabled_reason = reason

    def is_enabled(self, name: str) -> bool:
        return self._entry(name).enabled

    def update_parameters(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Re-parameterise at run time (all or nothing; ParameterError names the bad key)."""
        strategy = self._entry(name).strategy
        strategy.update_parameters(params)
        return strategy.get_parameters()

    def set_cooldown(self, name: str, seconds: float) -> None:
        self._entry(name).cooldown_ms = self._cooldown_ms(seconds)

    def set_validator(self, validator: SignalValidator) -> None:
        self._validator = validator

    @property
    def validator(self) -> SignalValidator:
        return self._validator

    def stats(self, name: str) -> StrategyStats:
        """A copy of the counters of ``name``."""
        return StrategyStats(**asdict(self._entry(name).stats))

    def status(self) -> list[dict[str, Any]]:
        """One row per strategy for the API: name, enabled, parameters, counters."""
        return [
            {
                "name": name,
                "enabled": e.enabled,
                "disabled_reason": e.disabled_reason,
                "cooldown_s": e.cooldown_ms / 1000,
                "parameters": e.strategy.get_parameters(),
                "stats": asdict(e.stats),
            }
            for name, e in self._entries.items()
        ]

    # ---- running -------------------------------------------------------------------------------

    def on_update(self, symbol: str, market_data: MarketData) -> list[Signal]:
        """Run every enabled strategy on this update; the signals that passed every stage."""
        out: list[Signal] = []
        for name, e in self._entries.items():
            if not e.enabled:
                continue
            st = e.stats
            st.updates += 1
            try:
                signal = e.strategy.analyze(symbol, market_data)
                valid = signal is not None and e.strategy.validate_signal(signal)
            except Exception as exc:
                st.errors += 1
                st.consecutive_errors += 1
                st.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("strategy %s failed on %s", name, symbol)
                if st.consecutive_errors >= self._max_consecutive_errors:
                    e.enabled = False
                    e.disabled_reason = f"{st.consecutive_errors} consecutive errors; last: {st.last_error}"
                    log.error("strategy %s disabled: %s", name, e.disabled_reason)
                continue
            st.consecutive_errors = 0
            if signal is None:
                continue
            st.signals += 1
            if not valid:
                st.invalid += 1
                self._reject(signal, "invalid", "refused by the strategy's validate_signal")
                continue
            last = e.last_emit.get(symbol)
            if last is not None and e.cooldown_ms > 0 and signal.ts - last < e.cooldown_ms:
                st.suppressed_cooldown += 1
                self._reject(
                    signal, "cooldown", f"{signal.ts - last} ms after the previous signal (< {e.cooldown_ms} ms)"
                )
                continue
            verdict = self._validator.validate(signal, market_data)
            if not verdict.accepted:
                st.rejected_by_validator += 1
                self._reject(signal, "validator", f"{verdict.validated_by}: {verdict.reason}")
                continue
            signal = signal.with_validation(verdict.validated_by, verdict.score)
            e.last_emit[symbol] = signal.ts
            st.emitted += 1
            st.last_signal_ts = signal.ts
            out.append(signal)
        return out

    def drain_rejections(self) -> list[Rejection]:
        out, self.rejections = self.rejections, []
        return out

    # ---- helpers -------------------------------------------------------------------------------

    def _reject(self, signal: Signal, stage: str, reason: str) -> None:
        if len(self.rejections) < self._max_rejections:  # never grow without bound if nobody drains
            self.rejections.append(Rejection(signal, stage, reason))

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownStrategy(name) from None

    @staticmethod
    def _cooldown_ms(seconds: float) -> int:
        if seconds < 0:
            raise ValueError("cooldown_s: must be >= 0")
        return round(seconds * 1000)


__all__ = ["Rejection", "StrategyManager", "StrategyStats", "UnknownStrategy"]
