"""The risk manager: turns a signal into an approved order size, or a rejection with a reason code.

:meth:`RiskManager.check` runs these checks in this order and stops at the first failure (the
reason codes are :class:`RejectCode`; ``docs/strategies-and-risk.md`` has the same list):

1. ``kill_switch_engaged`` - the kill switch is engaged.
2. ``invalid_signal`` - the signal's symbol is not the instrument's.
3. ``low_confidence`` - confidence below ``SizingConfig.min_confidence``.
4. ``daily_loss_limit`` - today's loss exceeds ``max_daily_loss`` (this also engages the switch;
   its halt actions then come back from every :meth:`RiskManager.evaluate_kill_switch` until
   execution acknowledges them, so tripping it here loses nothing).
5. ``symbol_position_limit`` - the symbol already has ``max_positions_per_symbol`` positions.
6. ``max_positions`` - ``max_positions`` positions are open.
7. ``correlation_limit`` - the new position would be one more than ``max_correlated_positions``
   correlated positions (same symbol group, or tracked return correlation above
   ``correlation_threshold``).
8. ``insufficient_margin`` - balance or available balance is not positive.
9. ``total_risk_limit`` - open risk already uses ``max_total_risk`` of the balance.
10. ``exposure_limit`` / ``symbol_exposure_limit`` - no exposure room left.
11. Sizing: the target quantity by mode (percent: ``balance x position_size_pct`` of margin;
    fixed: ``fixed_size_usdt`` of margin; both x confidence when ``scale_by_confidence``, x
    leverage = notional; exchange_min: the smallest quantity the instrument and ``min_order_usdt``
    accept), then capped by risk per trade, remaining total risk, exposure, symbol exposure,
    margin (available x leverage) and the instrument's max quantity; rounded **down** to the qty
    step. If the result is below ``min_qty``, ``min_notional`` or ``min_order_usdt``, the rejection
    carries the code of the cap that made it too small (``risk_per_trade_limit``,
    ``total_risk_limit``, ``exposure_limit``, ``symbol_exposure_limit``, ``insufficient_margin``,
    ``instrument_max_qty``) or ``below_minimum`` when none did.

Leverage: ``default_leverage`` unless ``adaptive_leverage`` and a volatility is known (argument,
or the signal's ``volatility_feature``): ``>= vol_high_bps`` -> ``leverage_high_vol``, ``<=
vol_low_bps`` -> ``leverage_low_vol``, else ``leverage_medium_vol``; always capped by
``max_leverage`` and the instrument's maximum.

Stop and target: stop at ``stop_loss_pct`` from the entry (or the signal's ``stop_price`` when it
is on the right side and no farther), rounded to the tick **toward the entry** (the loss is never
more than the rule); target at ``take_profit_pct``, rounded toward the entry as well.

All arithmetic is Decimal; divisions round toward zero (floor for these positive numbers), so a
cap computed here is never above its true value.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, localcontext
from enum import Enum
from typing import Any

from pysrc.risk.config import RiskLimits, SizingConfig, SizingMode
from pysrc.risk.correlation import CorrelationTracker, SymbolGroups
from pysrc.risk.instrument import InstrumentSpec
from pysrc.risk.killswitch import KillSwitch, KillSwitchDecision
from pysrc.risk.portfolio import PortfolioState
from pysrc.strategy.base import Side, Signal

_ZERO = Decimal(0)


class RejectCode(str, Enum):
    KILL_SWITCH = "kill_switch_engaged"
    INVALID_SIGNAL = "invalid_signal"
    LOW_CONFIDENCE = "low_confidence"
    DAILY_LOSS = "daily_loss_limit"
    SYMBOL_POSITION_LIMIT = "symbol_position_limit"
    MAX_POSITIONS = "max_positions"
    CORRELATION_LIMIT = "correlation_limit"
    INSUFFICIENT_MARGIN = "insufficient_margin"
    TOTAL_RISK_LIMIT = "total_risk_limit"
    EXPOSURE_LIMIT = "exposure_limit"
    SYMBOL_EXPOSURE_LIMIT = "symbol_exposure_limit"
    RISK_PER_TRADE_LIMIT = "risk_per_trade_limit"
    INSTRUMENT_MAX_QTY = "instrument_max_qty"
    BELOW_MINIMUM = "below_minimum"


@dataclass(frozen=True, slots=True)
class Approved:
    symbol: str
    side: Side
    qty: Decimal
    leverage: Decimal
    entry_price: Decimal
    stop_loss: Decimal
    take_profit: Decimal
    notional: Decimal
    margin: Decimal
    risk_amount: Decimal  # qty x |entry - stop|: the loss if stopped out (fees aside)
    reasons: tuple[str, ...]

    @property
    def approved(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "approved": True,
            "symbol": self.symbol,
            "side": self.side.value,
            "qty": str(self.qty),
            "leverage": str(self.leverage),
            "entry_price": str(self.entry_price),
            "stop_loss": str(self.stop_loss),
            "take_profit": str(self.take_profit),
            "notional": str(self.notional),
            "margin": str(self.margin),
            "risk_amount": str(self.risk_amount),
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class Rejected:
    symbol: str
    side: Side
    code: RejectCode
    message: str

    @property
    def approved(self) -> bool:
        return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "approved": False,
            "symbol": self.symbol,
            "side": self.side.value,
            "code": self.code.value,
            "message": self.message,
        }


Decision = Approved | Rejected


class RiskManager:
    def __init__(
        self,
        limits: RiskLimits | None = None,
        sizing: SizingConfig | None = None,
        *,
        groups: SymbolGroups | None = None,
        correlations: CorrelationTracker | None = None,
        kill_switch: KillSwitch | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits or RiskLimits()
        self.sizing = sizing or SizingConfig()
        self.groups = groups or SymbolGroups()
        self.correlations = correlations or CorrelationTracker()
        self.kill_switch = kill_switch or KillSwitch(clock)
        self.counts: Counter[str] = Counter()  # "approved" and every reject code

    # ---- configuration ---------------------------------------------------------------------------

    def update_limits(self, changes: Mapping[str, Any]) -> RiskLimits:
        """Validated all-or-nothing update; RiskConfigError names the bad key."""
        self.limits = self.limits.with_updates(changes)
        return self.limits

    def update_sizing(self, changes: Mapping[str, Any]) -> SizingConfig:
        self.sizing = self.sizing.with_updates(changes)
        return self.sizing

    # ---- kill switch -----------------------------------------------------------------------------

    def evaluate_kill_switch(self, portfolio: PortfolioState) -> KillSwitchDecision:
        """Call on every PnL change (not only on signals): the switch must trip without a signal."""
        return self.kill_switch.evaluate(portfolio, self.limits.max_daily_loss)

    def engage_kill_switch(self, reason: str, by: str = "operator") -> KillSwitchDecision:
        return self.kill_switch.engage(reason, by)

    def release_kill_switch(self, by: str, portfolio: PortfolioState | None = None) -> None:
        self.kill_switch.release(by, portfolio)

    # ---- leverage --------------------------------------------------------------------------------

    def leverage_for(self, volatility_bps: float | None, instrument: InstrumentSpec) -> tuple[Decimal, str]:
        """(leverage, regime) for a volatility; regime is high/medium/low/unknown/fixed."""
        L = self.limits
        if not L.adaptive_leverage:
            lev, regime = L.default_leverage, "fixed"
        elif volatility_bps is None:
            lev, regime = L.default_leverage, "unknown"
        elif volatility_bps >= L.vol_high_bps:
            lev, regime = L.leverage_high_vol, "high"
        elif volatility_bps <= L.vol_low_bps:
            lev, regime = L.leverage_low_vol, "low"
        else:
            lev, regime = L.leverage_medium_vol, "medium"
        return min(lev, L.max_leverage, instrument.max_leverage), regime

    # ---- the check -------------------------------------------------------------------------------

    def check(
        self,
        signal: Signal,
        portfolio: PortfolioState,
        instrument: InstrumentSpec,
        *,
        volatility_bps: float | None = None,
    ) -> Decision:
        decision = self._check(signal, portfolio, instrument, volatility_bps)
        self.counts["approved" if isinstance(decision, Approved) else decision.code.value] += 1
        return decision

    def _check(
        self, signal: Signal, pf: PortfolioState, inst: InstrumentSpec, volatility_bps: float | None
    ) -> Decision:
        L, S = self.limits, self.sizing
        sym, side = signal.symbol, signal.side

        def reject(code: RejectCode, message: str) -> Rejected:
            return Rejected(sym, side, code, message)

        # 1-4: gates that do not depend on size
        if self.kill_switch.engaged:
            return reject(RejectCode.KILL_SWITCH, f"kill switch engaged: {self.kill_switch.reason}")
        if sym != inst.symbol:
            return reject(RejectCode.INVALID_SIGNAL, f"signal for {sym} checked against instrument {inst.symbol}")
        if S.min_confidence > 0 and signal.confidence < S.min_confidence:
            return reject(
                RejectCode.LOW_CONFIDENCE, f"confidence {signal.confidence:.3f} < min_confidence {S.min_confidence}"
            )
        ks = self.evaluate_kill_switch(pf)
        if ks.halt:
            return reject(RejectCode.DAILY_LOSS, ks.reason)

        # 5-7: position counts and correlation
        same = [p for p in pf.positions if p.symbol == sym]
        if len(same) >= L.max_positions_per_symbol:
            return reject(
                RejectCode.SYMBOL_POSITION_LIMIT,
                f"{len(same)} open position(s) on {sym}; max_positions_per_symbol is {L.max_positions_per_symbol}",
            )
        if len(pf.positions) >= L.max_positions:
            return reject(
                RejectCode.MAX_POSITIONS, f"{len(pf.positions)} open positions; max_positions is {L.max_positions}"
            )
        correlated = self.correlated_symbols(sym, {p.symbol for p in pf.positions})
        if len(correlated) + 1 > L.max_correlated_positions:
            return reject(
                RejectCode.CORRELATION_LIMIT,
                f"would be {len(correlated) + 1} correlated positions (with {', '.join(sorted(correlated))}); "
                f"max_correlated_positions is {L.max_correlated_positions}",
            )

        # 8-10: room left
        balance, available = pf.balance, pf.available
        if balance <= 0 or available <= 0:
            return reject(RejectCode.INSUFFICIENT_MARGIN, f"balance {balance}, available {available}")
        open_risk = sum((p.risk_amount(S.stop_loss_pct) for p in pf.positions), _ZERO)
        risk_room = L.max_total_risk * balance - open_risk
        if risk_room <= 0:
            return reject(
                RejectCode.TOTAL_RISK_LIMIT,
                f"open risk {open_risk} uses max_total_risk {L.max_total_risk} of balance {balance}",
            )
        exposure = pf.exposure
        exposure_room = L.max_exposure_usdt - exposure
        if exposure_room <= 0:
            return reject(RejectCode.EXPOSURE_LIMIT, f"exposure {exposure} >= max_exposure_usdt {L.max_exposure_usdt}")
        symbol_room: Decimal | None = None
        if L.max_symbol_exposure_usdt is not None:
            symbol_room = L.max_symbol_exposure_usdt - sum((p.notional for p in same), _ZERO)
            if symbol_room <= 0:
                return reject(RejectCode.SYMBOL_EXPOSURE_LIMIT, f"{sym} exposure at max_symbol_exposure_usdt")

        # 11: size
        entry = signal.price
        vol = volatility_bps
        if vol is None:
            vol = signal.features.get(L.volatility_feature)
        leverage, regime = self.leverage_for(vol, inst)
        stop, take = self.protective_prices(side, entry, inst, signal.stop_price)
        stop_distance = abs(entry - stop)
        if stop_distance <= 0:
            return reject(
                RejectCode.INVALID_SIGNAL, f"price {entry} leaves no room for a stop at tick {inst.tick_size}"
            )
        reasons: list[str] = [f"leverage {leverage} (volatility regime {regime})"]

        with localcontext() as ctx:
            ctx.rounding = ROUND_FLOOR  # every quotient below is a cap: never above its true value
            minimum = self.minimum_qty(entry, inst)
            if S.mode is SizingMode.EXCHANGE_MIN:
                target = minimum
                reasons.append(f"size: exchange minimum {minimum}")
            else:
                margin = balance * S.position_size_pct if S.mode is SizingMode.PERCENT else S.fixed_size_usdt
                what = (
                    f"{S.position_size_pct} of balance {balance}"
                    if S.mode is SizingMode.PERCENT
                    else f"fixed {S.fixed_size_usdt}"
                )
                if S.scale_by_confidence:
                    conf = Decimal(repr(signal.confidence)).quantize(Decimal("0.0001"))
                    margin *= conf
                    what += f" x confidence {conf}"
                target = margin * leverage / entry
                reasons.append(f"size: margin {what} x leverage {leverage} / price {entry}")
            caps: list[tuple[RejectCode, str, Decimal]] = [
                (RejectCode.RISK_PER_TRADE_LIMIT, "max_risk_per_trade", L.max_risk_per_trade * balance / stop_distance),
                (RejectCode.TOTAL_RISK_LIMIT, "max_total_risk", risk_room / stop_distance),
                (RejectCode.EXPOSURE_LIMIT, "max_exposure_usdt", exposure_room / entry),
                (RejectCode.INSUFFICIENT_MARGIN, "available margin", available * leverage / entry),
            ]
            if symbol_room is not None:
                caps.append((RejectCode.SYMBOL_EXPOSURE_LIMIT, "max_symbol_exposure_usdt", symbol_room / entry))
            if inst.max_qty is not None:
                caps.append((RejectCode.INSTRUMENT_MAX_QTY, "instrument max_qty", inst.max_qty))

        qty = target
        binding: tuple[RejectCode, str, Decimal] | None = None
        for cap in caps:
            if cap[2] < qty:
                qty, binding = cap[2], cap
        if binding is not None:
            reasons.append(f"capped by {binding[1]} at {inst.floor_qty(binding[2])}")
        qty = inst.floor_qty(qty)
        notional = qty * entry
        if qty <= 0 or qty < minimum:
            code = binding[0] if binding is not None else RejectCode.BELOW_MINIMUM
            why = f" (capped by {binding[1]})" if binding is not None else ""
            return reject(
                code,
                f"qty {qty}{why} is below the minimum {minimum} "
                f"(min_qty {inst.min_qty}, min_notional {inst.min_notional}, min_order_usdt {L.min_order_usdt})",
            )
        margin_used = notional / leverage
        return Approved(
            symbol=sym,
            side=side,
            qty=qty,
            leverage=leverage,
            entry_price=entry,
            stop_loss=stop,
            take_profit=take,
            notional=notional,
            margin=margin_used,
            risk_amount=qty * stop_distance,
            reasons=tuple(reasons),
        )

    # ---- pieces (public for the API and tests) ----------------------------------------------------

    def minimum_qty(self, price: Decimal, inst: InstrumentSpec) -> Decimal:
        """Smallest quantity on the step meeting min_qty, min_notional and min_order_usdt."""
        need = max(inst.min_qty, inst.min_notional / price, self.limits.min_order_usdt / price)
        qty = inst.ceil_qty(need)
        # A quotient rounded down could leave qty * price a hair under the notional: step up once.
        while qty * price < max(inst.min_notional, self.limits.min_order_usdt) or qty <= 0:
            qty += inst.qty_step
        return qty

    def protective_prices(
        self, side: Side, entry: Decimal, inst: InstrumentSpec, hint: Decimal | None = None
    ) -> tuple[Decimal, Decimal]:
        """(stop_loss, take_profit) on the tick, both rounded toward the entry."""
        S = self.sizing
        tick = inst.tick_size
        if side is Side.BUY:
            stop = entry * (1 - S.stop_loss_pct)
            if hint is not None and stop <= hint < entry:
                stop = hint
            stop = inst.price_up(stop)
            if stop >= entry:
                stop = entry - tick
            take = inst.price_down(entry * (1 + S.take_profit_pct))
            if take <= entry:
                take = entry + tick
        else:
            stop = entry * (1 + S.stop_loss_pct)
            if hint is not None and entry < hint <= stop:
                stop = hint
            stop = inst.price_down(stop)
            if stop <= entry:
                stop = entry + tick
            take = inst.price_up(entry * (1 - S.take_profit_pct))
            if take >= entry:
                take = entry - tick
            take = max(take, tick)
        if stop <= 0:
            stop = tick  # a long stop cannot go below one tick; the risk cap still uses the distance
        return stop, take

    def correlated_symbols(self, symbol: str, open_symbols: set[str]) -> set[str]:
        """Open symbols (other than ``symbol``) correlated with it."""
        out: set[str] = set()
        threshold = self.limits.correlation_threshold
        for other in open_symbols:
            if other == symbol:
                continue
            if self.groups.same_group(symbol, other):
                out.add(other)
                continue
            c = self.correlations.correlation(symbol, other)
            if c is not None and c > threshold:
                out.add(other)
        return out

    def status(self, portfolio: PortfolioState) -> dict[str, Any]:
        """Risk status for the API (``GET /api/trading/risk-status``)."""
        S = self.sizing
        open_risk = sum((p.risk_amount(S.stop_loss_pct) for p in portfolio.positions), _ZERO)
        return {
            "kill_switch": self.kill_switch.engaged,
            "kill_switch_reason": self.kill_switch.reason,
            "day_pnl": str(self.kill_switch.effective_day_pnl(portfolio)),
            "daily_loss_fraction": str(self.kill_switch.loss_fraction(portfolio)),
            "max_daily_loss": str(self.limits.max_daily_loss),
            "open_positions": len(portfolio.positions),
            "exposure_usdt": str(portfolio.exposure),
            "open_risk_usdt": str(open_risk),
            "limits": self.limits.to_dict(),
            "sizing": self.sizing.to_dict(),
            "counts": dict(self.counts),
        }


__all__ = ["Approved", "Decision", "RejectCode", "Rejected", "RiskManager"]
