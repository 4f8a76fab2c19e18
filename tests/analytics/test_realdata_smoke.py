"""Smoke tests of the native features on real and long synthetic Bybit data.

No oracle here (``test_native_vs_oracle.py`` does that): these runs check what must hold on any
data, message after message: no NaN or infinity, values in their ranges and consistent with each
other, normalized values within [-10, 10], the "never missing" features present, detectors that
do not fire on every update, and, over a long run with trades, every feature present at least
once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import orjson
import pytest

from pysrc.analytics import FEATURE_NAMES, FeatureReader, FeatureVector
from pysrc.book import BookEngine
from pysrc.book.reference import APPLIED
from pysrc.book.synthetic import bybit_stream

RATIO_1 = (
    "imbalance_1",
    "imbalance_5",
    "imbalance_10",
    "imbalance_20",
    "pressure_10",
    "acc_dist_300s",
)
UNIT = ("buy_ratio_10s", "vpin")
NON_NEGATIVE = (
    "bid_size_1",
    "ask_size_1",
    "bid_depth_5",
    "ask_depth_5",
    "bid_depth_20",
    "ask_depth_20",
    "bid_notional_10",
    "ask_notional_10",
    "density_bid_10bps",
    "density_ask_10bps",
    "bid_levels",
    "ask_levels",
    "wall_bid_count",
    "wall_ask_count",
    "wall_bid_dist_bps",
    "wall_ask_dist_bps",
    "hotspot_bid_dist_bps",
    "hotspot_ask_dist_bps",
    "support_dist_bps",
    "resistance_dist_bps",
    "wall_bid_age_s",
    "wall_ask_age_s",
    "level_ttl_mean_s",
    "best_bid_age_s",
    "best_ask_age_s",
    "trade_volume_10s",
    "trade_count_10s",
    "spoof_score_60s",
    "layering_score_60s",
    "mid_ret_std_100",
    "imbalance_5_std_100",
    "realized_vol_10s_bps",
    "variance_ratio_10",
)
POSITIVE = (
    "best_bid",
    "best_ask",
    "mid",
    "microprice",
    "spread",
    "spread_bps",
    "spread_bps_mean_100",
    "impact_buy_bps",
    "impact_sell_bps",
)
INTEGRAL = ("bid_levels", "ask_levels", "wall_bid_count", "wall_ask_count", "trade_count_10s")
NEVER_MISSING = (
    "bid_levels",
    "ask_levels",
    "trade_volume_10s",
    "trade_count_10s",
    "volume_delta_10s",
    "spoof_score_60s",
    "layering_score_60s",
)


def problems_in(vector: FeatureVector, z: FeatureVector) -> list[str]:
    """Everything implausible about one symbol's vector (raw and normalized)."""
    f = vector.as_dict()
    out: list[str] = []
    for name, value in zip(FEATURE_NAMES, vector.values.tolist(), strict=True):
        if not math.isfinite(value):
            out.append(f"{name} = {value}")
    for name, value, present in zip(FEATURE_NAMES, z.values.tolist(), z.mask.tolist(), strict=True):
        if not math.isfinite(value) or abs(value) > 10.0 or (not present and value != 0.0):
            out.append(f"normalized {name} = {value}")
    if (vector.mask != z.mask).any():
        out.append("normalized mask differs from the raw mask")

    def check(names: Iterable[str], ok: Callable[[float], bool], what: str) -> None:
        for name in names:
            v = f[name]
            if v is not None and not ok(v):
                out.append(f"{name} = {v} not {what}")

    check(RATIO_1, lambda v: -1.0 <= v <= 1.0, "in [-1, 1]")
    check(UNIT, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
    check(("corr_ref_100",), lambda v: abs(v) <= 1.0 + 1e-12, "in [-1, 1]")
    check(NON_NEGATIVE, lambda v: v >= 0.0, ">= 0")
    check(POSITIVE, lambda v: v > 0.0, "> 0")
    check(INTEGRAL, lambda v: v == int(v), "an integer")
    check(("wall_bid_size_ratio", "wall_ask_size_ratio"), lambda v: v >= 5.0, ">= 5")
    for name in NEVER_MISSING:
        if f[name] is None:
            out.append(f"{name} missing")
    bb, ba = f["best_bid"], f["best_ask"]
    if bb is not None and ba is not None:
        for name in ("mid", "microprice"):
            v = f[name]
            if v is None or not bb <= v <= ba:
                out.append(f"{name} = {v} outside [{bb}, {ba}]")
        if f["trade_count_10s"] == 0.0 and f["trade_volume_10s"] != 0.0:
            out.append("volume without trades")
    return out


def run(
    engine: BookEngine, messages: Iterable[bytes]
) -> Iterator[tuple[str, FeatureVector, FeatureVector]]:
    """Apply every message; after each applied book message, the symbol's raw and normalized
    vectors (checked for plausibility on the way)."""
    reader = FeatureReader(engine)
    for raw in messages:
        outcome, symbol = engine.apply(raw)
        if outcome != APPLIED or symbol is None:
            continue
        vector = reader.read(symbol)
        z = reader.read(symbol, normalized=True)
        found = problems_in(vector, z)
        assert not found, f"{symbol} after {raw[:200]!r}: {found}"
        yield symbol, vector, z


def detection_keys(engine: BookEngine, symbol: str) -> set[tuple[object, ...]]:
    return {(symbol, d["kind"], d["side"], d["ts"], d["score"]) for d in engine.detections(symbol)}


def test_real_bybit_dump(realdata: Path, with_trades) -> None:
    """The real XRPUSDT ob500 dump (one snapshot, 49 deltas, 500 levels a side), with trades
    interleaved at its best prices."""
    lines = [
        line
        for line in (realdata / "2024-12-01_XRPUSDT_ob500.data").read_bytes().splitlines()
        if line
    ]
    engine = BookEngine("bybit", features=True)
    updates = 0
    detections: set[tuple[object, ...]] = set()
    for symbol, vector, _ in run(engine, with_trades(lines, seed=4, rate=0.8)):
        updates += 1
        assert vector.updates == updates
        f = vector.as_dict()
        assert f["bid_levels"] == 500.0 and f["ask_levels"] == 500.0
        # XRP at ~1.95 with a 0.0001 tick: a one-tick spread is ~0.5 bps
        assert 0.0 < f["spread_bps"] < 5.0  # type: ignore[operator]
        detections |= detection_keys(engine, symbol)
    assert updates == 50
    assert len(detections) <= updates // 10


def persistent_walls(
    messages: Iterable[bytes], symbol: str, bid: str, ask: str, size: str
) -> Iterator[bytes]:
    """Restate one big bid and one big ask level of ``symbol`` in every one of its book
    messages (after the generator's own levels, so they always win): resting walls that live
    for the whole stream, so support and resistance have something to find. The prices sit a few
    dozen ticks from the start mid, inside the top 50 and far from the synthetic mid's drift."""
    topic = f".{symbol}".encode()
    for raw in messages:
        if raw.startswith(b'{"topic":"orderbook.') and topic in raw[:40]:
            obj = orjson.loads(raw)
            obj["data"]["b"].append([bid, size])
            obj["data"]["a"].append([ask, size])
            raw = orjson.dumps(obj)
        yield raw


@pytest.mark.slow
def test_long_synthetic_run_with_trades(with_trades) -> None:
    """About 80 s of two synthetic symbols (BTCUSDT the reference of ETHUSDT, which also has an
    external mid) with trades: plausible at every update, and every feature present at some
    point."""
    engine = BookEngine("bybit", features=True)
    engine.set_reference_symbol("BTCUSDT")
    engine.set_external_mid("ETHUSDT", 3000.0)
    stream = persistent_walls(
        bybit_stream(symbols=2, messages=16_000, seed=9),
        "BTCUSDT",
        "59996.00",
        "60004.00",
        "25.000",
    )
    seen = [False] * len(FEATURE_NAMES)
    updates = {"BTCUSDT": 0, "ETHUSDT": 0}
    first_ts: dict[str, int] = {}
    detections: set[tuple[object, ...]] = set()
    for symbol, vector, _ in run(engine, with_trades(stream, seed=8, rate=0.5)):
        updates[symbol] += 1
        seen = [s or bool(m) for s, m in zip(seen, vector.mask.tolist(), strict=True)]
        first_ts.setdefault(symbol, engine.last_ts(symbol) or 0)
        if updates[symbol] % 250 == 0:  # detections cover 60 s; the samples are ~2 s apart
            detections |= detection_keys(engine, symbol)
    for symbol in updates:
        detections |= detection_keys(engine, symbol)
    missing = [name for name, s in zip(FEATURE_NAMES, seen, strict=True) if not s]
    assert missing == []
    assert (engine.last_ts("BTCUSDT") or 0) - first_ts["BTCUSDT"] > 60_000
    total = sum(updates.values())
    assert total > 15_000
    # the synthetic books churn their walls, so the detectors do fire, but far from every update
    kinds = {d[1] for d in detections}
    assert kinds == {"spoofing", "layering"}
    assert len(detections) < total // 5
