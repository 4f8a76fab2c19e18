"""Bybit v5 public market data over a pool of asyncio WebSockets, into the native book engine.

Usage::

    engine = BookEngine("bybit", features=True)
    async with PublicFeed("wss://stream.bybit.com/v5/public/linear", engine,
                          symbols=["BTCUSDT", "ETHUSDT"], depth=50) as feed:
        await feed.wait_usable(timeout=10)
        async for event in feed.queue("BTCUSDT"):
            if isinstance(event, BookUpdated) and feed.is_usable("BTCUSDT"):
                bids, asks = feed.levels("BTCUSDT", 5)

Pieces (one module each): topic names, limits and the connection plan (``topics``), per-topic
subscription state (``subscriptions``), one supervised socket (``connection``), the per-frame hot
path (``pipeline``), resync with a rate limit (``resync``), per-pair queues (``queue``), counters
(``metrics``), reconnect delays (``backoff``), dead letters (``deadletter``). This module wires
them together and runs the feed-wide maintenance: deferred resyncs, books the engine lists in
``needs_resync()``, and books that stay without a snapshot too long after subscribing. The design
is described in ``docs/connectivity-feed.md``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp

from pysrc.feed.backoff import Backoff
from pysrc.feed.connection import ConnectionSettings, FeedConnection, Transport
from pysrc.exchange.deadletter import DeadLetterSink, MemoryDeadLetters
from pysrc.feed.metrics import SymbolMetrics
from pysrc.feed.pipeline import FramePipeline
from pysrc.feed.queue import SymbolQueue
from pysrc.feed.resync import ResyncController
from pysrc.feed.subscriptions import ACTIVE
from pysrc.feed.topics import DEFAULT_MAX_ARGS_PER_REQUEST, TopicSet, plan_connections

if TYPE_CHECKING:
    from pysrc._native import BookEngine

log = logging.getLogger("pysrc.feed")


class PublicFeed:
    """Public market data for ``symbols`` from one Bybit public WebSocket URL (one category)."""

    def __init__(
        self,
        url: str,
        engine: BookEngine,
        *,
        symbols: Sequence[str],
        depth: int = 50,
        topics: Sequence[str] = ("orderbook", "publicTrade"),
        kline_intervals: Sequence[str] = ("1",),
        pairs_per_connection: int = 10,
        queue_size: int = 1000,
        dead_letters: DeadLetterSink | None = None,
        ping_interval: float = 20.0,
        pong_timeout: float = 10.0,
        silence_timeout: float | None = 30.0,
        snapshot_timeout: float = 15.0,
        connect_timeout: float = 10.0,
        ack_timeout: float = 10.0,
        stable_after: float = 30.0,
        tick: float = 0.5,
        max_args_per_request: int | None = DEFAULT_MAX_ARGS_PER_REQUEST,
        backoff: Callable[[], Backoff] = Backoff,
        resync_min_interval: float = 1.0,
        resync_max_interval: float = 30.0,
        resync_cooldown: float = 60.0,
        trade_events: bool = True,
        on_book_applied: Callable[[str], None] | None = None,
        book_events: bool = True,
        transport: Transport = "native",
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], float] | None = None,
        name: str = "bybit.public",
    ) -> None:
        """
        ``engine``: a ``BookEngine("bybit", ...)``; create it with ``features=True`` to keep
        the analytics current (trades then feed its trade flow). ``depth``: orderbook topic depth
        (1, 50, 200 or 1000). ``topics``: kinds among ``orderbook, publicTrade, tickers, kline``.
        ``backoff``: factory of one :class:`Backoff` per connection (reconnect delays).
        ``book_events=False``: applied book messages are not notified in the symbol queues (for a
        consumer that acts in ``on_book_applied``); resets and resyncs still are.
        ``snapshot_timeout``: a subscribed book still without a snapshot after this many seconds
        is resynced. ``transport``: ``"native"`` (default; :mod:`pysrc.feed.wsproto`, frames applied
        inside the socket read) or ``"aiohttp"`` (the fallback). ``session``: an aiohttp session
        for the aiohttp transport (not closed by the feed); by default the feed opens and closes
        its own. The other timings are described in
        :class:`ConnectionSettings` and ``docs/connectivity-feed.md``.
        """
        if engine.exchange != "bybit":
            raise ValueError(f"PublicFeed needs a bybit engine, got {engine.exchange!r}")
        self.url = url
        self.engine = engine
        self.name = name
        self.topic_set = TopicSet(tuple(topics), depth, tuple(kline_intervals))
        self.symbols: tuple[str, ...] = tuple(symbols)
        if not self.symbols:
            raise ValueError("no symbols")
        self._plan = plan_connections(
            self.symbols, self.topic_set, pairs_per_connection=pairs_per_connection
        )
        self._settings = ConnectionSettings(
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            silence_timeout=silence_timeout,
            connect_timeout=connect_timeout,
            ack_timeout=ack_timeout,
            stable_after=stable_after,
            tick=tick,
            max_args_per_request=max_args_per_request,
            transport=transport,
        )
        self._backoff_factory = backoff
        self._snapshot_timeout = snapshot_timeout
        self._tick = tick
        self._clock = clock
        self._dead_letters: DeadLetterSink = dead_letters if dead_letters is not None else MemoryDeadLetters()
        self._queues = {s: SymbolQueue(s, queue_size) for s in self.symbols}
        self._symbol_metrics = {s: SymbolMetrics(s) for s in self.symbols}
        self._pipeline = FramePipeline(
            engine,
            queues=self._queues,
            metrics=self._symbol_metrics,
            dead_letters=self._dead_letters,
            on_break=self._on_break,
            trade_events=trade_events,
            wall_ms=wall_ms,
            on_applied=on_book_applied,
            book_events=book_events,
        )
        self._resync = ResyncController(
            engine,
            self._resubscribe_book,
            on_reset=self._on_resync_reset,
            min_interval=resync_min_interval,
            max_interval=resync_max_interval,
            cooldown=resync_cooldown,
            clock=clock,
        )
        self._session = session
        self._own_session = session is None
        self._connections: list[FeedConnection] = []
        self._conn_of: dict[str, FeedConnection] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._not_live_since: dict[str, float] = {}
        self._started = False
        self._closed = False
        self._rate_mark: tuple[float, int] | None = None
        self._started_at: float | None = None

    # ---- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the connection pool (returns at once; connections come up in the background)."""
        if self._started:
            raise RuntimeError("feed already started")
        if self._closed:
            raise RuntimeError("feed is closed")
        self._started = True
        if self._session is None and self._settings.transport == "aiohttp":
            self._session = aiohttp.ClientSession()
        for index, group in enumerate(self._plan):
            topics = [t for s in group for t in self.topic_set.for_symbol(s)]
            conn = FeedConnection(
                f"{self.name}/{index}",
                self.url,
                group,
                topics,
                session=self._session,
                pipeline=self._pipeline,
                settings=self._settings,
                backoff=self._backoff_factory(),
                on_connect=self._on_connect,
                on_disconnect=self._on_disconnect,
                clock=self._clock,
            )
            self._connections.append(conn)
            for symbol in group:
                self._conn_of[symbol] = conn
        log.info(
            "%s: starting %d connection(s) for %d symbol(s) at %s",
            self.name,
            len(self._connections),
            len(self.symbols),
            self.url,
        )
        self._rate_mark = (self._clock(), 0)
        self._started_at = self._clock()
        for conn in self._connections:
            self._tasks.append(asyncio.create_task(conn.run(), name=f"{conn.name}-run"))
        self._tasks.append(asyncio.create_task(self._maintain(), name=f"{self.name}-maintenance"))

    async def close(self) -> None:
        """Stop every connection and background task, then close the queues (consumers waiting
        on ``get`` see :class:`~pysrc.feed.queue.FeedClosed`). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for conn in self._connections:
            await conn.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._own_session and self._session is not None:
            await self._session.close()
        for queue in self._queues.values():
            queue.close()
        log.info("%s: closed", self.name)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---- consumer API ------------------------------------------------------------------------------

    def queue(self, symbol: str) -> SymbolQueue:
        """The event queue of ``symbol`` (book notifications, trades, tickers, klines)."""
        return self._queues[symbol]

    def is_usable(self, symbol: str) -> bool:
        """True when the book is live: built from a snapshot on the current connection with every
        delta since applied in order. False while it waits for a snapshot (start, reconnect,
        resync) or after a gap/crossing, when it must not be used."""
        engine = self.engine
        return engine.has_book(symbol) and engine.is_live(symbol)

    def levels(
        self, symbol: str, depth: int | None = None
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]] | None:
        """Top ``depth`` levels (default: the subscribed depth) as exact decimal strings, or
        None when the book is not usable."""
        if not self.is_usable(symbol):
            return None
        return self.engine.levels(symbol, self.topic_set.depth if depth is None else depth)

    def ticker(self, symbol: str) -> dict[str, Any] | None:
        """The merged ticker of ``symbol`` (snapshot plus every delta since), or None."""
        return self._pipeline.ticker(symbol)

    async def wait_usable(self, symbols: Iterable[str] | None = None, timeout: float = 30.0) -> bool:
        """Wait until every book of ``symbols`` (default: all) is usable; False on timeout."""
        wanted = list(self.symbols if symbols is None else symbols)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if all(self.is_usable(s) for s in wanted):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)

    def resync(self, symbol: str, reason: str = "requested") -> bool:
        """Resync one book now (rate-limited). True if performed, False if deferred."""
        if symbol not in self._conn_of and symbol not in self._queues:
            raise KeyError(symbol)
        return self._resync.request(symbol, reason)

    @property
    def dead_letters(self) -> DeadLetterSink:
        return self._dead_letters

    @property
    def connections(self) -> tuple[FeedConnection, ...]:
        return tuple(self._connections)

    @property
    def plan(self) -> list[list[str]]:
        """Symbols per connection, in order."""
        return [list(group) for group in self._plan]

    def connection_of(self, symbol: str) -> FeedConnection:
        return self._conn_of[symbol]

    def subscriptions(self) -> dict[str, str]:
        """Every topic and its subscription state (``new, pending, active, retry, failed``)."""
        out: dict[str, str] = {}
        for conn in self._connections:
            out.update(conn.tracker.states())
        return out

    # ---- callbacks: connections, pipeline, resync ---------------------------------------------------

    def _reset_books(self, conn: FeedConnection, count: bool) -> None:
        engine = self.engine
        now = self._clock()
        for symbol in conn.symbols:
            self._resync.forget(symbol)
            self._pipeline.forget_ticker(symbol)
            self._not_live_since[symbol] = now
            if engine.has_book(symbol):
                engine.reset(symbol)
                if count:
                    self._symbol_metrics[symbol].resets += 1
                self._queues[symbol].put_book()

    def _on_connect(self, conn: FeedConnection) -> None:
        # Before subscribing: nothing from an earlier socket may survive into this one.
        self._reset_books(conn, count=False)

    def _on_disconnect(self, conn: FeedConnection) -> None:
        # The books stop being current the moment the socket is gone, not when it comes back.
        self._reset_books(conn, count=True)

    def _on_break(self, symbol: str, reason: str) -> None:
        self._resync.request(symbol, reason)

    def _on_resync_reset(self, symbol: str) -> None:
        self._symbol_metrics[symbol].resyncs += 1
        self._not_live_since[symbol] = self._clock()
        self._queues[symbol].put_book()

    def _resubscribe_book(self, symbol: str) -> bool:
        topic = self.topic_set.orderbook(symbol)
        conn = self._conn_of.get(symbol)
        if topic is None or conn is None:
            return False
        return conn.resubscribe(topic)

    # ---- maintenance ----------------------------------------------------------------------------------

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            try:
                self.maintain()
            except Exception:  # keep maintaining; a bug here must not end the feed
                log.exception("%s: maintenance failed", self.name)

    def maintain(self) -> None:
        """One maintenance pass (the feed runs it every ``tick``; public for tests and tools)."""
        resync = self._resync
        resync.poll()
        engine = self.engine
        for symbol in engine.needs_resync():
            conn = self._conn_of.get(symbol)
            if conn is not None and conn.connected:
                resync.request(symbol, "engine reports needs_resync")
        if self.topic_set.orderbook(self.symbols[0]) is None:
            return
        now = self._clock()
        not_live = self._not_live_since
        for conn in self._connections:
            if not conn.connected:
                continue
            tracker = conn.tracker
            for symbol in conn.symbols:
                if self.is_usable(symbol):
                    not_live.pop(symbol, None)
                    continue
                topic = self.topic_set.orderbook(symbol)
                if topic is None or tracker.state(topic) != ACTIVE:
                    not_live[symbol] = now  # the subscription itself is being handled
                    continue
                since = not_live.setdefault(symbol, now)
                if now - since >= self._snapshot_timeout:
                    not_live[symbol] = now
                    resync.request(symbol, f"no snapshot within {self._snapshot_timeout}s")

    # ---- metrics ------------------------------------------------------------------------------------

    def latency_samples(self, symbol: str) -> list[float]:
        """The retained exchange-to-applied latency samples of ``symbol`` in ms (the most recent
        ones, unordered), e.g. to pool percentiles over many symbols."""
        return self._symbol_metrics[symbol].latency.samples()

    def metrics(self) -> dict[str, Any]:
        """Counters per connection, per symbol and in total (see docs/connectivity-feed.md).
        ``totals.msgs_per_s`` is the rate since the previous call (or the start)."""
        now = self._clock()
        connections = {c.name: c.snapshot(now) for c in self._connections}
        symbols: dict[str, Any] = {}
        pending = self._resync.pending()
        for symbol, m in self._symbol_metrics.items():
            entry = m.snapshot()
            entry.update(self._queues[symbol].stats())
            entry["usable"] = self.is_usable(symbol)
            entry["state"] = self.engine.state(symbol) if self.engine.has_book(symbol) else "no_book"
            entry["connection"] = self._conn_of[symbol].name if symbol in self._conn_of else None
            entry["resync_pending"] = symbol in pending
            symbols[symbol] = entry
        messages = sum(c.metrics.messages for c in self._connections)
        rate = None
        if self._rate_mark is not None:
            t0, n0 = self._rate_mark
            if now > t0:
                rate = (messages - n0) / (now - t0)
            self._rate_mark = (now, messages)
        dead = self._dead_letters
        totals: dict[str, Any] = {
            "connections": len(self._connections),
            "connected": sum(1 for c in self._connections if c.connected),
            "messages": messages,
            "bytes": sum(c.metrics.bytes for c in self._connections),
            "msgs_per_s": rate,
            "msgs_per_s_since_start": (
                messages / (now - self._started_at)
                if self._started_at is not None and now > self._started_at
                else None
            ),
            "applied": sum(m.applied for m in self._symbol_metrics.values()),
            "resyncs": sum(m.resyncs for m in self._symbol_metrics.values()),
            "gaps": sum(m.gaps for m in self._symbol_metrics.values()),
            "dropped": sum(q.dropped for q in self._queues.values()),
            "usable": sum(1 for s in self.symbols if self.is_usable(s)),
            "malformed": self._pipeline.malformed,
            "unhandled": self._pipeline.unhandled,
            "dead_letters": dead.count if isinstance(dead, MemoryDeadLetters) else None,
        }
        return {"connections": connections, "symbols": symbols, "totals": totals}


__all__ = ["PublicFeed"]
