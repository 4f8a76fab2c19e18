"""What happens to one received frame: the hot path of the public feed.

Every frame goes to ``BookEngine.apply(frame)`` first, in one call, as the raw bytes. The engine
parses Bybit book messages itself (no JSON parsing of order-book frames in Python) and returns
``(outcome, symbol)``:

* a book outcome with the symbol: count it, record the exchange-to-applied latency, notify the
  symbol's queue (``APPLIED``), or ask for a resync (``GAP``, ``CROSSED``, ``CHECKSUM_MISMATCH``);
* ``TRADES`` (engines with ``features=True`` consume ``publicTrade`` for the analytics): the trades
  are also parsed into a :class:`Trades` event when the feed hands trades to consumers;
* ``(SKIPPED, None)``: not a book message. Those frames are small (pong, ack, ticker, kline,
  trades) and only they are parsed with orjson here.

A frame the engine refuses (``MalformedMessage``) or that cannot be handled here goes to the
dead-letter sink with its raw bytes and the error, and the feed carries on. Nothing raises out of
:meth:`FramePipeline.on_frame`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from pysrc.book import ApplyOutcome
from pysrc.exchange.deadletter import DeadLetterSink
from pysrc.feed.events import Kline, Ticker, Trade, Trades
from pysrc.feed.metrics import SymbolMetrics
from pysrc.feed.queue import SymbolQueue

log = logging.getLogger("pysrc.feed.pipeline")

_APPLIED = int(ApplyOutcome.APPLIED)
_STALE = int(ApplyOutcome.STALE)
_WAITING = int(ApplyOutcome.WAITING)
_GAP = int(ApplyOutcome.GAP)
_CROSSED = int(ApplyOutcome.CROSSED)
_CHECKSUM = int(ApplyOutcome.CHECKSUM_MISMATCH)
_TRADES = int(ApplyOutcome.TRADES)
_BREAK_NAMES = {_GAP: "gap", _CROSSED: "crossed", _CHECKSUM: "checksum mismatch"}


class FrameEngine(Protocol):
    """What the pipeline uses of ``BookEngine``."""

    def apply(self, message: bytes | str) -> tuple[int, str | None]: ...
    def last_ts(self, symbol: str) -> int | None: ...


class FrameSource(Protocol):
    """The connection a frame came from: control frames are answered through it."""

    @property
    def name(self) -> str: ...
    def on_pong(self, req_id: str) -> None: ...
    def on_ack(self, req_id: str, op: str, success: bool, ret_msg: str) -> None: ...


class FramePipeline:
    def __init__(
        self,
        engine: FrameEngine,
        *,
        queues: dict[str, SymbolQueue],
        metrics: dict[str, SymbolMetrics],
        dead_letters: DeadLetterSink,
        on_break: Callable[[str, str], None],
        trade_events: bool = True,
        wall_ms: Callable[[], float] | None = None,
        on_applied: Callable[[str], None] | None = None,
        book_events: bool = True,
    ) -> None:
        """``on_break(symbol, reason)`` is called for every book that now needs a resync.
        ``on_applied(symbol)``, when given, is called synchronously right after a book message
        was applied, before the next frame is read: the lowest-latency place to act on a book
        (it must be quick and must not block; what it raises is logged and counted, never
        allowed to stop the reader). ``book_events=False`` leaves applied book messages out of
        the symbol queues, for a consumer that acts in ``on_applied`` and would only drain them
        (a task wake-up per message for nothing); resets and resyncs are still notified."""
        from pysrc._core import native  # the compiled core, resolved once

        self._apply = engine.apply
        self._last_ts = engine.last_ts
        self._malformed: tuple[type[Exception], ...] = (native.MalformedMessage, native.NativeError)
        self._queues = queues
        self._metrics = metrics
        self._dead = dead_letters
        self._on_break = on_break
        self._trade_events = trade_events
        self._wall_ms = wall_ms if wall_ms is not None else (lambda: time.time() * 1000.0)
        self._on_applied = on_applied
        self._book_events = book_events
        self.hook_errors = 0
        """Exceptions raised by ``on_applied`` (logged; the frame still counts as applied)."""
        self._tickers: dict[str, dict[str, Any]] = {}
        self.malformed = 0
        """Frames the engine refused."""
        self.unhandled = 0
        """Other frames that went to the dead letters (unknown topic or shape, foreign symbol)."""
        self.control = 0
        """Pongs and acks."""

    @property
    def dead_letters(self) -> DeadLetterSink:
        return self._dead

    def ticker(self, symbol: str) -> dict[str, Any] | None:
        """The merged ticker of ``symbol`` (a copy), or None before the first one."""
        state = self._tickers.get(symbol)
        return None if state is None else dict(state)

    def forget_ticker(self, symbol: str) -> None:
        """Linear ticker deltas only make sense on top of the snapshot of the same subscription."""
        self._tickers.pop(symbol, None)

    # ---- the hot path ---------------------------------------------------------------------------

    def on_frame(self, source: FrameSource, data: bytes | str) -> bool:
        """Handle one frame. Returns True for market data, False for control frames and errors
        (the connection's data-silence watchdog counts only data)."""
        try:
            outcome, symbol = self._apply(data)
        except self._malformed as exc:
            self.malformed += 1
            self._dead.put(source.name, data, f"{type(exc).__name__}: {exc}")
            return False
        if symbol is None:
            return self._other(source, data)
        m = self._metrics.get(symbol)
        if m is None:
            self.unhandled += 1
            self._dead.put(source.name, data, f"frame for unsubscribed symbol {symbol!r}")
            return False
        m.messages += 1
        if outcome == _APPLIED:
            m.applied += 1
            ts = self._last_ts(symbol)
            if ts is not None:
                m.latency.add(self._wall_ms() - ts)
            if self._book_events:
                self._queues[symbol].put_book()
            if self._on_applied is not None:
                try:
                    self._on_applied(symbol)
                except Exception:  # the hook's failure must never stop the reader
                    self.hook_errors += 1
                    log.exception("on_applied hook failed for %s", symbol)
        elif outcome == _STALE:
            m.stale += 1
        elif outcome == _WAITING:
            m.waiting += 1
        elif outcome == _TRADES:
            m.trades += 1
            if self._trade_events:
                self._guarded(source, data, self._trades_frame, None)
        elif outcome in _BREAK_NAMES:
            if outcome == _GAP:
                m.gaps += 1
            elif outcome == _CROSSED:
                m.crossed += 1
            else:
                m.checksum_failures += 1
            self._on_break(symbol, _BREAK_NAMES[outcome])
        return True

    # ---- everything that is not a book message ------------------------------------------------

    def _guarded(
        self, source: FrameSource, data: bytes | str, handler: Callable[[Any], bool], obj: Any
    ) -> bool:
        try:
            if obj is None:
                obj = orjson.loads(data)
            return handler(obj)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
            self.unhandled += 1
            self._dead.put(source.name, data, f"{type(exc).__name__}: {exc}")
            return False

    def _other(self, source: FrameSource, data: bytes | str) -> bool:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:  # the engine parsed it, so this is unexpected
            self.unhandled += 1
            self._dead.put(source.name, data, f"JSONDecodeError: {exc}")
            return False
        if not isinstance(obj, dict):
            return self._unhandled(source, data, "not a JSON object")
        topic = obj.get("topic")
        if topic is None:
            return self._control(source, data, obj)
        if not isinstance(topic, str):
            return self._unhandled(source, data, "topic is not a string")
        kind = topic.partition(".")[0]
        if kind == "publicTrade":
            handler = self._trades_frame
        elif kind == "tickers":
            handler = self._ticker_frame
        elif kind == "kline":
            handler = self._kline_frame
        else:
            return self._unhandled(source, data, f"unhandled topic {topic!r}")
        symbol = topic.rpartition(".")[2]
        m = self._metrics.get(symbol)
        if m is None:
            return self._unhandled(source, data, f"frame for unsubscribed symbol {symbol!r}")
        m.messages += 1
        if kind == "publicTrade":
            m.trades += 1
            if not self._trade_events:
                return True
        return self._guarded(source, data, handler, obj)

    def _unhandled(self, source: FrameSource, data: bytes | str, error: str) -> bool:
        self.unhandled += 1
        self._dead.put(source.name, data, error)
        return False

    def _control(self, source: FrameSource, data: bytes | str, obj: dict[str, Any]) -> bool:
        op = obj.get("op")
        req_id = obj.get("req_id") or ""
        if not isinstance(req_id, str):
            req_id = str(req_id)
        # Public linear pong: {"success":true,"ret_msg":"pong","op":"ping",...}; option and
        # private pongs use "op":"pong" (bybit-v5.md 1.4). Check both, as pybit does.
        if obj.get("ret_msg") == "pong" or op == "pong":
            self.control += 1
            source.on_pong(req_id)
            return False
        if op in ("subscribe", "unsubscribe"):
            self.control += 1
            ret_msg = obj.get("ret_msg")
            source.on_ack(req_id, op, obj.get("success") is True, ret_msg if isinstance(ret_msg, str) else "")
            return False
        return self._unhandled(source, data, "unhandled control frame")

    def _trades_frame(self, obj: dict[str, Any]) -> bool:
        symbol = obj["topic"].rpartition(".")[2]
        trades = tuple(
            Trade(int(t["T"]), t["p"], t["v"], t["S"], t["i"], bool(t.get("BT", False)))
            for t in obj["data"]
        )
        self._queues[symbol].put(Trades(symbol, int(obj.get("ts") or 0), trades))
        return True

    def _ticker_frame(self, obj: dict[str, Any]) -> bool:
        symbol = obj["topic"].rpartition(".")[2]
        data = obj["data"]
        if not isinstance(data, dict):
            raise TypeError("ticker data is not an object")
        kind = obj.get("type") or "snapshot"
        state = self._tickers.get(symbol)
        if kind == "snapshot" or state is None:
            state = self._tickers[symbol] = dict(data)
        else:
            state.update(data)
        self._metrics[symbol].tickers += 1
        self._queues[symbol].put(Ticker(symbol, int(obj.get("ts") or 0), kind, data, dict(state)))
        return True

    def _kline_frame(self, obj: dict[str, Any]) -> bool:
        topic: str = obj["topic"]
        symbol = topic.rpartition(".")[2]
        ts = int(obj.get("ts") or 0)
        queue = self._queues[symbol]
        candles = obj["data"]
        if not isinstance(candles, list):
            raise TypeError("kline data is not a list")
        events = [
            Kline(
                symbol,
                str(c["interval"]),
                int(c["start"]),
                int(c["end"]),
                c["open"],
                c["close"],
                c["high"],
                c["low"],
                c["volume"],
                c["turnover"],
                bool(c["confirm"]),
                int(c.get("timestamp") or ts),
            )
            for c in candles
        ]
        self._metrics[symbol].klines += len(events)
        for event in events:
            queue.put(event)
        return True


__all__ = ["FrameEngine", "FramePipeline", "FrameSource"]
