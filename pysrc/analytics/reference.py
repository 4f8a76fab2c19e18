"""From-scratch Python oracle of the native feature vector (``native/analytics/schema.rs``).

:class:`FeatureOracle` consumes the same raw Bybit messages as
``BookEngine("bybit", ..., features=True)``. After every applied book message it recomputes every
feature of the schema from the recorded history of the symbol: the book at each update (every
level with the timestamp of the message that created it), the trades received so far, and the
deletions seen near the top of the book. The book itself comes from the pure-Python
:class:`~pysrc.book.reference.ReferenceEngine`, so book rules are those of
``docs/book-semantics.md``. Nothing here reads or mirrors the Rust implementation: the schema text
(and the conventions below) is the only input.

How it stays an oracle rather than a second copy of the same shortcuts:

* every discrete decision (wall threshold, median, density boundary, impact reachability, ties,
  hotspot and point-of-control choice, value-area growth, volume buckets, bps thresholds) is made
  in exact decimal arithmetic on the wire values; values are computed exactly where the formula
  allows and rounded to float once at the end (logs, square roots and the statistics of float
  returns are computed in float, with ``math.fsum``);
* windows are filters over the whole history ("the trades with ``T > now - W``"), never running
  sums;
* the only state carried from update to update is what the definitions make sequential: the
  exponentially weighted statistics (``volume_anomaly_z`` and the normalized mode) and the
  layering detector's used-up wall episodes. Per-update facts that are pure functions of the
  history up to that update (its mid, its walls and when each wall's run started, the wall
  episodes that ended there) are computed once when the update is recorded; they never change
  afterwards, so memoising them is the same as recomputing them.

Semantics beyond the schema text (given by the project lead, normative):

* only Bybit feeds analytics; ``publicTrade.{symbol}`` returns ``(TRADES, symbol)`` and records the
  trades (also for a symbol with no book yet); a trade message does not recompute the vector;
* the vector is recomputed after every APPLIED book message (snapshot or delta) of the symbol;
  "now" is that message's envelope ``ts``;
* a level's creation ts is the envelope ts of the message that inserted it (a snapshot inserts all
  its levels); a size update keeps it; a delete is size ``0`` in a delta for an existing level and
  counts for ``level_ttl_mean_s`` when its rank was <= 20 just before the delete; truncation to
  depth is not a delete;
* walls are evaluated at every update; a spoofing/layering "trade at its price meanwhile" is a
  trade at exactly that price with ``T`` in ``[first seen ts, vanished ts]``; a detection's ts is
  the update at which the wall vanished; ``*_score_60s`` covers detections with
  ``ts > now - 60,000``;
* normalized mode: per feature, at every update where it is present, ``m += a (x - m)``,
  ``v = (1 - a)(v + a (x - m_prev)^2)``, ``a = 0.001``, starting at ``m = x, v = 0``;
  ``z = (x - m) / sqrt(v)`` after including ``x``, clipped to [-10, 10], 0 where ``v == 0``.

Readings chosen where the text leaves room (reported to the lead; the native side must match):

1. "Book features are missing while either side is empty" covers the ``book`` and ``clusters``
   groups, except the features whose missing rule names one side only (``best_bid``,
   ``best_ask``) or says "never" (``bid_levels``, ``ask_levels``). Lifetime features follow their
   own column (``best_bid_age_s``: bid side empty; ``level_ttl_mean_s``: no deletion yet).
2. Walls of a side are a function of that side's own top 50 levels, evaluated at every update even
   when the other side is empty (so a wall's run is not broken by an empty opposite side).
3. The median of an even number of sizes is the mean of the two middle ones.
4. Trade windows hold the trades received before the update with ``T > now - W`` (a trade whose
   ``T`` is later than the book's ``ts`` counts: it was received, and Bybit's trade and book
   streams are not synchronised to the millisecond). VPIN fills its buckets with every trade
   received, in arrival order; the first 50 trades fill buckets too (exactly 10 of them); bucket
   boundaries are exact (a float ``V`` would make the 10th bucket of the first 50 trades
   close or not depending on rounding).
5. "Over the last 100 updates with/where ...": the window is the last 100 updates (the current
   one included), of which those qualifying are used: returns need a mid at the update and at
   the one before it (which may lie outside the window); ``ofi_norm_100`` averages
   ``bs_1 + as_1`` over the updates of the same 100-update window that had both sides;
   ``variance_ratio_10`` sums 10 consecutive entries of that list of returns.
6. ``mid_roc_*``: ``mid_then`` is the mid of the last update with ``ts <= now - W``; when that
   update had no mid the feature is missing (no search further back).
7. ``volume_anomaly_z`` uses ``m`` and ``v`` after including the current value, like the
   normalized mode (so the first update has ``v == 0`` and is missing).
8. Spoofing and layering: "first seen" is the first update of the wall's current run; the
   distance rules use the mid of that update (missing mid: not a candidate) and of the update it
   vanished at (missing mid: no detection); a distance is ``|price - mid| / mid`` (the mid may
   have moved through the wall's price by the time it vanished: the distance stays positive and
   the spoofing score never exceeds the size ratio); "within" bounds are inclusive and "nearer"
   is strict.
   A wall episode is judged for trades once, with the trades received when it vanished. Layering
   ("3 or more walls on one side, each within 50 bps of mid [when first seen], that appeared
   within 2 s of each other and vanished within 2 s of each other with no trade at their
   prices"): at each update, per side, the candidates are the episodes of that side that vanished
   in ``[now - 2000, now]``, were within 50 bps when first seen, saw no trade at their price, and
   are not part of an earlier layering detection. Walls are price levels: of several candidate
   episodes at one price (a wall flickering across the 5x threshold, common in real books) only
   the latest to vanish counts. Sorted by (first seen ts, price), the window of first-seen times
   spanning at most 2000 ms with the most of them (ties: the earliest) is a detection when it
   holds 3 or more; the candidate episodes at its prices are used up and the search repeats. A
   candidate outside that window (an older wall vanishing at the same time) does not prevent
   the detection.
9. ``corr_ref_100``: the reference mid "at" an update is the reference symbol's mid as of its last
   applied update at that moment; a pair needs both mids of both symbols at both ends, recorded
   for the same reference symbol.
10. ``basis_ext_bps`` uses the external mid set when the update is computed (setting it does not
    recompute the vector).
11. Prices are exact decimals, so the mid, the spread and every distance are exact values
    rounded once: the same mid reached from different quotes (``(99.81 + 99.84) / 2`` and
    ``(99.82 + 99.83) / 2``) is the same float, its return is exactly 0, and "std == 0" or
    "var(r) == 0" do not depend on rounding. Likewise a window whose returns are all 0 has a
    realized volatility and standard deviation of exactly 0.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext
from fractions import Fraction
from typing import Any, Final

import orjson

from pysrc.book.reference import (
    APPLIED,
    ReferenceEngine,
    ReferenceMalformed,
    parse_wire_number,
)

__all__ = [
    "FEATURE_NAMES",
    "N_FEATURES",
    "SCHEMA_VERSION",
    "TRADES",
    "FeatureOracle",
]

TRADES: Final = 8
# The schema version these definitions implement (``native.FEATURE_SCHEMA_VERSION``).
SCHEMA_VERSION: Final = 1

# The schema's names in vector order, written out here (not read from the native module) so that
# a test can hold the native layout to them.
FEATURE_NAMES: Final[tuple[str, ...]] = (
    # book state
    "best_bid",
    "best_ask",
    "mid",
    "spread",
    "spread_bps",
    "microprice",
    "microprice_offset_bps",
    "bid_size_1",
    "ask_size_1",
    "imbalance_1",
    "imbalance_5",
    "imbalance_10",
    "imbalance_20",
    "bid_depth_5",
    "ask_depth_5",
    "bid_depth_20",
    "ask_depth_20",
    "bid_notional_10",
    "ask_notional_10",
    "impact_buy_bps",
    "impact_sell_bps",
    "density_bid_10bps",
    "density_ask_10bps",
    "pressure_10",
    "bid_levels",
    "ask_levels",
    "ofi",
    "ofi_sum_100",
    "ofi_norm_100",
    # clusters
    "wall_bid_count",
    "wall_ask_count",
    "wall_bid_dist_bps",
    "wall_ask_dist_bps",
    "wall_bid_size_ratio",
    "wall_ask_size_ratio",
    "hotspot_bid_dist_bps",
    "hotspot_ask_dist_bps",
    "support_dist_bps",
    "resistance_dist_bps",
    "wall_bid_age_s",
    "wall_ask_age_s",
    # level lifetime
    "level_ttl_mean_s",
    "best_bid_age_s",
    "best_ask_age_s",
    # trade flow
    "trade_volume_10s",
    "trade_count_10s",
    "volume_delta_10s",
    "buy_ratio_10s",
    "trade_vwap_dev_bps",
    "volume_anomaly_z",
    "poc_dist_bps",
    "va_low_dist_bps",
    "va_high_dist_bps",
    "acc_dist_300s",
    "vpin",
    # manipulation
    "spoof_score_60s",
    "layering_score_60s",
    # temporal
    "mid_ret_mean_100",
    "mid_ret_std_100",
    "mid_ret_skew_100",
    "imbalance_5_mean_100",
    "imbalance_5_std_100",
    "spread_bps_mean_100",
    "mid_roc_1s_bps",
    "mid_roc_10s_bps",
    "mid_accel_1s_bps",
    "realized_vol_10s_bps",
    "variance_ratio_10",
    # cross-symbol and cross-exchange
    "corr_ref_100",
    "basis_ext_bps",
)
N_FEATURES: Final = len(FEATURE_NAMES)
INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(FEATURE_NAMES)}

# ---- constants of the schema ------------------------------------------------------------------

BID: Final = 0
ASK: Final = 1
SIDE_NAMES: Final = ("bid", "ask")

WALL_TOP: Final = 50  # walls and hotspots look at the best 50 levels of a side
WALL_MULTIPLE: Final = Decimal(5)  # a wall is at least 5 x the median size
HOTSPOT_RUN: Final = 5
IMPACT_QUOTE: Final = Decimal(10_000)
DENSITY_FRACTION: Final = Decimal("0.001")  # 10 bps
PRESSURE_LEVELS: Final = 10
UPDATE_WINDOW: Final = 100  # "the last 100 updates"
TTL_REMOVALS: Final = 100
TTL_TOP_RANK: Final = 20
TRADE_WINDOW_MS: Final = 10_000
PROFILE_WINDOW_MS: Final = 300_000
VPIN_FIRST_TRADES: Final = 50
VPIN_BUCKETS_PER_FIRST: Final = 10  # V = volume of the first 50 trades / 10
VPIN_WINDOW: Final = 50
VALUE_AREA_SHARE: Final = Fraction(7, 10)
SUPPORT_MS: Final = 30_000
SPOOF_BPS: Final = Decimal(20)
SPOOF_LIFE_MS: Final = 10_000
LAYER_BPS: Final = Decimal(50)
LAYER_SPAN_MS: Final = 2_000
LAYER_MIN_WALLS: Final = 3
DETECTION_WINDOW_MS: Final = 60_000
ANOMALY_ALPHA: Final = 0.01
NORMALIZE_ALPHA: Final = 0.001
Z_CLIP: Final = 10.0
BPS: Final = Decimal(10_000)
# How far two correct float computations of one log return may differ (bps): ln of a ratio
# rounded to float is good to a few 1e-16, times 1e4, with a wide margin.
RETURN_NOISE_BPS: Final = 1e-10

# Every sum and product of 18-digit decimals met here is exact at this precision; divisions round
# at the 120th digit, far below float resolution.
_EXACT: Final = Context(prec=120)


# ---- recorded history ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Level:
    """One price level as it stood at an update."""

    price: Decimal
    size: Decimal
    created: int  # envelope ts of the message that inserted the level


@dataclass(frozen=True, slots=True)
class Wall:
    price: Decimal
    size: Decimal
    ratio: Decimal  # size / median size of the side's top 50
    rank: int  # 1 = best level of the side


@dataclass(frozen=True, slots=True)
class Trade:
    ts: int  # T, the fill time
    price: Decimal
    size: Decimal
    buy: bool  # the taker bought


@dataclass(frozen=True, slots=True)
class Episode:
    """A wall's unbroken run that ended: its price stopped being a wall at update ``vanished``."""

    side: int
    price: Decimal
    first: int  # index of the first update of the run
    vanished: int  # index of the update at which it was no longer a wall
    first_ts: int
    vanished_ts: int
    ratio: Decimal  # size ratio at first sight
    first_mid: Decimal | None
    vanished_mid: Decimal | None
    traded: bool  # a trade at exactly its price with T in [first_ts, vanished_ts] (known then)


@dataclass(frozen=True, slots=True)
class Detection:
    kind: str  # "spoofing" | "layering"
    side: int
    score: float
    ts: int  # the update at which the wall(s) vanished
    episodes: tuple[Episode, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "side": SIDE_NAMES[self.side],
            "score": self.score,
            "ts": self.ts,
            "levels": [
                (float(e.price), float(e.ratio), e.first_ts, e.vanished_ts) for e in self.episodes
            ],
        }


@dataclass(slots=True)
class Update:
    """The state of one symbol after one applied book message, with per-update facts that depend
    only on the history up to this update (so they are computed once, when it is recorded)."""

    index: int
    ts: int
    bids: tuple[Level, ...]  # best (highest) first
    asks: tuple[Level, ...]  # best (lowest) first
    ref_symbol: str | None  # the reference symbol when this update was applied
    ref_mid: Decimal | None  # its mid then (as of its last applied update)
    mid: Decimal | None = None
    # Quantities of one update (or of one update against the previous one) that the
    # 100-update and time windows read again at every later update.
    ret: float | None = None  # ln(mid / previous update's mid) * 1e4
    ref_pair: tuple[float, float] | None = None  # (ret, reference's return over the same span)
    ofi: Decimal | None = None
    top_size: Decimal | None = None  # bs_1 + as_1
    imbalance_5: float | None = None
    spread_bps: float | None = None
    walls: tuple[dict[Decimal, Wall], dict[Decimal, Wall]] = field(default_factory=lambda: ({}, {}))
    # index of the first update of each current wall's unbroken run
    run_start: tuple[dict[Decimal, int], dict[Decimal, int]] = field(
        default_factory=lambda: ({}, {})
    )

    def side(self, side: int) -> tuple[Level, ...]:
        return self.bids if side == BID else self.asks

    @property
    def both(self) -> bool:
        return bool(self.bids) and bool(self.asks)


class _Ew:
    """Exponentially weighted mean and variance, as the schema writes them."""

    __slots__ = ("alpha", "m", "v")

    def __init__(self, alpha: float, first: float) -> None:
        self.alpha = alpha
        self.m = first  # starts at the first value with zero variance
        self.v = 0.0

    def add(self, x: float) -> None:
        a = self.alpha
        m_prev = self.m
        self.m = m_prev + a * (x - m_prev)
        self.v = (1.0 - a) * (self.v + a * (x - m_prev) ** 2)

    def z(self, x: float) -> float | None:
        if self.v <= 0.0:
            return None
        return (x - self.m) / math.sqrt(self.v)


@dataclass(slots=True)
class _Symbol:
    name: str
    # the current book with creation times, by price (Update holds the ordered sides)
    bids: dict[Decimal, Level] = field(default_factory=dict)
    asks: dict[Decimal, Level] = field(default_factory=dict)
    updates: list[Update] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    deletions: list[tuple[int, int]] = field(default_factory=list)  # (delete ts, creation ts)
    episodes: list[Episode] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    layered: set[tuple[int, Decimal, int]] = field(default_factory=set)  # used-up episodes
    anomaly: _Ew | None = None
    norm: list[_Ew | None] = field(default_factory=lambda: [None] * N_FEATURES)
    values: list[float | None] = field(default_factory=lambda: [None] * N_FEATURES)
    slack: list[float] = field(default_factory=lambda: [0.0] * N_FEATURES)
    zscores: list[float | None] = field(default_factory=lambda: [None] * N_FEATURES)
    ext_mid: float | None = None
    vpin_cache: tuple[int, float | None] = (-1, None)


# ---- small exact helpers ------------------------------------------------------------------------


def _bps(x: Decimal, base: Decimal) -> float:
    return float(x / base * BPS)


def _dist(price: Decimal, mid: Decimal) -> Decimal:
    """Distance of a price from the mid, in price units (positive for a sane book)."""
    return abs(price - mid)


def _within_bps(price: Decimal, mid: Decimal, bps: Decimal) -> bool:
    """``|price - mid| / mid * 1e4 <= bps``, without dividing."""
    return _dist(price, mid) * BPS <= bps * mid


def _median(sizes: list[Decimal]) -> Decimal:
    s = sorted(sizes)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _walls(levels: tuple[Level, ...]) -> dict[Decimal, Wall]:
    top = levels[:WALL_TOP]
    if not top:
        return {}
    median = _median([lv.size for lv in top])
    return {
        lv.price: Wall(lv.price, lv.size, lv.size / median, rank)
        for rank, lv in enumerate(top, 1)
        if lv.size >= WALL_MULTIPLE * median
    }


def _largest(walls: dict[Decimal, Wall]) -> Wall | None:
    """The biggest wall; ties go to the one nearer the mid (the better rank on its side)."""
    if not walls:
        return None
    return max(walls.values(), key=lambda w: (w.size, -w.rank))


def _hotspot_price(levels: tuple[Level, ...]) -> Decimal | None:
    top = levels[:WALL_TOP]
    if len(top) < HOTSPOT_RUN:
        return None
    best_start, best_total = 0, Decimal(-1)
    for start in range(len(top) - HOTSPOT_RUN + 1):
        total = sum((lv.size for lv in top[start : start + HOTSPOT_RUN]), Decimal(0))
        if total > best_total:  # strict: the first such run from the best wins ties
            best_start, best_total = start, total
    return top[best_start + HOTSPOT_RUN // 2].price


def _impact_vwap(levels: tuple[Level, ...]) -> Decimal | None:
    """Walk the levels until the cost reaches 10,000 quote; None when the side holds less."""
    remaining = IMPACT_QUOTE
    qty = Decimal(0)
    for lv in levels:
        cost = lv.price * lv.size
        if cost >= remaining:
            qty += remaining / lv.price  # the fraction of this level still needed
            return IMPACT_QUOTE / qty
        qty += lv.size
        remaining -= cost
    return None


def _sum_sizes(levels: tuple[Level, ...], n: int) -> Decimal:
    return sum((lv.size for lv in levels[:n]), Decimal(0))


def _imbalance(bids: tuple[Level, ...], asks: tuple[Level, ...], n: int) -> Decimal:
    b, a = _sum_sizes(bids, n), _sum_sizes(asks, n)
    return (b - a) / (b + a)


def _ofi(prev: Update | None, cur: Update) -> Decimal | None:
    """Cont-Kukanov-Stoikov order-flow imbalance of one update against the previous one."""
    if prev is None or not prev.both or not cur.both:
        return None
    bb, bs = cur.bids[0].price, cur.bids[0].size
    ba, as_ = cur.asks[0].price, cur.asks[0].size
    pbb, pbs = prev.bids[0].price, prev.bids[0].size
    pba, pas = prev.asks[0].price, prev.asks[0].size
    e = Decimal(0)
    if bb >= pbb:
        e += bs
    if bb <= pbb:
        e -= pbs
    if ba <= pba:
        e -= as_
    if ba >= pba:
        e += pas
    return e


def _fmean(xs: list[float]) -> float:
    return math.fsum(xs) / len(xs)


def _pvar(xs: list[float]) -> float:
    m = _fmean(xs)
    return math.fsum((x - m) ** 2 for x in xs) / len(xs)


def _log_return(now: Decimal, then: Decimal) -> float:
    return math.log(float(now / then)) * 1e4


# ---- the oracle -----------------------------------------------------------------------------


class FeatureOracle:
    """Feature vectors of ``native/analytics/schema.rs``, recomputed from the recorded history.

    ``apply`` takes raw Bybit messages (order book and ``publicTrade``) and returns the same
    ``(outcome, symbol)`` as the native engine with ``features=True``. ``depth`` is the engine
    depth (0 = the topic's depth), as for ``BookEngine``.
    """

    def __init__(self, reference_symbol: str | None = None, depth: int = 0) -> None:
        self._engine = ReferenceEngine("bybit", depth)
        self._symbols: dict[str, _Symbol] = {}
        self._reference = reference_symbol

    # ---- public surface ----------------------------------------------------------------------

    @property
    def engine(self) -> ReferenceEngine:
        """The reference book engine behind the oracle (for book-level assertions)."""
        return self._engine

    def set_reference_symbol(self, symbol: str | None) -> None:
        self._reference = symbol

    def set_external_mid(self, symbol: str, mid: float | None) -> None:
        if mid is not None and not (math.isfinite(mid) and mid > 0):
            raise ValueError("external mid must be a positive finite number")
        self._state(symbol).ext_mid = mid

    def apply(self, raw: bytes | str) -> tuple[int, str | None]:
        obj = _try_loads(raw)
        if type(obj) is dict:
            topic = obj.get("topic")
            if type(topic) is str and topic.partition(".")[0] == "publicTrade":
                return self._apply_trades(obj)
        outcome, symbol = self._engine.apply(raw)  # raises ReferenceMalformed like the native
        if outcome == APPLIED and symbol is not None:
            assert type(obj) is dict
            self._record_update(symbol, obj)
        return outcome, symbol

    def updates(self, symbol: str) -> int:
        st = self._symbols.get(symbol)
        return len(st.updates) if st else 0

    def vector(self, symbol: str) -> tuple[list[float], list[bool], int]:
        """Raw values (0.0 where missing), mask, number of applied book updates."""
        st = self._symbols.get(symbol)
        if st is None:
            return [0.0] * N_FEATURES, [False] * N_FEATURES, 0
        return _pack(st.values) + (len(st.updates),)

    def normalized(self, symbol: str) -> tuple[list[float], list[bool], int]:
        """Running z-scores (0.0 where missing or while the variance is 0), mask as for the raw
        vector, number of applied book updates."""
        st = self._symbols.get(symbol)
        if st is None:
            return [0.0] * N_FEATURES, [False] * N_FEATURES, 0
        values = [0.0 if z is None else z for z in st.zscores]
        mask = [v is not None for v in st.values]
        return values, mask, len(st.updates)

    def normalizer_state(self, symbol: str, index: int) -> tuple[float, float] | None:
        """``(m, v)`` of one feature's running statistics (tests use it to judge how well
        conditioned a z-score is)."""
        st = self._symbols.get(symbol)
        ew = st.norm[index] if st else None
        return None if ew is None else (ew.m, ew.v)

    def slack(self, symbol: str) -> list[float]:
        """Per feature, the absolute error beyond last-bit differences that a correct float
        implementation may show: statistics of mid returns (skewness, variance ratio,
        correlation) amplify the rounding of the returns themselves (``~1e-12`` bps, from
        ``ln`` of a rounded ratio) by ``1 / std`` of what they divide by, which is large when
        the returns are nearly constant. 0 for every other feature."""
        st = self._symbols.get(symbol)
        return list(st.slack) if st else [0.0] * N_FEATURES

    def as_dict(self, symbol: str) -> dict[str, float | None]:
        st = self._symbols.get(symbol)
        values = st.values if st else [None] * N_FEATURES
        return dict(zip(FEATURE_NAMES, values, strict=True))

    def detections(self, symbol: str) -> list[dict[str, object]]:
        """Spoofing and layering detections with ``ts > now - 60,000`` (now = the last update)."""
        st = self._symbols.get(symbol)
        if st is None or not st.updates:
            return []
        now = st.updates[-1].ts
        return [d.as_dict() for d in st.detections if d.ts > now - DETECTION_WINDOW_MS]

    # ---- recording ---------------------------------------------------------------------------

    def _state(self, symbol: str) -> _Symbol:
        st = self._symbols.get(symbol)
        if st is None:
            st = self._symbols[symbol] = _Symbol(symbol)
        return st

    def _apply_trades(self, obj: dict[str, Any]) -> tuple[int, str | None]:
        symbol = obj["topic"].partition(".")[2]
        if not symbol:
            raise ReferenceMalformed("publicTrade topic without a symbol")
        data = obj.get("data")
        if type(data) is not list:
            raise ReferenceMalformed("publicTrade data is not an array")
        trades: list[Trade] = []
        for item in data:
            if type(item) is not dict:
                raise ReferenceMalformed("trade is not an object")
            if item.get("s") is not None and item["s"] != symbol:
                raise ReferenceMalformed("trade symbol does not match the topic")
            ts = item.get("T")
            side = item.get("S")
            if type(ts) is not int or side not in ("Buy", "Sell"):
                raise ReferenceMalformed(f"bad trade {item!r}")
            price = parse_wire_number(item.get("p"))[0]
            size = parse_wire_number(item.get("v"))[0]
            trades.append(Trade(ts, price, size, side == "Buy"))
        self._state(symbol).trades.extend(trades)  # validated first: all or nothing
        return TRADES, symbol

    def _record_update(self, symbol: str, obj: dict[str, Any]) -> None:
        st = self._state(symbol)
        ts = obj.get("ts")
        if type(ts) is not int:  # Bybit always stamps; keep time from going nowhere otherwise
            ts = st.updates[-1].ts if st.updates else 0
        data = obj["data"]
        if obj["type"] == "snapshot":
            st.bids, st.asks = {}, {}  # a snapshot creates all its levels
        else:
            for key, book in (("b", st.bids), ("a", st.asks)):
                bid_side = key == "b"
                for price_text, size_text, *_ in data.get(key) or []:
                    price, size = Decimal(price_text), Decimal(size_text)
                    old = book.get(price)
                    if size == 0:
                        if old is None:
                            continue  # deleting an absent level is a no-op
                        # rank just before the delete, counting the levels applied so far
                        better = sum(1 for p in book if (p > price if bid_side else p < price))
                        if better + 1 <= TTL_TOP_RANK:
                            st.deletions.append((ts, old.created))
                        del book[price]
                    else:
                        book[price] = Level(price, size, ts if old is None else old.created)
        if obj["type"] == "snapshot":
            # The reference engine applied the snapshot's rules (duplicates, zero sizes,
            # truncation): take its levels, all created now.
            bid_texts, ask_texts = self._engine.levels(symbol, 0)
            bids = tuple(Level(Decimal(p), Decimal(q), ts) for p, q in bid_texts)
            asks = tuple(Level(Decimal(p), Decimal(q), ts) for p, q in ask_texts)
        else:
            # Truncation keeps the best levels: as many as the reference engine kept.
            stats = self._engine.stats(symbol)
            bids = tuple(st.bids[p] for p in sorted(st.bids, reverse=True))
            asks = tuple(st.asks[p] for p in sorted(st.asks))
            bids = bids[: int(stats["bid_levels"])]
            asks = asks[: int(stats["ask_levels"])]
            # The replay above must hold the engine's book (a cheap check: the best levels).
            for levels, best in (
                (bids, self._engine.best_bid(symbol)),
                (asks, self._engine.best_ask(symbol)),
            ):
                top = (levels[0].price, levels[0].size) if levels else None
                if top != (None if best is None else (Decimal(best[0]), Decimal(best[1]))):
                    raise AssertionError(f"{symbol}: delta replay disagrees with the book")
        st.bids = {lv.price: lv for lv in bids}
        st.asks = {lv.price: lv for lv in asks}

        ref_symbol = self._reference
        ref_mid = None
        if ref_symbol is not None:
            ref = self._symbols.get(ref_symbol)
            if ref is not None and ref.updates:
                ref_mid = ref.updates[-1].mid
        upd = Update(len(st.updates), ts, bids, asks, ref_symbol, ref_mid)
        with localcontext(_EXACT):
            self._derive(st, upd)
            st.updates.append(upd)
            self._detect(st)
            values = self._features(st)
        self._finish(st, values)

    def _derive(self, st: _Symbol, upd: Update) -> None:
        """Per-update facts: mid, return, OFI, top-of-book quantities, walls, and where each
        wall's current run started."""
        prev = st.updates[-1] if st.updates else None
        if upd.both:
            bb, ba = upd.bids[0].price, upd.asks[0].price
            upd.mid = (bb + ba) / 2
            upd.top_size = upd.bids[0].size + upd.asks[0].size
            upd.imbalance_5 = float(_imbalance(upd.bids, upd.asks, 5))
            upd.spread_bps = _bps(ba - bb, upd.mid)
        upd.ofi = _ofi(prev, upd)
        if prev is not None and prev.mid is not None and upd.mid is not None:
            upd.ret = _log_return(upd.mid, prev.mid)
            if (
                prev.ref_symbol is not None
                and prev.ref_symbol == upd.ref_symbol
                and prev.ref_mid is not None
                and upd.ref_mid is not None
            ):
                upd.ref_pair = (upd.ret, _log_return(upd.ref_mid, prev.ref_mid))
        for side in (BID, ASK):
            walls = _walls(upd.side(side))
            upd.walls[side].update(walls)
            for price in walls:
                if prev is not None and price in prev.walls[side]:
                    upd.run_start[side][price] = prev.run_start[side][price]
                else:
                    upd.run_start[side][price] = upd.index

    # ---- spoofing and layering ------------------------------------------------------------

    def _detect(self, st: _Symbol) -> None:
        ups = st.updates
        k = len(ups) - 1
        if k == 0:
            return
        prev, cur = ups[k - 1], ups[k]
        for side in (BID, ASK):
            vanished = [p for p in prev.walls[side] if p not in cur.walls[side]]
            for price in sorted(vanished):
                start = prev.run_start[side][price]
                first = ups[start]
                traded = any(t.price == price and first.ts <= t.ts <= cur.ts for t in st.trades)
                ep = Episode(
                    side,
                    price,
                    start,
                    k,
                    first.ts,
                    cur.ts,
                    first.walls[side][price].ratio,
                    first.mid,
                    cur.mid,
                    traded,
                )
                st.episodes.append(ep)
                score = _spoof_score(ep)
                if score is not None:
                    st.detections.append(Detection("spoofing", side, score, cur.ts, (ep,)))
            self._layering(st, side, cur.ts)

    def _layering(self, st: _Symbol, side: int, now: int) -> None:
        while True:
            candidates = [
                ep
                for ep in st.episodes
                if ep.side == side
                and now - LAYER_SPAN_MS <= ep.vanished_ts <= now
                and not ep.traded
                and ep.first_mid is not None
                and _within_bps(ep.price, ep.first_mid, LAYER_BPS)
                and (ep.side, ep.price, ep.first) not in st.layered
            ]
            # "3 or more walls" are 3 or more price levels: a wall that flickers across the
            # 5x threshold at one price is one wall, represented by its latest episode.
            latest: dict[Decimal, Episode] = {}
            for ep in candidates:  # in the order they vanished
                latest[ep.price] = ep
            pool = sorted(latest.values(), key=lambda ep: (ep.first_ts, ep.price))
            best: list[Episode] = []
            firsts = [ep.first_ts for ep in pool]
            for i, ep in enumerate(pool):
                j = bisect_right(firsts, ep.first_ts + LAYER_SPAN_MS)
                if j - i > len(best):
                    best = pool[i:j]
            if len(best) < LAYER_MIN_WALLS:
                return
            prices = {ep.price for ep in best}
            for ep in candidates:  # the group's prices are used up, earlier flickers included
                if ep.price in prices:
                    st.layered.add((ep.side, ep.price, ep.first))
            score = float(sum((ep.ratio for ep in best), Decimal(0)))  # count * mean ratio
            st.detections.append(Detection("layering", side, score, now, tuple(best)))

    # ---- the vector ---------------------------------------------------------------------------

    def _features(self, st: _Symbol) -> list[float | None]:
        ups = st.updates
        k = len(ups) - 1
        cur = ups[k]
        now = cur.ts
        bids, asks = cur.bids, cur.asks
        both = cur.both
        mid = cur.mid
        f: dict[str, float | None] = dict.fromkeys(FEATURE_NAMES)
        slack: dict[str, float] = {}

        # ---- book state ----
        f["best_bid"] = float(bids[0].price) if bids else None
        f["best_ask"] = float(asks[0].price) if asks else None
        f["bid_levels"] = float(len(bids))
        f["ask_levels"] = float(len(asks))
        if both:
            assert mid is not None
            bb, bs1 = bids[0].price, bids[0].size
            ba, as1 = asks[0].price, asks[0].size
            micro = (bb * as1 + ba * bs1) / (bs1 + as1)
            f["mid"] = float(mid)
            f["spread"] = float(ba - bb)
            f["spread_bps"] = _bps(ba - bb, mid)
            f["microprice"] = float(micro)
            f["microprice_offset_bps"] = _bps(micro - mid, mid)
            f["bid_size_1"] = float(bs1)
            f["ask_size_1"] = float(as1)
            for n in (1, 5, 10, 20):
                f[f"imbalance_{n}"] = float(_imbalance(bids, asks, n))
            f["bid_depth_5"] = float(_sum_sizes(bids, 5))
            f["ask_depth_5"] = float(_sum_sizes(asks, 5))
            f["bid_depth_20"] = float(_sum_sizes(bids, 20))
            f["ask_depth_20"] = float(_sum_sizes(asks, 20))
            f["bid_notional_10"] = float(sum((lv.price * lv.size for lv in bids[:10]), Decimal(0)))
            f["ask_notional_10"] = float(sum((lv.price * lv.size for lv in asks[:10]), Decimal(0)))
            vwap = _impact_vwap(asks)
            f["impact_buy_bps"] = None if vwap is None else _bps(vwap - mid, mid)
            vwap = _impact_vwap(bids)
            f["impact_sell_bps"] = None if vwap is None else _bps(mid - vwap, mid)
            low = mid * (1 - DENSITY_FRACTION)
            high = mid * (1 + DENSITY_FRACTION)
            f["density_bid_10bps"] = float(
                sum((lv.size for lv in bids if lv.price >= low), Decimal(0))
            )
            f["density_ask_10bps"] = float(
                sum((lv.size for lv in asks if lv.price <= high), Decimal(0))
            )
            num = den = Decimal(0)
            for i in range(PRESSURE_LEVELS):
                b = bids[i].size if i < len(bids) else Decimal(0)
                a = asks[i].size if i < len(asks) else Decimal(0)
                w = Decimal(1) / (i + 1)
                num += w * (b - a)
                den += w * (b + a)
            f["pressure_10"] = float(num / den)

        f["ofi"] = None if cur.ofi is None else float(cur.ofi)
        window = ups[max(0, k - UPDATE_WINDOW + 1) : k + 1]  # the last 100 updates
        if both:
            ofi_sum = sum((u.ofi for u in window if u.ofi is not None), Decimal(0))
            tops = [u.top_size for u in window if u.top_size is not None]
            f["ofi_sum_100"] = float(ofi_sum)
            f["ofi_norm_100"] = float(ofi_sum / (sum(tops, Decimal(0)) / len(tops)))

        # ---- clusters ----
        if both:
            assert mid is not None
            f["wall_bid_count"] = float(len(cur.walls[BID]))
            f["wall_ask_count"] = float(len(cur.walls[ASK]))
            for side, name in ((BID, "bid"), (ASK, "ask")):
                wall = _largest(cur.walls[side])
                if wall is not None:
                    f[f"wall_{name}_dist_bps"] = _bps(_dist(wall.price, mid), mid)
                    f[f"wall_{name}_size_ratio"] = float(wall.ratio)
                    first_ts = ups[cur.run_start[side][wall.price]].ts
                    f[f"wall_{name}_age_s"] = (now - first_ts) / 1000
                hot = _hotspot_price(cur.side(side))
                if hot is not None:
                    f[f"hotspot_{name}_dist_bps"] = _bps(_dist(hot, mid), mid)
            old_enough = {
                side: [
                    p for p in cur.walls[side] if now - ups[cur.run_start[side][p]].ts >= SUPPORT_MS
                ]
                for side in (BID, ASK)
            }
            if old_enough[BID]:
                support = max(old_enough[BID])  # the highest-priced bid wall
                f["support_dist_bps"] = _bps(mid - support, mid)
            if old_enough[ASK]:
                resistance = min(old_enough[ASK])  # the lowest-priced ask wall
                f["resistance_dist_bps"] = _bps(resistance - mid, mid)

        # ---- level lifetime ----
        if st.deletions:
            last = st.deletions[-TTL_REMOVALS:]
            f["level_ttl_mean_s"] = float(Fraction(sum(d - c for d, c in last), 1000 * len(last)))
        if bids:
            f["best_bid_age_s"] = (now - bids[0].created) / 1000
        if asks:
            f["best_ask_age_s"] = (now - asks[0].created) / 1000

        # ---- trade flow ----
        recent = [t for t in st.trades if t.ts > now - TRADE_WINDOW_MS]
        volume = sum((t.size for t in recent), Decimal(0))
        buys = sum((t.size for t in recent if t.buy), Decimal(0))
        f["trade_volume_10s"] = float(volume)
        f["trade_count_10s"] = float(len(recent))
        f["volume_delta_10s"] = float(buys - (volume - buys))
        if recent:
            f["buy_ratio_10s"] = float(buys / volume)
            if both:
                assert mid is not None
                vwap = sum((t.price * t.size for t in recent), Decimal(0)) / volume
                f["trade_vwap_dev_bps"] = _bps(vwap - mid, mid)
        x = float(volume)
        if st.anomaly is None:
            st.anomaly = _Ew(ANOMALY_ALPHA, x)
        else:
            st.anomaly.add(x)
        if k >= 1:
            f["volume_anomaly_z"] = st.anomaly.z(x)

        profile_trades = [t for t in st.trades if t.ts > now - PROFILE_WINDOW_MS]
        if profile_trades:
            if both:
                assert mid is not None
                poc, val, vah = _value_area(profile_trades)
                f["poc_dist_bps"] = _bps(poc - mid, mid)
                f["va_low_dist_bps"] = _bps(val - mid, mid)
                f["va_high_dist_bps"] = _bps(vah - mid, mid)
            high_p = max(t.price for t in profile_trades)
            low_p = min(t.price for t in profile_trades)
            if high_p != low_p:
                total = sum((t.size for t in profile_trades), Decimal(0))
                acc = sum(
                    (t.size * ((t.price - low_p) - (high_p - t.price)) for t in profile_trades),
                    Decimal(0),
                )
                f["acc_dist_300s"] = float(acc / (high_p - low_p) / total)
        f["vpin"] = self._vpin(st)

        # ---- manipulation ----
        recent_det = [d for d in st.detections if d.ts > now - DETECTION_WINDOW_MS]
        f["spoof_score_60s"] = max(
            (d.score for d in recent_det if d.kind == "spoofing"), default=0.0
        )
        f["layering_score_60s"] = max(
            (d.score for d in recent_det if d.kind == "layering"), default=0.0
        )

        # ---- temporal ----
        returns = [u.ret for u in window if u.ret is not None]
        if returns:
            f["mid_ret_mean_100"] = _fmean(returns)
        if len(returns) >= 2:
            f["mid_ret_std_100"] = math.sqrt(_pvar(returns))
        if len(returns) >= 3:
            m = _fmean(returns)
            std = math.sqrt(_pvar(returns))
            if std != 0.0:
                f["mid_ret_skew_100"] = _fmean([(r - m) ** 3 for r in returns]) / std**3
                slack["mid_ret_skew_100"] = RETURN_NOISE_BPS / std
        imbalances = [u.imbalance_5 for u in window if u.imbalance_5 is not None]
        if imbalances:
            f["imbalance_5_mean_100"] = _fmean(imbalances)
        if len(imbalances) >= 2:
            f["imbalance_5_std_100"] = math.sqrt(_pvar(imbalances))
        spreads = [u.spread_bps for u in window if u.spread_bps is not None]
        if spreads:
            f["spread_bps_mean_100"] = _fmean(spreads)
        f["mid_roc_1s_bps"] = _roc(ups, k, 1_000)
        f["mid_roc_10s_bps"] = _roc(ups, k, 10_000)
        then = _last_at_or_before(ups, k, now - 1_000)
        roc_then = None if then is None else _roc(ups, then, 1_000)
        if f["mid_roc_1s_bps"] is not None and roc_then is not None:
            f["mid_accel_1s_bps"] = f["mid_roc_1s_bps"] - roc_then
        vol_returns = [u.ret for u in ups if u.ts > now - 10_000 and u.ret is not None]
        if vol_returns:
            f["realized_vol_10s_bps"] = math.sqrt(math.fsum(r * r for r in vol_returns))
        if len(returns) >= 20:
            var1 = _pvar(returns)
            if var1 != 0.0:
                sums = [math.fsum(returns[i : i + 10]) for i in range(len(returns) - 9)]
                var10 = _pvar(sums)
                ratio = var10 / (10 * var1)
                f["variance_ratio_10"] = ratio
                slack["variance_ratio_10"] = (
                    ratio
                    * RETURN_NOISE_BPS
                    * (1 / math.sqrt(var1) + (10 / math.sqrt(var10) if var10 > 0 else 0.0))
                )

        # ---- cross ----
        if self._reference is not None and self._reference != st.name:
            pairs = [u.ref_pair for u in window if u.ref_pair is not None]
            if len(pairs) >= 3:
                xs = [p[0] for p in pairs]
                ys = [p[1] for p in pairs]
                mx, my = _fmean(xs), _fmean(ys)
                sxx = math.fsum((x - mx) ** 2 for x in xs)
                syy = math.fsum((y - my) ** 2 for y in ys)
                if sxx != 0.0 and syy != 0.0:
                    sxy = math.fsum((x - mx) * (y - my) for x, y in pairs)
                    f["corr_ref_100"] = sxy / math.sqrt(sxx * syy)
                    n = len(pairs)
                    slack["corr_ref_100"] = RETURN_NOISE_BPS * (
                        1 / math.sqrt(sxx / n) + 1 / math.sqrt(syy / n)
                    )
        if both and st.ext_mid is not None:
            assert mid is not None
            ext = Decimal(st.ext_mid)  # the float's exact value
            f["basis_ext_bps"] = _bps(mid - ext, ext)

        assert len(f) == N_FEATURES
        st.slack = [0.0] * N_FEATURES
        for name, value in slack.items():
            st.slack[INDEX[name]] = value
        return [f[name] for name in FEATURE_NAMES]

    def _vpin(self, st: _Symbol) -> float | None:
        # A pure function of the trades received; cached by their number.
        n, value = st.vpin_cache
        if n != len(st.trades):
            value = _vpin(st.trades)
            st.vpin_cache = (len(st.trades), value)
        return value

    def _finish(self, st: _Symbol, values: list[float | None]) -> None:
        for v in values:
            assert v is None or math.isfinite(v), values
        st.values = values
        for i, x in enumerate(values):
            if x is None:
                st.zscores[i] = None
                continue
            ew = st.norm[i]
            if ew is None:
                ew = st.norm[i] = _Ew(NORMALIZE_ALPHA, x)
            else:
                ew.add(x)
            z = ew.z(x)
            st.zscores[i] = 0.0 if z is None else max(-Z_CLIP, min(Z_CLIP, z))


# ---- history functions --------------------------------------------------------------------------


def _last_at_or_before(ups: list[Update], k: int, limit: int) -> int | None:
    """The last update (in order, up to k) with ``ts <= limit``."""
    for j in range(k, -1, -1):
        if ups[j].ts <= limit:
            return j
    return None


def _roc(ups: list[Update], k: int, window_ms: int) -> float | None:
    then = _last_at_or_before(ups, k, ups[k].ts - window_ms)
    if then is None:
        return None
    mid, mid_then = ups[k].mid, ups[then].mid
    if mid is None or mid_then is None:
        return None
    return _bps(mid - mid_then, mid_then)


def _value_area(trades: list[Trade]) -> tuple[Decimal, Decimal, Decimal]:
    """Point of control and value area (low, high) of a volume profile by exact price."""
    profile: dict[Decimal, Decimal] = {}
    for t in trades:
        profile[t.price] = profile.get(t.price, Decimal(0)) + t.size
    prices = sorted(profile)
    total = sum(profile.values(), Decimal(0))
    poc = max(prices, key=lambda p: (profile[p], -p))  # the most volume, ties to the lower price
    lo = hi = prices.index(poc)
    area = profile[poc]
    while area < total * Decimal(VALUE_AREA_SHARE.numerator) / VALUE_AREA_SHARE.denominator:
        up = profile[prices[hi + 1]] if hi + 1 < len(prices) else None
        down = profile[prices[lo - 1]] if lo > 0 else None
        if down is None or (up is not None and up >= down):  # ties to the higher price
            hi += 1
            area += up  # type: ignore[operator]
        else:
            lo -= 1
            area += down
    return poc, prices[lo], prices[hi]


def _spoof_score(ep: Episode) -> float | None:
    """Score of a spoofing detection for a wall episode, or None when it is not one."""
    if ep.first_mid is None or ep.vanished_mid is None or ep.traded:
        return None
    if ep.vanished_ts - ep.first_ts > SPOOF_LIFE_MS:
        return None
    if not _within_bps(ep.price, ep.first_mid, SPOOF_BPS):
        return None
    # nearer to the mid when it vanished: d_v / mid_v < d_f / mid_f, cross-multiplied
    d_first, d_vanished = _dist(ep.price, ep.first_mid), _dist(ep.price, ep.vanished_mid)
    if not d_vanished * ep.first_mid < d_first * ep.vanished_mid:
        return None
    dist_bps = d_vanished / ep.vanished_mid * BPS
    return float(ep.ratio * (1 - dist_bps / SPOOF_BPS))


def _vpin(trades: list[Trade]) -> float | None:
    """VPIN over volume buckets of V = (volume of the first 50 trades) / 10, exactly.

    Volumes are counted ten-fold so that a bucket holds exactly the first 50 trades' volume.
    """
    if len(trades) < VPIN_FIRST_TRADES:
        return None
    capacity = sum((t.size for t in trades[:VPIN_FIRST_TRADES]), Decimal(0))
    buckets: list[Decimal] = []
    buy = sell = Decimal(0)
    for t in trades:
        left = t.size * VPIN_BUCKETS_PER_FIRST
        while left > 0:
            take = min(left, capacity - buy - sell)  # a trade spanning buckets is split
            if t.buy:
                buy += take
            else:
                sell += take
            left -= take
            if buy + sell == capacity:
                buckets.append(abs(buy - sell))
                buy = sell = Decimal(0)
    if not buckets:
        return None
    last = buckets[-VPIN_WINDOW:]
    return float(sum(last, Decimal(0)) / (len(last) * capacity))


def _try_loads(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return None  # the book engine reports it


def _pack(values: list[float | None]) -> tuple[list[float], list[bool]]:
    return [0.0 if v is None else v for v in values], [v is not None for v in values]
