"""The portfolio as the risk manager sees it: balance, open positions, today's PnL. All Decimal."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pysrc.strategy.base import Side

_ZERO = Decimal(0)


def _need_decimal(owner: str, name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{owner}: {name} must be a finite Decimal (money is exact), got {value!r}")


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """One open position. ``mark_price`` None means "use the entry" (no mark yet)."""

    symbol: str
    side: Side
    qty: Decimal
    entry_price: Decimal
    mark_price: Decimal | None = None
    stop_loss: Decimal | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.side, Side):
            object.__setattr__(self, "side", Side(self.side))
        for name in ("qty", "entry_price"):
            _need_decimal(f"position {self.symbol}", name, getattr(self, name))
        for name in ("mark_price", "stop_loss"):
            _need_decimal(f"position {self.symbol}", name, getattr(self, name), optional=True)
        if self.qty < 0 or self.entry_price <= 0:
            raise ValueError(f"position {self.symbol}: qty must be >= 0 and entry_price > 0")

    @property
    def notional(self) -> Decimal:
        """Exposure at the mark (the entry when there is no mark)."""
        return self.qty * (self.mark_price if self.mark_price is not None else self.entry_price)

    @property
    def unrealized_pnl(self) -> Decimal:
        if self.mark_price is None:
            return _ZERO
        return (self.mark_price - self.entry_price) * self.qty * self.side.sign

    def risk_amount(self, default_stop_pct: Decimal) -> Decimal:
        """What this position loses from its entry if stopped out: ``qty * (entry - stop)`` for a
        long (mirror for a short), 0 once the stop is at or beyond the entry, and
        ``qty * entry * default_stop_pct`` when it has no stop (assume the standard stop)."""
        if self.stop_loss is None:
            return self.qty * self.entry_price * default_stop_pct
        loss = (self.entry_price - self.stop_loss) * self.side.sign * self.qty
        return loss if loss > 0 else _ZERO


@dataclass(frozen=True, slots=True)
class PortfolioState:
    """Everything :meth:`RiskManager.check` needs about the account, as of now.

    ``balance`` is the equity sizing is based on (USDT). ``day`` names the trading day (e.g. the
    UTC date) so the kill switch knows when a new day starts. Today's PnL is
    ``realized_pnl_today + unrealized_pnl - unrealized_pnl_day_start``: what was realised today plus
    how much the open positions' unrealised PnL changed since the day started. ``unrealized_pnl``
    None means "the sum over ``positions`` at their marks"."""

    balance: Decimal
    positions: tuple[OpenPosition, ...] = ()
    available_balance: Decimal | None = None
    day: str = ""
    day_start_equity: Decimal | None = None
    realized_pnl_today: Decimal = _ZERO
    unrealized_pnl: Decimal | None = None
    unrealized_pnl_day_start: Decimal = _ZERO

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", tuple(p for p in self.positions if p.qty > 0))
        _need_decimal("portfolio", "balance", self.balance)
        for name in ("realized_pnl_today", "unrealized_pnl_day_start"):
            _need_decimal("portfolio", name, getattr(self, name))
        for name in ("available_balance", "day_start_equity", "unrealized_pnl"):
            _need_decimal("portfolio", name, getattr(self, name), optional=True)

    @property
    def available(self) -> Decimal:
        return self.balance if self.available_balance is None else self.available_balance

    @property
    def start_equity(self) -> Decimal:
        return self.balance if self.day_start_equity is None else self.day_start_equity

    @property
    def total_unrealized(self) -> Decimal:
        if self.unrealized_pnl is not None:
            return self.unrealized_pnl
        return sum((p.unrealized_pnl for p in self.positions), _ZERO)

    @property
    def day_pnl(self) -> Decimal:
        return self.realized_pnl_today + self.total_unrealized - self.unrealized_pnl_day_start

    @property
    def exposure(self) -> Decimal:
        return sum((p.notional for p in self.positions), _ZERO)


__all__ = ["OpenPosition", "PortfolioState"]
