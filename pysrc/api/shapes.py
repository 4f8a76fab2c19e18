"""The JSON shapes the API hands out, built in one place from the domain objects.

The runtime and the test harness both build their **order** and **position** dicts here, so a
client sees one shape whoever produced it, and money is always an exact decimal string.
:func:`dumps` is the one JSON encoder of the API (orjson; ``Decimal`` as its exact string, never a
float).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from pysrc.domain.orders import Order
from pysrc.domain.positions import Position

if TYPE_CHECKING:
    from pysrc.execution.model import OrderView, PositionView

_SECRET_WORDS = ("secret", "password", "api_key", "token", "private_key")


def dec(value: Decimal | None) -> str | None:
    """Exact string of a decimal (None stays None). Normalised only where it is an integer with
    an exponent (``1E+1`` -> ``10``), so ``"0.010"`` keeps the digits the exchange sent."""
    if value is None:
        return None
    text = str(value)
    if "E" in text or "e" in text:
        text = format(value, "f")
    return text


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return dec(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if isinstance(obj, Mapping):  # MappingProxyType and friends
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(content: Any) -> bytes:
    """JSON bytes of ``content``: Decimals as exact strings, datetimes ISO-8601, enums by value,
    dataclasses as objects, NaN/inf floats as null (orjson's rule)."""
    return orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS)


def order_view(order: Order) -> dict[str, Any]:
    """The API's **order** (see :class:`pysrc.api.backend.Backend`)."""
    return {
        "order_id": order.exchange_order_id or None,
        "client_order_id": order.order_link_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "order_type": order.order_type.value,
        "qty": dec(order.qty),
        "price": dec(order.price),
        "time_in_force": order.time_in_force.value,
        "status": order.state.value,
        "filled_qty": dec(order.filled_qty),
        "leaves_qty": dec(order.leaves_qty),
        "avg_fill_price": dec(order.avg_fill_price),
        "fees": dec(order.fees),
        "reduce_only": order.reduce_only,
        "strategy": order.strategy,
        "reason": order.reason,
        "created_at": order.created_at.isoformat(),
        "updated_at": order.history[-1].at.isoformat() if order.history else order.created_at.isoformat(),
        "version": order.version,
    }


def order_detail(order: Order) -> dict[str, Any]:
    """:func:`order_view` plus the recorded history (``GET /api/trading/orders/{id}``)."""
    out = order_view(order)
    out["history"] = [t.to_dict() for t in order.history]
    return out


def position_view(position: Position) -> dict[str, Any]:
    """The API's **position** (see :class:`pysrc.api.backend.Backend`)."""
    t = position.trailing
    return {
        "position_id": position.position_id,
        "symbol": position.symbol,
        "side": position.side.value,
        "status": position.state.value,
        "size": dec(position.size),
        "entry_price": dec(position.entry_price),
        "mark_price": dec(position.mark_price),
        "unrealised_pnl": dec(position.unrealised_pnl),
        "realised_pnl": dec(position.realised_pnl),
        "net_pnl": dec(position.net_pnl),
        "fees": dec(position.fees),
        "funding": dec(position.funding),
        "stop_loss": dec(position.stop_loss),
        "take_profit": dec(position.take_profit),
        "trailing": {
            "stop_active": t.stop_active,
            "take_profit_active": t.take_profit_active,
            "best_price": dec(t.best_price),
            "stop_price": dec(t.stop_price),
            "take_profit_price": dec(t.take_profit_price),
            "steps": t.steps,
        },
        "strategy": position.strategy,
        "opened_at": position.opened_at.isoformat() if position.opened_at else None,
        "closed_at": position.closed_at.isoformat() if position.closed_at else None,
        "close_reason": position.close_reason,
        "version": position.version,
    }


# ---- the same shapes from the execution layer's records (what the running bot stores) ----------


def iso(v: datetime | None) -> str | None:
    return None if v is None else v.isoformat()


def order_record_view(v: OrderView) -> dict[str, Any]:
    """The API's **order** from an :class:`~pysrc.execution.model.OrderView` (a stored row)."""
    return {
        "order_id": v.exchange_order_id, "client_order_id": v.order_link_id, "symbol": v.symbol,
        "side": v.side, "order_type": v.order_type, "qty": dec(v.qty), "price": dec(v.price),
        "status": v.state, "filled_qty": dec(v.filled_qty), "avg_fill_price": dec(v.avg_fill_price),
        "fees": dec(v.fees), "reduce_only": v.reduce_only, "strategy": v.strategy or "",
        "reason": v.error or "", "created_at": iso(v.created_at), "updated_at": iso(v.updated_at),
        "version": v.version, "mode": v.mode, "time_in_force": v.time_in_force,
    }


def position_record_view(p: PositionView, managed: Any = None) -> dict[str, Any]:
    """The API's **position** from a :class:`~pysrc.execution.model.PositionView`, with the
    position manager's protection and trailing state (``managed``) when it tracks one."""
    return {
        "position_id": p.position_id, "symbol": p.symbol, "side": p.side, "status": p.state,
        "size": dec(p.size), "entry_price": dec(p.entry_price), "mark_price": dec(p.mark_price),
        "unrealised_pnl": dec(p.unrealised_pnl if p.unrealised_pnl is not None else Decimal(0)),
        "realised_pnl": dec(p.realised_pnl), "fees": dec(p.fees),
        "stop_loss": dec(getattr(managed, "stop_loss", None)),
        "take_profit": dec(getattr(managed, "take_profit", None)),
        "trailing": managed.to_dict() if managed is not None and hasattr(managed, "to_dict") else {},
        "strategy": p.strategy or "", "opened_at": iso(p.opened_at), "version": 0,
    }


def redact(tree: Any, _key: str = "") -> Any:
    """A copy of a configuration tree with secrets replaced by ``"***"`` (empty values stay empty,
    so a reader can still see whether a key is set) and credentials removed from URLs."""
    if isinstance(tree, Mapping):
        return {k: redact(v, str(k)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [redact(v, _key) for v in tree]
    if isinstance(tree, str):
        if any(w in _key.lower() for w in _SECRET_WORDS):
            return "***" if tree else ""
        if "://" in tree and "@" in tree.split("://", 1)[1].split("/", 1)[0]:
            scheme, rest = tree.split("://", 1)
            host = rest.split("@", 1)[1]
            return f"{scheme}://***@{host}"
    return tree


__all__ = ["dec", "dumps", "order_detail", "order_view", "position_view", "redact"]
