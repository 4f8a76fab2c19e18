"""Value objects shared by orders and positions, and the exact-decimal helpers.

Money and quantities are ``Decimal`` everywhere in the domain; a ``float`` is refused at the door
(its binary value is not what the trader or the exchange meant). Sums and products run in
:data:`EXACT`, a context that *traps* ``Inexact``: an accounting step that would have to round
raises instead of silently losing a digit. The only rounded operations are divisions: an average
price (:data:`DIVISION`, 34 digits, for display and reports) and pro-rata shares (:func:`pro_rata`,
on a 1e-12 grid), whose remainder is always kept so that whole amounts stay exact.

:class:`OrderUpdate` and :class:`Execution` are the two kinds of exchange push the domain reacts
to, parsed from Bybit's ``order`` and ``execution`` stream items (``docs/bybit-v5.md`` 2.2) by
``from_bybit``. They are plain data: the domain knows Bybit's field names and status words (the
mapping is part of the state machine's specification) but nothing about sockets or REST.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from enum import Enum
from typing import Any

from pysrc.decimals import (  # re-exported: the domain's money type
    optional_decimal,
    to_decimal,
)

EXACT = Context(
    prec=60,
    rounding=ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow, decimal.Inexact],
)
"""Context of every sum and product: 60 digits is far beyond any price x quantity, and the
``Inexact`` trap turns a would-be rounding into an error."""

DIVISION = Context(prec=34, rounding=ROUND_HALF_EVEN)
"""Context of the few divisions (averages, pro-rata splits): decimal128 precision, fixed here so
the result never depends on the caller's thread-local context (replay must compute the same digits
as the original run)."""

ZERO = Decimal(0)


def add(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.add(a, b)


def sub(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.subtract(a, b)


def mul(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.multiply(a, b)


def div(a: Decimal, b: Decimal) -> Decimal:
    return DIVISION.divide(a, b)


PRO_RATA_QUANTUM = Decimal("1e-12")
"""Grid of the pro-rata shares (cost released by a partial reduce, a fee split by a flip): fine
enough for any settlement currency, coarse enough that the numbers stay readable and their sums
stay exact in an ordinary 28-digit context."""


def pro_rata(total: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """``total x part / whole`` rounded (half-even) to :data:`PRO_RATA_QUANTUM`. Callers keep
    ``total - share`` as the remainder, so the shares of a whole always add up to it exactly."""
    return DIVISION.quantize(DIVISION.divide(mul(total, part), whole), PRO_RATA_QUANTUM)


def dec_str(value: Decimal | None) -> str:
    """The exact string of a decimal for metadata (``""`` for ``None``)."""
    return "" if value is None else str(value)


class Side(str, Enum):
    BUY = "Buy"
    SELL = "Sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY

    @property
    def sign(self) -> int:
        """+1 for a long (buy), -1 for a short (sell): the sign of price PnL per unit."""
        return 1 if self is Side.BUY else -1


class OrderType(str, Enum):
    MARKET = "Market"
    LIMIT = "Limit"


class TimeInForce(str, Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "PostOnly"
    RPI = "RPI"


def _ms(value: object) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"timestamp {value!r}: expected ms as int or str")
    return int(value)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return "" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill (or other execution) of an order, deduplicated by ``exec_id``."""

    exec_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal = ZERO
    """Positive = paid, negative = rebate (Bybit's ``execFee`` sign)."""
    exec_type: str = "Trade"
    """Bybit ``execType``. Only ``Trade`` counts towards an order's fills; funding arrives as an
    execution too (``Funding``) and must not (``docs/bybit-v5.md`` 2.2)."""
    order_id: str = ""
    order_link_id: str = ""
    """Empty on ``execution.fast`` maker fills: match those by ``order_id``."""
    exec_time: int = 0
    """Exchange time in ms."""
    is_maker: bool = False
    fee_currency: str = ""
    order_qty: Decimal | None = None
    """The order's quantity when it executed (``orderQty``): reveals an amendment whose ``order``
    push has not arrived yet. Absent on ``execution.fast``."""
    order_price: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("qty", "price", "fee"):
            if not isinstance(getattr(self, name), Decimal):
                raise TypeError(f"Execution.{name} must be a Decimal (money is exact)")
        for name in ("order_qty", "order_price"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, Decimal):
                raise TypeError(f"Execution.{name} must be a Decimal or None")
        if not self.exec_id:
            raise ValueError("an execution needs its execId (fills are deduplicated by it)")
        if self.qty < 0 or self.price < 0:
            raise ValueError(f"execution {self.exec_id}: negative qty or price")

    @property
    def value(self) -> Decimal:
        return mul(self.price, self.qty)

    @classmethod
    def from_bybit(cls, data: Mapping[str, Any]) -> Execution:
        """Parse one item of an ``execution`` / ``execution.fast`` push or of ``/v5/execution/list``."""
        return cls(
            exec_id=_text(data, "execId"),
            symbol=_text(data, "symbol"),
            side=Side(_text(data, "side")),
            qty=to_decimal(data.get("execQty", "0"), "execQty"),
            price=to_decimal(data.get("execPrice", "0"), "execPrice"),
            fee=optional_decimal(data.get("execFee"), "execFee") or ZERO,
            exec_type=_text(data, "execType") or "Trade",  # execution.fast has only Trade, no field
            order_id=_text(data, "orderId"),
            order_link_id=_text(data, "orderLinkId"),
            exec_time=_ms(data.get("execTime")),
            is_maker=bool(data.get("isMaker", False)),
            fee_currency=_text(data, "feeCurrency"),
            order_qty=optional_decimal(data.get("orderQty"), "orderQty"),
            order_price=optional_decimal(data.get("orderPrice"), "orderPrice"),
        )


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One item of Bybit's ``order`` stream (or of ``/v5/order/realtime`` / ``history``): the
    exchange's view of an order at ``updated_time``. Cumulative fields are cumulative since the
    order's creation, so the latest push carries everything the earlier ones did."""

    status: str
    """Bybit ``orderStatus`` verbatim (see ``pysrc.domain.orders.EXCHANGE_STATUS``)."""
    order_link_id: str = ""
    order_id: str = ""
    symbol: str = ""
    qty: Decimal | None = None
    price: Decimal | None = None
    cum_exec_qty: Decimal = ZERO
    cum_exec_value: Decimal | None = None
    avg_price: Decimal | None = None
    cum_fee: Decimal | None = None
    """Informative only: ``cumExecFee`` is deprecated for linear and spot; fees are counted from
    executions."""
    updated_time: int = 0
    reject_reason: str = ""
    cancel_type: str = ""

    def __post_init__(self) -> None:
        for name in ("qty", "price", "cum_exec_qty", "cum_exec_value", "avg_price", "cum_fee"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, Decimal):
                raise TypeError(f"OrderUpdate.{name} must be a Decimal (money is exact)")
        if self.cum_exec_qty < 0:
            raise ValueError("cumExecQty is negative")

    @classmethod
    def from_bybit(cls, data: Mapping[str, Any]) -> OrderUpdate:
        """Parse one item of an ``order`` push. ``cumExecValue`` missing but ``avgPrice`` present
        (some REST shapes) gives the value ``avgPrice x cumExecQty``."""
        cum_qty = optional_decimal(data.get("cumExecQty"), "cumExecQty") or ZERO
        cum_value = optional_decimal(data.get("cumExecValue"), "cumExecValue")
        avg = optional_decimal(data.get("avgPrice"), "avgPrice")
        if cum_value is None and avg is not None and avg > 0:
            cum_value = mul(avg, cum_qty)
        fee = optional_decimal(data.get("cumExecFee"), "cumExecFee")
        detail = data.get("cumFeeDetail")
        if isinstance(detail, Mapping) and len(detail) == 1:
            fee = to_decimal(next(iter(detail.values())), "cumFeeDetail")
        return cls(
            status=_text(data, "orderStatus"),
            order_link_id=_text(data, "orderLinkId"),
            order_id=_text(data, "orderId"),
            symbol=_text(data, "symbol"),
            qty=optional_decimal(data.get("qty"), "qty"),
            price=optional_decimal(data.get("price"), "price"),
            cum_exec_qty=cum_qty,
            cum_exec_value=cum_value,
            avg_price=avg,
            cum_fee=fee,
            updated_time=_ms(data.get("updatedTime")),
            reject_reason=_text(data, "rejectReason"),
            cancel_type=_text(data, "cancelType"),
        )
