"""Domain events: small immutable facts for later publication (Redis streams, the API's WebSocket
hub, the audit log). They are derived from recorded transitions, never the other way round: the
transition history is the source of truth, an event is a notification about it.

Every event has ``to_dict()`` (JSON-ready: enum values, ISO times, decimals as exact strings) with
a ``type`` field naming the class, so a consumer can dispatch without importing this module.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from pysrc.domain.fsm import InvalidTransition
from pysrc.domain.orders import Order, OrderTransition
from pysrc.domain.positions import (
    Position,
    PositionEvent,
    PositionState,
    PositionTransition,
)


def _json(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    occurred_at: datetime

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": type(self).__name__}
        for f in fields(self):
            out[f.name] = _json(getattr(self, f.name))
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderTransitioned(DomainEvent):
    """An order changed (or recorded an update): one per recorded transition."""

    order_link_id: str
    exchange_order_id: str
    symbol: str
    strategy: str
    from_state: str
    to_state: str
    event: str
    version: int
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionChanged(DomainEvent):
    """A position changed (or recorded an update): one per recorded transition."""

    position_id: str
    symbol: str
    side: str
    strategy: str
    from_state: str
    to_state: str
    event: str
    version: int
    size: Decimal
    entry_price: Decimal | None
    realised_pnl: Decimal
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionOpened(DomainEvent):
    position_id: str
    symbol: str
    side: str
    strategy: str
    size: Decimal
    entry_price: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionClosed(DomainEvent):
    """A round trip ended (``CLOSED`` or ``LIQUIDATED``): what the trades table records."""

    position_id: str
    symbol: str
    side: str
    strategy: str
    state: str
    reason: str
    realised_pnl: Decimal
    fees: Decimal
    funding: Decimal
    net_pnl: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class TransitionRefused(DomainEvent):
    """An event the state machine refused (:class:`InvalidTransition`), for the log and the audit
    trail: a refusal is never silent."""

    entity: str
    entity_id: str
    state: str
    event: str
    reason: str


def order_transitioned(order: Order, t: OrderTransition) -> OrderTransitioned:
    """The event for transition ``t`` of ``order`` (call right after it was applied, so the order's
    figures are the ones the transition produced)."""
    return OrderTransitioned(
        occurred_at=t.at,
        order_link_id=order.order_link_id,
        exchange_order_id=order.exchange_order_id,
        symbol=order.symbol,
        strategy=order.strategy,
        from_state=t.from_state.value,
        to_state=t.to_state.value,
        event=t.event.value,
        version=t.version,
        filled_qty=order.filled_qty,
        avg_fill_price=order.avg_fill_price,
        metadata=t.metadata.as_dict(),
    )


def position_events(position: Position, t: PositionTransition) -> list[DomainEvent]:
    """``PositionChanged`` for ``t``, plus ``PositionOpened`` / ``PositionClosed`` when it opened
    or ended a round trip (call right after it was applied)."""
    out: list[DomainEvent] = [
        PositionChanged(
            occurred_at=t.at,
            position_id=position.position_id,
            symbol=position.symbol,
            side=position.side.value,
            strategy=position.strategy,
            from_state=t.from_state.value,
            to_state=t.to_state.value,
            event=t.event.value,
            version=t.version,
            size=position.size,
            entry_price=position.entry_price,
            realised_pnl=position.realised_pnl,
            metadata=t.metadata.as_dict(),
        )
    ]
    if t.event is PositionEvent.OPEN:
        out.append(
            PositionOpened(
                occurred_at=t.at,
                position_id=position.position_id,
                symbol=position.symbol,
                side=position.side.value,
                strategy=position.strategy,
                size=position.size,
                entry_price=position.entry_price,
            )
        )
    elif (
        t.to_state in (PositionState.CLOSED, PositionState.LIQUIDATED)
        and t.from_state is not t.to_state
    ):
        out.append(
            PositionClosed(
                occurred_at=t.at,
                position_id=position.position_id,
                symbol=position.symbol,
                side=position.side.value,
                strategy=position.strategy,
                state=t.to_state.value,
                reason=position.close_reason,
                realised_pnl=position.realised_pnl,
                fees=position.fees,
                funding=position.funding,
                net_pnl=position.net_pnl,
            )
        )
    return out


def transition_refused(error: InvalidTransition, at: datetime) -> TransitionRefused:
    f = error.log_fields()
    return TransitionRefused(
        occurred_at=at,
        entity=f["entity"],
        entity_id=f["entity_id"],
        state=f["state"],
        event=f["event"],
        reason=f["reason"],
    )
