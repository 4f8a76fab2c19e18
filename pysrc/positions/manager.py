"""The dynamic position manager's decisions (mission section 6), as pure logic.

The manager tracks each open position and, on every price update of its symbol, returns the
:data:`Action` objects the execution layer should carry out: move the stop, move the take-profit,
close part, close all. It also compares exchange snapshots with what it tracks to find positions
closed or changed outside the bot. It never sends anything itself.

Rules, in the order they are evaluated on a price update (``p`` = profit of the position at this
price as a fraction of the entry, ``P`` = the best profit seen since it opened, i.e. at the
favourable extreme; a short's profit is the mirror image of a long's):

1. **Exits.** Price at or through the stop -> ``CloseAll("stop_loss")``; ``p <= -max_loss`` ->
   ``CloseAll("max_loss")`` (safety net if the exchange stop did not fire, and the paper-mode
   stop); price at or through the take-profit -> ``CloseAll("take_profit")``.
2. **Reversal exit.** With indicator votes given: at least ``reversal_min_indicators`` vote against
   the position, the price is at least ``reversal_min_price_change`` back from the favourable
   extreme, and ``reversal_cooldown_s`` have passed since the position opened and since the last
   reversal exit decision -> ``CloseAll("reversal")``.
3. **Partial closes at targets.** Each target (profit, fraction) reached for the first time ->
   ``ClosePartial(floor(initial_qty x fraction, qty_step))``; if that leaves less than ``min_qty``,
   ``CloseAll("final_target")`` instead.
4. **Stop management** (the stop only ever tightens: up for a long, down for a short):
   no stop -> the max-loss stop ``entry x (1 - max_loss)``; a stop farther than max loss is pulled
   in to it; once ``P >= tp_activation`` the stop locks ``min_profit`` (``entry x (1 +
   min_profit)``); once ``P >= sl_activation`` the trailing stop is ``extreme x (1 - d)`` with
   ``d`` from the distance table (1.0 % from +2 %, 1.5 % from +5 %, 2.0 % from +10 %). The
   tightest of these wins, rounded to the tick toward the price. A wider table distance at a
   higher tier therefore only matters once it gives a tighter stop than before.
5. **Trailing take-profit.** Once ``P >= tp_activation``: whenever the price is less than
   ``tp_step x entry`` from the take-profit (or there is none), the take-profit moves out by
   ``tp_step x entry x tp_acceleration ** n`` (n = moves so far: +0.5 %, +0.75 %, +1.125 % of
   the entry...; with no take-profit the first move starts from the price), repeated until it is
   at least one step away; rounded to the tick away from the price. Profits run while the
   trailing stop protects them.

State changes are applied optimistically when an action is emitted (a moved stop is assumed
placed), so an action is not repeated on every tick; the execution layer corrects the truth with
:meth:`PositionManager.set_protection`, :meth:`PositionManager.on_reduced` and snapshots.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pysrc.risk.config import RiskConfigError, ValidatedConfig, setting
from pysrc.risk.instrument import InstrumentSpec
from pysrc.strategy.base import Side, to_decimal

_ZERO = Decimal(0)
_ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class PositionRules(ValidatedConfig):
    """The plan's numbers (mission section 6); partial targets and grace periods are ours."""

    tp_activation: Decimal = field(default=Decimal("0.01"), metadata=setting(Decimal, Decimal("0.0001"), Decimal(1)))
    tp_step: Decimal = field(default=Decimal("0.005"), metadata=setting(Decimal, Decimal("0.0001"), Decimal(1)))
    tp_acceleration: Decimal = field(default=Decimal("1.5"), metadata=setting(Decimal, Decimal(1), Decimal(10)))
    sl_activation: Decimal = field(default=Decimal("0.02"), metadata=setting(Decimal, Decimal("0.0001"), Decimal(1)))
    sl_distance: Decimal = field(default=Decimal("0.01"), metadata=setting(Decimal, Decimal("0.0001"), Decimal("0.5")))
    sl_tier2_profit: Decimal = field(default=Decimal("0.05"), metadata=setting(Decimal, Decimal("0.0001"), Decimal(10)))
    sl_tier2_distance: Decimal = field(
        default=Decimal("0.015"), metadata=setting(Decimal, Decimal("0.0001"), Decimal("0.5"))
    )
    sl_tier3_profit: Decimal = field(default=Decimal("0.10"), metadata=setting(Decimal, Decimal("0.0001"), Decimal(10)))
    sl_tier3_distance: Decimal = field(
        default=Decimal("0.02"), metadata=setting(Decimal, Decimal("0.0001"), Decimal("0.5"))
    )
    min_profit: Decimal = field(default=Decimal("0.003"), metadata=setting(Decimal, Decimal(0), Decimal("0.5")))
    max_loss: Decimal = field(default=Decimal("0.02"), metadata=setting(Decimal, Decimal("0.001"), Decimal("0.5")))
    partial_target_1_profit: Decimal = field(
        default=Decimal("0.015"), metadata=setting(Decimal, Decimal("0.0001"), Decimal(10))
    )
    partial_target_1_fraction: Decimal = field(
        default=Decimal("0.25"), metadata=setting(Decimal, Decimal(0), Decimal(1))
    )
    partial_target_2_profit: Decimal = field(
        default=Decimal("0.03"), metadata=setting(Decimal, Decimal("0.0001"), Decimal(10))
    )
    partial_target_2_fraction: Decimal = field(
        default=Decimal("0.25"), metadata=setting(Decimal, Decimal(0), Decimal(1))
    )
    reversal_min_indicators: int = field(default=3, metadata=setting(int, 1, 50))
    reversal_cooldown_s: float = field(default=60.0, metadata=setting(float, 0.0, 86_400.0))
    reversal_min_price_change: Decimal = field(
        default=Decimal("0.002"), metadata=setting(Decimal, Decimal(0), Decimal("0.5"))
    )
    external_missing_snapshots: int = field(default=2, metadata=setting(int, 1, 100))
    external_grace_s: float = field(default=5.0, metadata=setting(float, 0.0, 3_600.0))

    def _cross_check(self) -> None:
        if not self.sl_activation < self.sl_tier2_profit < self.sl_tier3_profit:
            raise RiskConfigError("sl_tier2_profit", "need sl_activation < sl_tier2_profit < sl_tier3_profit")
        if self.min_profit >= self.tp_activation:
            raise RiskConfigError("min_profit", "must be < tp_activation (the lock sits below the activation)")
        if self.partial_target_2_profit < self.partial_target_1_profit:
            raise RiskConfigError("partial_target_2_profit", "must be >= partial_target_1_profit")
        if self.partial_target_1_fraction + self.partial_target_2_fraction > 1:
            raise RiskConfigError("partial_target_2_fraction", "the two fractions add up to more than 1")

    def trailing_distance(self, peak_profit: Decimal) -> Decimal | None:
        """The trailing-stop distance for a best profit, None below the activation."""
        if peak_profit >= self.sl_tier3_profit:
            return self.sl_tier3_distance
        if peak_profit >= self.sl_tier2_profit:
            return self.sl_tier2_distance
        if peak_profit >= self.sl_activation:
            return self.sl_distance
        return None

    @property
    def targets(self) -> tuple[tuple[Decimal, Decimal], ...]:
        return (
            (self.partial_target_1_profit, self.partial_target_1_fraction),
            (self.partial_target_2_profit, self.partial_target_2_fraction),
        )


# ---- actions -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MoveStop:
    symbol: str
    side: Side  # the position's side
    price: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class MoveTakeProfit:
    symbol: str
    side: Side
    price: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class ClosePartial:
    symbol: str
    side: Side
    qty: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class CloseAll:
    symbol: str
    side: Side
    qty: Decimal  # what the manager believes is open
    reason: str


@dataclass(frozen=True, slots=True)
class MarkClosed:
    """The position is gone from the exchange; ``external`` when the bot did not close it."""

    symbol: str
    side: Side
    qty: Decimal  # the quantity the manager had
    external: bool
    reason: str


@dataclass(frozen=True, slots=True)
class SyncQuantity:
    """The exchange shows another size than the bot knows (changed outside the bot)."""

    symbol: str
    side: Side
    qty: Decimal
    previous_qty: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class AdoptPosition:
    """A position on the exchange the bot does not track (opened outside the bot, or before a
    crash): the caller decides whether to :meth:`PositionManager.open` it."""

    symbol: str
    side: Side
    qty: Decimal
    entry_price: Decimal | None
    reason: str


Action = MoveStop | MoveTakeProfit | ClosePartial | CloseAll | MarkClosed | SyncQuantity | AdoptPosition


@dataclass(frozen=True, slots=True)
class ExchangePosition:
    """One row of an exchange position snapshot."""

    symbol: str
    side: Side
    qty: Decimal
    entry_price: Decimal | None = None


# ---- state ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class ManagedPosition:
    symbol: str
    side: Side
    qty: Decimal
    entry_price: Decimal
    instrument: InstrumentSpec
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    opened_ts: float = 0.0
    initial_qty: Decimal = _ZERO
    extreme: Decimal = _ZERO  # best price seen: highest for a long, lowest for a short
    tp_moves: int = 0
    targets_done: set[int] = field(default_factory=set)
    pending_reduce: Decimal = _ZERO  # partial closes emitted, not yet confirmed
    closing: bool = False
    last_reversal_ts: float | None = None
    missing_snapshots: int = 0

    @property
    def open_qty(self) -> Decimal:
        """What is left once the emitted partial closes fill."""
        return self.qty - self.pending_reduce

    def profit(self, price: Decimal) -> Decimal:
        return (price - self.entry_price) * self.side.sign / self.entry_price

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "side": self.side.value,
            "qty": str(self.qty),
            "entry_price": str(self.entry_price),
            "stop_loss": None if self.stop_loss is None else str(self.stop_loss),
            "take_profit": None if self.take_profit is None else str(self.take_profit),
            "extreme": str(self.extreme),
            "closing": self.closing,
        }


Key = tuple[str, Side]


class PositionManager:
    def __init__(self, rules: PositionRules | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rules = rules or PositionRules()
        self._clock = clock
        self._positions: dict[Key, ManagedPosition] = {}

    # ---- tracking --------------------------------------------------------------------------------

    def open(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        entry_price: Decimal,
        instrument: InstrumentSpec,
        *,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
        ts: float | None = None,
        extreme: Decimal | None = None,
    ) -> ManagedPosition:
        """Start tracking a position (a new fill, or one loaded at start-up; ``extreme`` restores
        the best price seen if it was stored)."""
        side = Side(side)
        qty = to_decimal(qty, "qty")
        entry_price = to_decimal(entry_price, "entry_price")
        if qty <= 0 or entry_price <= 0:
            raise ValueError(f"{symbol}: qty and entry_price must be positive")
        if instrument.symbol != symbol:
            raise ValueError(f"{symbol}: instrument is {instrument.symbol}")
        pos = ManagedPosition(
            symbol=symbol,
            side=side,
            qty=qty,
            entry_price=entry_price,
            instrument=instrument,
            stop_loss=None if stop_loss is None else to_decimal(stop_loss, "stop_loss"),
            take_profit=None if take_profit is None else to_decimal(take_profit, "take_profit"),
            opened_ts=self._clock() if ts is None else ts,
            initial_qty=qty,
            extreme=entry_price if extreme is None else to_decimal(extreme, "extreme"),
        )
        self._positions[(symbol, side)] = pos
        return pos

    def get(self, symbol: str, side: Side) -> ManagedPosition | None:
        return self._positions.get((symbol, Side(side)))

    def positions(self) -> list[ManagedPosition]:
        return list(self._positions.values())

    def remove(self, symbol: str, side: Side) -> ManagedPosition | None:
        return self._positions.pop((symbol, Side(side)), None)

    def update_rules(self, changes: Mapping[str, Any]) -> PositionRules:
        self.rules = self.rules.with_updates(changes)
        return self.rules

    def set_protection(
        self, symbol: str, side: Side, *, stop_loss: Decimal | None = None, take_profit: Decimal | None = None
    ) -> None:
        """The exchange's truth about the stop / take-profit (after a failed amend, a restart)."""
        pos = self._require(symbol, side)
        if stop_loss is not None:
            pos.stop_loss = to_decimal(stop_loss, "stop_loss")
        if take_profit is not None:
            pos.take_profit = to_decimal(take_profit, "take_profit")

    def on_reduced(self, symbol: str, side: Side, qty: Decimal) -> None:
        """A reduction filled: ``qty`` is what is open now (0 removes the position)."""
        pos = self._require(symbol, side)
        qty = to_decimal(qty, "qty")
        if qty <= 0:
            self.remove(symbol, side)
            return
        pos.pending_reduce = max(_ZERO, pos.pending_reduce - (pos.qty - qty))
        pos.qty = qty

    def on_close_failed(self, symbol: str, side: Side) -> None:
        """A CloseAll did not go through: evaluate the position again on the next price."""
        self._require(symbol, side).closing = False

    # ---- the decision on each price --------------------------------------------------------------

    def on_price(
        self,
        symbol: str,
        price: Decimal,
        *,
        ts: float | None = None,
        reversal_votes: Mapping[str, int] | None = None,
    ) -> list[Action]:
        """Actions for every tracked position of ``symbol`` at this price (last trade or mark).

        ``reversal_votes``: indicator name -> +1 (up), -1 (down) or 0 (see
        :func:`pysrc.positions.reversal.reversal_votes`)."""
        price = to_decimal(price, "price")
        if price <= 0:
            raise ValueError(f"{symbol}: price must be positive")
        now = self._clock() if ts is None else ts
        out: list[Action] = []
        for side in (Side.BUY, Side.SELL):
            pos = self._positions.get((symbol, side))
            if pos is not None and not pos.closing:
                self._evaluate(pos, price, now, reversal_votes, out)
        return out

    def _evaluate(
        self, pos: ManagedPosition, price: Decimal, now: float, votes: Mapping[str, int] | None, out: list[Action]
    ) -> None:
        R = self.rules
        sign = pos.side.sign
        if (price - pos.extreme) * sign > 0:
            pos.extreme = price
        p = pos.profit(price)
        peak = pos.profit(pos.extreme)

        # 1. exits
        if pos.stop_loss is not None and (price - pos.stop_loss) * sign <= 0:
            return self._close(pos, "stop_loss", out)
        if p <= -R.max_loss:
            return self._close(pos, "max_loss", out)
        if pos.take_profit is not None and (price - pos.take_profit) * sign >= 0:
            return self._close(pos, "take_profit", out)

        # 2. reversal
        if votes is not None:
            against = sum(1 for v in votes.values() if v == -sign)
            pullback = (pos.extreme - price) * sign / pos.extreme
            since = max(pos.opened_ts, pos.last_reversal_ts if pos.last_reversal_ts is not None else pos.opened_ts)
            if (
                against >= R.reversal_min_indicators
                and pullback >= R.reversal_min_price_change
                and now - since >= R.reversal_cooldown_s
            ):
                pos.last_reversal_ts = now
                return self._close(pos, f"reversal ({against} indicators)", out)

        # 3. partial targets
        inst = pos.instrument
        for i, (target, fraction) in enumerate(R.targets):
            if i in pos.targets_done or fraction <= 0 or p < target:
                continue
            pos.targets_done.add(i)
            qty = inst.floor_qty(pos.initial_qty * fraction)
            left = pos.open_qty - qty
            if left < inst.min_qty or left <= 0:
                return self._close(pos, "final_target", out)
            if qty <= 0 or qty < inst.min_qty:
                continue  # too small to trade: this target is skipped
            pos.pending_reduce += qty
            out.append(ClosePartial(pos.symbol, pos.side, qty, f"target {i + 1} at +{target:.2%}"))

        # 4. stop management
        candidates: list[tuple[Decimal, str]] = []
        max_loss_stop = pos.entry_price * (_ONE - R.max_loss * sign)
        if pos.stop_loss is None:
            candidates.append((max_loss_stop, "initial_max_loss"))
        elif (pos.entry_price - pos.stop_loss) * sign / pos.entry_price > R.max_loss:
            candidates.append((max_loss_stop, "max_loss_tighten"))
        if peak >= R.tp_activation:
            candidates.append((pos.entry_price * (_ONE + R.min_profit * sign), "min_profit_lock"))
        distance = R.trailing_distance(peak)
        if distance is not None:
            candidates.append((pos.extreme * (_ONE - distance * sign), f"trailing_stop {distance:.2%}"))
        if candidates:
            # The tightest: highest for a long, lowest for a short. Rounded toward the price.
            level, why = max(candidates, key=lambda c: c[0] * sign)
            level = inst.price_up(level) if sign > 0 else inst.price_down(level)
            if pos.stop_loss is None or (level - pos.stop_loss) * sign > 0:
                if (price - level) * sign <= 0:
                    # The stop we would place is already breached (restored state, changed rules).
                    return self._close(pos, "stop_breached", out)
                pos.stop_loss = level
                out.append(MoveStop(pos.symbol, pos.side, level, why))

        # 5. trailing take-profit
        if peak >= R.tp_activation:
            step = pos.entry_price * R.tp_step
            tp = pos.take_profit
            moved = False
            for _ in range(100):  # bounded: each move is at least one step
                if tp is not None and (tp - price) * sign >= step:
                    break
                inc = step * R.tp_acceleration**pos.tp_moves
                tp = (price if tp is None else tp) + inc * sign
                pos.tp_moves += 1
                moved = True
            if moved and tp is not None:
                tp = inst.price_up(tp) if sign > 0 else inst.price_down(tp)
                if tp > 0 and tp != pos.take_profit:
                    pos.take_profit = tp
                    out.append(MoveTakeProfit(pos.symbol, pos.side, tp, f"trailing_take_profit move {pos.tp_moves}"))

    def _close(self, pos: ManagedPosition, reason: str, out: list[Action]) -> None:
        pos.closing = True
        out.append(CloseAll(pos.symbol, pos.side, pos.open_qty, reason))

    # ---- reconciliation with the exchange --------------------------------------------------------

    def reconcile(self, snapshot: Iterable[ExchangePosition], *, ts: float | None = None) -> list[Action]:
        """Compare an exchange position snapshot (non-zero positions) with what is tracked.

        A tracked position missing from ``external_missing_snapshots`` consecutive snapshots, and
        older than ``external_grace_s`` (a fill the snapshot has not caught up with yet is not a
        close), is reported closed and forgotten: ``external`` unless the bot had asked to close it.
        A size differing from both the known size and the size after pending partial closes is
        reported as changed outside the bot; positions the bot does not track are reported for
        adoption."""
        now = self._clock() if ts is None else ts
        R = self.rules
        seen: dict[Key, ExchangePosition] = {}
        for entry in snapshot:
            if entry.qty > 0:
                seen[(entry.symbol, Side(entry.side))] = entry
        out: list[Action] = []
        for key, pos in list(self._positions.items()):
            row = seen.pop(key, None)
            if row is None:
                pos.missing_snapshots += 1
                if pos.missing_snapshots >= R.external_missing_snapshots and now - pos.opened_ts >= R.external_grace_s:
                    del self._positions[key]
                    external = not pos.closing
                    why = "closed_outside_bot" if external else "closed_by_bot"
                    out.append(MarkClosed(pos.symbol, pos.side, pos.qty, external, why))
                continue
            pos.missing_snapshots = 0
            if row.qty == pos.qty:
                continue
            if row.qty == pos.open_qty:  # our partial closes filled
                pos.qty, pos.pending_reduce = row.qty, _ZERO
                continue
            out.append(SyncQuantity(pos.symbol, pos.side, row.qty, pos.qty, "changed_outside_bot"))
            pos.qty, pos.pending_reduce = row.qty, _ZERO
        for new in seen.values():
            out.append(AdoptPosition(new.symbol, Side(new.side), new.qty, new.entry_price, "unknown_to_bot"))
        return out

    def _require(self, symbol: str, side: Side) -> ManagedPosition:
        pos = self._positions.get((symbol, Side(side)))
        if pos is None:
            raise KeyError(f"no tracked position {symbol} {Side(side).value}")
        return pos


__all__ = [
    "Action",
    "AdoptPosition",
    "CloseAll",
    "ClosePartial",
    "ExchangePosition",
    "ManagedPosition",
    "MarkClosed",
    "MoveStop",
    "MoveTakeProfit",
    "PositionManager",
    "PositionRules",
    "SyncQuantity",
]
