"""One bounded queue per pair, with backpressure that never blocks the WebSocket reader.

Policy (explicit, because a market-data feed must choose what to lose when a consumer is slow):

* **Book notifications coalesce.** The native engine always holds the current book, so a
  consumer needs to know *that* it changed, not every intermediate state. At most one
  :class:`BookUpdated` per symbol is pending; further updates while it waits are merged into it
  (``coalesced`` counts them). A book notification is never dropped and takes no room from the
  other events.
* **Other events drop the oldest.** Trades, tickers and klines go into a FIFO of at most
  ``maxsize`` entries. When it is full the oldest one is discarded to make room (recent data is
  worth more than old data to a trading strategy), ``dropped`` is incremented and the queue is
  flagged ``lagging`` until the consumer has emptied it.
* **The producer never waits.** ``put``/``put_book`` are synchronous and O(1); only the consumer
  awaits (``get``, ``async for``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from pysrc.feed.events import BookUpdated, FeedEvent


class FeedClosed(Exception):
    """The feed was closed and the queue is empty: no event will ever come."""


class SymbolQueue:
    """Events of one symbol, oldest first. Safe for one or several consumer tasks on one loop."""

    __slots__ = (
        "_book",
        "_book_pending",
        "_closed",
        "_items",
        "_maxsize",
        "_others",
        "_waiters",
        "coalesced",
        "dropped",
        "high_water",
        "lagging",
        "symbol",
    )

    def __init__(self, symbol: str, maxsize: int = 1000) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.symbol = symbol
        self._items: deque[FeedEvent] = deque()
        self._book = BookUpdated(symbol)  # one shared instance: a notification allocates nothing
        self._book_pending = False
        self._others = 0
        self._maxsize = maxsize
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self.dropped = 0
        """Events (not book notifications) discarded because the queue was full."""
        self.coalesced = 0
        """Book updates merged into an already pending notification."""
        self.lagging = False
        """True from the first drop until the consumer empties the queue."""
        self.high_water = 0
        """Most non-book events ever waiting at once."""

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    @property
    def book_pending(self) -> bool:
        return self._book_pending

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- producer side (never blocks) ------------------------------------------------------

    def put_book(self) -> None:
        """Note that the book changed (coalesced with a pending notification)."""
        if self._book_pending:
            self.coalesced += 1
            return
        self._book_pending = True
        self._items.append(self._book)
        self._wake()

    def put(self, event: FeedEvent) -> None:
        """Queue a non-book event, discarding the oldest one if the queue is full."""
        if isinstance(event, BookUpdated):
            self.put_book()
            return
        if self._others >= self._maxsize:
            items = self._items
            if items[0] is self._book:
                del items[1]  # keep the book notification; drop the oldest event behind it
            else:
                items.popleft()
            self._others -= 1
            self.dropped += 1
            self.lagging = True
        self._items.append(event)
        self._others += 1
        self.high_water = max(self.high_water, self._others)
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """No more events will come; waiting consumers get :class:`FeedClosed` once it is empty."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # ---- consumer side ---------------------------------------------------------------------

    def get_nowait(self) -> FeedEvent:
        items = self._items
        if not items:
            if self._closed:
                raise FeedClosed(self.symbol)
            raise asyncio.QueueEmpty
        event = items.popleft()
        if event is self._book:
            self._book_pending = False
        else:
            self._others -= 1
        if not items:
            self.lagging = False  # caught up
        return event

    async def get(self) -> FeedEvent:
        while not self._items:
            if self._closed:
                raise FeedClosed(self.symbol)
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # Pass a wake-up we may have consumed on to the next consumer.
                if waiter.done() and not waiter.cancelled() and self._items:
                    self._wake()
                raise
        return self.get_nowait()

    def __aiter__(self) -> AsyncIterator[FeedEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[FeedEvent]:
        while True:
            try:
                yield await self.get()
            except FeedClosed:
                return

    def stats(self) -> dict[str, int | bool]:
        return {
            "size": len(self._items),
            "dropped": self.dropped,
            "coalesced": self.coalesced,
            "lagging": self.lagging,
            "high_water": self.high_water,
        }


__all__ = ["FeedClosed", "SymbolQueue"]
