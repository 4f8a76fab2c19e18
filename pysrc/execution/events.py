"""Events the execution layer publishes, and the small bus that carries them.

The domain's events (``pysrc.domain.events``: ``OrderTransitioned``, ``PositionChanged``,
``PositionOpened``, ``PositionClosed``, ``TransitionRefused``) are published after the change they
describe has been committed, so a subscriber never sees a change that was rolled back. The events
below are the execution layer's own: the exchange's view of positions and the wallet (market data
about the account, not lifecycle), reconciliation runs, and kill-switch alerts.

Subscribers are async callbacks (the API's WebSocket hub, the status page, the alert sender). A
subscriber that raises is logged and skipped; it never breaks the publisher or the other
subscribers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pysrc.domain.events import DomainEvent

log = logging.getLogger(__name__)

Subscriber = Callable[[DomainEvent], Awaitable[None]]


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangePositionUpdated(DomainEvent):
    """A ``position`` push (or snapshot): the exchange's size, entry, mark and unrealised PnL."""

    symbol: str
    side: str
    size: Decimal
    entry_price: Decimal | None
    mark_price: Decimal | None
    unrealised_pnl: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class WalletUpdated(DomainEvent):
    equity: Decimal | None
    wallet_balance: Decimal | None
    available: Decimal | None
    unrealised_pnl: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconciliationCompleted(DomainEvent):
    trigger: str
    discrepancies: int
    actions: int
    errors: int
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class KillSwitchAlert(DomainEvent):
    """Critical: trading was halted (``engaged``) or re-enabled by a person (``released``)."""

    action: str
    actor: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


class EventBus:
    """A list of async subscribers; ``publish`` awaits each in turn."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self.published = 0
        self.subscriber_errors = 0

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add ``callback``; returns a function that removes it."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    async def publish(self, event: DomainEvent) -> None:
        self.published += 1
        for cb in list(self._subscribers):
            try:
                await cb(event)
            except Exception:
                self.subscriber_errors += 1
                log.exception("event subscriber %r failed on %s", cb, type(event).__name__)

    async def publish_all(self, events: list[DomainEvent]) -> None:
        for e in events:
            await self.publish(e)


__all__ = [
    "EventBus",
    "ExchangePositionUpdated",
    "KillSwitchAlert",
    "ReconciliationCompleted",
    "Subscriber",
    "WalletUpdated",
]
