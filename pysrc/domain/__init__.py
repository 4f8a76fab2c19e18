"""Domain layer: order and position state machines, their entities, exchange-push reducers,
client order ids and domain events. Pure Python with ``Decimal`` money; it imports nothing from
the layers above it (execution, store, exchange I/O), so everything here is testable alone.

See ``docs/state-machines.md`` (generated in part from the tables in this package).
"""

from __future__ import annotations

from pysrc.domain.fsm import (
    DomainError,
    ForeignUpdate,
    InvalidTransition,
    Metadata,
    ReplayError,
    Rule,
    Transition,
    TransitionTable,
)
from pysrc.domain.ids import (
    ClientOrderIdGenerator,
    check_order_link_id,
    is_valid_order_link_id,
    new_client_order_id,
    parse_client_order_id,
)
from pysrc.domain.orders import (
    EXCHANGE_STATUS,
    ORDER_TABLE,
    Order,
    OrderEvent,
    OrderState,
    OrderTransition,
    UnknownExchangeStatus,
    on_exchange_update,
    on_submit_accepted,
    on_submit_rejected,
)
from pysrc.domain.positions import (
    POSITION_TABLE,
    Position,
    PositionEvent,
    PositionState,
    PositionTransition,
    PositionUpdate,
    TrailingState,
    on_execution,
)
from pysrc.domain.values import Execution, OrderType, OrderUpdate, Side, TimeInForce

__all__ = [
    "EXCHANGE_STATUS",
    "ORDER_TABLE",
    "POSITION_TABLE",
    "ClientOrderIdGenerator",
    "DomainError",
    "Execution",
    "ForeignUpdate",
    "InvalidTransition",
    "Metadata",
    "Order",
    "OrderEvent",
    "OrderState",
    "OrderTransition",
    "OrderType",
    "OrderUpdate",
    "Position",
    "PositionEvent",
    "PositionState",
    "PositionTransition",
    "PositionUpdate",
    "ReplayError",
    "Rule",
    "Side",
    "TimeInForce",
    "TrailingState",
    "Transition",
    "TransitionTable",
    "UnknownExchangeStatus",
    "check_order_link_id",
    "is_valid_order_link_id",
    "new_client_order_id",
    "on_exchange_update",
    "on_execution",
    "on_submit_accepted",
    "on_submit_rejected",
    "parse_client_order_id",
]
