"""The daily-loss kill switch: the decision and its latch. The execution layer does the acting.

Rule (mission section 7): when today's loss exceeds ``max_daily_loss`` of the day's starting equity
(strictly greater), trading halts: every active order is cancelled, every open position is closed
with market orders, no new trade is taken, a critical alert goes out, and the switch **stays
engaged until a person releases it** (across day boundaries too).

:meth:`KillSwitch.evaluate` returns a :class:`KillSwitchDecision`. ``halt`` is true whenever the
switch is engaged. ``newly_engaged`` is true exactly once, on the evaluation (or manual
:meth:`KillSwitch.engage`) that engaged it: send the critical alert then. ``actions`` (cancel all
orders, close all positions, stop trading, alert) is repeated on every evaluation until the
execution layer calls :meth:`KillSwitch.acknowledge_halt` after it has cancelled and closed
everything: whoever trips the switch (the PnL loop, or a signal's risk check), the halt cannot be
lost, and a failed close is retried on the next evaluation.

Release: a person who releases the switch accepts the loss so far. If the portfolio state is given
to :meth:`KillSwitch.release`, today's PnL at that moment becomes the new zero for the rest of the
day (another ``max_daily_loss`` on top engages it again); without it, a loss still over the limit
engages the switch again at the next evaluation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pysrc.risk.portfolio import PortfolioState

HALT_ACTIONS: tuple[str, ...] = ("cancel_all_orders", "close_all_positions", "stop_trading", "alert_critical")

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class KillSwitchDecision:
    halt: bool
    newly_engaged: bool
    reason: str
    day_pnl: Decimal  # effective (after any rebase at release)
    loss_fraction: Decimal  # loss / day start equity, 0 when in profit
    limit: Decimal
    actions: tuple[str, ...] = ()


class KillSwitch:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.engaged = False
        self.reason: str | None = None
        self.engaged_at: float | None = None
        self.engaged_by: str | None = None
        self.released_at: float | None = None
        self.released_by: str | None = None
        self.halt_pending = False  # engaged and the cancel/close sequence not yet acknowledged
        self._rebase_day: str | None = None
        self._rebase_pnl = _ZERO

    def effective_day_pnl(self, state: PortfolioState) -> Decimal:
        pnl = state.day_pnl
        if self._rebase_day is not None and self._rebase_day == state.day:
            pnl -= self._rebase_pnl
        return pnl

    def loss_fraction(self, state: PortfolioState) -> Decimal:
        loss = -self.effective_day_pnl(state)
        if loss <= 0:
            return _ZERO
        start = state.start_equity
        return loss / start if start > 0 else Decimal(1)

    def evaluate(self, state: PortfolioState, max_daily_loss: Decimal) -> KillSwitchDecision:
        pnl = self.effective_day_pnl(state)
        frac = self.loss_fraction(state)
        if self.engaged:
            return KillSwitchDecision(True, False, self.reason or "engaged", pnl, frac, max_daily_loss, self._actions())
        if frac > max_daily_loss:
            reason = f"daily loss {frac:.4%} of start equity exceeds max_daily_loss {max_daily_loss:.2%}"
            self._engage(reason, "risk")
            return KillSwitchDecision(True, True, reason, pnl, frac, max_daily_loss, HALT_ACTIONS)
        return KillSwitchDecision(False, False, "", pnl, frac, max_daily_loss)

    def engage(self, reason: str, by: str = "operator") -> KillSwitchDecision:
        """Manual engagement (API). The actions come back only if it was not already engaged."""
        if self.engaged:
            return KillSwitchDecision(True, False, self.reason or reason, _ZERO, _ZERO, _ZERO, self._actions())
        self._engage(reason, by)
        return KillSwitchDecision(True, True, reason, _ZERO, _ZERO, _ZERO, HALT_ACTIONS)

    def acknowledge_halt(self) -> None:
        """Execution confirms every order is cancelled and every position closed."""
        self.halt_pending = False

    def release(self, by: str, state: PortfolioState | None = None) -> None:
        """A person re-enables trading. See the module docstring for the effect of ``state``."""
        if not by:
            raise ValueError("release: say who released the kill switch")
        if state is not None:
            self._rebase_day = state.day
            self._rebase_pnl = state.day_pnl
        self.engaged = False
        self.halt_pending = False
        self.reason = None
        self.released_at = self._clock()
        self.released_by = by

    def _engage(self, reason: str, by: str) -> None:
        self.engaged = True
        self.halt_pending = True
        self.reason = reason
        self.engaged_at = self._clock()
        self.engaged_by = by

    def _actions(self) -> tuple[str, ...]:
        return HALT_ACTIONS if self.halt_pending else ()

    # ---- persistence (the latch must survive a restart) --------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "engaged": self.engaged,
            "reason": self.reason,
            "engaged_at": self.engaged_at,
            "engaged_by": self.engaged_by,
            "halt_pending": self.halt_pending,
            "rebase_day": self._rebase_day,
            "rebase_pnl": str(self._rebase_pnl),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], clock: Callable[[], float] = time.time) -> KillSwitch:
        ks = cls(clock)
        ks.engaged = bool(data.get("engaged", False))
        ks.reason = data.get("reason")
        ks.engaged_at = data.get("engaged_at")
        ks.engaged_by = data.get("engaged_by")
        ks.halt_pending = bool(data.get("halt_pending", ks.engaged))
        ks._rebase_day = data.get("rebase_day")
        ks._rebase_pnl = Decimal(str(data.get("rebase_pnl", "0")))
        return ks


__all__ = ["HALT_ACTIONS", "KillSwitch", "KillSwitchDecision"]
