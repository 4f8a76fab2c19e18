"""The native feature vector against the from-scratch oracle (:mod:`pysrc.analytics.reference`).

After every message, for every symbol, ``BookEngine.features_into`` (raw and normalized) must
equal the oracle's vector: masks and update counts identical, values within
``math.isclose(rel_tol=1e-9, abs_tol=1e-9)`` (z-scores where they are well conditioned, see
``z_mismatches`` in the conftest), and the detections the same.

* Hypothesis drives random Bybit streams over two symbols (one the reference of the other, with
  topic depths 200 and 12): snapshots (sometimes with an empty side), deltas that change sizes,
  insert and delete at every rank (including inside the spread and beyond the depth), walls that
  come and go near the mid while the mid moves, sweeps, crossing deltas, gaps and stale deltas,
  trades at the best prices and at wall prices (sometimes stamped after the next book message,
  sometimes in bursts), external mids, and time steps from 0 ms to 300 s so that every window
  (1 s, 2 s, 10 s, 30 s, 60 s, 300 s, 100 updates) fills and empties.
* A deterministic run over a synthetic 3-symbol stream with trades interleaved.
* The real XRPUSDT ob500 dump with trades interleaved.
* Small deterministic cases for the discrete edges, several of them from ``test_reference.py``:
  exact density boundaries, VPIN buckets with decimal sizes, the rank of a delete within a
  message, layering groups (flickering walls, an older wall vanishing with a group), spoofing
  distances when the mid moved through the wall, the reference mid while the reference book is
  broken, flat windows, and mids that are the same number reached from different quotes.

Example counts are moderate (the file runs in well under a minute on two cores); set
``FEATURE_MODEL_EXAMPLES`` to run more.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysrc import _native as native
from pysrc.analytics.reference import FEATURE_NAMES, SCHEMA_VERSION, TRADES, FeatureOracle
from pysrc.book.reference import APPLIED, LIVE
from pysrc.book.synthetic import bybit_stream

EXAMPLES = int(os.environ.get("FEATURE_MODEL_EXAMPLES", "50"))

REF = "AAAUSDT"
OTHER = "BBBUSDT"
DEPTHS = {REF: 200, OTHER: 12}  # topic depths: one deep book, one that truncates all the time
TICK = Decimal("0.01")  # at a price near 100, one tick is one bps
T0 = 1_733_011_200_000

SIZES = ("1", "2", "3", "0.5", "1.25", "4", "2.5", "7", "0.1", "3.3", "1", "2")
WALL_SIZES = ("25", "40", "60.5", "100", "33.3")
TIME_STEPS = (1, 0, 5, 40, 100, 250, 999, 1000, 1001, 2000, 3000, 10_000, 30_000, 60_000, 300_000)
# Most steps are short; the long ones are there to cross the windows.
TIME_WEIGHTS = (20, 4, 8, 12, 12, 6, 2, 3, 2, 4, 3, 2, 1, 1, 1)


def new_engine() -> Any:
    return native.BookEngine("bybit", 0, 10_000, True)


def detections_key(dets: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Detections in a comparable form: levels sorted, scores and ratios rounded to 9 significant
    digits (they are quotients of sizes: last-bit differences are allowed)."""
    out = []
    for d in dets:
        levels = sorted(
            (float(p), float(f"{float(r):.9g}"), int(a), int(b)) for p, r, a, b in d["levels"]
        )
        score = float(f"{float(d['score']):.9g}")
        out.append((d["kind"], d["side"], int(d["ts"]), score, tuple(levels)))
    return sorted(out)


class Pair:
    """The native engine and the oracle fed the same messages, compared after each one."""

    def __init__(self, compare: Callable[..., list[str]], reference: str | None = None) -> None:
        self.engine = new_engine()
        self.oracle = FeatureOracle(reference_symbol=reference)
        if reference is not None:
            self.engine.set_reference_symbol(reference)
        self._compare = compare
        self.log: list[bytes | str] = []

    def apply(self, raw: bytes) -> tuple[int, str | None]:
        self.log.append(raw)
        expected = self.oracle.apply(raw)
        got = self.engine.apply(raw)
        assert got == expected, self.report(f"outcome {got}, expected {expected}")
        return got

    def set_external_mid(self, symbol: str, mid: float | None) -> None:
        self.log.append(f"set_external_mid({symbol!r}, {mid!r})")
        self.engine.set_external_mid(symbol, mid)
        self.oracle.set_external_mid(symbol, mid)

    def check(self, symbols: list[str], detections: bool = True) -> None:
        """Compare the vectors of ``symbols`` (and their detections, unless told not to: the
        scores in the vector already follow them, and listing a busy minute is slow)."""
        for symbol in symbols:
            if not self.engine.has_book(symbol):
                assert self.oracle.updates(symbol) == 0
                continue
            problems = self._compare(self.engine, self.oracle, symbol)
            if detections:
                got = detections_key(self.engine.detections(symbol))
                expected = detections_key(self.oracle.detections(symbol))
                if got != expected:
                    problems.append(f"detections {got}, expected {expected}")
            assert not problems, self.report(f"{symbol}:\n  " + "\n  ".join(problems))

    def report(self, what: str) -> str:
        lines = [m.decode() if isinstance(m, bytes) else m for m in self.log[-40:]]
        return f"{what}\nafter {len(self.log)} messages, the last ones:\n" + "\n".join(lines)


# ---- layout and outcomes --------------------------------------------------------------------------


def test_layout_matches_the_oracle() -> None:
    schema = native.feature_schema()
    assert tuple(f["name"] for f in schema) == FEATURE_NAMES
    assert native.FEATURE_SCHEMA_VERSION == SCHEMA_VERSION  # a new layout needs a new oracle
    assert all(set(f) == {"name", "group", "units", "window", "formula", "missing"} for f in schema)


def test_trades_outcome_only_with_features(bybit_factory) -> None:
    trades = bybit_factory.trades("X", [(1, "Buy", "100", "1")])
    assert native.TRADES == TRADES == 8
    assert new_engine().apply(trades) == (TRADES, "X")
    assert native.BookEngine("bybit", 0, 10_000, False).apply(trades) == (native.SKIPPED, None)


def test_before_any_update_and_after_trades_only(compare, bybit_factory) -> None:
    pair = Pair(compare)
    msgs = bybit_factory()
    pair.apply(msgs.trades("X", [(1, "Buy", "100", "1")]))
    values = np.ones(len(FEATURE_NAMES))
    mask = np.ones(len(FEATURE_NAMES), dtype=np.uint8)
    if pair.engine.has_book("X"):  # a trades-only symbol may or may not have a (bookless) entry
        assert pair.engine.features_into("X", values, mask, False) == 0
        assert not mask.any() and not values.any()
    pair.apply(msgs.snapshot("X", 5, [("99", "1")], [("101", "1")]))
    pair.check(["X"])
    pair.apply(msgs.trades("X", [(6, "Sell", "99", "2")]))  # no recompute
    pair.check(["X"])


# ---- the random stream ------------------------------------------------------------------------


class Stream:
    """Builds the next message from the current books (read from the oracle's reference engine),
    so that deltas hit existing levels at chosen ranks and rarely cross the book by accident."""

    def __init__(self, draw: Callable[..., Any], pair: Pair, msgs: Any) -> None:
        self.draw = draw
        self.pair = pair
        self.msgs = msgs
        self.ts = dict.fromkeys(DEPTHS, T0)
        self.last_trade = dict.fromkeys(DEPTHS, 0)

    # ---- reading the current books ----

    def book(self, symbol: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        engine = self.pair.oracle.engine
        if not engine.has_book(symbol):
            return {}, {}
        bids, asks = engine.levels(symbol, 0)
        return (
            {Decimal(p): Decimal(q) for p, q in bids},
            {Decimal(p): Decimal(q) for p, q in asks},
        )

    def live(self, symbol: str) -> bool:
        engine = self.pair.oracle.engine
        return engine.has_book(symbol) and engine.state(symbol) == LIVE

    def mid_tick(self, symbol: str) -> int:
        bids, asks = self.book(symbol)
        if bids and asks:
            return int((max(bids) + min(asks)) / 2 / TICK)
        if bids:
            return int(max(bids) / TICK) + 1
        if asks:
            return int(min(asks) / TICK) - 1
        return 10_000

    # ---- drawing ----

    def step_time(self, symbol: str) -> int:
        step = self.draw(
            st.sampled_from([s for s, w in zip(TIME_STEPS, TIME_WEIGHTS) for _ in range(w)])
        )
        self.ts[symbol] += step
        return self.ts[symbol]

    def size(self, wall_share: int = 1) -> str:
        return self.draw(st.sampled_from(SIZES * 2 + WALL_SIZES[:wall_share]))  # type: ignore[no-any-return]

    def symbol(self) -> str:
        return self.draw(st.sampled_from([REF, REF, OTHER]))  # type: ignore[no-any-return]

    def step(self) -> tuple[int, str | None]:
        action = self.draw(
            st.sampled_from(
                ["delta"] * 8
                + ["trades"] * 4
                + ["sweep"] * 2
                + ["pull_wall"] * 2
                + ["layer", "snapshot", "burst", "gap", "stale", "external"]
            )
        )
        symbol = self.symbol()
        if action == "external":
            mid = self.mid_tick(OTHER) * 0.01
            shift = self.draw(st.sampled_from([0.0, 0.001, -0.002, None]))
            self.pair.set_external_mid(OTHER, None if shift is None else mid * (1 + shift))
            return APPLIED, None
        if action in ("trades", "burst"):
            return self.trades(symbol, burst=action == "burst")
        if action == "snapshot" or not self.live(symbol):
            if (
                action != "snapshot"
                and self.pair.oracle.engine.has_book(symbol)
                and self.draw(st.booleans())
            ):
                return self.pair.apply(
                    self.msgs.delta(
                        symbol, self.step_time(symbol), [(100, 1)], depth=DEPTHS[symbol]
                    )
                )  # WAITING
            return self.snapshot(symbol)
        if action == "gap":
            u = self.msgs.u[symbol] + 2
            return self.pair.apply(
                self.msgs.delta(symbol, self.step_time(symbol), [], [], DEPTHS[symbol], u=u)
            )
        if action == "stale":
            u = self.msgs.u[symbol]
            return self.pair.apply(
                self.msgs.delta(
                    symbol, self.step_time(symbol), [("1", "1")], [], DEPTHS[symbol], u=u
                )
            )
        bids, asks = self.book(symbol)
        out: tuple[list[tuple[Decimal, str]], list[tuple[Decimal, str]]] = ([], [])
        if action == "sweep":
            self.sweep(bids, asks, out)
        elif action == "pull_wall":
            self.pull_wall(bids, asks, out)
        elif action == "layer":
            self.layer(bids, asks, out)
        else:
            for _ in range(self.draw(st.integers(1, 4))):
                self.op(bids, asks, out)
        if not out[0] and not out[1]:
            out[0].append((Decimal(1), "0"))  # a delete of an absent level: a no-op update
        return self.pair.apply(
            self.msgs.delta(symbol, self.step_time(symbol), out[0], out[1], DEPTHS[symbol])
        )

    def snapshot(self, symbol: str) -> tuple[int, str | None]:
        m = self.mid_tick(symbol) + self.draw(st.sampled_from([0, 0, 1, -1, 5, -20]))
        spread = self.draw(st.sampled_from([1, 1, 2, 3]))
        most = 70 if symbol == REF else 16
        sides: list[list[tuple[Decimal, str]]] = []
        for direction, start in ((-1, m), (1, m + spread)):
            n = self.draw(st.sampled_from([most // 2, most // 4, most, 3, 1, 0]))
            price = start
            levels = []
            for _ in range(n):
                levels.append((price * TICK, self.size()))
                price += direction * self.draw(st.sampled_from([1, 1, 1, 2, 3]))
            sides.append(levels)
        return self.pair.apply(
            self.msgs.snapshot(symbol, self.step_time(symbol), sides[0], sides[1], DEPTHS[symbol])
        )

    def op(
        self,
        bids: dict[Decimal, Decimal],
        asks: dict[Decimal, Decimal],
        out: tuple[list[tuple[Decimal, str]], list[tuple[Decimal, str]]],
    ) -> None:
        """One level change on a random side; ``bids``/``asks`` follow the message as it builds."""
        bid = self.draw(st.booleans())
        book, other = (bids, asks) if bid else (asks, bids)
        sign = 1 if bid else -1  # "better" is higher for bids, lower for asks
        ranked = sorted(book, reverse=bid)
        kind = self.draw(
            st.sampled_from(
                [
                    "size",
                    "insert",
                    "delete",
                    "size",
                    "insert",
                    "delete",
                    "wall",
                    "deep",
                    "absent",
                    "cross",
                ]
                if ranked
                else ["insert"]
            )
        )
        if kind == "cross" and self.draw(st.integers(0, 9)) != 0:
            kind = "insert"  # crossing is rare: it breaks the book until the next snapshot
        price: Decimal
        size: str
        if kind in ("size", "delete"):
            rank = self.draw(st.integers(0, len(ranked) - 1))
            price, size = ranked[rank], "0" if kind == "delete" else self.size()
        elif kind == "absent":
            price, size = ranked[-1] - sign * 100 * TICK, "0"
        elif kind == "deep":
            price, size = ranked[-1] - sign * self.draw(st.integers(1, 3)) * TICK, self.size()
        elif kind == "cross":
            opposite = sorted(other, reverse=not bid)
            if not opposite:
                return
            price, size = opposite[0] + sign * self.draw(st.integers(0, 1)) * TICK, self.size()
        else:  # insert near the top (inside the spread when there is room) or a wall
            best = ranked[0] if ranked else self.mid_tick_from(bids, asks, bid)
            offset = (
                self.draw(st.integers(-1, 25)) if kind == "wall" else self.draw(st.integers(-2, 6))
            )
            price = best - sign * offset * TICK
            opposite = sorted(other, reverse=not bid)
            if opposite and (price >= opposite[0] if bid else price <= opposite[0]):
                price = opposite[0] - sign * TICK
            if price <= 0:
                return
            size = self.draw(st.sampled_from(WALL_SIZES)) if kind == "wall" else self.size()
        if size == "0":
            book.pop(price, None)
        else:
            book[price] = Decimal(size)
        out[0 if bid else 1].append((price, size))

    @staticmethod
    def mid_tick_from(
        bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal], bid: bool
    ) -> Decimal:
        if bid:
            return min(asks) - TICK if asks else 100 * Decimal(1)
        return max(bids) + TICK if bids else 100 * Decimal(1)

    def sweep(
        self,
        bids: dict[Decimal, Decimal],
        asks: dict[Decimal, Decimal],
        out: tuple[list[tuple[Decimal, str]], list[tuple[Decimal, str]]],
    ) -> None:
        """Move the mid: the best 1-3 levels of one side go, and often the other side follows
        with a new best level (so the mid walks towards the walls of the swept side)."""
        bid = self.draw(st.booleans())
        book, other = (bids, asks) if bid else (asks, bids)
        ranked = sorted(book, reverse=bid)
        for price in ranked[: self.draw(st.integers(1, 3))][: max(0, len(ranked) - 1)]:
            del book[price]
            out[0 if bid else 1].append((price, "0"))
        if book and other and self.draw(st.booleans()):
            new_best = max(book) if bid else min(book)
            price = new_best + (1 if bid else -1) * self.draw(st.integers(1, 2)) * TICK
            current = min(other) if bid else max(other)
            if (price < current) if bid else (price > current):
                other[price] = Decimal(1)
                out[1 if bid else 0].append((price, "1"))

    def pull_wall(
        self,
        bids: dict[Decimal, Decimal],
        asks: dict[Decimal, Decimal],
        out: tuple[list[tuple[Decimal, str]], list[tuple[Decimal, str]]],
    ) -> None:
        """Delete (or shrink) every big level of one side: walls vanish together."""
        bid = self.draw(st.booleans())
        book = bids if bid else asks
        shrink = self.draw(st.booleans())
        for price in sorted(p for p, q in book.items() if q >= 20):
            size = "1" if shrink else "0"
            out[0 if bid else 1].append((price, size))

    def layer(
        self,
        bids: dict[Decimal, Decimal],
        asks: dict[Decimal, Decimal],
        out: tuple[list[tuple[Decimal, str]], list[tuple[Decimal, str]]],
    ) -> None:
        """Three or four walls on one side within a few dozen ticks of the best."""
        bid = self.draw(st.booleans())
        book = bids if bid else asks
        if not book:
            return
        best = max(book) if bid else min(book)
        for _ in range(self.draw(st.integers(3, 4))):
            price = best - (1 if bid else -1) * self.draw(st.integers(1, 55)) * TICK
            if price <= 0:
                continue
            out[0 if bid else 1].append((price, self.draw(st.sampled_from(WALL_SIZES))))

    def trades(self, symbol: str, burst: bool) -> tuple[int, str | None]:
        bids, asks = self.book(symbol)
        walls = [p for p, q in {**bids, **asks}.items() if q >= 20]
        base = self.ts[symbol] + self.draw(st.sampled_from([0, 1, 10, 30, 80, -20, -300]))
        t = max(self.last_trade[symbol], base)
        trades = []
        for _ in range(self.draw(st.integers(10, 30)) if burst else self.draw(st.integers(1, 3))):
            where = self.draw(st.sampled_from(["ask", "bid", "ask", "bid", "wall", "far"]))
            if where == "wall" and walls:
                price = self.draw(st.sampled_from(sorted(walls)))
                side = "Buy" if asks and price >= min(asks) else "Sell"
            elif where == "ask" and asks:
                price, side = min(asks), "Buy"
            elif where == "bid" and bids:
                price, side = max(bids), "Sell"
            else:
                price = self.mid_tick(symbol) * TICK + self.draw(st.integers(-30, 30)) * TICK
                side = self.draw(st.sampled_from(["Buy", "Sell"]))
            trades.append(
                (
                    t,
                    side,
                    price,
                    self.draw(st.sampled_from(["0.1", "1", "0.25", "3", "12.5", "0.003"])),
                )
            )
            t += self.draw(st.sampled_from([0, 1, 7]))
        self.last_trade[symbol] = t
        return self.pair.apply(self.msgs.trades(symbol, trades))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_streams(data: st.DataObject, compare, bybit_factory) -> None:
    pair = Pair(compare, reference=REF)
    stream = Stream(data.draw, pair, bybit_factory())
    for _ in range(data.draw(st.integers(20, 120), label="messages")):
        stream.step()
        pair.check([REF, OTHER])


# ---- a long deterministic stream --------------------------------------------------------------


def test_synthetic_stream_with_trades(compare, with_trades) -> None:
    """3,000 synthetic book messages over three symbols (BTCUSDT the reference) with trades in
    between; an external mid for ETHUSDT from the 1,000th message on."""
    pair = Pair(compare, reference="BTCUSDT")
    for n, raw in enumerate(with_trades(bybit_stream(symbols=3, messages=3000), seed=5, rate=0.2)):
        if n == 1000:
            pair.set_external_mid("ETHUSDT", 3000.5)
        _, symbol = pair.apply(raw)
        if symbol is not None:
            pair.check([symbol], detections=n % 50 == 0)
    pair.check(["BTCUSDT", "ETHUSDT", "XRPUSDT"])
    assert pair.oracle.updates("BTCUSDT") > 1000


# ---- hand-checked edges through both -----------------------------------------------------------


def test_exact_density_boundary(compare, bybit_factory) -> None:
    pair = Pair(compare)
    msgs = bybit_factory()
    pair.apply(
        msgs.snapshot("X", 1000, [("9.99", "1"), ("9.98", "2")], [("10.01", "3"), ("10.02", "4")])
    )
    pair.check(["X"])


def test_vpin_with_decimal_sizes(compare, bybit_factory) -> None:
    pair = Pair(compare)
    msgs = bybit_factory()
    pair.apply(msgs.trades("X", [(1000 + i, "Buy", "100", "0.1") for i in range(50)]))
    pair.apply(msgs.snapshot("X", 2000, [("99", "1")], [("101", "1")]))
    pair.check(["X"])
    trades = []
    for i in range(45):
        trades += [(3000 + 2 * i, "Buy", "100", "0.25"), (3001 + 2 * i, "Sell", "100", "0.3")]
    pair.apply(msgs.trades("X", trades))
    pair.apply(msgs.delta("X", 4000, [("99", "2")]))
    pair.check(["X"])


def test_lifetime_rank_within_a_message(compare, bybit_factory) -> None:
    pair = Pair(compare)
    msgs = bybit_factory()
    pair.apply(msgs.snapshot("X", 0, [(str(100 - i), "1") for i in range(25)], [("101", "1")]))
    for ts, bids in (
        (500, [("80", "0")]),
        (1000, [("81", "0")]),
        (3000, [("100", "0"), ("78", "0")]),
    ):
        pair.apply(msgs.delta("X", ts, bids))
        pair.check(["X"])


@pytest.mark.parametrize(
    ("appear", "vanish"),
    [
        ((1000, 1500, 2500), (5000, 5500, 6000)),
        ((1000, 1500, 3000), (5000, 5500, 7000)),
        ((1000, 1500, 3001), (5000, 5500, 6000)),
        ((1000, 1500, 2500), (5000, 5500, 7001)),
        # three that qualify early, then more that join within 2 s: one detection or two?
        ((1000, 1100, 1200, 1300, 1400), (5000, 5100, 5200, 5300, 5400)),
        # two overlapping groups: 1000-2500 and 2600-4500
        ((1000, 1500, 2500, 2600, 3000, 4500), (6000, 6100, 6200, 6300, 6400, 6500)),
    ],
)
def test_layering_groups(compare, bybit_factory, appear, vanish) -> None:
    pair = Pair(compare)
    msgs = bybit_factory()
    bids = [(f"{(9999 - i) / 100:.2f}", "1") for i in range(10)]
    pair.apply(msgs.snapshot("X", 0, bids, [("100.01", "1"), ("100.02", "1")]))
    prices = [f"{(9985 - 5 * i) / 100:.2f}" for i in range(len(appear))]
    events = [
        (t, (p, str(20 + 10 * i))) for i, (t, p) in enumerate(zip(appear, prices, strict=True))
    ]
    events += [(t, (p, "0")) for t, p in zip(vanish, prices, strict=True)]
    for ts, level in sorted(events):
        pair.apply(msgs.delta("X", ts, [level]))
        pair.check(["X"])


def test_spoof_with_a_trade_stamped_before_its_wall(compare, bybit_factory) -> None:
    """A trade at the wall's price received before the book message that shows the wall, with
    ``T`` inside the wall's life: it counts (``T`` in [first seen, vanished])."""
    pair = Pair(compare)
    msgs = bybit_factory()
    small = [("99.99", "1"), ("99.98", "1"), ("99.97", "1"), ("99.96", "1"), ("99.95", "1")]
    pair.apply(msgs.snapshot("X", 0, small + [("99.89", "1")], [("100.01", "1"), ("100.02", "1")]))
    pair.apply(msgs.trades("X", [(1050, "Sell", "99.90", "1")]))
    pair.apply(msgs.delta("X", 1000, [("99.90", "50")]))
    pair.apply(msgs.delta("X", 2000, [("99.99", "0"), ("99.98", "0")], [("99.99", "1")]))
    pair.apply(msgs.delta("X", 3000, [("99.90", "0")]))
    pair.check(["X"])


def test_spoof_distance_is_absolute(compare, bybit_factory) -> None:
    """The mid moved through the wall's price before it vanished: farther (no detection), or
    nearer with a score below the size ratio (|price - mid|, never a negative distance)."""
    pair = Pair(compare)
    msgs = bybit_factory()
    pair.apply(
        msgs.snapshot(
            "X",
            0,
            [("100.00", "7"), ("99.98", "1"), ("99.95", "2.5")],
            [("100.01", "25"), ("100.04", "1.25"), ("100.05", "0.1")],
        )
    )
    pair.apply(msgs.delta("X", 1, [("100.03", "1")], [("100.01", "0")]))
    pair.check(["X"])
    pair = Pair(compare)
    msgs = bybit_factory()
    asks = [("100.01", "1"), ("100.02", "1"), ("100.04", "25"), ("100.05", "1"), ("100.06", "1")]
    pair.apply(msgs.snapshot("X", 0, [("100.00", "1"), ("99.99", "1")], asks))
    pair.apply(
        msgs.delta("X", 500, [("100.04", "1")], [("100.01", "0"), ("100.02", "0"), ("100.04", "0")])
    )
    pair.check(["X"])


LAYER_BIDS = [(f"{(9999 - i) / 100:.2f}", "1") for i in range(10)]
LAYER_ASKS = [("100.01", "1"), ("100.02", "1")]


@pytest.mark.parametrize(
    "events",
    [
        # a wall flickering at one price plus one other wall: two price levels
        [
            (1000, [("99.85", "20"), ("99.80", "30")]),
            (1200, [("99.85", "0")]),
            (1400, [("99.85", "20")]),
            (1600, [("99.85", "0")]),
            (1800, [("99.85", "20")]),
            (2000, [("99.85", "0"), ("99.80", "0")]),
        ],
        # three price levels, one of them flickering: counted once, by its latest episode
        [
            (1000, [("99.85", "20"), ("99.80", "30"), ("99.75", "40")]),
            (1200, [("99.85", "0")]),
            (1300, [("99.85", "25")]),
            (1500, [("99.85", "0")]),
            (1600, [("99.80", "0")]),
            (1700, [("99.75", "0")]),
        ],
        # an older wall vanishing with a group of three does not veto it
        [
            (1, [("99.70", "25")]),
            (3001, [("99.85", "20"), ("99.80", "30"), ("99.75", "40")]),
            (5000, [("99.85", "0"), ("99.80", "0"), ("99.75", "0"), ("99.70", "0")]),
        ],
    ],
    ids=["flicker-two-prices", "flicker-three-prices", "older-wall"],
)
def test_layering_price_levels(compare, bybit_factory, events) -> None:
    pair = Pair(compare)
    msgs = bybit_factory()
    pair.apply(msgs.snapshot("X", 0, LAYER_BIDS, LAYER_ASKS))
    for ts, levels in events:
        pair.apply(msgs.delta("X", ts, levels))
        pair.check(["X"])


def test_reference_mid_is_the_last_applied_one(compare, bybit_factory) -> None:
    """A crossing delta breaks the reference book: its last applied mid stays the reference mid
    (its crossed ladder is not a price)."""
    pair = Pair(compare, reference="REFUSDT")
    msgs = bybit_factory()
    ref_bids, ref_asks = [("99.99", "1"), ("99.98", "1")], [("100.01", "1"), ("100.02", "1")]
    pair.apply(msgs.snapshot("REFUSDT", 0, ref_bids, ref_asks))
    pair.apply(msgs.snapshot("X", 1, [("49.99", "1")], [("50.01", "1")]))
    for i, (ref_bid, x_bid) in enumerate(
        (("100.00", "50.00"), ("99.97", "49.98"), ("100.005", "50.005"))
    ):
        pair.apply(msgs.delta("REFUSDT", 10 * (i + 1), [(ref_bid, "1")]))
        pair.apply(msgs.delta("X", 10 * (i + 1) + 1, [(x_bid, "1")]))
        pair.check(["X"])
    pair.apply(msgs.delta("REFUSDT", 100, [("100.05", "1")]))  # crosses the ask: CROSSED
    pair.apply(msgs.delta("X", 101, [("50.006", "1")]))
    pair.check(["X"])


def test_realized_vol_of_a_flat_window_is_zero(compare, bybit_factory) -> None:
    """Returns that left the 10 s window leave nothing behind: a flat mid has volatility 0."""
    pair = Pair(compare)
    msgs = bybit_factory()
    pair.apply(msgs.snapshot("X", 0, [("99.99", "1")], [("100.01", "1")]))
    for i, bid in enumerate(("100.00", "99.97", "99.995", "99.93", "100.004", "99.98")):
        pair.apply(msgs.delta("X", 100 * (i + 1), [(bid, "1")]))
    for ts in (10_700, 11_000, 12_000):
        pair.apply(msgs.delta("X", ts, [("1", "1")]))  # a deep level: the mid stays put
        pair.check(["X"])


def test_real_bybit_dump_with_trades(compare, with_trades, realdata) -> None:
    """The real XRPUSDT ob500 dump (500 levels a side), with trades interleaved."""
    lines = (realdata / "2024-12-01_XRPUSDT_ob500.data").read_bytes().splitlines()
    pair = Pair(compare)
    for raw in with_trades([line for line in lines if line.strip()], seed=2, rate=0.8):
        _, symbol = pair.apply(raw)
        if symbol is not None:
            pair.check([symbol])


def test_an_unchanged_mid_is_a_zero_return(compare, bybit_factory) -> None:
    """(99.81 + 99.84) / 2 and (99.82 + 99.83) / 2 are the same mid, 99.825; in floats the
    two sums round differently (99.825 vs 99.82499999999999). The mid must be the same number
    whatever quotes make it, or a quote change that leaves the mid alone becomes a return and
    ``std == 0`` (skewness missing) depends on rounding."""
    pair = Pair(compare)
    msgs = bybit_factory()
    pair.apply(msgs.snapshot("X", 0, [("99.81", "1")], [("99.84", "1")]))
    for i in range(1, 6):
        inner = i % 2 == 1
        bids = [("99.82", "1")] if inner else [("99.82", "0")]
        asks = [("99.83", "1")] if inner else [("99.83", "0")]
        pair.apply(msgs.delta("X", 100 * i, bids, asks))
        pair.check(["X"])


def test_a_wall_is_not_nearer_when_the_mid_is_the_same(compare, bybit_factory) -> None:
    """The bid wall at 99.88 appears with the mid at (99.91 + 99.93) / 2 = 99.92 and vanishes
    with the mid at (99.88 + 99.96) / 2 = 99.92: not nearer, no spoofing (in floats the second
    mid is 99.91999999999999, which would make it nearer)."""
    pair = Pair(compare)
    msgs = bybit_factory()
    bids = [("99.91", "1"), ("99.89", "1"), ("99.88", "7"), ("99.86", "0.1")]
    pair.apply(msgs.snapshot("X", 0, bids, [("99.93", "1"), ("99.96", "1")]))
    pair.apply(msgs.delta("X", 1000, [("99.91", "0"), ("99.89", "0")], [("99.93", "0")]))
    pair.check(["X"])
