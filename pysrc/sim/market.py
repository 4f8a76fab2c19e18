"""Per-symbol market: the stochastic order-flow model, public trades, candles and ticker.

The model (all in integer ticks and lots, one seeded ``random.Random`` per symbol):

* a *fair value* random walk in ticks (jumps of a few ticks, size scaled to the instrument);
* limit orders arriving around the fair value, their distance from it geometric (dense near the
  touch, thinning out), plus a small share spread uniformly over the deep book; a limit that
  crosses the opposite best is marketable: it trades through and rests the remainder;
* cancellations, mostly near the touch, of part or all of a level's anonymous liquidity;
* market orders whose side leans towards the fair value, sizes with a heavy tail, walking the
  book and printing public trades;
* walls: large clusters of 1-3 adjacent levels a few ticks from the touch that appear and are
  withdrawn after an exponential lifetime.

The model advances in fixed steps of :data:`STEP_MS` of model time. The sequence of book states
is a function of the seed and the number of steps only, which is what the determinism test
checks; the server maps wall-clock time onto steps.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pysrc.sim.book import Book, MakerFill, RestingOrder, Side
from pysrc.sim.instruments import Instrument

STEP_MS = 10
MINUTE_MS = 60_000
DAY_MINUTES = 1440
BACKFILL_MINUTES = DAY_MINUTES + 120
INITIAL_LEVELS = 1200
MIN_LEVELS = 1050
MAX_LEVELS = 1600


@dataclass(slots=True)
class Trade:
    """One public trade (one price level of one taker order)."""

    time_ms: int
    buy: bool  # taker side
    ticks: int
    lots: int
    trade_id: str
    tick_direction: str
    seq: int


@dataclass(slots=True)
class Wall:
    is_bid: bool
    keys: list[int]
    lots: int
    expires_step: int


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's Poisson sampler; fine for the small means of one model step."""
    if mean <= 0.0:
        return 0
    limit = math.exp(-mean)
    k = 0
    p = rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _no_fill(order: RestingOrder, key: int, lots: int) -> None:
    raise RuntimeError("resting account order filled but no account is attached")


class SymbolMarket:
    """Book, model state, trades, candles and ticker statistics of one symbol."""

    def __init__(self, inst: Instrument, seed: int, index: int, now_ms: int) -> None:
        self.inst = inst
        self.symbol = inst.symbol
        self.rng = random.Random(f"sim-market:{seed}:{index}:{inst.symbol}")
        self.id_rng = random.Random(f"sim-ids:{seed}:{index}:{inst.symbol}")
        self.book = Book()
        self.step_no = 0
        # Which slice of the clock period this symbol is stepped and pushed in (set by the
        # exchange): Bybit's symbols are not produced in lockstep, so neither are ours.
        self.phase = 0
        self.seq = 1_000_000_000 + self.rng.randrange(10**9)
        self.change_ms = now_ms  # matching-engine time of the last book change (cts)
        self.fair = inst.start_ticks
        a = inst.activity
        # event rates per second
        self.rate_limit = 55.0 * a
        self.rate_cancel = 50.0 * a
        self.rate_market = 3.0 * a
        self.rate_fair = 4.0 * a
        self.rate_wall = 0.04 * a
        self.jump_mean = max(0.0, min(12.0, inst.start_ticks * 1e-5))
        total = self.rate_limit + self.rate_cancel + self.rate_market + self.rate_fair + self.rate_wall
        self.step_mean = total * STEP_MS / 1000.0
        self._cum = [
            self.rate_limit / total,
            (self.rate_limit + self.rate_cancel) / total,
            (self.rate_limit + self.rate_cancel + self.rate_market) / total,
            (self.rate_limit + self.rate_cancel + self.rate_market + self.rate_fair) / total,
        ]
        self.walls: list[Wall] = []
        self.far_range = INITIAL_LEVELS + 400
        # trades and statistics
        self.pending_trades: list[Trade] = []
        self.recent: deque[Trade] = deque(maxlen=1000)
        self.last_ticks = inst.start_ticks
        self.prev_ticks = inst.start_ticks
        self.tick_direction = "ZeroPlusTick"
        self.on_maker_fill: MakerFill = _no_fill
        self.on_trade: Callable[[SymbolMarket, int], None] | None = None
        self.candles = Candles(inst, self.rng, now_ms)
        self.open_interest_lots = inst.typical_lots * 4000
        self.funding_rate = "0.0001"
        self.replay: deque[tuple[int, str, list[list[str]], list[list[str]]]] | None = None
        self.replay_done = False
        self.replay_hold = False
        self._seed_book()

    # ---- initial state -----------------------------------------------------------------------
    def _seed_book(self) -> None:
        rng = self.rng
        typ = self.inst.typical_lots
        for side in (self.book.bids, self.book.asks):
            placed = 0
            dist = 0
            while placed < INITIAL_LEVELS:
                # dense near the touch, ~85% of ticks occupied further out
                if dist < 20 or rng.random() < 0.85:
                    lots = max(1, int(typ * (0.2 + rng.expovariate(1.0)) * (1.0 + dist / 300.0)))
                    ticks = self.fair - 1 - dist if side.is_bid else self.fair + dist
                    if ticks > 0:
                        side.add_model(side.key_of(ticks), lots)
                        placed += 1
                    elif side.is_bid:
                        break
                dist += 1

    # ---- one model step ----------------------------------------------------------------------
    # ---- replay of a recorded book stream ------------------------------------------------------
    def load_replay(self, messages: list[tuple[int, str, list[list[str]], list[list[str]]]],
                    speed: float, hold: bool) -> None:
        """Drive this symbol's book from recorded ``(ts, type, bids, asks)`` messages instead of the
        model, ``speed`` times real time; afterwards the model takes over from the replayed book,
        unless ``hold`` (then the book stays as recorded)."""
        self.replay = deque(messages)
        self.replay_speed = speed
        self.replay_hold = hold
        self.replay_t0_rec = messages[0][0]
        self.replay_t0: int | None = None
        self.replay_done = False
        self._replay_apply(*messages[0][1:])  # the first snapshot is the starting book
        self.replay.popleft()
        if not self.replay:
            self._end_replay()

    def _replay_apply(self, kind: str, bids: list[list[str]], asks: list[list[str]]) -> None:
        inst = self.inst
        for side, levels in ((self.book.bids, bids), (self.book.asks, asks)):
            new: dict[int, int] = {}
            for p, q in levels:
                try:
                    new[side.key_of(inst.parse_price(p))] = inst.parse_qty(q)
                except ValueError:
                    continue  # off this instrument's grid: not representable, skipped
            if kind == "snapshot":
                for k in list(side.sizes):
                    if k not in new:
                        side.set_model(k, 0)
            for k, lots in new.items():
                side.set_model(k, lots)
        self.seq += 1

    def _end_replay(self) -> None:
        self.replay_done = True
        bb, ba = self.book.bids.best_ticks(), self.book.asks.best_ticks()
        if bb is not None and ba is not None:
            self.fair = (bb + ba + 1) // 2

    def _replay_step(self, now_ms: int) -> None:
        if self.replay_t0 is None:
            self.replay_t0 = now_ms
        due = self.replay_t0_rec + (now_ms - self.replay_t0) * self.replay_speed
        while self.replay and self.replay[0][0] <= due:
            _ts, kind, bids, asks = self.replay.popleft()
            self._replay_apply(kind, bids, asks)
            self.change_ms = now_ms
        if not self.replay:
            self._end_replay()

    def step(self, now_ms: int) -> None:
        """Advance the order-flow model by one step (:data:`STEP_MS` of model time)."""
        self.step_no += 1
        if self.replay is not None and not self.replay_done:
            self._replay_step(now_ms)
            return
        if self.replay_hold and self.replay_done:
            return
        rng = self.rng
        n = poisson(rng, self.step_mean)
        cum = self._cum
        for _ in range(n):
            u = rng.random()
            if u < cum[0]:
                self._limit_arrival(now_ms)
            elif u < cum[1]:
                self._cancel()
            elif u < cum[2]:
                self._market_order(now_ms)
            elif u < cum[3]:
                self._fair_jump()
            else:
                self._new_wall()
        if self.walls and self.walls[0].expires_step <= self.step_no:
            self._expire_walls()
        if self.step_no % 50 == 0:
            self._maintain_depth()

    def _fair_jump(self) -> None:
        rng = self.rng
        k = 1 + (int(rng.expovariate(1.0 / self.jump_mean)) if self.jump_mean > 0 else 0)
        # lean back towards the start price when far away, so long runs stay plausible
        drift = (self.inst.start_ticks - self.fair) / (self.inst.start_ticks * 0.2)
        up = rng.random() < 0.5 + max(-0.2, min(0.2, drift))
        self.fair = max(self.inst.start_ticks // 4, self.fair + (k if up else -k))

    def _limit_arrival(self, now_ms: int) -> None:
        rng = self.rng
        is_bid = rng.random() < 0.5
        if rng.random() < 0.12:
            dist = rng.randrange(self.far_range)
        else:
            dist = int(rng.expovariate(0.35))
        ticks = self.fair - 1 - dist if is_bid else self.fair + dist
        if ticks <= 0:
            return
        lots = max(1, int(self.inst.typical_lots * (0.05 + rng.expovariate(1.0))))
        self.place_model_limit(is_bid, ticks, lots, now_ms)

    def place_model_limit(self, is_bid: bool, ticks: int, lots: int, now_ms: int) -> None:
        """Anonymous limit order: trade through the opposite side if marketable, rest the rest."""
        book = self.book
        opp = book.asks if is_bid else book.bids
        best_opp = opp.best_ticks()
        if best_opp is not None and (ticks >= best_opp if is_bid else ticks <= best_opp):
            taken = self.sweep(buy=is_bid, lots=lots, limit_ticks=ticks, now_ms=now_ms, on_fill=self.on_maker_fill)
            lots -= taken
            if lots <= 0:
                return
            best_opp = opp.best_ticks()
            if best_opp is not None and (ticks >= best_opp if is_bid else ticks <= best_opp):
                return
        side = book.bids if is_bid else book.asks
        side.add_model(side.key_of(ticks), lots)
        self.seq += 1
        self.change_ms = now_ms

    def _cancel(self) -> None:
        rng = self.rng
        side = self.book.bids if rng.random() < 0.5 else self.book.asks
        n = len(side)
        if n == 0:
            return
        if rng.random() < 0.75:
            idx = rng.randrange(min(25, n))
        else:
            idx = rng.randrange(n)
        key: int = side.keys[idx]
        model = side.model_lots(key)
        if model <= 0:
            return
        lots = model if rng.random() < 0.6 else 1 + rng.randrange(model)
        side.cancel_model(key, lots)
        self.seq += 1

    def _market_order(self, now_ms: int) -> None:
        rng = self.rng
        book = self.book
        bb, ba = book.bids.best_ticks(), book.asks.best_ticks()
        if bb is None or ba is None:
            return
        mid2 = bb + ba
        lean = (2 * self.fair - mid2) / max(2.0, (ba - bb) * 4.0)
        buy = rng.random() < 0.5 + max(-0.35, min(0.35, lean))
        lots = max(1, int(self.inst.typical_lots * rng.expovariate(1.0) * 0.6))
        if rng.random() < 0.05:
            lots *= 8
        self.sweep(buy=buy, lots=lots, limit_ticks=None, now_ms=now_ms, on_fill=self.on_maker_fill)

    def _new_wall(self) -> None:
        rng = self.rng
        is_bid = rng.random() < 0.5
        side = self.book.bids if is_bid else self.book.asks
        best = side.best_ticks()
        if best is None:
            return
        dist = 3 + rng.randrange(30)
        width = 1 + rng.randrange(3)
        lots = max(1, int(self.inst.typical_lots * (15 + rng.random() * 40)))
        keys: list[int] = []
        for j in range(width):
            ticks = best - dist - j if is_bid else best + dist + j
            if ticks <= 0:
                continue
            key = side.key_of(ticks)
            side.add_model(key, lots)
            keys.append(key)
        if keys:
            life_steps = int(rng.expovariate(1.0 / 1500.0)) + 100  # mean ~15 s
            self.walls.append(Wall(is_bid, keys, lots, self.step_no + life_steps))
            self.walls.sort(key=lambda w: w.expires_step)
            self.seq += 1

    def _expire_walls(self) -> None:
        while self.walls and self.walls[0].expires_step <= self.step_no:
            wall = self.walls.pop(0)
            side = self.book.bids if wall.is_bid else self.book.asks
            for key in wall.keys:
                side.cancel_model(key, wall.lots)
            self.seq += 1

    def _maintain_depth(self) -> None:
        """Keep each side between MIN_LEVELS and MAX_LEVELS levels (refill far away / trim)."""
        rng = self.rng
        typ = self.inst.typical_lots
        for side in (self.book.bids, self.book.asks):
            n = len(side)
            if n < MIN_LEVELS:
                worst: int = side.keys[-1] if n else side.key_of(self.fair)
                for i in range(MIN_LEVELS - n):
                    key = worst + 1 + i
                    if side.ticks_of(key) <= 0:
                        break
                    side.add_model(key, max(1, int(typ * (0.5 + rng.expovariate(1.0)) * 3)))
            elif n > MAX_LEVELS:
                for key in list(side.keys.islice(MAX_LEVELS)):
                    side.cancel_model(key, side.model_lots(key))

    # ---- taking liquidity ----------------------------------------------------------------------
    def sweep(
        self, buy: bool, lots: int, limit_ticks: int | None, now_ms: int, on_fill: MakerFill,
        taker_fills: list[tuple[int, int]] | None = None,
    ) -> int:
        """Take up to ``lots`` from the opposite side, best first, not beyond ``limit_ticks``.

        Prints one public trade per level touched, feeds resting account orders to ``on_fill``,
        and appends ``(ticks, lots)`` per level to ``taker_fills`` when given. Returns lots taken."""
        side: Side = self.book.asks if buy else self.book.bids
        limit_key = None if limit_ticks is None else side.key_of(limit_ticks)
        remaining = lots
        taken_total = 0
        levels = 0
        while remaining > 0 and side.sizes and levels < 200:
            key: int = side.keys[0]
            if limit_key is not None and key > limit_key:
                break
            q = side.take(key, remaining, on_fill)
            if q <= 0:
                break
            remaining -= q
            taken_total += q
            levels += 1
            ticks = side.ticks_of(key)
            self._print_trade(buy, ticks, q, now_ms)
            if taker_fills is not None:
                taker_fills.append((ticks, q))
        if taken_total:
            self.change_ms = now_ms
            if self.on_trade is not None:
                self.on_trade(self, self.last_ticks)
        return taken_total

    def _print_trade(self, buy: bool, ticks: int, lots: int, now_ms: int) -> None:
        self.seq += 1
        if ticks > self.last_ticks:
            tick_dir = "PlusTick"
        elif ticks < self.last_ticks:
            tick_dir = "MinusTick"
        else:
            tick_dir = "ZeroPlusTick" if self.tick_direction in ("PlusTick", "ZeroPlusTick") else "ZeroMinusTick"
        self.tick_direction = tick_dir
        self.prev_ticks = self.last_ticks
        self.last_ticks = ticks
        trade = Trade(now_ms, buy, ticks, lots, str(uuid.UUID(int=self.id_rng.getrandbits(128), version=4)), tick_dir, self.seq)
        self.pending_trades.append(trade)
        self.recent.append(trade)
        self.candles.on_trade(now_ms, ticks, lots)

    # ---- derived views -------------------------------------------------------------------------
    def mark_ticks(self) -> int:
        bb, ba = self.book.bids.best_ticks(), self.book.asks.best_ticks()
        if bb is None or ba is None:
            return self.last_ticks
        return (bb + ba) // 2

    def trade_dict(self, t: Trade) -> dict[str, Any]:
        """``publicTrade`` item, key order as Bybit sends it."""
        inst = self.inst
        return {
            "T": t.time_ms, "s": self.symbol, "S": "Buy" if t.buy else "Sell",
            "v": inst.size_str(t.lots), "p": inst.price_str(t.ticks), "L": t.tick_direction,
            "i": t.trade_id, "BT": False, "RPI": False, "seq": t.seq,
        }

    def recent_trade_dict(self, t: Trade) -> dict[str, Any]:
        """``/v5/market/recent-trade`` item."""
        inst = self.inst
        return {
            "execId": t.trade_id, "symbol": self.symbol, "price": inst.price_str(t.ticks),
            "size": inst.size_str(t.lots), "side": "Buy" if t.buy else "Sell",
            "time": str(t.time_ms), "isBlockTrade": False, "isRPITrade": False, "seq": str(t.seq),
        }

    def ticker(self, now_ms: int) -> dict[str, str]:
        """Linear ``tickers`` fields (REST and WebSocket share them)."""
        inst = self.inst
        c = self.candles
        c.roll(now_ms)
        stats = c.stats_24h()
        bids, asks = self.book.bids, self.book.asks
        bb = bids.best_key()
        ba = asks.best_key()
        last = self.last_ticks
        prev24 = stats.prev24_ticks
        pct = (last - prev24) / prev24 if prev24 else 0.0
        mark = self.mark_ticks()
        next_funding = (now_ms // (8 * 3_600_000) + 1) * 8 * 3_600_000
        return {
            "symbol": self.symbol,
            "tickDirection": self.tick_direction,
            "price24hPcnt": f"{pct:.6f}",
            "lastPrice": inst.price_str(last),
            "prevPrice24h": inst.price_str(prev24),
            "highPrice24h": inst.price_str(stats.high_ticks),
            "lowPrice24h": inst.price_str(stats.low_ticks),
            "prevPrice1h": inst.price_str(stats.prev1h_ticks),
            "markPrice": inst.price_str(mark),
            "indexPrice": inst.price_str(mark),
            "openInterest": inst.size_str(self.open_interest_lots),
            "openInterestValue": str(inst.value_dec(mark, self.open_interest_lots).quantize(_Q2)),
            "turnover24h": str(stats.turnover.quantize(_Q4)),
            "volume24h": inst.size_str(stats.volume_lots),
            "nextFundingTime": str(next_funding),
            "fundingRate": self.funding_rate,
            "bid1Price": inst.price_str(-bb) if bb is not None else "",
            "bid1Size": inst.size_str(bids.sizes[bb]) if bb is not None else "",
            "ask1Price": inst.price_str(ba) if ba is not None else "",
            "ask1Size": inst.size_str(asks.sizes[ba]) if ba is not None else "",
            "deliveryTime": "0",
            "basisRate": "",
            "deliveryFeeRate": "",
            "predictedDeliveryPrice": "",
            "preOpenPrice": "",
            "preQty": "",
            "curPreListingPhase": "",
            "fundingIntervalHour": "8",
            "fundingCap": "0.005",
            "basisRateYear": "",
        }


from decimal import Decimal

_Q2 = Decimal("0.01")
_Q4 = Decimal("0.0001")


@dataclass(slots=True)
class Stats24h:
    prev24_ticks: int
    prev1h_ticks: int
    high_ticks: int
    low_ticks: int
    volume_lots: int
    turnover: Decimal


class Candles:
    """One-minute candles (integer ticks/lots/value units), larger intervals aggregated on read.

    Each candle is ``[start_ms, open, high, low, close, volume_lots, value_units]`` where value
    units are ``ticks*tick_units*lots*step_units`` (exact notional at price+qty decimals)."""

    def __init__(self, inst: Instrument, rng: random.Random, now_ms: int) -> None:
        self.inst = inst
        self.minutes: deque[list[int]] = deque(maxlen=BACKFILL_MINUTES + 3 * DAY_MINUTES)
        self._base: tuple[int, int, int, int, int, int] | None = None  # closed-candle 24h stats
        self._backfill(rng, now_ms)

    def _backfill(self, rng: random.Random, now_ms: int) -> None:
        """Synthetic history ending at the start price, so klines and 24 h stats exist at once."""
        inst = self.inst
        start = now_ms - now_ms % MINUTE_MS
        price = inst.start_ticks
        step = max(1, int(inst.start_ticks * 0.0008))
        rows: list[list[int]] = []
        for i in range(BACKFILL_MINUTES):
            close = price
            open_ = max(1, close + rng.randint(-step, step))
            high = max(open_, close) + rng.randint(0, step)
            low = max(1, min(open_, close) - rng.randint(0, step))
            vol = max(1, int(inst.typical_lots * rng.expovariate(1.0) * 20))
            mid = (high + low) // 2
            rows.append([start - (i + 1) * MINUTE_MS, open_, high, low, close, vol,
                         mid * inst.tick_units * vol * inst.step_units])
            price = open_
        rows.reverse()
        self.minutes.extend(rows)
        last_close = rows[-1][4]
        self.minutes.append([start, last_close, last_close, last_close, last_close, 0, 0])
        self._recompute_base()

    def roll(self, now_ms: int) -> bool:
        """Open new minute candles up to ``now_ms``; True when at least one closed."""
        start = now_ms - now_ms % MINUTE_MS
        cur = self.minutes[-1]
        if cur[0] >= start:
            return False
        while cur[0] < start:
            close = cur[4]
            cur = [cur[0] + MINUTE_MS, close, close, close, close, 0, 0]
            self.minutes.append(cur)
        self._recompute_base()
        return True

    def on_trade(self, now_ms: int, ticks: int, lots: int) -> None:
        self.roll(now_ms)
        cur = self.minutes[-1]
        if cur[5] == 0:
            cur[1] = cur[2] = cur[3] = ticks
        else:
            cur[2] = max(cur[2], ticks)
            cur[3] = min(cur[3], ticks)
        cur[4] = ticks
        cur[5] += lots
        cur[6] += ticks * self.inst.tick_units * lots * self.inst.step_units

    def _recompute_base(self) -> None:
        closed = list(self.minutes)[-DAY_MINUTES:-1]
        if not closed:
            self._base = None
            return
        self._base = (
            closed[0][1],
            max(c[2] for c in closed),
            min(c[3] for c in closed),
            sum(c[5] for c in closed),
            sum(c[6] for c in closed),
            closed[-59][1] if len(closed) >= 59 else closed[0][1],
        )

    def stats_24h(self) -> Stats24h:
        cur = self.minutes[-1]
        inst = self.inst
        if self._base is None:
            return Stats24h(cur[1], cur[1], cur[2], cur[3], cur[5], Decimal(0))
        prev24, high, low, vol, value, prev1h = self._base
        if cur[5]:
            high = max(high, cur[2])
            low = min(low, cur[3])
        value += cur[6]
        turnover = Decimal(value).scaleb(-(inst.price_decimals + inst.qty_decimals))
        return Stats24h(prev24, prev1h, high, low, vol + cur[5], turnover)

    def klines(self, interval: str, start: int | None, end: int | None, limit: int) -> list[list[int]]:
        """Candles of ``interval`` (Bybit names), oldest first, aggregated from minutes."""
        ms = interval_ms(interval)
        out: list[list[int]] = []
        for m in self.minutes:
            if interval == "M":
                b = _month_start(m[0])
            else:
                b = m[0] - m[0] % ms if ms < 7 * 86_400_000 else _week_start(m[0])
            if out and out[-1][0] == b:
                row = out[-1]
                if m[5]:
                    if row[5] == 0:
                        row[1], row[2], row[3] = m[1], m[2], m[3]
                    row[2] = max(row[2], m[2])
                    row[3] = min(row[3], m[3])
                    row[4] = m[4]
                    row[5] += m[5]
                    row[6] += m[6]
                elif row[5] == 0:
                    row[4] = m[4]
            else:
                out.append(list(m[:1]) + [m[1], m[2], m[3], m[4], m[5], m[6]])
                out[-1][0] = b
        if start is not None:
            out = [r for r in out if r[0] >= start - (start % ms if interval not in ("W", "M") else 0)]
        if end is not None:
            out = [r for r in out if r[0] <= end]
        return out[-limit:]


INTERVALS: dict[str, int] = {
    "1": 1, "3": 3, "5": 5, "15": 15, "30": 30, "60": 60, "120": 120, "240": 240, "360": 360,
    "720": 720, "D": 1440, "W": 10080, "M": 43200,
}


def interval_ms(interval: str) -> int:
    return INTERVALS[interval] * MINUTE_MS


def _week_start(ms: int) -> int:
    # Bybit weekly candles start on Monday 00:00 UTC; epoch day 0 (1970-01-01) was a Thursday.
    day = ms // 86_400_000
    return (day - (day + 3) % 7) * 86_400_000


def _month_start(ms: int) -> int:
    import datetime as _dt

    d = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.UTC)
    return int(_dt.datetime(d.year, d.month, 1, tzinfo=_dt.UTC).timestamp() * 1000)
