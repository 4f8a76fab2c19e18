"""What callers hand the execution layer and what they get back: order intents, read-only views
of orders and positions, and the errors the layer raises on purpose.

An :class:`OrderIntent` is a *request*, with its client order id (``orderLinkId``) as the
idempotency key: sending the same intent twice (a retry after a timeout, a restart, a duplicate
signal) yields one order. :func:`request_hash` is what "the same request" means: the fields that
change what is traded (symbol, side, type, quantity, price, time in force, reduce-only, attached
TP/SL). The context (reason, signal, trace id) is not part of it, so a retry may carry a fresher
trace id and still be recognised, while reusing an id for a *different* order is refused
(:class:`~pysrc.store.repositories.IdempotencyConflict`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from pysrc.store.repositories import OrderRow, PositionRow

SIDES = ("Buy", "Sell")
ORDER_TYPES = ("Limit", "Market")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "PostOnly", "RPI")


class ExecutionError(Exception):
    """Base of the execution layer's own errors."""


class TradingHalted(ExecutionError):
    """The kill switch is engaged: only reduce-only orders are accepted until a person resumes
    trading (``KillSwitchExecutor.release``)."""


class OrderOutcomePending(ExecutionError):
    """Another process holds this client order id and its outcome is not recorded yet (its
    request may be in flight). Nothing was sent by this call; the holder, or reconciliation if the
    holder died, records the outcome. Ask again later with the same id."""

    def __init__(self, order_link_id: str) -> None:
        self.order_link_id = order_link_id
        super().__init__(
            f"order {order_link_id}: another process holds this id and its outcome is not recorded yet"
        )


class ServiceNotStarted(ExecutionError):
    """``place``/``cancel`` before ``start()`` finished its start-up reconciliation."""


def _dec(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise TypeError(f"{name}={value!r}: pass Decimal, int or str (money is exact, never float)")
    d = Decimal(value) if not isinstance(value, Decimal) else value
    if not d.is_finite():
        raise ValueError(f"{name}={value!r} is not finite")
    return d


def _opt_dec(value: Any, name: str) -> Decimal | None:
    return None if value is None else _dec(value, name)


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """One order as a strategy, the API or the kill switch asks for it.

    Prices and quantities must already be on the instrument's grid (``Instrument.prepare``); the
    exchange refuses anything else with a definite reject. ``client_order_id`` is generated when
    omitted (``{time}_{symbol}_{strategy}_{nonce}``, at most 36 characters); pass it to make a
    retry idempotent. ``reason`` is why: the entry reason for an opening order, the exit reason
    for a closing one; it ends up in the trades table. ``signal`` and ``market`` are the context at
    that moment (JSON-able), kept with the order and in the audit log.
    """

    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None = None
    client_order_id: str | None = None
    strategy: str = "manual"
    reduce_only: bool = False
    time_in_force: str | None = None
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    reason: str = ""
    signal_type: str | None = None
    signal: Mapping[str, Any] | None = None
    market: Mapping[str, Any] | None = None
    indicators: Mapping[str, Any] | None = None
    trace_id: str | None = None
    actor: str = "bot"

    def __post_init__(self) -> None:
        side = getattr(self.side, "value", self.side)  # accept the domain's Side enum
        object.__setattr__(self, "side", side)
        if side not in SIDES:
            raise ValueError(f"side must be Buy or Sell, not {self.side!r}")
        if self.order_type not in ORDER_TYPES:
            raise ValueError(f"order_type must be Limit or Market, not {self.order_type!r}")
        if self.time_in_force is not None and self.time_in_force not in TIME_IN_FORCE:
            raise ValueError(f"time_in_force {self.time_in_force!r} is not one of {TIME_IN_FORCE}")
        if not self.symbol:
            raise ValueError("symbol is required")
        object.__setattr__(self, "qty", _dec(self.qty, "qty"))
        for name in ("price", "take_profit", "stop_loss"):
            object.__setattr__(self, name, _opt_dec(getattr(self, name), name))
        if self.qty <= 0:
            raise ValueError("qty must be positive")
        if self.order_type == "Limit" and (self.price is None or self.price <= 0):
            raise ValueError("a Limit order needs a positive price")
        if not self.actor:
            raise ValueError("actor is required (who asked: 'bot', 'user:<name>', ...)")

    @property
    def effective_time_in_force(self) -> str:
        """What is stored: the given value, else Bybit's default (market orders are IOC)."""
        if self.time_in_force is not None:
            return self.time_in_force
        return "IOC" if self.order_type == "Market" else "GTC"

    def params(self) -> dict[str, Any]:
        """The request's trading parameters as exact strings (audit ``params``, hashing)."""
        return {
            "symbol": self.symbol,
            "side": self.side,
            "order_type": self.order_type,
            "qty": _norm(self.qty),
            "price": None if self.order_type == "Market" or self.price is None else _norm(self.price),
            "time_in_force": self.effective_time_in_force,
            "reduce_only": self.reduce_only,
            "take_profit": None if self.take_profit is None else _norm(self.take_profit),
            "stop_loss": None if self.stop_loss is None else _norm(self.stop_loss),
        }

    def context(self) -> dict[str, Any]:
        """What is kept with the order (``orders.signal``) and copied to its position and trade."""
        return {
            "reason": self.reason,
            "signal_type": self.signal_type,
            "signal": dict(self.signal) if self.signal is not None else None,
            "strategy": self.strategy,
            "actor": self.actor,
        }


def _norm(d: Decimal) -> str:
    """A canonical string: ``0.010`` and ``0.01`` are the same request."""
    n = d.normalize()
    return format(n, "f")


def request_hash(intent: OrderIntent) -> str:
    """SHA-256 of the trading parameters: the identity of a request under its client id."""
    return hashlib.sha256(orjson.dumps(intent.params(), option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as recorded (read-only, exact decimals). ``duplicate`` is True when this call did
    not create the order: it returned the result recorded for an earlier request with the same
    client order id."""

    order_link_id: str
    exchange_order_id: str | None
    mode: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None
    reduce_only: bool
    time_in_force: str
    state: str
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    fees: Decimal
    strategy: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    signal: Any = None
    duplicate: bool = False

    @property
    def is_open(self) -> bool:
        return self.state not in ("FILLED", "CANCELLED", "REJECTED", "FAILED")

    @classmethod
    def from_row(cls, row: OrderRow, *, duplicate: bool = False) -> OrderView:
        return cls(
            order_link_id=row.order_link_id,
            exchange_order_id=row.exchange_order_id,
            mode=row.mode,
            symbol=row.symbol,
            side=row.side,
            order_type=row.order_type,
            qty=row.qty,
            price=row.price,
            reduce_only=row.reduce_only,
            time_in_force=row.time_in_force,
            state=row.state,
            filled_qty=row.filled_qty,
            avg_fill_price=row.avg_fill_price,
            fees=row.fees,
            strategy=row.strategy,
            error=row.error,
            created_at=row.created_at,
            updated_at=row.updated_at,
            version=row.version,
            signal=row.signal,
            duplicate=duplicate,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__slots__:
            v = getattr(self, name)
            out[name] = str(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, datetime) else v
        return out


@dataclass(frozen=True, slots=True)
class PositionView:
    """An active (or just closed) position as recorded, with the exchange's latest mark and
    unrealised PnL when a ``position`` push or snapshot has been seen."""

    position_id: int
    mode: str
    symbol: str
    side: str
    state: str
    size: Decimal
    entry_price: Decimal | None
    realised_pnl: Decimal
    """Net of fees and funding, as stored."""
    fees: Decimal
    strategy: str | None
    entry_reason: str | None
    exit_reason: str | None
    opened_at: datetime
    closed_at: datetime | None
    mark_price: Decimal | None = None
    unrealised_pnl: Decimal | None = None
    exchange_size: Decimal | None = None
    """Signed-free size the exchange last reported for the symbol (None: not seen yet)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(
        cls,
        row: PositionRow,
        *,
        mark_price: Decimal | None = None,
        unrealised_pnl: Decimal | None = None,
        exchange_size: Decimal | None = None,
    ) -> PositionView:
        return cls(
            position_id=row.id,
            mode=row.mode,
            symbol=row.symbol,
            side=row.side,
            state=row.state,
            size=row.size,
            entry_price=row.entry_price,
            realised_pnl=row.realised_pnl,
            fees=row.fees,
            strategy=row.strategy,
            entry_reason=row.entry_reason,
            exit_reason=row.exit_reason,
            opened_at=row.opened_at,
            closed_at=row.closed_at,
            mark_price=mark_price,
            unrealised_pnl=unrealised_pnl,
            exchange_size=exchange_size,
        )


__all__ = [
    "ExecutionError",
    "OrderIntent",
    "OrderOutcomePending",
    "OrderView",
    "PositionView",
    "ServiceNotStarted",
    "TradingHalted",
    "request_hash",
]
