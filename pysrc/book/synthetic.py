"""Deterministic generator of realistic Bybit v5 ``orderbook.{depth}.{symbol}`` streams.

The output is byte-for-byte the WebSocket wire shape::

    {"topic":"orderbook.200.BTCUSDT","type":"delta","ts":1733011200693,
     "data":{"s":"BTCUSDT","b":[["60000.10","0.006"]],"a":[],"u":20254870,"seq":130020239261},
     "cts":1733011200691}

It serves three purposes: the large input of the replay benchmarks (a million messages over twenty
symbols), the per-message inputs of the latency benchmarks, and the bundled demo data of
``python -m pysrc.bot`` until a live feed is wired in. So it must be deterministic for a seed, fast
enough to produce a million lines in well under a minute, and importable with the standard
library alone (``orjson`` is used when installed; the bytes are identical either way).

What makes the stream realistic, and safe to replay:

* every symbol has its own tick size, number of price decimals (fixed per symbol, as Bybit sends
  ``"60000.10"`` rather than ``"60000.1"``), lot decimals and price level;
* each symbol starts with one snapshot of ``depth`` levels per side (bids descending, asks
  ascending), then deltas whose ``u`` is exactly the previous ``u + 1`` and whose ``seq`` and
  ``ts`` only grow;
* a delta typically changes 1-10 levels, mostly near the top of the book: size changes, inserts
  (including inside the spread), deletes (size ``"0"``); a few deltas are bursts of 15-40 levels,
  as the real 100 ms ``orderbook.200`` pushes sometimes are;
* occasionally (3% of deltas) the fair mid drifts by 1-3 ticks, pulled back towards its start:
  the levels of one side that the new mid makes crossing are deleted (consumed) and the other
  side usually quotes a new best level. Bids stay at or below the mid tick and asks above it, so
  the book is never crossed after any message, and it stays dense near the top and about
  ``1.4 * depth`` ticks wide however long the stream runs;
* the generator keeps each side at exactly ``depth`` levels after every message, as Bybit does: a
  level pushed below the window is explicitly deleted in the same delta, and a level that enters
  the window from below is sent as an insert. A consumer that truncates to ``depth`` and one that
  does not therefore hold the same book.

Prices and sizes are integers internally (price in units of ``10**-decimals``) and are formatted
once per emitted level: about 25 µs per message in CPython, a million messages in under half a
minute.
"""

from __future__ import annotations

import bisect
import gzip
import math
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

try:  # orjson is a project dependency, but the demo data must not hard-require it.
    import orjson

    _dumps: Callable[[Any], bytes] = orjson.dumps
except ImportError:  # pragma: no cover - exercised only without orjson
    import json

    def _dumps(obj: Any) -> bytes:
        # Same bytes as orjson for the value types emitted here (ASCII str, int, list, dict).
        return json.dumps(obj, separators=(",", ":")).encode()


__all__ = ["SYMBOLS", "SymbolSpec", "bybit_stream", "write_stream"]


@dataclass(frozen=True)
class SymbolSpec:
    """Static description of one instrument."""

    symbol: str
    mid: float  # starting mid price
    price_decimals: int  # decimals on the wire, fixed per symbol ("60000.10")
    tick: int  # tick size in units of 10**-price_decimals (BTC: 0.10 -> 10 at 2 decimals)
    size_decimals: int  # lot decimals on the wire ("0.006")
    median_size: int  # median level size in units of 10**-size_decimals
    weight: float  # relative message rate when symbols are interleaved


# Roughly Bybit linear perpetual parameters (tick, lot precision, price level) around late 2024.
# The mix matters more than the exact values: 0-7 price decimals, a non-power-of-ten tick (BNB),
# prices from 0.01 to 60000, integer and fractional lot sizes.
SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("BTCUSDT", 60000.0, 2, 10, 3, 150, 10.0),
    SymbolSpec("ETHUSDT", 3000.0, 2, 1, 2, 300, 7.0),
    SymbolSpec("XRPUSDT", 1.95, 4, 1, 0, 8000, 5.0),
    SymbolSpec("SOLUSDT", 150.0, 3, 10, 1, 400, 5.0),
    SymbolSpec("DOGEUSDT", 0.1, 5, 1, 0, 60000, 4.0),
    SymbolSpec("BNBUSDT", 600.0, 2, 5, 2, 250, 3.0),
    SymbolSpec("ADAUSDT", 0.45, 4, 1, 0, 20000, 3.0),
    SymbolSpec("AVAXUSDT", 35.0, 3, 1, 1, 900, 2.5),
    SymbolSpec("LINKUSDT", 14.0, 3, 1, 1, 1500, 2.5),
    SymbolSpec("DOTUSDT", 7.0, 3, 1, 1, 2500, 2.0),
    SymbolSpec("LTCUSDT", 80.0, 2, 1, 1, 300, 2.0),
    SymbolSpec("TRXUSDT", 0.12, 5, 1, 0, 80000, 1.5),
    SymbolSpec("POLUSDT", 0.5, 4, 1, 0, 15000, 1.5),
    SymbolSpec("SHIB1000USDT", 0.018, 6, 1, 0, 300000, 1.5),
    SymbolSpec("1000PEPEUSDT", 0.01, 7, 1, 0, 500000, 1.5),
    SymbolSpec("ARBUSDT", 0.8, 4, 1, 1, 40000, 1.2),
    SymbolSpec("OPUSDT", 1.8, 4, 1, 1, 20000, 1.2),
    SymbolSpec("SUIUSDT", 1.2, 5, 10, 1, 30000, 1.2),
    SymbolSpec("APTUSDT", 9.0, 4, 5, 2, 50000, 1.0),
    SymbolSpec("NEARUSDT", 5.0, 3, 1, 1, 3000, 1.0),
)

_T0_MS = 1733011200000  # 2024-12-01T00:00:00Z, the day of the real ob500 recording


def _spec_for(index: int) -> SymbolSpec:
    """The index-th symbol; beyond the table, synthetic names that reuse its parameters."""
    if index < len(SYMBOLS):
        return SYMBOLS[index]
    base = SYMBOLS[index % len(SYMBOLS)]
    return SymbolSpec(
        f"SYN{index:03d}USDT",
        base.mid,
        base.price_decimals,
        base.tick,
        base.size_decimals,
        base.median_size,
        base.weight / 2,
    )


def _resolve(symbols: int | Sequence[str]) -> list[SymbolSpec]:
    if isinstance(symbols, int):
        if symbols < 1:
            raise ValueError("symbols must be at least 1")
        return [_spec_for(i) for i in range(symbols)]
    if isinstance(symbols, str):  # a bare string is a Sequence[str]; it is almost surely a mistake
        raise TypeError("symbols must be an int or a sequence of symbol names, not a str")
    known = {s.symbol: s for s in SYMBOLS}
    specs: list[SymbolSpec] = []
    for i, name in enumerate(symbols):
        if name in known:
            specs.append(known[name])
        else:
            base = _spec_for(i)
            specs.append(
                SymbolSpec(
                    name,
                    base.mid,
                    base.price_decimals,
                    base.tick,
                    base.size_decimals,
                    base.median_size,
                    base.weight,
                )
            )
    if len({s.symbol for s in specs}) != len(specs):
        raise ValueError("duplicate symbol names")
    if not specs:
        raise ValueError("at least one symbol is needed")
    return specs


def _formatter(decimals: int) -> Callable[[int], str]:
    """Integer in units of 10**-decimals -> fixed-decimal string (1234, 2 -> "12.34")."""
    if decimals == 0:
        return str
    div = 10**decimals
    fmt = "%d.%0" + str(decimals) + "d"

    def fmt_fixed(v: int) -> str:
        text: str = fmt % divmod(v, div)
        return text

    return fmt_fixed


class _Book:
    """One symbol's book as the exchange holds it, plus the change log of the current message.

    Both sides are stored in "key space" so one code path serves both: ``key = price`` for asks
    and ``key = -price`` for bids, each side a sorted list of keys where index 0 is the best level
    and larger keys are worse. ``m`` is the fair mid in ticks: bids may sit at or below
    ``m * tick`` and asks at or above ``(m + 1) * tick`` (:meth:`_bound`), which is what makes a
    crossed book impossible.
    """

    __slots__ = (
        "spec",
        "topic",
        "depth",
        "keys",
        "sizes",
        "changes",
        "born",
        "u",
        "seq",
        "fmt_price",
        "fmt_size",
        "started",
        "mu",
        "last_cts",
        "m",
        "m0",
        "span_target",
    )

    def __init__(self, spec: SymbolSpec, depth: int, rng: random.Random) -> None:
        self.spec = spec
        self.topic = f"orderbook.{depth}.{spec.symbol}"
        self.depth = depth
        # keys[0] / sizes[0]: bids (key = -price); keys[1] / sizes[1]: asks (key = price)
        self.keys: list[list[int]] = [[], []]
        self.sizes: list[dict[int, int]] = [{}, {}]
        # Per message: key -> new size (0 = delete), in first-touch order, and the keys this
        # message created (so a level created and deleted within one message is not sent at all).
        self.changes: list[dict[int, int]] = [{}, {}]
        self.born: list[set[int]] = [set(), set()]
        self.u = rng.randrange(10_000_000, 90_000_000)
        self.seq = rng.randrange(100_000_000_000, 140_000_000_000)
        self.fmt_price = _formatter(spec.price_decimals)
        self.fmt_size = _formatter(spec.size_decimals)
        self.started = False
        # log-normal sizes: median = exp(mu)
        self.mu = math.log(max(spec.median_size, 1))
        self.last_cts = 0
        tick = spec.tick
        mid_ticks = max(int(round(spec.mid * 10**spec.price_decimals / tick)), 4 * depth + 10)
        self.m = self.m0 = mid_ticks
        self.span_target = 1.4 * depth
        # A one- or two-tick spread: liquid perpetuals sit at one tick most of the time.
        best_bid = mid_ticks * tick
        best_ask = best_bid + tick * rng.choice((1, 1, 1, 2))
        for side, start, direction in ((0, best_bid, -1), (1, best_ask, 1)):
            price = start
            keys = self.keys[side]
            sizes = self.sizes[side]
            for _ in range(depth):
                if price <= 0:
                    break
                key = -price if side == 0 else price
                keys.append(key)
                sizes[key] = self._size(rng)
                # Mostly dense near the top; an empty tick or two now and then.
                price += direction * tick * (1 if rng.random() < 0.75 else rng.randint(2, 3))
            keys.sort()

    # -- sizes ----------------------------------------------------------------------------------

    def _size(self, rng: random.Random) -> int:
        return int(rng.lognormvariate(self.mu, 1.1)) + 1

    # -- primitive changes ----------------------------------------------------------------------

    def _set(self, side: int, key: int, size: int) -> None:
        sizes = self.sizes[side]
        if key not in sizes:
            bisect.insort(self.keys[side], key)
            if key not in self.changes[side]:
                self.born[side].add(key)
        sizes[key] = size
        self.changes[side][key] = size

    def _delete_at(self, side: int, index: int) -> None:
        key = self.keys[side].pop(index)
        del self.sizes[side][key]
        if key in self.born[side]:
            # Created in this very message: the receiver never saw it, so send nothing.
            self.born[side].discard(key)
            del self.changes[side][key]
        else:
            self.changes[side][key] = 0

    # -- message-level operations ---------------------------------------------------------------

    # Hot paths draw with ``int(rng.random() * n)`` instead of ``randrange``/``randint``: three
    # times cheaper in CPython, equally deterministic, and the bias is irrelevant here.

    def _top_index(self, rng: random.Random, n: int) -> int:
        """An index into a side of n levels, concentrated near the top but spanning the window."""
        if rng.random() < 0.8:
            i = int(rng.expovariate(0.2))  # mean 5 levels from the top
            return i if i < n else n - 1
        return int(rng.random() * n)

    def _update(self, rng: random.Random, side: int) -> None:
        keys = self.keys[side]
        if not keys:
            self._insert(rng, side)
            return
        key = keys[self._top_index(rng, len(keys))]
        self._set(side, key, self._size(rng))

    def _bound(self, side: int) -> int:
        """Smallest (best) key a side may hold: bids at or below the mid tick, asks above it."""
        tick = self.spec.tick
        return -self.m * tick if side == 0 else (self.m + 1) * tick

    def _insert(self, rng: random.Random, side: int) -> bool:
        """Insert a level in a free tick, mostly within a few ticks of the mid (inside the spread
        when it is wide), sometimes deeper in the window to refill holes that deletes left.

        Distances are measured from the fair mid ``m``, which moves only in :meth:`_drift`: that
        keeps each book dense near its top and tight over millions of messages, and makes a
        crossed book impossible (bids <= m * tick < asks).
        """
        keys = self.keys[side]
        tick = self.spec.tick
        bound = self._bound(side)
        if keys and rng.random() < 0.45:
            key = bound + tick * int(rng.random() * (max(0, (keys[-1] - bound) // tick) + 1))
        else:
            key = bound + tick * int(rng.expovariate(0.15))  # mean ~6 ticks from the mid
        if side == 0 and key >= 0:  # a bid price must stay positive
            return False
        if key in self.sizes[side]:
            return False
        if len(keys) >= self.depth and key > keys[-1]:
            return False  # below the window: Bybit would not send it
        self._set(side, key, self._size(rng))
        return True

    def _insert_share(self, side: int) -> float:
        """Probability that a structural change is an insert rather than a delete.

        Every delete inside the window pulls a level in at the bottom and every insert pushes one
        out, so the balance of the two sets how far the window reaches. This feedback keeps the
        window near ``depth * 1.4`` ticks (the density of the initial snapshot, about three levels
        in every four ticks) however long the stream runs.
        """
        keys = self.keys[side]
        if len(keys) < 2:
            return 1.0
        span = (keys[-1] - keys[0]) / (self.spec.tick * self.span_target)
        share = 0.5 + 1.5 * (span - 1.0)
        return 0.2 if share < 0.2 else 0.8 if share > 0.8 else share

    def _delete(self, rng: random.Random, side: int) -> None:
        keys = self.keys[side]
        if len(keys) <= 1:  # keep at least one level so the top of book stays defined
            self._update(rng, side)
            return
        # Less top-heavy than updates: deletes concentrated at the top would hollow the book out
        # faster than inserts near the mid refill it.
        n = len(keys)
        if rng.random() < 0.5:
            i = int(rng.expovariate(0.125))
            self._delete_at(side, i if i < n else n - 1)
        else:
            self._delete_at(side, int(rng.random() * n))

    def _drift(self, rng: random.Random) -> None:
        """Move the fair mid by 1-3 ticks, pulled back towards where it started.

        The pushed side loses the levels that the new mid makes crossing (they trade away); the
        advancing side usually quotes a new best level at the new mid. Window maintenance then
        refills the pushed side's tail and cuts the advancing side's.
        """
        k = rng.randint(1, 3)
        # Mean reversion: at 100 ticks from the start the walk only comes back.
        p_up = 0.5 - (self.m - self.m0) / 200
        if self.m - k < 2 or rng.random() < p_up:
            self.m += k
            push = 1
        else:
            self.m -= k
            push = 0
        pushed = self.keys[push]
        bound = self._bound(push)
        while pushed and pushed[0] < bound:
            self._delete_at(push, 0)
        adv = 1 - push
        if rng.random() < 0.7:
            key = self._bound(adv)
            if key not in self.sizes[adv] and (adv == 1 or key < 0):
                self._set(adv, key, self._size(rng))

    def _maintain_window(self, rng: random.Random) -> None:
        """Keep each side at exactly ``depth`` levels, sending the deletes/inserts Bybit sends."""
        depth = self.depth
        tick = self.spec.tick
        for side in (0, 1):
            keys = self.keys[side]
            while len(keys) > depth:
                self._delete_at(side, len(keys) - 1)
            while len(keys) < depth:
                if keys:
                    r = rng.random()
                    key = keys[-1] + tick * (1 if r < 0.75 else 2 if r < 0.875 else 3)
                else:
                    key = self._bound(side) + tick * rng.randint(0, 2)
                if side == 0 and key >= 0:  # would be a non-positive bid price
                    break
                self._set(side, key, self._size(rng))

    # -- messages -------------------------------------------------------------------------------

    def _levels(self, side: int, items: list[tuple[int, int]]) -> list[list[str]]:
        fp = self.fmt_price
        fs = self.fmt_size
        if side == 0:
            return [[fp(-k), fs(s) if s else "0"] for k, s in items]
        return [[fp(k), fs(s) if s else "0"] for k, s in items]

    def snapshot(self, rng: random.Random, ts: int) -> bytes:
        self.started = True
        bids = self._levels(0, [(k, self.sizes[0][k]) for k in self.keys[0]])
        asks = self._levels(1, [(k, self.sizes[1][k]) for k in self.keys[1]])
        return self._envelope(rng, "snapshot", ts, bids, asks)

    def delta(self, rng: random.Random, ts: int) -> bytes:
        for side in (0, 1):
            self.changes[side].clear()
            self.born[side].clear()
        r = rng.random()
        if r < 0.03:
            self._drift(rng)
            n = rng.randint(0, 3)
        elif r < 0.045:
            n = rng.randint(15, 40)  # a burst, like the 100 ms pushes after a sweep
        else:
            # 1 + geometric-like with mean ~3.5, capped at 10: mostly 1-6 levels
            n = 1 + int(rng.expovariate(0.4))
            if n > 10:
                n = 10
        for _ in range(n):
            side = 1 if rng.random() < 0.5 else 0
            if rng.random() < 0.55:
                self._update(rng, side)
            elif rng.random() < self._insert_share(side):
                if not self._insert(rng, side):
                    self._update(rng, side)
            else:
                self._delete(rng, side)
        self._maintain_window(rng)
        if not self.changes[0] and not self.changes[1]:
            # A delta always carries at least one level (a drift may cancel itself out).
            self._update(rng, 1 if rng.random() < 0.5 else 0)
        # Bybit lists delta bids descending and asks ascending: ascending keys on both sides.
        bids = self._levels(0, sorted(self.changes[0].items()))
        asks = self._levels(1, sorted(self.changes[1].items()))
        return self._envelope(rng, "delta", ts, bids, asks)

    def _envelope(
        self, rng: random.Random, kind: str, ts: int, bids: list[list[str]], asks: list[list[str]]
    ) -> bytes:
        if kind == "delta":
            self.u += 1
        # ``seq`` is the cross sequence shared by every depth of a symbol: it grows by a few
        # hundred per 100 ms push in the real recording, and never repeats.
        self.seq += 20 + int(rng.random() * 580)
        # ``cts`` (matching-engine time of this state) is a few ms before ``ts`` and, per symbol,
        # never goes backwards.
        cts = max(ts - 1 - int(rng.random() * 12), self.last_cts)
        self.last_cts = cts
        return _dumps(
            {
                "topic": self.topic,
                "type": kind,
                "ts": ts,
                "data": {"s": self.spec.symbol, "b": bids, "a": asks, "u": self.u, "seq": self.seq},
                "cts": cts,
            }
        )


def bybit_stream(
    symbols: int | Sequence[str] = 20,
    messages: int = 1_000_000,
    depth: int = 200,
    seed: int = 7,
) -> Iterator[bytes]:
    """Yield ``messages`` raw Bybit ``orderbook.{depth}.{symbol}`` messages (no trailing newline).

    ``symbols`` is a count (the first names of :data:`SYMBOLS`, then synthetic ``SYNnnnUSDT``
    names) or explicit names (known names use their table parameters). Symbols are interleaved
    at random with per-symbol rates; each symbol's first message is its snapshot. The stream is a
    pure function of the arguments, and the first ``k`` messages do not depend on ``messages``,
    so a short stream is a prefix of a long one.
    """
    if messages < 0:
        raise ValueError("messages must be >= 0")
    if depth < 1:
        raise ValueError("depth must be >= 1")
    specs = _resolve(symbols)
    rng = random.Random(seed)
    books = [_Book(spec, depth, rng) for spec in specs]
    cum: list[float] = []
    total = 0.0
    for spec in specs:
        total += spec.weight
        cum.append(total)
    choose = rng.choices
    population = range(len(books))
    clock = _T0_MS
    for _ in range(messages):
        book = books[choose(population, cum_weights=cum)[0]]
        # The merged stream of 20 symbols at 100 ms each carries ~200 messages per second.
        clock += int(rng.expovariate(0.2))
        if book.started:
            yield book.delta(rng, clock)
        else:
            yield book.snapshot(rng, clock)


def write_stream(path: str | os.PathLike[str], **kwargs: Any) -> int:
    """Write :func:`bybit_stream` (same keyword arguments) one message per line; gzip if the path
    ends with ``.gz``. Returns the number of messages written."""
    p = os.fspath(path)
    opener: Callable[[], Any]
    if p.endswith(".gz"):
        # Level 6: level 9 triples the time for ~3% smaller files.
        opener = lambda: gzip.open(p, "wb", compresslevel=6)  # noqa: E731
    else:
        opener = lambda: open(p, "wb")  # noqa: E731
    count = 0
    chunk: list[bytes] = []
    with opener() as fh:
        for msg in bybit_stream(**kwargs):
            chunk.append(msg)
            count += 1
            if len(chunk) >= 4096:  # one write per few hundred kB instead of per line
                chunk.append(b"")
                fh.write(b"\n".join(chunk))
                chunk.clear()
        if chunk:
            chunk.append(b"")
            fh.write(b"\n".join(chunk))
    return count
