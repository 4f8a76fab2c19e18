"""Public WebSocket topics: order books, trades, tickers and klines, pushed at Bybit's rates.

Order books are the expensive part, so each ``orderbook.{depth}.{symbol}`` topic keeps

* the window its subscribers hold (``pub``: key -> lots per side, and the worst key in it), and
* the keys changed since its last push (``dirty``, filled by the book itself).

A push reconciles only the dirty keys plus the keys between the old and the new window edge.
A level that leaves the window gets an explicit ``"0"``, so a client that applies the deltas and
truncates to the depth holds exactly ``book.top(depth)``. Messages are serialised once per topic
push and the same frame goes to every subscriber.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from pysrc.sim.faults import Faults
from pysrc.sim.market import (
    INTERVALS,
    MINUTE_MS,
    SymbolMarket,
    _month_start,
    _week_start,
    interval_ms,
)
from pysrc.sim.wsconn import WsConn, text_frame

BOOK_DEPTHS = (1, 50, 200, 1000)
# Bybit linear push intervals per depth (ms), doc section 1.6.
PUSH_MS = {1: 10, 50: 20, 200: 100, 1000: 200}
LEVEL1_REPUSH_MS = 3000


class BookTopic:
    """Published state of one ``orderbook.{depth}.{symbol}`` topic."""

    __slots__ = (
        "bound",
        "depth",
        "dirty",
        "force",
        "held",
        "last_push_ms",
        "market",
        "pub",
        "subs",
        "topic",
        "u",
    )

    def __init__(self, market: SymbolMarket, depth: int, u: int) -> None:
        self.market = market
        self.depth = depth
        self.topic = f"orderbook.{depth}.{market.symbol}"
        self.u = u
        self.subs: list[WsConn] = []
        self.held: bytes | None = None
        self.last_push_ms = 0
        self.force: str | None = None
        book = market.book
        self.dirty: tuple[set[int], set[int]] = (set(), set())
        self.pub: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.bound: list[int | None] = [None, None]
        for i, side in enumerate((book.bids, book.asks)):
            keys = list(side.keys.islice(0, depth))
            self.pub[i].update((k, side.sizes[k]) for k in keys)
            self.bound[i] = keys[-1] if keys else None
            side.watchers.append(self.dirty[i])

    def close(self) -> None:
        book = self.market.book
        for i, side in enumerate((book.bids, book.asks)):
            side.watchers.remove(self.dirty[i])

    def _changes(self, i: int) -> list[tuple[int, int]]:
        """Bring ``pub[i]`` up to the book's current window; return the changed (key, lots)."""
        dirty = self.dirty[i]
        old = self.bound[i]
        side = self.market.book.asks if i else self.market.book.bids
        keys = side.keys
        n = len(keys)
        if not dirty:
            return []
        sizes = side.sizes
        pub = self.pub[i]
        depth = self.depth
        new: int | None = keys[depth - 1] if n >= depth else (keys[-1] if n else None)
        out: list[tuple[int, int]] = []
        for k in dirty:
            if new is not None and k <= new and k in sizes:
                s = sizes[k]
                if pub.get(k) != s:
                    pub[k] = s
                    out.append((k, s))
            elif k in pub:
                del pub[k]
                out.append((k, 0))
        dirty.clear()
        if old != new:
            if old is not None and (new is None or new < old):
                # window edge moved towards the touch: unchanged levels fell out of it
                for k in keys.irange(new, old, inclusive=(False, True)) if new is not None else keys.irange(None, old):
                    if k in pub:
                        del pub[k]
                        out.append((k, 0))
            elif new is not None:
                # window edge moved away: unchanged levels came into it
                for k in keys.irange(old, new, inclusive=(False, True)) if old is not None else keys.irange(None, new):
                    if k not in pub:
                        s = sizes[k]
                        pub[k] = s
                        out.append((k, s))
            self.bound[i] = new
        return out

    def levels(self, i: int, changes: list[tuple[int, int]] | None = None) -> list[list[str]]:
        inst = self.market.inst
        ps, ss = inst.price_str, inst.size_str
        if changes is None:
            items = sorted(self.pub[i].items())
        else:
            items = sorted(changes)
        if i == 0:
            return [[ps(-k), ss(s) if s else "0"] for k, s in items]
        return [[ps(k), ss(s) if s else "0"] for k, s in items]

    def snapshot_frame(self, ts: int) -> bytes:
        m = self.market
        data = {"s": m.symbol, "b": self.levels(0), "a": self.levels(1), "u": self.u, "seq": m.seq}
        if self.depth == 1:
            msg: dict[str, Any] = {"topic": self.topic, "ts": ts, "type": "snapshot", "data": data, "cts": m.change_ms}
        else:
            msg = {"topic": self.topic, "type": "snapshot", "ts": ts, "data": data, "cts": m.change_ms}
        return text_frame(orjson.dumps(msg))

    def delta_frame(self, ts: int, cb: list[tuple[int, int]], ca: list[tuple[int, int]]) -> bytes:
        m = self.market
        data = {"s": m.symbol, "b": self.levels(0, cb), "a": self.levels(1, ca), "u": self.u, "seq": m.seq}
        msg = {"topic": self.topic, "type": "delta", "ts": ts, "data": data, "cts": m.change_ms}
        return text_frame(orjson.dumps(msg))


class TickerTopic:
    __slots__ = ("last", "market", "subs", "topic")

    def __init__(self, market: SymbolMarket) -> None:
        self.market = market
        self.topic = f"tickers.{market.symbol}"
        self.subs: list[WsConn] = []
        self.last: dict[str, str] = {}


class KlineTopic:
    __slots__ = ("interval", "last_row", "last_start", "market", "subs", "topic")

    def __init__(self, market: SymbolMarket, interval: str) -> None:
        self.market = market
        self.interval = interval
        self.topic = f"kline.{interval}.{market.symbol}"
        self.subs: list[WsConn] = []
        self.last_start = -1
        self.last_row: list[int] | None = None


class Publisher:
    """All public topics of the exchange and the connections subscribed to them."""

    def __init__(self, markets: dict[str, SymbolMarket], faults: Faults) -> None:
        self.markets = markets
        self.faults = faults
        self.conns: set[WsConn] = set()
        self.books: dict[tuple[str, int], BookTopic] = {}
        self.tiers: dict[int, list[BookTopic]] = {d: [] for d in BOOK_DEPTHS}
        self.trades: dict[str, list[WsConn]] = {}
        self.tickers: dict[str, TickerTopic] = {}
        self.klines: dict[tuple[str, str], KlineTopic] = {}
        self._next_u: dict[tuple[str, int], int] = {}
        self.messages = 0
        self.frames = 0
        self.bytes = 0
        self.now_ms: Callable[[], int] = lambda: int(time.time() * 1000)

    # ---- subscription management -----------------------------------------------------------
    def parse_topic(self, topic: str) -> str | None:
        """None when ``topic`` is valid for this exchange, else Bybit's error text."""
        parts = topic.split(".")
        if len(parts) == 3 and parts[0] == "orderbook":
            if parts[1] not in ("1", "50", "200", "1000"):
                return "error:handler not found"
            sym = parts[2]
        elif len(parts) == 3 and parts[0] == "kline":
            if parts[1] not in INTERVALS:
                return "error:handler not found"
            sym = parts[2]
        elif len(parts) == 2 and parts[0] in ("publicTrade", "tickers"):
            sym = parts[1]
        else:
            return "error:handler not found"
        if sym not in self.markets:
            return f"Invalid symbol :[{topic}]"
        return None

    def subscribe(self, conn: WsConn, topic: str) -> None:
        """Add ``conn`` to ``topic`` and send it the topic's first message (snapshot)."""
        conn.topics.add(topic)
        parts = topic.split(".")
        now = self.now_ms()
        if parts[0] == "orderbook":
            depth, sym = int(parts[1]), parts[2]
            bt = self.books.get((sym, depth))
            if bt is None:
                m = self.markets[sym]
                u = self._next_u.get((sym, depth))
                if u is None:
                    u = 1_000_000 + (m.seq % 7_919) * 10 + depth
                bt = BookTopic(m, depth, u)
                self.books[(sym, depth)] = bt
                self.tiers[depth].append(bt)
            bt.subs.append(conn)
            self._send_one(conn, bt.snapshot_frame(now))
            bt.last_push_ms = now
        elif parts[0] == "publicTrade":
            self.trades.setdefault(parts[1], []).append(conn)
        elif parts[0] == "tickers":
            tt = self.tickers.get(parts[1])
            if tt is None:
                tt = self.tickers[parts[1]] = TickerTopic(self.markets[parts[1]])
                tt.last = tt.market.ticker(now)
            tt.subs.append(conn)
            self._send_one(conn, text_frame(orjson.dumps(
                {"topic": tt.topic, "type": "snapshot", "data": tt.last, "cs": tt.market.seq, "ts": now})))
        elif parts[0] == "kline":
            key = (parts[1], parts[2])
            kt = self.klines.get(key)
            if kt is None:
                kt = self.klines[key] = KlineTopic(self.markets[parts[2]], parts[1])
            kt.subs.append(conn)
            row = current_kline(kt.market, kt.interval, now)
            self._send_one(conn, kline_frame(kt, [(row, False)], now))

    def unsubscribe(self, conn: WsConn, topic: str) -> None:
        conn.topics.discard(topic)
        parts = topic.split(".")
        if parts[0] == "orderbook":
            key = (parts[2], int(parts[1]))
            bt = self.books.get(key)
            if bt is not None and conn in bt.subs:
                bt.subs.remove(conn)
                if not bt.subs:
                    self._retire(bt)
        elif parts[0] == "publicTrade":
            subs = self.trades.get(parts[1])
            if subs and conn in subs:
                subs.remove(conn)
                if not subs:
                    del self.trades[parts[1]]
        elif parts[0] == "tickers":
            tt = self.tickers.get(parts[1])
            if tt is not None and conn in tt.subs:
                tt.subs.remove(conn)
                if not tt.subs:
                    del self.tickers[parts[1]]
        elif parts[0] == "kline":
            kkey = (parts[1], parts[2])
            kt = self.klines.get(kkey)
            if kt is not None and conn in kt.subs:
                kt.subs.remove(conn)
                if not kt.subs:
                    del self.klines[kkey]

    def _retire(self, bt: BookTopic) -> None:
        key = (bt.market.symbol, bt.depth)
        # ``u`` keeps counting across resubscriptions, as on the real stream
        self._next_u[key] = bt.u + 1
        bt.close()
        del self.books[key]
        self.tiers[bt.depth].remove(bt)

    def remove(self, conn: WsConn) -> None:
        """Forget a closed connection."""
        for topic in list(conn.topics):
            self.unsubscribe(conn, topic)
        self.conns.discard(conn)

    def depths_of(self, symbol: str) -> list[int]:
        return [d for d in BOOK_DEPTHS if (symbol, d) in self.books]

    def rest_u(self, symbol: str) -> int:
        """``u`` for REST ``/v5/market/orderbook``: that of the 1000-level stream (doc 1.6)."""
        bt = self.books.get((symbol, 1000))
        if bt is not None:
            return bt.u
        return self._next_u.get((symbol, 1000), 1_000_000 + (self.markets[symbol].seq % 7_919) * 10 + 1000)

    # ---- sending -------------------------------------------------------------------------------
    def _send_one(self, conn: WsConn, frame: bytes) -> None:
        if conn.send(frame):
            self.frames += 1
            self.bytes += len(frame)
            if self.faults.drop_armed:
                self.faults.on_sent("public", 1)

    def _broadcast(self, subs: list[WsConn], frame: bytes) -> None:
        n = 0
        for c in subs:
            if c.send(frame):
                n += 1
        self.messages += 1
        self.frames += n
        self.bytes += n * len(frame)
        if self.faults.drop_armed and n:
            self.faults.on_sent("public", n)

    # ---- periodic pushes -----------------------------------------------------------------------
    def push_books(self, depth: int, now: int, phase: int | None = None) -> None:
        """One push of every ``orderbook.{depth}.*`` topic with changes in its window (only the
        symbols of clock slice ``phase`` when given)."""
        faults = self.faults
        for bt in list(self.tiers[depth]):
            if phase is not None and bt.market.phase != phase:
                continue
            fault = faults.take_book(bt.market.symbol, depth) if faults.book_pending else None
            if fault is None and bt.held is None and not (bt.dirty[0] or bt.dirty[1]):
                if depth == 1 and now - bt.last_push_ms >= LEVEL1_REPUSH_MS:
                    # level 1 re-sends its snapshot with the same u after 3 s without change
                    self._broadcast(bt.subs, bt.snapshot_frame(now))
                    bt.last_push_ms = now
                continue
            # Stamp each frame when it is built, as the exchange does ("ts: the timestamp that the
            # system generates the data"): a tier-wide stamp would charge the time spent building
            # the other topics' frames to every later one as latency.
            stamp = self.now_ms()
            cb = bt._changes(0) if bt.dirty[0] else []
            ca = bt._changes(1) if bt.dirty[1] else []
            changed = bool(cb or ca)
            if fault == "restart":
                bt.u = 1
                self._broadcast(bt.subs, bt.snapshot_frame(stamp))
                bt.last_push_ms = now
                continue
            if fault == "snapshot":
                bt.u += 1
                self._broadcast(bt.subs, bt.snapshot_frame(stamp))
                bt.last_push_ms = now
                continue
            if not changed:
                if fault is not None:
                    # the fault needs a delta to act on: keep it for the next push
                    faults.requeue_book(bt.market.symbol, depth, fault)
                if bt.held is not None:
                    self._broadcast(bt.subs, bt.held)
                    bt.held = None
                continue
            if fault == "gap":
                bt.u += 1
            bt.u += 1
            if depth == 1:
                frame = bt.snapshot_frame(stamp)
            else:
                frame = bt.delta_frame(stamp, cb, ca)
            bt.last_push_ms = now
            if fault == "out_of_order":
                bt.held = frame
                continue
            self._broadcast(bt.subs, frame)
            if fault == "duplicate":
                self._broadcast(bt.subs, frame)
            if bt.held is not None:
                self._broadcast(bt.subs, bt.held)
                bt.held = None

    def push_trades(self, now: int, phase: int | None = None) -> None:
        """Send the trades printed since the last call (``publicTrade`` is real time), for the
        symbols of clock slice ``phase`` when given."""
        for sym, m in self.markets.items():
            if not m.pending_trades or (phase is not None and m.phase != phase):
                continue
            subs = self.trades.get(sym)
            if subs:
                trades = m.pending_trades
                for i in range(0, len(trades), 1024):
                    data = [m.trade_dict(t) for t in trades[i:i + 1024]]
                    msg = {"topic": f"publicTrade.{sym}", "type": "snapshot", "ts": now, "data": data}
                    self._broadcast(subs, text_frame(orjson.dumps(msg)))
            m.pending_trades = []

    def push_tickers(self, now: int, phase: int | None = None) -> None:
        """Ticker deltas (only changed fields, plus ``symbol``) every 100 ms."""
        for tt in self.tickers.values():
            if phase is not None and tt.market.phase != phase:
                continue
            cur = tt.market.ticker(now)
            last = tt.last
            delta = {k: v for k, v in cur.items() if last.get(k) != v}
            if not delta:
                continue
            tt.last = cur
            delta["symbol"] = tt.market.symbol
            msg = {"topic": tt.topic, "type": "delta", "data": delta, "cs": tt.market.seq, "ts": now}
            self._broadcast(tt.subs, text_frame(orjson.dumps(msg)))

    def push_klines(self, now: int) -> None:
        """Current candle of every kline topic; a ``confirm: true`` copy when one closes."""
        for kt in self.klines.values():
            row = current_kline(kt.market, kt.interval, now)
            rows: list[tuple[list[int], bool]] = []
            if kt.last_row is not None and kt.last_start != row[0]:
                closed = kline_at(kt.market, kt.interval, kt.last_start)
                rows.append((closed, True))
            if row != kt.last_row or rows:
                rows.append((row, False))
            kt.last_start = row[0]
            kt.last_row = row
            if rows:
                self._broadcast(kt.subs, kline_frame(kt, rows, now))

    def drop_all(self) -> int:
        n = 0
        for c in list(self.conns):
            c.drop()
            n += 1
        return n

    def stall_all(self, seconds: float) -> int:
        until = time.monotonic() + seconds
        for c in self.conns:
            c.stalled_until = until
        return len(self.conns)


# ---- klines -----------------------------------------------------------------------------------------
def _bucket(interval: str, start_ms: int) -> int:
    if interval == "M":
        return _month_start(start_ms)
    if interval == "W":
        return _week_start(start_ms)
    ms = interval_ms(interval)
    return start_ms - start_ms % ms


def kline_at(m: SymbolMarket, interval: str, bucket: int) -> list[int]:
    """Aggregate the minute candles of bucket ``bucket`` (walks back from the newest)."""
    row: list[int] | None = None
    for c in reversed(m.candles.minutes):
        if c[0] < bucket:
            break
        if _bucket(interval, c[0]) != bucket:
            continue
        if row is None:
            row = [bucket, c[1], c[2], c[3], c[4], c[5], c[6]]
        else:
            row[1] = c[1]  # walking backwards: the earliest minute's open wins
            if c[5]:
                row[2] = max(row[2], c[2])
                row[3] = min(row[3], c[3])
            row[5] += c[5]
            row[6] += c[6]
    if row is None:
        last = m.last_ticks
        row = [bucket, last, last, last, last, 0, 0]
    return row


def current_kline(m: SymbolMarket, interval: str, now: int) -> list[int]:
    m.candles.roll(now)
    return kline_at(m, interval, _bucket(interval, now))


def kline_end(interval: str, start: int) -> int:
    if interval == "M":
        import datetime as _dt

        d = _dt.datetime.fromtimestamp(start / 1000, tz=_dt.UTC)
        nxt = _dt.datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=_dt.UTC)
        return int(nxt.timestamp() * 1000) - 1
    return start + INTERVALS[interval] * MINUTE_MS - 1


def kline_frame(kt: KlineTopic, rows: list[tuple[list[int], bool]], now: int) -> bytes:
    inst = kt.market.inst
    data = []
    for row, confirm in rows:
        data.append({
            "start": row[0], "end": kline_end(kt.interval, row[0]), "interval": kt.interval,
            "open": inst.price_str(row[1]), "close": inst.price_str(row[4]),
            "high": inst.price_str(row[2]), "low": inst.price_str(row[3]),
            "volume": inst.size_str(row[5]),
            "turnover": _value_str(row[6], inst.price_decimals + inst.qty_decimals),
            "confirm": confirm, "timestamp": now,
        })
    return text_frame(orjson.dumps({"topic": kt.topic, "type": "snapshot", "ts": now, "data": data}))


def _value_str(units: int, decimals: int) -> str:
    from decimal import Decimal

    return format(Decimal(units).scaleb(-decimals).normalize(), "f")
