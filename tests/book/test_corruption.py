"""Deliberately corrupted copies of the real recordings (built in memory, never written out).

Each test breaks one message of a real recording, checks that the engine notices (checksum
mismatch, gap, crossed book), that the broken book waits, and that a fresh snapshot (built from a
clean reference replay at a later point) brings it back to live with ``resyncs == 1`` and the same
final book as the clean recording. Each test runs with the native engine and with the reference.

Files read (../shared/realdata): ``OKX.ws.1.0``, ``kraken-sdk-orderbook-v1.json``,
``kraken-sdk-orderbook-v2.json``, ``2024-12-01_XRPUSDT_ob500.data``, ``BINANCE_FUTURES.ws.1.0`` +
``BINANCE_FUTURES.http.0.0``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import pytest

from pysrc.book.reference import (
    APPLIED,
    BUFFERED,
    CHECKSUM_MISMATCH,
    CROSSED,
    GAP,
    STALE,
    WAITING,
    kraken_checksum,
    okx_checksum,
)

Step = tuple[str, "str | None", "bytes | str"]
Runner = Callable[[Any, Step], tuple[int, "str | None"]]


@dataclass
class Corruption:
    """Where a recording was broken and how the broken book is repaired."""

    steps: list[Step]  # the corrupted recording, fresh snapshot included
    broken_at: int  # index (in ``steps``) of the step that must be detected
    snapshot_at: int  # index of the inserted fresh snapshot
    symbol: str


def splice(
    steps: list[Step], broken_at: int, replacement: list[Step], repair_after: int, snapshot: Step
) -> list[Step]:
    """``steps`` with ``steps[broken_at]`` replaced by ``replacement`` (empty: dropped) and a
    fresh ``snapshot`` inserted right after ``steps[repair_after]``."""
    return [
        *steps[:broken_at],
        *replacement,
        *steps[broken_at + 1 : repair_after + 1],
        snapshot,
        *steps[repair_after + 1 :],
    ]


def replay_until(
    factory: Callable[..., Any], exchange: str, steps: list[Step], end: int, run: Runner
) -> Any:
    """A clean reference engine after ``steps[:end]``."""
    engine = factory(exchange)
    for step in steps[:end]:
        run(engine, step)
    return engine


def check_repair(
    engine: Any,
    run: Runner,
    case: Corruption,
    clean: Any,
    broken_outcome: int,
    waiting_outcome: int = WAITING,
) -> list[tuple[int, str | None]]:
    """Replay a corrupted recording and check detection, waiting, repair and the final books."""
    outcomes = [run(engine, step) for step in case.steps]
    assert outcomes[case.broken_at] == (broken_outcome, case.symbol)
    between = [o for o in outcomes[case.broken_at + 1 : case.snapshot_at] if o[1] == case.symbol]
    assert between and all(o == (waiting_outcome, case.symbol) for o in between)
    assert outcomes[case.snapshot_at] == (APPLIED, case.symbol)
    stats = engine.stats(case.symbol)
    assert stats["state"] == "live" and stats["resyncs"] == 1
    later = [o for o in outcomes[case.snapshot_at + 1 :] if o[1] == case.symbol]
    assert later and {o for o, _ in later} <= {APPLIED, STALE}  # Binance may drop a stale one
    for symbol in clean.symbols():
        assert engine.levels(symbol, 0) == clean.levels(symbol, 0), symbol
        assert engine.state(symbol) == "live"
    assert engine.needs_resync() == []
    return outcomes


def book_messages(
    steps: list[Step], symbol_of: Callable[[Any], str | None]
) -> Iterator[tuple[int, Any]]:
    for index, (kind, _, payload) in enumerate(steps):
        if kind == "apply":
            parsed = (
                orjson.loads(payload) if not isinstance(payload, str) or payload != "pong" else None
            )
            if parsed is not None and symbol_of(parsed) is not None:
                yield index, parsed


def pick_level(
    levels_after: tuple[list[tuple[str, str]], list[tuple[str, str]]],
    candidates: list[tuple[str, int, Any, Any]],
    top: int,
) -> tuple[str, int] | None:
    """A non-zero level of the message that is inside the checksummed top of the book."""
    for side, index, price, size in candidates:
        if Decimal(str(size)) == 0:
            continue
        ladder = levels_after[0] if side in ("bids", "b") else levels_after[1]
        if any(Decimal(p) == Decimal(str(price)) for p, _ in ladder[:top]):
            return side, index
    return None


def bump(size: Any) -> Any:
    """A different size with the same number of decimals."""
    if isinstance(size, str):
        return str(Decimal(size) + 1)
    return Decimal(str(size)) + 1


# ---- OKX -----------------------------------------------------------------------------------


def okx_snapshot(clean: Any, symbol: str) -> Step:
    bids, asks = clean.levels(symbol, 0)
    message = {
        "arg": {"channel": "books", "instId": symbol},
        "action": "snapshot",
        "data": [
            {
                "asks": [[p, s, "0", "1"] for p, s in asks],
                "bids": [[p, s, "0", "1"] for p, s in bids],
                "ts": "1652459230000",
                "checksum": okx_checksum(bids, asks),
            }
        ],
    }
    return ("apply", None, json.dumps(message))


def test_okx_changed_size_is_a_checksum_mismatch(
    any_engine: Callable[..., Any],
    reference_engine: Callable[..., Any],
    recording: Callable[[str], Any],
    step_runner: Runner,
) -> None:
    """OKX.ws.1.0 with one level's size changed in a BTC-USDT update."""
    steps = list(recording("okx-books").steps)
    symbol = "BTC-USDT"

    def symbol_of(m: Any) -> str | None:
        arg = m.get("arg", {}) if isinstance(m, dict) else {}
        ok = arg.get("channel") == "books" and "data" in m and arg.get("instId") == symbol
        return symbol if ok else None

    clean = reference_engine("okx")
    target: tuple[int, Any, tuple[str, int]] | None = None
    for index, step in enumerate(steps):
        step_runner(clean, step)
        message = orjson.loads(step[2]) if step[2] != "pong" else None
        if message is None or symbol_of(message) is None or message.get("action") != "update":
            continue
        entry = message["data"][0]
        candidates = [
            (s, i, lvl[0], lvl[1]) for s in ("bids", "asks") for i, lvl in enumerate(entry[s])
        ]
        chosen = pick_level(clean.levels(symbol, 0), candidates, 25)
        if chosen is not None and index > len(steps) // 4:
            target = (index, message, chosen)
            break
    assert target is not None
    broken_at, message, (side, level) = target
    message["data"][0][side][level][1] = bump(message["data"][0][side][level][1])
    corrupted: Step = ("apply", None, orjson.dumps(message))

    later = [i for i, _ in book_messages(steps, symbol_of) if i > broken_at]
    repair_after = later[4]
    clean_at_repair = replay_until(reference_engine, "okx", steps, repair_after + 1, step_runner)
    case = Corruption(
        steps=splice(
            steps, broken_at, [corrupted], repair_after, okx_snapshot(clean_at_repair, symbol)
        ),
        broken_at=broken_at,
        snapshot_at=repair_after + 1,
        symbol=symbol,
    )
    engine = any_engine("okx")
    full_clean = replay_until(reference_engine, "okx", steps, len(steps), step_runner)
    check_repair(engine, step_runner, case, full_clean, CHECKSUM_MISMATCH)
    stats = engine.stats(symbol)
    assert stats["checksum_failures"] == 1
    totals = engine.totals()
    assert totals["checksum_failures"] == 1
    # 290 real checks, minus the five updates dropped while waiting, plus the fresh snapshot.
    assert totals["checksums_checked"] == 290 - 5 + 1


# ---- Kraken --------------------------------------------------------------------------------


def kraken_v1_snapshot(clean: Any, pair: str, channel_id: int, depth: int) -> Step:
    bids, asks = clean.levels(pair, 0)
    stamp = "1693415330.000000"
    payload = {"as": [[p, s, stamp] for p, s in asks], "bs": [[p, s, stamp] for p, s in bids]}
    return ("apply", None, json.dumps([channel_id, payload, f"book-{depth}", pair]))


def test_kraken_v1_changed_size_is_a_checksum_mismatch(
    any_engine: Callable[..., Any],
    reference_engine: Callable[..., Any],
    recording: Callable[[str], Any],
    step_runner: Runner,
) -> None:
    """kraken-sdk-orderbook-v1.json with one level's volume changed in an XBT/USD update."""
    steps = list(recording("kraken-sdk-v1").steps)
    pair = "XBT/USD"

    def symbol_of(m: Any) -> str | None:
        return pair if isinstance(m, list) and len(m) >= 4 and m[-2] == "book-10" else None

    clean = reference_engine("kraken")
    target = None
    for index, step in enumerate(steps):
        step_runner(clean, step)
        message = orjson.loads(step[2])
        if index < len(steps) // 3 or symbol_of(message) is None:
            continue
        candidates = [
            (key, i, lvl[0], lvl[1])
            for payload in message[1:-2]
            for key in ("b", "a")
            for i, lvl in enumerate(payload.get(key, []))
        ]
        chosen = pick_level(clean.levels(pair, 0), candidates, 10)
        if chosen is not None:
            target = (index, message, chosen)
            break
    assert target is not None
    broken_at, message, (key, level) = target
    payload = next(p for p in message[1:-2] if key in p)
    payload[key][level][1] = bump(payload[key][level][1])
    corrupted: Step = ("apply", None, json.dumps(message))

    later = [i for i, _ in book_messages(steps, symbol_of) if i > broken_at]
    repair_after = later[6]
    clean_at_repair = replay_until(reference_engine, "kraken", steps, repair_after + 1, step_runner)
    case = Corruption(
        steps=splice(
            steps,
            broken_at,
            [corrupted],
            repair_after,
            kraken_v1_snapshot(clean_at_repair, pair, message[0], 10),
        ),
        broken_at=broken_at,
        snapshot_at=repair_after + 1,
        symbol=pair,
    )
    engine = any_engine("kraken")
    full_clean = replay_until(reference_engine, "kraken", steps, len(steps), step_runner)
    check_repair(engine, step_runner, case, full_clean, CHECKSUM_MISMATCH)
    assert engine.stats(pair)["checksum_failures"] == 1
    assert engine.totals()["checksum_failures"] == 1


def kraken_v2_snapshot(clean: Any, symbol: str) -> Step:
    bids, asks = clean.levels(symbol, 0)

    def side(levels: list[tuple[str, str]]) -> str:
        return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels) + "]"

    checksum = kraken_checksum(asks, bids, 1, 8)
    text = (
        f'{{"channel":"book","type":"snapshot","data":[{{"symbol":"{symbol}",'
        f'"bids":{side(bids)},"asks":{side(asks)},"checksum":{checksum}}}]}}'
    )
    return ("apply", None, text)


def test_kraken_v2_changed_size_is_a_checksum_mismatch(
    any_engine: Callable[..., Any],
    reference_engine: Callable[..., Any],
    recording: Callable[[str], Any],
    step_runner: Runner,
    exact_json: Callable[[Any], str],
) -> None:
    """kraken-sdk-orderbook-v2.json with one level's qty changed in a BTC/USD update."""
    steps = list(recording("kraken-sdk-v2").steps)
    symbol = "BTC/USD"
    clean = reference_engine("kraken")
    target = None
    for index, step in enumerate(steps):
        step_runner(clean, step)
        message = json.loads(step[2], parse_float=Decimal)
        if index < len(steps) // 3 or message.get("type") != "update":
            continue
        entry = message["data"][0]
        candidates = [
            (s, i, lvl["price"], lvl["qty"])
            for s in ("bids", "asks")
            for i, lvl in enumerate(entry[s])
        ]
        chosen = pick_level(clean.levels(symbol, 0), candidates, 10)
        if chosen is not None:
            target = (index, message, chosen)
            break
    assert target is not None
    broken_at, message, (side, level) = target
    entry = message["data"][0]
    entry[side][level]["qty"] = bump(entry[side][level]["qty"])
    corrupted: Step = ("apply", None, exact_json(message))

    repair_after = broken_at + 6
    clean_at_repair = replay_until(reference_engine, "kraken", steps, repair_after + 1, step_runner)
    case = Corruption(
        steps=splice(
            steps, broken_at, [corrupted], repair_after, kraken_v2_snapshot(clean_at_repair, symbol)
        ),
        broken_at=broken_at,
        snapshot_at=repair_after + 1,
        symbol=symbol,
    )
    engine = any_engine("kraken")
    full_clean = replay_until(reference_engine, "kraken", steps, len(steps), step_runner)
    check_repair(engine, step_runner, case, full_clean, CHECKSUM_MISMATCH)
    assert engine.stats(symbol)["checksum_failures"] == 1


# ---- Bybit ---------------------------------------------------------------------------------


def bybit_snapshot(clean: Any, symbol: str) -> Step:
    bids, asks = clean.levels(symbol, 0)
    message = {
        "topic": f"orderbook.500.{symbol}",
        "type": "snapshot",
        "ts": clean.last_ts(symbol),
        "data": {"s": symbol, "b": bids, "a": asks, "u": clean.update_id(symbol), "seq": 1},
        "cts": clean.last_ts(symbol),
    }
    return ("apply", None, json.dumps(message))


def bybit_repair_case(
    steps: list[Step],
    broken_at: int,
    replaced: list[Step],
    reference_engine: Callable[..., Any],
    run: Runner,
) -> Corruption:
    """``steps[broken_at]`` replaced by ``replaced``; a fresh snapshot five deltas later."""
    repair_after = broken_at + 5
    clean_at_repair = replay_until(reference_engine, "bybit", steps, repair_after + 1, run)
    shift = len(replaced) - 1
    return Corruption(
        steps=splice(
            steps, broken_at, replaced, repair_after, bybit_snapshot(clean_at_repair, "XRPUSDT")
        ),
        broken_at=broken_at,
        snapshot_at=repair_after + 1 + shift,
        symbol="XRPUSDT",
    )


def test_bybit_dropped_delta_is_a_gap(
    any_engine: Callable[..., Any],
    reference_engine: Callable[..., Any],
    recording: Callable[[str], Any],
    step_runner: Runner,
) -> None:
    """2024-12-01_XRPUSDT_ob500.data without its 20th delta: the 21st reveals the gap."""
    steps = list(recording("bybit-ob500").steps)
    dropped = 20
    # Without it, the delta after the dropped one sits at index ``dropped`` and reveals the gap.
    case = bybit_repair_case(steps, dropped, [], reference_engine, step_runner)
    engine = any_engine("bybit")
    full_clean = replay_until(reference_engine, "bybit", steps, len(steps), step_runner)
    check_repair(engine, step_runner, case, full_clean, GAP)
    stats = engine.stats("XRPUSDT")
    assert (stats["gaps"], stats["crossed"], stats["bid_levels"], stats["ask_levels"]) == (
        1,
        0,
        500,
        500,
    )
    assert engine.best_bid("XRPUSDT")[0] == "1.9537" and engine.best_ask("XRPUSDT")[0] == "1.9538"
    assert engine.update_id("XRPUSDT") == 20254918


def test_bybit_crossing_delta_is_crossed(
    any_engine: Callable[..., Any],
    reference_engine: Callable[..., Any],
    recording: Callable[[str], Any],
    step_runner: Runner,
) -> None:
    """2024-12-01_XRPUSDT_ob500.data with its 20th delta replaced by one that bids at the best
    ask: CROSSED, the levels stay for inspection, the following deltas wait."""
    steps = list(recording("bybit-ob500").steps)
    index = 20
    original = orjson.loads(steps[index][2])
    before = replay_until(reference_engine, "bybit", steps, index, step_runner)
    best_ask = before.best_ask("XRPUSDT")[0]
    original["data"]["b"] = [[best_ask, "1000"]]
    original["data"]["a"] = []
    crossing: Step = ("apply", None, orjson.dumps(original))
    case = bybit_repair_case(steps, index, [crossing], reference_engine, step_runner)
    engine = any_engine("bybit")
    full_clean = replay_until(reference_engine, "bybit", steps, len(steps), step_runner)
    outcomes = check_repair(engine, step_runner, case, full_clean, CROSSED)
    assert outcomes[index] == (CROSSED, "XRPUSDT")
    stats = engine.stats("XRPUSDT")
    assert (stats["crossed"], stats["gaps"], stats["resyncs"]) == (1, 0, 1)
    assert engine.totals()["crossed"] == 1


def test_bybit_crossed_book_keeps_its_levels(
    any_engine: Callable[..., Any],
    reference_engine: Callable[..., Any],
    recording: Callable[[str], Any],
    step_runner: Runner,
) -> None:
    """2024-12-01_XRPUSDT_ob500.data, first 10 messages, then a delta that bids at the best ask."""
    steps = list(recording("bybit-ob500").steps)[:10]
    engine = any_engine("bybit")
    for step in steps:
        step_runner(engine, step)
    best_ask = engine.best_ask("XRPUSDT")
    u = engine.update_id("XRPUSDT") + 1
    delta = {
        "topic": "orderbook.500.XRPUSDT",
        "type": "delta",
        "ts": 1,
        "data": {"s": "XRPUSDT", "b": [[best_ask[0], "5"]], "a": [], "u": u},
    }
    assert engine.apply(json.dumps(delta)) == (CROSSED, "XRPUSDT")
    assert engine.best_bid("XRPUSDT") == (best_ask[0], "5")
    assert engine.best_ask("XRPUSDT") == best_ask
    assert engine.state("XRPUSDT") == "needs_resync" and engine.needs_resync() == ["XRPUSDT"]


# ---- Binance -------------------------------------------------------------------------------


def binance_rest_snapshot(clean: Any, symbol: str) -> Step:
    bids, asks = clean.levels(symbol, 0)
    body = {"lastUpdateId": clean.update_id(symbol), "E": 1, "T": 1, "bids": bids, "asks": asks}
    return ("snapshot", symbol, json.dumps(body))


def test_binance_dropped_update_is_a_gap(
    any_engine: Callable[..., Any],
    reference_engine: Callable[..., Any],
    recording: Callable[[str], Any],
    step_runner: Runner,
) -> None:
    """BINANCE_FUTURES.ws.1.0 + .http.0.0 without one SUSHIUSDT depth update: the next one's
    ``pu`` does not chain; it and the following updates are buffered until a fresh REST
    snapshot, which they bridge."""
    steps = list(recording("binance-usdm").steps)
    symbol = "SUSHIUSDT"

    def symbol_of(m: Any) -> str | None:
        data = m.get("data", {})
        return symbol if data.get("e") == "depthUpdate" and data.get("s") == symbol else None

    updates = [i for i, _ in book_messages(steps, symbol_of)]
    dropped = updates[len(updates) // 2]
    remaining = [*steps[:dropped], *steps[dropped + 1 :]]
    later = [i - 1 for i in updates if i > dropped]
    repair_after = later[5]
    clean_at_repair = replay_until(
        reference_engine, "binance", steps, repair_after + 2, step_runner
    )
    case = Corruption(
        steps=[
            *remaining[: repair_after + 1],
            binance_rest_snapshot(clean_at_repair, symbol),
            *remaining[repair_after + 1 :],
        ],
        broken_at=later[0],
        snapshot_at=repair_after + 1,
        symbol=symbol,
    )
    engine = any_engine("binance")
    full_clean = replay_until(reference_engine, "binance", steps, len(steps), step_runner)
    check_repair(engine, step_runner, case, full_clean, GAP, waiting_outcome=BUFFERED)
    stats = engine.stats(symbol)
    assert (stats["gaps"], stats["resyncs"], stats["state"]) == (1, 1, "live")
    assert engine.update_id(symbol) == full_clean.update_id(symbol)
    assert engine.totals()["gaps"] == 1


@pytest.mark.parametrize("offset", [0, 3])
def test_binance_fresh_snapshot_alone_cannot_be_bridged(
    any_engine: Callable[..., Any],
    reference_engine: Callable[..., Any],
    recording: Callable[[str], Any],
    step_runner: Runner,
    offset: int,
) -> None:
    """BINANCE_FUTURES.ws.1.0 + .http.0.0: a REST snapshot older than every buffered update
    (here the original one, replayed after the chain broke) is a GAP again, not a silent
    splice."""
    steps = list(recording("binance-usdm").steps)
    symbol = "AKROUSDT"

    def symbol_of(m: Any) -> str | None:
        data = m.get("data", {})
        return symbol if data.get("e") == "depthUpdate" and data.get("s") == symbol else None

    original_snapshot = next(s for s in steps if s[0] == "snapshot" and s[1] == symbol)
    updates = [i for i, _ in book_messages(steps, symbol_of)]
    dropped = updates[len(updates) // 2 + offset]
    broken = [*steps[:dropped], *steps[dropped + 1 :]]
    engine = any_engine("binance")
    outcomes = [step_runner(engine, step) for step in broken]
    assert outcomes.count((GAP, symbol)) == 1
    assert engine.state(symbol) == "needs_resync"
    assert engine.apply_snapshot(symbol, original_snapshot[2]) == (GAP, symbol)
    stats = engine.stats(symbol)
    assert (stats["gaps"], stats["resyncs"], stats["state"]) == (2, 1, "needs_resync")
