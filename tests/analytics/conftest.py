"""Shared fixtures of the analytics tests.

Tests run with ``--import-mode=importlib`` and cannot import each other, so what they share is
handed out here as fixtures: builders of raw Bybit messages (order book and ``publicTrade``), the
oracle factory, a stream of trades interleaved with a synthetic book stream, and the comparison of
a native feature vector against the oracle's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import pytest

from pysrc.analytics.reference import FEATURE_NAMES, FeatureOracle
from pysrc.book.reference import APPLIED, ReferenceEngine

Num = str | int | float | Decimal
LevelSpec = tuple[Num, Num]
TradeSpec = tuple[int, str, Num, Num]  # (T, "Buy" | "Sell", price, size)


def _text(value: Num) -> str:
    """Decimal text of a level value (floats through repr, so 0.1 is "0.1")."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        value = Decimal(repr(value))
    return format(Decimal(value), "f")


@dataclass
class BybitMessages:
    """Builders of raw Bybit v5 messages with a per-symbol ``u`` chain (snapshot resets it)."""

    depth: int = 50
    u: dict[str, int] = field(default_factory=dict)

    def snapshot(
        self,
        symbol: str,
        ts: int,
        bids: Iterable[LevelSpec],
        asks: Iterable[LevelSpec],
        depth: int | None = None,
    ) -> bytes:
        self.u[symbol] = self.u.get(symbol, 0) + 1000
        return self._book(symbol, "snapshot", ts, bids, asks, depth)

    def delta(
        self,
        symbol: str,
        ts: int,
        bids: Iterable[LevelSpec] = (),
        asks: Iterable[LevelSpec] = (),
        depth: int | None = None,
        u: int | None = None,
    ) -> bytes:
        """A delta chained on the symbol's last ``u`` (or with an explicit ``u``)."""
        self.u[symbol] = self.u[symbol] + 1 if u is None else u
        return self._book(symbol, "delta", ts, bids, asks, depth)

    def _book(
        self,
        symbol: str,
        kind: str,
        ts: int,
        bids: Iterable[LevelSpec],
        asks: Iterable[LevelSpec],
        depth: int | None,
    ) -> bytes:
        return orjson.dumps(
            {
                "topic": f"orderbook.{depth or self.depth}.{symbol}",
                "type": kind,
                "ts": ts,
                "data": {
                    "s": symbol,
                    "b": [[_text(p), _text(q)] for p, q in bids],
                    "a": [[_text(p), _text(q)] for p, q in asks],
                    "u": self.u[symbol],
                    "seq": self.u[symbol] * 7,
                },
                "cts": ts - 1,
            }
        )

    @staticmethod
    def trades(symbol: str, trades: Sequence[TradeSpec], ts: int | None = None) -> bytes:
        """A ``publicTrade`` message; the envelope ts defaults to the last trade's T."""
        return orjson.dumps(
            {
                "topic": f"publicTrade.{symbol}",
                "type": "snapshot",
                "ts": ts if ts is not None else max(t[0] for t in trades),
                "data": [
                    {
                        "T": t,
                        "s": symbol,
                        "S": side,
                        "v": _text(size),
                        "p": _text(price),
                        "L": "PlusTick",
                        "i": f"{symbol}-{t}-{n}",
                        "BT": False,
                        "seq": 1000 + n,
                    }
                    for n, (t, side, price, size) in enumerate(trades)
                ],
            }
        )


@pytest.fixture
def bybit() -> BybitMessages:
    """Fresh message builders (their ``u`` chains start over in every test)."""
    return BybitMessages()


@pytest.fixture(scope="session")
def bybit_factory() -> type[BybitMessages]:
    """The builder class, for tests that need several (or one per hypothesis example)."""
    return BybitMessages


@pytest.fixture(scope="session")
def oracle_factory() -> Callable[..., FeatureOracle]:
    return FeatureOracle


@pytest.fixture(scope="session")
def features() -> Callable[[FeatureOracle, str], dict[str, float | None]]:
    """``features(oracle, symbol)`` -> name -> value, None where missing."""

    def read(oracle: FeatureOracle, symbol: str) -> dict[str, float | None]:
        values, mask, _ = oracle.vector(symbol)
        return {n: (v if m else None) for n, v, m in zip(FEATURE_NAMES, values, mask, strict=True)}

    return read


# ---- trades interleaved with a synthetic book stream -------------------------------------------


def interleave_trades(
    messages: Iterable[bytes], seed: int = 11, rate: float = 0.3
) -> Iterator[bytes]:
    """Yield the book messages with ``publicTrade`` messages in between: after a book message,
    with probability ``rate``, 1-3 trades of that symbol at its current best prices (buys at the
    ask, sells at the bid) or sometimes at a deeper level, sized from the level (same decimals),
    with ``T`` a little after the book's ts (so sometimes later than the symbol's next book
    message, as happens between Bybit's two streams). ``T`` never goes back per symbol."""
    rng = random.Random(seed)
    book = ReferenceEngine("bybit")
    last_t: dict[str, int] = {}
    for raw in messages:
        yield raw
        outcome, symbol = book.apply(raw)
        if outcome != APPLIED or symbol is None or rng.random() >= rate:
            continue
        ts = orjson.loads(raw)["ts"]
        bids, asks = book.levels(symbol, 10)
        if not bids or not asks:
            continue
        trades: list[TradeSpec] = []
        t = max(ts + int(rng.random() * 40), last_t.get(symbol, 0))
        for _ in range(rng.randint(1, 3)):
            buy = rng.random() < 0.5
            side = asks if buy else bids
            price, size = side[0] if rng.random() < 0.8 else side[rng.randrange(len(side))]
            # a fraction of the level's size with the level's decimals
            decimals = len(size.partition(".")[2])
            units = int(Decimal(size).scaleb(decimals))
            take = max(1, int(units * rng.uniform(0.05, 1.2)))
            trades.append(
                (t, "Buy" if buy else "Sell", price, format(Decimal(take).scaleb(-decimals), "f"))
            )
            t += int(rng.random() * 3)
        last_t[symbol] = t
        yield BybitMessages.trades(symbol, trades)


@pytest.fixture(scope="session")
def with_trades() -> Callable[..., Iterator[bytes]]:
    return interleave_trades


# ---- comparing a native vector with the oracle's ----------------------------------------------

REL_TOL = 1e-9
ABS_TOL = 1e-9


def raw_mismatches(
    names: Sequence[str],
    got: Sequence[float],
    got_mask: Sequence[Any],
    expected: Sequence[float],
    expected_mask: Sequence[bool],
    slack: Sequence[float] | None = None,
) -> list[str]:
    """Features whose mask differs, whose value is not finite, or whose value differs beyond
    ``math.isclose(rel_tol=1e-9, abs_tol=1e-9)`` (plus the oracle's ``slack`` for the few
    statistics that amplify the rounding of their inputs); a missing value must be written as
    0.0."""
    out: list[str] = []
    for i, name in enumerate(names):
        g, gm, e, em = float(got[i]), bool(got_mask[i]), expected[i], expected_mask[i]
        abs_tol = ABS_TOL + (slack[i] if slack else 0.0)
        if not math.isfinite(g):
            out.append(f"{name}: not finite ({g!r})")
        elif gm != em:
            out.append(f"{name}: mask {int(gm)}, expected {int(em)} (value {g!r}, expected {e!r})")
        elif not em and g != 0.0:
            out.append(f"{name}: missing but written as {g!r}")
        elif em and not math.isclose(g, e, rel_tol=REL_TOL, abs_tol=abs_tol):
            out.append(f"{name}: {g!r}, expected {e!r}")
    return out


def z_mismatches(
    names: Sequence[str],
    got: Sequence[float],
    got_mask: Sequence[Any],
    expected: Sequence[float],
    expected_mask: Sequence[bool],
    raw: Sequence[float],
    state: Callable[[int], tuple[float, float] | None],
    slack: Sequence[float] | None = None,
) -> list[str]:
    """Normalized values: masks identical, values finite within [-10, 10], 0.0 where missing, and
    equal to the oracle's z where that z is well conditioned.

    A z-score ``(x - m) / sqrt(v)`` magnifies the last-bit differences that the raw values are
    allowed (``dx`` = the raw tolerance) by ``1 / sqrt(v)``; where ``sqrt(v)`` is not far above
    ``dx`` (a feature that has been constant up to float noise, e.g. a spread of exactly one
    tick computed from moving prices) the z-score carries no information and two correct
    implementations may disagree, so only the mask and the range are checked there.
    """
    out: list[str] = []
    for i, name in enumerate(names):
        g, gm, e, em = float(got[i]), bool(got_mask[i]), expected[i], expected_mask[i]
        if not math.isfinite(g) or abs(g) > 10.0:
            out.append(f"{name}: z {g!r} not finite or outside [-10, 10]")
            continue
        if gm != em:
            out.append(f"{name}: z mask {int(gm)}, expected {int(em)}")
            continue
        if not em:
            if g != 0.0:
                out.append(f"{name}: missing but z written as {g!r}")
            continue
        mv = state(i)
        assert mv is not None
        m, v = mv
        dx = max(REL_TOL * max(abs(raw[i]), abs(m)), ABS_TOL + (slack[i] if slack else 0.0))
        if v <= 0.0 or math.sqrt(v) < 1e4 * dx:
            continue  # ill-conditioned, see above
        tol = 1e-6 + 1e-6 * abs(e) + 4.0 * dx / math.sqrt(v)
        if abs(g - e) > tol:
            out.append(f"{name}: z {g!r}, expected {e!r} (m={m!r}, v={v!r})")
    return out


def compare_vectors(engine: Any, oracle: FeatureOracle, symbol: str) -> list[str]:
    """Every disagreement between the native vector (raw and normalized) of ``symbol`` and the
    oracle's, as readable lines (empty when they agree)."""
    import numpy as np

    n = len(FEATURE_NAMES)
    values = np.zeros(n, dtype=np.float64)
    mask = np.zeros(n, dtype=np.uint8)
    problems: list[str] = []
    e_values, e_mask, e_count = oracle.vector(symbol)
    count = engine.features_into(symbol, values, mask, False)
    if count != e_count:
        problems.append(f"update count {count}, expected {e_count}")
    slack = oracle.slack(symbol)
    problems += raw_mismatches(FEATURE_NAMES, values, mask, e_values, e_mask, slack)
    z_values, z_mask, z_count = oracle.normalized(symbol)
    count = engine.features_into(symbol, values, mask, True)
    if count != z_count:
        problems.append(f"normalized update count {count}, expected {z_count}")
    problems += z_mismatches(
        FEATURE_NAMES,
        values,
        mask,
        z_values,
        z_mask,
        e_values,
        lambda i: oracle.normalizer_state(symbol, i),
        slack,
    )
    return problems


@pytest.fixture(scope="session")
def compare() -> Callable[[Any, FeatureOracle, str], list[str]]:
    """``compare(engine, oracle, symbol)``: see :func:`compare_vectors`."""
    return compare_vectors
