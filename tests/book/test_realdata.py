"""Both engines (native ``BookEngine`` and ``ReferenceEngine``) over real exchange recordings.

Files read (from ../shared/realdata, see its SOURCES.md):

* ``2024-12-01_XRPUSDT_ob500.data``   Bybit v5 ob500 dump (nautilus_trader test data)
* ``OKX.ws.1.0``                      OKX v5 ``books`` with checksums (cryptofeed sample data)
* ``KRAKEN.ws.50.0``                  Kraken WS v1 ``book-1000`` with checksums (cryptofeed)
* ``kraken-sdk-orderbook-v1.json``    Kraken WS v1 ``book-10`` (python-kraken-sdk fixture)
* ``kraken-sdk-orderbook-v2.json``    Kraken WS v2 ``book`` (python-kraken-sdk fixture)
* ``BINANCE_FUTURES.ws.1.0`` + ``BINANCE_FUTURES.http.0.0``  Binance USD-M diff depth + REST
  snapshots (cryptofeed)

The numbers asserted (290 OKX checksums, 4,269 / 979 / 510 Kraken checksums, the Bybit top of
book) are the exchange's own: they were computed by the exchange and only have to be matched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from pysrc.book.reference import (
    APPLIED,
    BUFFERED,
    CROSSED,
    GAP,
    SKIPPED,
    STALE,
    WAITING,
)

ENGINES = ["native", "reference"]


class Run:
    """One engine replayed over one recording, with what happened at every step."""

    def __init__(
        self, engine: Any, outcomes: list[tuple[int, str | None]], crossed_steps: list[int]
    ):
        self.engine = engine
        self.outcomes = outcomes
        self.crossed_steps = crossed_steps

    def count(self) -> Counter[int]:
        return Counter(outcome for outcome, _ in self.outcomes)


@pytest.fixture(scope="module")
def replayed(
    recording: Callable[[str], Any],
    native_engine: Callable[..., Any],
    reference_engine: Callable[..., Any],
    step_runner: Callable[[Any, Any], tuple[int, str | None]],
) -> Callable[[str, str], Run]:
    """``replayed(recording_name, "native" | "reference")``: replayed once per module."""
    cache: dict[tuple[str, str], Run] = {}

    def run(name: str, which: str) -> Run:
        key = (name, which)
        if key not in cache:
            rec = recording(name)
            factory = native_engine if which == "native" else reference_engine
            engine = factory(rec.exchange)
            outcomes, crossed_steps = [], []
            for index, step in enumerate(rec.steps):
                outcome = step_runner(engine, step)
                outcomes.append(outcome)
                symbol = outcome[1]
                if symbol is not None and _is_crossed(engine, symbol):
                    crossed_steps.append(index)
            cache[key] = Run(engine, outcomes, crossed_steps)
        return cache[key]

    return run


def _is_crossed(engine: Any, symbol: str) -> bool:
    bid, ask = engine.best_bid(symbol), engine.best_ask(symbol)
    return bid is not None and ask is not None and Decimal(bid[0]) >= Decimal(ask[0])


# ---- Bybit ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ENGINES)
def test_bybit_ob500_rebuild(replayed: Callable[[str, str], Run], which: str) -> None:
    """2024-12-01_XRPUSDT_ob500.data: one snapshot + 49 deltas, u +1 each, 500/500 levels,
    never crossed, ends at 1.9537 / 1.9538."""
    run = replayed("bybit-ob500", which)
    engine = run.engine
    assert run.count() == {APPLIED: 50}
    assert run.crossed_steps == []
    assert engine.symbols() == ["XRPUSDT"]
    assert engine.best_bid("XRPUSDT")[0] == "1.9537"
    assert engine.best_ask("XRPUSDT")[0] == "1.9538"
    stats = engine.stats("XRPUSDT")
    assert stats["bid_levels"] == 500 and stats["ask_levels"] == 500
    assert (stats["gaps"], stats["stale"], stats["crossed"], stats["resyncs"]) == (0, 0, 0, 0)
    assert (stats["state"], stats["depth"], stats["messages"]) == ("live", 500, 50)
    assert engine.update_id("XRPUSDT") == 20254918
    assert engine.totals()["gaps"] == 0 and engine.totals()["errors"] == 0


# ---- OKX -----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ENGINES)
def test_okx_every_checksum_verifies(replayed: Callable[[str, str], Run], which: str) -> None:
    """OKX.ws.1.0: 3 instruments, 290 book messages, every checksum matches."""
    run = replayed("okx-books", which)
    engine = run.engine
    totals = engine.totals()
    assert (totals["checksums_checked"], totals["checksum_failures"]) == (290, 0)
    assert run.count() == {APPLIED: 290, SKIPPED: 120}
    assert sorted(engine.symbols()) == ["BTC-USD-220527", "BTC-USDT", "UNI-USD-SWAP"]
    assert all(engine.is_live(s) for s in engine.symbols())
    assert sum(engine.stats(s)["checksums_checked"] for s in engine.symbols()) == 290
    assert run.crossed_steps == []


# ---- Kraken --------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ENGINES)
def test_kraken_v1_book1000_every_checksum_verifies(
    replayed: Callable[[str, str], Run], which: str
) -> None:
    """KRAKEN.ws.50.0: ten pairs on book-1000, 4,269 update checksums, all match (the books
    must be truncated to 1000 levels for that)."""
    run = replayed("kraken-v1-book1000", which)
    engine = run.engine
    totals = engine.totals()
    assert (totals["checksums_checked"], totals["checksum_failures"]) == (4269, 0)
    assert len(engine.symbols()) == 10
    for symbol in engine.symbols():
        stats = engine.stats(symbol)
        assert stats["state"] == "live" and stats["depth"] == 1000
        assert stats["bid_levels"] <= 1000 and stats["ask_levels"] <= 1000
    assert run.count()[APPLIED] == 4269 + 10
    assert run.crossed_steps == []


@pytest.mark.parametrize("which", ENGINES)
def test_kraken_sdk_v1_every_checksum_verifies(
    replayed: Callable[[str, str], Run], which: str
) -> None:
    """kraken-sdk-orderbook-v1.json: book-10 XBT/USD, 979 update checksums, all match."""
    engine = replayed("kraken-sdk-v1", which).engine
    totals = engine.totals()
    assert (totals["checksums_checked"], totals["checksum_failures"]) == (979, 0)
    assert engine.symbols() == ["XBT/USD"] and engine.is_live("XBT/USD")
    assert engine.stats("XBT/USD")["depth"] == 10


@pytest.mark.parametrize("which", ENGINES)
def test_kraken_sdk_v2_every_checksum_verifies(
    replayed: Callable[[str, str], Run], which: str
) -> None:
    """kraken-sdk-orderbook-v2.json: BTC/USD v2, 510 checksums (the snapshot's included), all
    match; JSON numbers such as ``0.001`` are written at the book's 8 size decimals."""
    run = replayed("kraken-sdk-v2", which)
    engine = run.engine
    totals = engine.totals()
    assert (totals["checksums_checked"], totals["checksum_failures"]) == (510, 0)
    assert run.count() == {APPLIED: 510}
    assert engine.symbols() == ["BTC/USD"]
    assert engine.stats("BTC/USD")["bid_levels"] == 10 == engine.stats("BTC/USD")["ask_levels"]
    assert engine.last_ts("BTC/USD") is not None


# ---- Binance -------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ENGINES)
def test_binance_sync_from_rest_snapshots(
    replayed: Callable[[str, str], Run], recording: Callable[[str], Any], which: str
) -> None:
    """BINANCE_FUTURES.ws.1.0 merged by time with BINANCE_FUTURES.http.0.0: each REST snapshot
    is bridged by a buffered update, all four symbols end live with an unbroken pu chain."""
    rec = recording("binance-usdm")
    run = replayed("binance-usdm", which)
    engine = run.engine
    symbols = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]
    assert sorted(engine.symbols()) == sorted(symbols)
    snapshot_outcomes = [
        o for step, o in zip(rec.steps, run.outcomes, strict=True) if step[0] == "snapshot"
    ]
    assert snapshot_outcomes == [(APPLIED, s) for s in symbols]
    counts = run.count()
    assert GAP not in counts and CROSSED not in counts and WAITING not in counts
    # Every depth update is accounted for: buffered, dropped as stale, or applied.
    assert counts[APPLIED] + counts[STALE] + counts[BUFFERED] == 764 + len(symbols)
    totals = engine.totals()
    assert (totals["gaps"], totals["crossed"], totals["errors"]) == (0, 0, 0)
    last_u = _last_update_ids(rec.steps)
    for symbol in symbols:
        stats = engine.stats(symbol)
        assert stats["state"] == "live" and stats["gaps"] == 0 and stats["resyncs"] == 0
        assert engine.update_id(symbol) == last_u[symbol]  # the chain reached the last update
    assert run.crossed_steps == []


def _last_update_ids(steps: Any) -> dict[str, int]:
    import orjson

    last: dict[str, int] = {}
    for kind, _, payload in steps:
        if kind == "apply":
            data = orjson.loads(payload)["data"]
            if data["e"] == "depthUpdate":
                last[data["s"]] = data["u"]
    return last


# ---- native == reference -------------------------------------------------------------------

RECORDING_FILES = {
    "bybit-ob500": "2024-12-01_XRPUSDT_ob500.data",
    "okx-books": "OKX.ws.1.0",
    "kraken-v1-book1000": "KRAKEN.ws.50.0",
    "kraken-sdk-v1": "kraken-sdk-orderbook-v1.json",
    "kraken-sdk-v2": "kraken-sdk-orderbook-v2.json",
    "binance-usdm": "BINANCE_FUTURES.ws.1.0+BINANCE_FUTURES.http.0.0",
}


@pytest.mark.parametrize("name", list(RECORDING_FILES), ids=list(RECORDING_FILES.values()))
def test_native_matches_reference(
    replayed: Callable[[str, str], Run], book_dump: Callable[..., dict[str, Any]], name: str
) -> None:
    """Same outcome for every message, and the same final books level by level
    (``levels(sym, 0)``), states, update ids, timestamps and counters."""
    native, reference = replayed(name, "native"), replayed(name, "reference")
    mismatches = [
        (index, got, want)
        for index, (got, want) in enumerate(zip(native.outcomes, reference.outcomes, strict=True))
        if got != want
    ]
    assert mismatches[:5] == [], f"{len(mismatches)} outcome mismatches (step, native, reference)"
    native_dump, reference_dump = book_dump(native.engine), book_dump(reference.engine)
    for symbol, expected in reference_dump["books"].items():
        got = native_dump["books"].get(symbol)
        assert got is not None, f"native has no book for {symbol}"
        assert got["levels"] == expected["levels"], f"{symbol}: levels differ"
        assert got == expected, f"{symbol}: state or counters differ"
    assert native_dump == reference_dump
