"""Public market data: a pool of Bybit v5 WebSockets feeding the native book engine.

See :class:`PublicFeed` and ``docs/connectivity-feed.md``.
"""

from __future__ import annotations

from pysrc.feed.backoff import Backoff
from pysrc.exchange.deadletter import DeadLetter, DeadLetterSink, MemoryDeadLetters
from pysrc.feed.events import BookUpdated, FeedEvent, Kline, Ticker, Trade, Trades
from pysrc.feed.loop import install_best_event_loop, run
from pysrc.feed.public import PublicFeed
from pysrc.feed.queue import FeedClosed, SymbolQueue
from pysrc.feed.resync import ResyncController
from pysrc.feed.topics import TopicSet, plan_connections, split_args

__all__ = [
    "Backoff",
    "BookUpdated",
    "DeadLetter",
    "DeadLetterSink",
    "FeedClosed",
    "FeedEvent",
    "Kline",
    "MemoryDeadLetters",
    "PublicFeed",
    "ResyncController",
    "SymbolQueue",
    "Ticker",
    "TopicSet",
    "Trade",
    "Trades",
    "install_best_event_loop",
    "plan_connections",
    "run",
    "split_args",
]
