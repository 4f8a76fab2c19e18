"""Execution: idempotent order placement, the order and position state machines driven by the
venue's pushes, paper trading, reconciliation and the kill switch (``docs/execution.md``).

* :mod:`.venue`: the venue interface and the Bybit venue (``.paper``: paper trading);
* :mod:`.service`: :class:`OrderService`, placement, pushes, persistence, audit, events;
* :mod:`.reconcile`: :class:`Reconciler` and its reports;
* :mod:`.killswitch`: :class:`KillSwitchExecutor` and :class:`DailyLossMonitor`;
* :mod:`.model`: intents, views, errors; :mod:`.events`: the event bus and the layer's events.
"""

from __future__ import annotations

from .events import (
    EventBus,
    ExchangePositionUpdated,
    KillSwitchAlert,
    ReconciliationCompleted,
    WalletUpdated,
)
from .killswitch import DailyLossMonitor, KillSwitchExecutor, KillSwitchReport
from .model import (
    ExecutionError,
    OrderIntent,
    OrderOutcomePending,
    OrderView,
    PositionView,
    ServiceNotStarted,
    TradingHalted,
    request_hash,
)
from .reconcile import Discrepancy, Reconciler, ReconciliationReport, RepairAction
from .service import STEPS, OrderService, StepHook
from .venue import BybitVenue, OrderRequest, Venue

__all__ = [
    "STEPS",
    "BybitVenue",
    "DailyLossMonitor",
    "Discrepancy",
    "EventBus",
    "ExchangePositionUpdated",
    "ExecutionError",
    "KillSwitchAlert",
    "KillSwitchExecutor",
    "KillSwitchReport",
    "OrderIntent",
    "OrderOutcomePending",
    "OrderRequest",
    "OrderService",
    "OrderView",
    "PositionView",
    "Reconciler",
    "ReconciliationCompleted",
    "ReconciliationReport",
    "RepairAction",
    "ServiceNotStarted",
    "StepHook",
    "TradingHalted",
    "Venue",
    "WalletUpdated",
    "request_hash",
]
