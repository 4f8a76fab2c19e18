"""The paper venue's records (orders, positions), constants, number formatting and errors.

Kept apart from the matching so that the state that is persisted (:meth:`PaperOrder.to_state`,
:meth:`PaperPosition.to_state`) is declared in one place, next to the rules for printing numbers
the way Bybit prints them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from pysrc.domain.values import ZERO, to_decimal
from pysrc.exchange.bybit.errors import BybitApiError

Json = dict[str, Any]

SNAPSHOT_VERSION = 1
"""Layout version of ``PaperVenue.snapshot``; ``PaperVenue.restore`` refuses others."""

CREATE_PATH = "/v5/order/create"
CANCEL_PATH = "/v5/order/cancel"
AMEND_PATH = "/v5/order/amend"
LEVERAGE_PATH = "/v5/position/set-leverage"
TRADING_STOP_PATH = "/v5/position/trading-stop"

MAX_OPEN_ORDERS_PER_SYMBOL = 500
"""Bybit: at most 500 active orders per symbol (110020)."""

MAINTENANCE_RATE = Decimal("0.005")
"""Maintenance margin rate of the first risk tier of the big linear contracts; used only for the
informative ``positionMM`` / ``totalMaintenanceMargin`` fields (no liquidation is modelled)."""

NO_BOOK_CODE = 110079
"""retCode of an order refused because the symbol's book is not live (awaiting a snapshot or
resyncing). Bybit's 110079 ("order is processing, try later") is the code whose meaning fits: a
definite non-execution that may be retried shortly (``RetryClass.BACKOFF``)."""

OPEN_STATUSES = ("New", "PartiallyFilled")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "PostOnly")

_Q8 = Decimal("0.00000001")


def api_error(code: int, msg: str, path: str = CREATE_PATH) -> BybitApiError:
    """An error exactly as the live client raises it for ``retCode`` ``code`` (same class, same
    retry classification), so callers treat paper and live rejects alike."""
    return BybitApiError(code, msg, path, method="POST")


def money(d: Decimal) -> str:
    """A money value as Bybit prints it: plain notation, no exponent, no trailing zeros. Exact:
    nothing is rounded (a fee of ``0.035750055`` prints so)."""
    if d == 0:
        return "0"
    s = format(d.normalize(), "f")
    return "0" if s in ("-0", "") else s


def money8(d: Decimal) -> str:
    """A derived (divided) value such as an average price or a margin: at most 8 decimals."""
    return money(d.quantize(_Q8, rounding=ROUND_HALF_EVEN))


def step_quantum(step: Decimal) -> Decimal:
    """Quantum with the step's own decimals, as Bybit prints (tick ``0.10`` -> ``65000.00``)."""
    exp = step.as_tuple().exponent
    places = -exp if isinstance(exp, int) and exp < 0 else 0
    return Decimal(1).scaleb(-places)


def _state(obj: Any) -> Json:
    out: Json = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = str(v) if isinstance(v, Decimal) else v
    return out


@dataclass(slots=True)
class PaperOrder:
    """One paper order: the state Bybit keeps for it, plus its modelled queue position."""

    order_id: str
    link_id: str
    symbol: str
    side: str
    order_type: str
    price: Decimal
    """Limit price; for a market order the protection price (slippage cap) or the worst price it
    walked to (Bybit shows its internal IOC limit there); 0 when unknown."""
    qty: Decimal
    tif: str
    reduce_only: bool
    close_on_trigger: bool
    created_ms: int
    updated_ms: int
    seq: int
    """Arrival sequence: time priority among own orders at one price."""
    leaves: Decimal = ZERO
    cum_qty: Decimal = ZERO
    cum_value: Decimal = ZERO
    cum_fee: Decimal = ZERO
    closed_pnl: Decimal = ZERO
    status: str = "New"
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    create_type: str = "CreateByUser"
    stop_order_type: str = ""
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    last_price_on_created: Decimal = ZERO
    slippage_type: str = "UNKNOWN"
    slippage: str = "0"
    ahead: Decimal | None = None
    """Public quantity queued ahead at ``price`` (resting limit orders). None = not known yet
    (the price was beyond the book's visible depth): set at the first sight of the level."""

    _DECIMALS = frozenset({"price", "qty", "leaves", "cum_qty", "cum_value", "cum_fee", "closed_pnl",
                           "last_price_on_created"})
    _OPTIONAL = frozenset({"take_profit", "stop_loss", "ahead"})

    @property
    def buy(self) -> bool:
        return self.side == "Buy"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_state(self) -> Json:
        """JSON-safe state (every Decimal as its exact string)."""
        return _state(self)

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> PaperOrder:
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            if f.name in cls._DECIMALS:
                v = to_decimal(v, f.name)
            elif f.name in cls._OPTIONAL:
                v = None if v is None else to_decimal(v, f.name)
            kw[f.name] = v
        return cls(**kw)


@dataclass(slots=True)
class PaperPosition:
    """One-way position of one symbol: signed size, exact entry cost, realised PnL.

    Average cost, as :mod:`pysrc.domain.positions` keeps it (so the bot's own books and the
    venue's agree): a partial reduce releases ``entry_value x q / size`` on a 1e-12 grid, a full
    close releases the rest exactly."""

    symbol: str
    leverage: Decimal
    size: Decimal = ZERO
    """Signed: positive long, negative short."""
    entry_value: Decimal = ZERO
    """Exact cost of the open size (entry ``price x qty`` less the cost released by reductions)."""
    cum_realised: Decimal = ZERO
    """Bybit's ``cumRealisedPnl``: price PnL minus fees, over the symbol's life."""
    cur_realised: Decimal = ZERO
    """Bybit's ``curRealisedPnl``: the same, for the position currently held."""
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    created_ms: int = 0
    updated_ms: int = 0
    seq: int = 0

    def to_state(self) -> Json:
        return _state(self)

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> PaperPosition:
        kw: dict[str, Any] = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        for name in ("leverage", "size", "entry_value", "cum_realised", "cur_realised"):
            kw[name] = to_decimal(kw[name], name)
        for name in ("take_profit", "stop_loss"):
            kw[name] = None if kw.get(name) is None else to_decimal(kw[name], name)
        return cls(**kw)


__all__ = [
    "AMEND_PATH",
    "CANCEL_PATH",
    "CREATE_PATH",
    "LEVERAGE_PATH",
    "MAINTENANCE_RATE",
    "MAX_OPEN_ORDERS_PER_SYMBOL",
    "NO_BOOK_CODE",
    "OPEN_STATUSES",
    "SNAPSHOT_VERSION",
    "TIME_IN_FORCE",
    "TRADING_STOP_PATH",
    "Json",
    "PaperOrder",
    "PaperPosition",
    "api_error",
    "money",
    "money8",
    "step_quantum",
]
