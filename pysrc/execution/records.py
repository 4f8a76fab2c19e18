"""Between the domain entities and the stored rows.

The recorded history is the truth: an order's (or a position's) domain entity is rebuilt by
replaying its stored transitions through the state machine (``Order.replay`` /
``Position.replay``, same validation as live). That is why the history is written in lockstep
with the domain: transition ``seq`` *n* in the database is domain version *n*, and the first row
(written with the insert, ``from_state`` NULL) is the domain's first event from its initial state
(``submit`` from ``NEW`` for an order, ``open`` from ``PENDING_OPEN`` for a position). The row's
other columns (state, filled quantity, average price, fees, ...) are a denormalised copy of the
entity for queries and the API.

What a row cannot hold is kept in the first transition's metadata: the quantity and price the
order was submitted with (an amendment changes the row's), the request hash (idempotency).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pysrc.domain.fsm import Metadata, Transition
from pysrc.domain.orders import Order, OrderEvent, OrderState
from pysrc.domain.positions import Position, PositionEvent, PositionState
from pysrc.domain.values import ZERO, add, div, mul
from pysrc.store.repositories import OrderRow, PositionRow, TransitionRow

K_INITIAL_QTY = "initial_qty"
K_INITIAL_PRICE = "initial_price"
K_REQUEST_HASH = "request_hash"

_ORDER_REASON_STATES = frozenset({OrderState.REJECTED, OrderState.FAILED, OrderState.CANCELLED})


def order_transitions(rows: Sequence[TransitionRow]) -> list[Transition[OrderState, OrderEvent]]:
    """Stored order history -> domain transitions (``seq`` is the version; NULL is ``NEW``)."""
    return [
        Transition(
            version=r.seq,
            from_state=OrderState(r.from_state) if r.from_state is not None else OrderState.NEW,
            to_state=OrderState(r.to_state),
            event=OrderEvent(r.event),
            at=r.at,
            metadata=Metadata({str(k): str(v) for k, v in (r.metadata or {}).items()}),
        )
        for r in rows
    ]


def position_transitions(rows: Sequence[TransitionRow]) -> list[Transition[PositionState, PositionEvent]]:
    """Stored position history -> domain transitions (NULL is ``PENDING_OPEN``)."""
    return [
        Transition(
            version=r.seq,
            from_state=PositionState(r.from_state) if r.from_state is not None else PositionState.PENDING_OPEN,
            to_state=PositionState(r.to_state),
            event=PositionEvent(r.event),
            at=r.at,
            metadata=Metadata({str(k): str(v) for k, v in (r.metadata or {}).items()}),
        )
        for r in rows
    ]


def order_from_rows(row: OrderRow, history: Sequence[TransitionRow]) -> Order:
    """Rebuild the domain order by replaying its stored history (raises ``ReplayError`` if the
    history does not fit the state machine)."""
    ts = order_transitions(history)
    first = ts[0].metadata if ts else Metadata()
    qty = Decimal(first[K_INITIAL_QTY]) if K_INITIAL_QTY in first else row.qty
    price_text = first.get(K_INITIAL_PRICE)
    price = Decimal(price_text) if price_text else (row.price if K_INITIAL_PRICE not in first else None)
    initial = Order(
        order_link_id=row.order_link_id,
        symbol=row.symbol,
        side=row.side,  # type: ignore[arg-type]  # coerced by Order.__post_init__
        order_type=row.order_type,  # type: ignore[arg-type]
        qty=qty,
        price=price,
        time_in_force=row.time_in_force,  # type: ignore[arg-type]
        reduce_only=row.reduce_only,
        strategy=row.strategy or "",
        created_at=row.created_at,
    )
    return Order.replay(initial, ts)


def position_from_rows(row: PositionRow, history: Sequence[TransitionRow]) -> Position:
    initial = Position(
        position_id=str(row.id),
        symbol=row.symbol,
        side=row.side,  # type: ignore[arg-type]
        strategy=row.strategy or "",
        created_at=row.created_at,
    )
    return Position.replay(initial, position_transitions(history))


def order_fields(order: Order) -> dict[str, Any]:
    """The row columns that mirror the entity."""
    return {
        "state": order.state.value,
        "exchange_order_id": order.exchange_order_id or None,
        "qty": order.qty,
        "price": order.price,
        "filled_qty": order.filled_qty,
        "avg_fill_price": order.avg_fill_price,
        "fees": order.fees,
        "error": (order.reason or None) if order.state in _ORDER_REASON_STATES else None,
    }


def fills_of(position: Position) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    """``(entries, exits)`` as (qty, price) pairs, from the position's recorded fill events."""
    entries: list[tuple[Decimal, Decimal]] = []
    exits: list[tuple[Decimal, Decimal]] = []
    for t in position.history:
        if t.event in (PositionEvent.OPEN, PositionEvent.INCREASE):
            entries.append((Decimal(t.metadata["qty"]), Decimal(t.metadata["price"])))
        elif t.event in (PositionEvent.REDUCE, PositionEvent.CLOSE, PositionEvent.LIQUIDATE):
            exits.append((Decimal(t.metadata["qty"]), Decimal(t.metadata["price"])))
    return entries, exits


def average(pairs: Sequence[tuple[Decimal, Decimal]]) -> tuple[Decimal, Decimal | None]:
    """Total quantity and volume-weighted average price (exact sums, one division)."""
    qty = ZERO
    value = ZERO
    for q, p in pairs:
        qty = add(qty, q)
        value = add(value, mul(q, p))
    return qty, (div(value, qty) if qty else None)


def position_fields(position: Position) -> dict[str, Any]:
    """The row columns that mirror the entity. ``realised_pnl`` is stored net of fees and funding
    (the column's meaning; ``fees`` holds the trading fees alone); the entity keeps them apart."""
    _, exits = fills_of(position)
    _, exit_price = average(exits)
    fields: dict[str, Any] = {
        "state": position.state.value,
        "size": position.size,
        "entry_price": position.entry_price,
        "exit_price": exit_price,
        "realised_pnl": position.net_pnl,
        "fees": position.fees,
        "stop_loss": position.stop_loss,
        "take_profit": position.take_profit,
        "closed_at": position.closed_at,
    }
    if position.is_terminal:
        fields["exit_reason"] = position.close_reason or None
    return fields


__all__ = [
    "K_INITIAL_PRICE",
    "K_INITIAL_QTY",
    "K_REQUEST_HASH",
    "average",
    "fills_of",
    "order_fields",
    "order_from_rows",
    "order_transitions",
    "position_fields",
    "position_from_rows",
    "position_transitions",
]
