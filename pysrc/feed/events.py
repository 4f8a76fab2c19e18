"""Events a consumer receives from ``PublicFeed.queue(symbol)``.

Prices and sizes stay the exchange's exact decimal strings (convert with ``Decimal`` where money is
computed). A :class:`BookUpdated` carries no levels: the native engine always holds the current
book, so the consumer reads what it needs (``feed.levels``, ``engine.top_of_book``) when it gets
to the notification, and one notification stands for any number of updates since the last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


@dataclass(frozen=True, slots=True)
class BookUpdated:
    """The symbol's book changed since the last notification: updates applied, or it became
    unusable (reconnect, resync) and will be rebuilt. Check ``feed.is_usable(symbol)``."""

    symbol: str


class Trade(NamedTuple):
    time: int
    """Fill time, ms (``T``)."""
    price: str
    size: str
    side: str
    """Taker side, ``Buy`` or ``Sell``."""
    trade_id: str
    block: bool = False


@dataclass(frozen=True, slots=True)
class Trades:
    """One ``publicTrade`` message: trades in ascending match time."""

    symbol: str
    ts: int
    trades: tuple[Trade, ...]


@dataclass(frozen=True, slots=True)
class Ticker:
    """One ``tickers`` message. Linear deltas carry only changed fields (``changes``); ``state``
    is the merged view after this message (snapshot replaced, then every delta merged)."""

    symbol: str
    ts: int
    kind: str
    changes: dict[str, Any]
    state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Kline:
    """One candle of a ``kline`` message; ``confirm`` is True once the candle has closed."""

    symbol: str
    interval: str
    start: int
    end: int
    open: str
    close: str
    high: str
    low: str
    volume: str
    turnover: str
    confirm: bool
    ts: int


FeedEvent = BookUpdated | Trades | Ticker | Kline

__all__ = ["BookUpdated", "FeedEvent", "Kline", "Ticker", "Trade", "Trades"]
