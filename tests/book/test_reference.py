"""The pure-Python reference engine and checksum helpers on small hand-checkable cases.

Each test names the rule of ``docs/book-semantics.md`` it checks. Expected values are worked out
by hand, so these tests hold the reference to the page before it is used as the oracle for the
native engine.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysrc.book.reference import (
    APPLIED,
    BUFFERED,
    CHECKSUM_MISMATCH,
    CROSSED,
    GAP,
    SKIPPED,
    STALE,
    WAITING,
    ReferenceEngine,
    ReferenceMalformed,
    ReferenceUnknownSymbol,
    kraken_checksum,
    okx_checksum,
    parse_json_number,
    parse_wire_number,
)

Levels = Sequence[Sequence[str]]


# ---- message builders ----------------------------------------------------------------------


def bybit(
    kind: str,
    u: int,
    bids: Levels = (),
    asks: Levels = (),
    *,
    symbol: str = "BTCUSDT",
    depth: int = 50,
    ts: int = 1_700_000_000_000,
) -> str:
    return json.dumps(
        {
            "topic": f"orderbook.{depth}.{symbol}",
            "type": kind,
            "ts": ts,
            "data": {"s": symbol, "b": list(bids), "a": list(asks), "u": u, "seq": u * 10},
            "cts": ts - 2,
        }
    )


def binance(
    first: int,
    last: int,
    prev: int,
    bids: Levels = (),
    asks: Levels = (),
    *,
    symbol: str = "BTCUSDT",
) -> str:
    event = {
        "e": "depthUpdate",
        "E": 1_600_000_000_000 + last,
        "T": 1_600_000_000_000 + last,
        "s": symbol,
        "U": first,
        "u": last,
        "pu": prev,
        "b": list(bids),
        "a": list(asks),
    }
    return json.dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": event})


def binance_rest(last_update_id: int, bids: Levels, asks: Levels) -> str:
    return json.dumps(
        {"lastUpdateId": last_update_id, "E": 1_600_000_000_000, "T": 1, "bids": bids, "asks": asks}
    )


def okx(
    action: str | None,
    bids: Levels,
    asks: Levels,
    *,
    checksum: int | None = None,
    symbol: str = "BTC-USDT",
    channel: str = "books",
    **extra: Any,
) -> str:
    entry: dict[str, Any] = {
        "asks": [[p, s, "0", "1"] for p, s in asks],
        "bids": [[p, s, "0", "1"] for p, s in bids],
        "ts": "1652459225464",
        **extra,
    }
    if checksum is not None:
        entry["checksum"] = checksum
    message: dict[str, Any] = {"arg": {"channel": channel, "instId": symbol}, "data": [entry]}
    if action is not None:
        message["action"] = action
    return json.dumps(message)


def kraken_v1(payloads: list[dict[str, Any]], *, depth: int = 10, pair: str = "XBT/USD") -> str:
    return json.dumps([336, *payloads, f"book-{depth}", pair])


def kv1_levels(levels: Levels, ts: str = "1693415330.621700") -> list[list[str]]:
    return [[p, s, ts] for p, s in levels]


def kraken_v2(kind: str, bids: str, asks: str, checksum: int | None, ts: str | None = None) -> str:
    """Kraken v2 with literal JSON numbers: ``bids``/``asks`` are ``price:qty`` lists as text."""

    def side(text: str) -> str:
        pairs = [item.split(":") for item in text.split()]
        return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in pairs) + "]"

    fields = ['"symbol":"BTC/USD"', f'"bids":{side(bids)}', f'"asks":{side(asks)}']
    if checksum is not None:
        fields.append(f'"checksum":{checksum}')
    if ts is not None:
        fields.append(f'"timestamp":"{ts}"')
    return f'{{"channel":"book","type":"{kind}","data":[{{{",".join(fields)}}}]}}'


def book(engine: ReferenceEngine, symbol: str = "BTCUSDT") -> tuple[list[tuple[str, str]], ...]:
    return engine.levels(symbol, 0)


def live_bybit(depth: int = 0) -> ReferenceEngine:
    engine = ReferenceEngine("bybit", depth=depth)
    snapshot = bybit(
        "snapshot", 100, [["100.0", "1"], ["99.5", "2"]], [["100.5", "3"], ["101.0", "4"]]
    )
    assert engine.apply(snapshot) == (APPLIED, "BTCUSDT")
    return engine


# ---- checksum helpers ----------------------------------------------------------------------


def test_okx_checksum_docs_vector() -> None:
    """bybit-v5.md section 9: ``3366.1:7:3366.8:9:3368:8:3372:8`` -> 831078360."""
    asks = [("3366.8", "9"), ("3368", "8"), ("3372", "8")]
    assert okx_checksum([("3366.1", "7")], asks) == 831078360


def test_okx_checksum_is_signed_and_interleaves_to_25() -> None:
    bids = [(str(100 - i), "1") for i in range(30)]
    asks = [(str(101 + i), "2") for i in range(3)]
    parts = []
    for i in range(25):
        parts.append(f"{100 - i}:1")
        if i < 3:
            parts.append(f"{101 + i}:2")
    import zlib

    crc = zlib.crc32(":".join(parts).encode())
    expected = crc - 2**32 if crc >= 2**31 else crc
    assert okx_checksum(bids, asks) == expected
    assert -(2**31) <= expected < 2**31
    # A negative vector, so the signed conversion is exercised.
    assert okx_checksum([("1", "1")], [("2", "1")]) == _signed(zlib.crc32(b"1:1:2:1"))


def _signed(crc: int) -> int:
    return crc - 2**32 if crc >= 2**31 else crc


def test_kraken_v1_checksum_docs_vector() -> None:
    """bybit-v5.md section 10: the Kraken v1 documentation book -> 974947235."""
    asks = [(f"0.{5005 + 5 * i:05d}", "0.00000500") for i in range(10)]
    bid_prices = "0.05000 0.04995 0.04990 0.04980 0.04975 0.04970 0.04965 0.04960 0.04955 0.04950"
    bids = [(p, "0.00000500") for p in bid_prices.split()]
    assert kraken_checksum(asks, bids, 5, 8) == 974947235


KRAKEN_V2_DOC_ASKS = (
    "45285.2/0.00100000 45286.4/1.54571953 45286.6/1.54571109 45289.6/1.54560911 "
    "45290.2/0.15890660 45291.8/1.54553491 45294.7/0.04454749 45296.1/0.35380000 "
    "45297.5/0.09945542 45299.5/0.18772827"
)
KRAKEN_V2_DOC_BIDS = (
    "45283.5/0.10000000 45283.4/1.54582015 45282.1/0.10000000 45281.0/0.10000000 "
    "45280.3/1.54592586 45279.0/0.07990000 45277.6/0.03310103 45277.5/0.30000000 "
    "45277.3/1.54602737 45276.6/0.15445238"
)


def _pairs(text: str) -> list[tuple[str, str]]:
    return [tuple(item.split("/")) for item in text.split()]  # type: ignore[misc]


def test_kraken_v2_checksum_docs_vector() -> None:
    """bybit-v5.md section 10 / Appendix A: the Kraken v2 documentation book -> 3310070434."""
    asks, bids = _pairs(KRAKEN_V2_DOC_ASKS), _pairs(KRAKEN_V2_DOC_BIDS)
    assert kraken_checksum(asks, bids, 1, 8) == 3310070434
    # The same book as JSON numbers that lost their trailing zeros: the scale restores them.
    short = [(Decimal(p), Decimal(s).normalize()) for p, s in asks]
    assert kraken_checksum(short, [(Decimal(p), Decimal(s)) for p, s in bids], 1, 8) == 3310070434


def test_kraken_checksum_uses_only_ten_levels_and_rejects_excess_decimals() -> None:
    asks = [(f"{10 + i}.0", "1.00") for i in range(12)]
    bids = [(f"{9 - i * 0.5:.1f}", "2.00") for i in range(12)]
    assert kraken_checksum(asks, bids, 1, 2) == kraken_checksum(asks[:10], bids[:10], 1, 2)
    with pytest.raises(ValueError):
        kraken_checksum([("1.25", "1")], [], 1, 0)


# ---- numbers and output strings ------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "out"),
    [("1.50", "1.50"), ("007.5", "7.5"), ("0.00100000", "0.00100000"), ("00", "0"), ("5", "5")],
)
def test_output_string_is_the_wire_text_without_leading_zeros(wire: str, out: str) -> None:
    assert parse_wire_number(wire)[1] == out == format(Decimal(wire), "f")


@given(st.from_regex(r"\A[0-9]{1,22}(\.[0-9]{1,22})?\Z", fullmatch=True))
def test_output_string_and_limits_match_decimal(text: str) -> None:
    """Against a slow oracle: valid iff at most 18 decimals and 18 significant digits; the
    output text is ``format(Decimal(text), "f")``."""
    int_part, _, frac = text.partition(".")
    valid = len(frac) <= 18 and len((int_part + frac).lstrip("0")) <= 18
    if not valid:
        with pytest.raises(ReferenceMalformed):
            parse_wire_number(text)
        return
    value, out, zero = parse_wire_number(text)
    assert out == format(Decimal(text), "f")
    assert value == Decimal(text)
    assert zero == (Decimal(text) == 0)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1.",
        ".5",
        "-1",
        "+1",
        "1e5",
        "1,5",
        " 1",
        "1 ",
        "NaN",
        "0x1",
        "1.0000000000000000001",
        "1234567890123456789",
        "1.5\n",
        15,
        1.5,
        None,
    ],
)
def test_malformed_wire_numbers(bad: object) -> None:
    with pytest.raises(ReferenceMalformed):
        parse_wire_number(bad)


def test_wire_number_limits() -> None:
    parse_wire_number("0." + "0" * 17 + "1")  # 18 decimals
    parse_wire_number("123456789012345678")  # 18 significant digits
    parse_wire_number("000123456789012345678")  # leading zeros are not significant
    parse_wire_number("0.000000000000000001")
    with pytest.raises(ReferenceMalformed):
        parse_wire_number("0." + "0" * 18 + "1")
    with pytest.raises(ReferenceMalformed):
        parse_wire_number("1234567890.123456789")


def test_kraken_v2_json_numbers() -> None:
    assert parse_json_number(Decimal("1e-05"))[1] == "0.00001"
    assert parse_json_number(Decimal("4.0"))[1] == "4.0"
    assert parse_json_number(Decimal("29431"))[1] == "29431"
    assert parse_json_number(Decimal("1.5E3"))[1] == "1500"
    bad_values = (
        Decimal("-1.5"),
        Decimal("NaN"),
        Decimal("-0"),
        Decimal("-0.0"),
        3,
        "1.5",
        True,
        None,
    )
    for bad in bad_values:
        with pytest.raises(ReferenceMalformed):
            parse_json_number(bad)


# ---- engine basics -------------------------------------------------------------------------


def test_constructor_and_properties() -> None:
    engine = ReferenceEngine("okx", depth=5)
    assert (engine.exchange, engine.depth) == ("okx", 5)
    with pytest.raises(ValueError):
        ReferenceEngine("ftx")
    assert engine.symbols() == []
    assert engine.needs_resync() == []
    assert not engine.has_book("BTC-USDT")
    for query in (engine.state, engine.levels, engine.update_id, engine.stats, engine.reset):
        with pytest.raises(ReferenceUnknownSymbol):
            query("BTC-USDT")
    assert issubclass(ReferenceUnknownSymbol, KeyError)
    assert issubclass(ReferenceMalformed, ValueError)


# ---- Bybit ---------------------------------------------------------------------------------


def test_bybit_snapshot_builds_the_book() -> None:
    engine = live_bybit()
    assert book(engine) == ([("100.0", "1"), ("99.5", "2")], [("100.5", "3"), ("101.0", "4")])
    assert engine.best_bid("BTCUSDT") == ("100.0", "1")
    assert engine.best_ask("BTCUSDT") == ("100.5", "3")
    assert engine.top_of_book("BTCUSDT") == (100.0, 1.0, 100.5, 3.0)
    assert engine.update_id("BTCUSDT") == 100
    assert engine.state("BTCUSDT") == "live" and engine.is_live("BTCUSDT")
    assert engine.last_ts("BTCUSDT") == 1_700_000_000_000
    assert engine.levels("BTCUSDT", 1) == ([("100.0", "1")], [("100.5", "3")])
    stats = engine.stats("BTCUSDT")
    assert stats["bid_levels"] == 2 and stats["ask_levels"] == 2 and stats["depth"] == 50


def test_bybit_delta_sizes_are_absolute_zero_deletes_absent_delete_is_noop() -> None:
    engine = live_bybit()
    delta = bybit("delta", 101, [["100.0", "5"], ["99.0", "0"], ["99.5", "0"]], [["102", "7"]])
    assert engine.apply(delta) == (APPLIED, "BTCUSDT")
    assert book(engine) == ([("100.0", "5")], [("100.5", "3"), ("101.0", "4"), ("102", "7")])
    assert engine.update_id("BTCUSDT") == 101


def test_bybit_stale_delta_is_dropped() -> None:
    engine = live_bybit()
    before = book(engine)
    assert engine.apply(bybit("delta", 100, [["100.0", "9"]])) == (STALE, "BTCUSDT")
    assert engine.apply(bybit("delta", 42, [["100.0", "9"]])) == (STALE, "BTCUSDT")
    assert book(engine) == before
    assert engine.stats("BTCUSDT")["stale"] == 2 and engine.totals()["stale"] == 2
    assert engine.is_live("BTCUSDT")


def test_bybit_gap_breaks_the_book_until_a_snapshot() -> None:
    engine = live_bybit()
    before = book(engine)
    assert engine.apply(bybit("delta", 102, [["100.0", "9"]])) == (GAP, "BTCUSDT")
    assert book(engine) == before  # nothing applied
    assert engine.state("BTCUSDT") == "needs_resync"
    assert engine.needs_resync() == ["BTCUSDT"]
    assert engine.apply(bybit("delta", 103, [["100.0", "9"]])) == (WAITING, "BTCUSDT")
    snapshot = bybit("snapshot", 200, [["99", "1"]], [["100", "1"]])
    assert engine.apply(snapshot) == (APPLIED, "BTCUSDT")
    stats = engine.stats("BTCUSDT")
    assert (stats["gaps"], stats["resyncs"], stats["messages"], stats["state"]) == (1, 1, 4, "live")
    assert engine.needs_resync() == []
    totals = engine.totals()
    assert (totals["gaps"], totals["waiting"], totals["applied"], totals["messages"]) == (
        1,
        1,
        2,
        4,
    )


def test_bybit_delta_before_snapshot_waits_and_creates_the_book() -> None:
    engine = ReferenceEngine("bybit")
    assert engine.apply(bybit("delta", 5, [["1", "1"]])) == (WAITING, "BTCUSDT")
    assert engine.symbols() == ["BTCUSDT"]
    assert engine.state("BTCUSDT") == "awaiting_snapshot"
    assert engine.needs_resync() == []
    assert book(engine) == ([], [])
    assert engine.top_of_book("BTCUSDT") is None and engine.best_bid("BTCUSDT") is None
    assert engine.last_ts("BTCUSDT") is None
    # A snapshot from awaiting_snapshot is not a resync.
    engine.apply(bybit("snapshot", 6, [["1", "1"]], [["2", "1"]]))
    assert engine.stats("BTCUSDT")["resyncs"] == 0


def test_bybit_crossed_delta_keeps_levels_for_inspection() -> None:
    engine = live_bybit()
    assert engine.apply(bybit("delta", 101, [["100.5", "1"]])) == (CROSSED, "BTCUSDT")
    assert engine.best_bid("BTCUSDT") == ("100.5", "1")  # equal prices count as crossed
    assert engine.state("BTCUSDT") == "needs_resync"
    assert engine.stats("BTCUSDT")["crossed"] == 1 and engine.totals()["crossed"] == 1
    assert engine.update_id("BTCUSDT") == 101
    assert engine.apply(bybit("delta", 102, [["90", "1"]])) == (WAITING, "BTCUSDT")


def test_bybit_crossed_snapshot() -> None:
    engine = ReferenceEngine("bybit")
    assert engine.apply(bybit("snapshot", 1, [["10", "1"]], [["9", "1"]]))[0] == CROSSED
    assert engine.state("BTCUSDT") == "needs_resync"


def test_bybit_truncates_to_topic_depth_or_engine_depth() -> None:
    snapshot = bybit(
        "snapshot",
        1,
        [[str(100 - i), "1"] for i in range(5)],
        [[str(101 + i), "1"] for i in range(5)],
        depth=3,
    )
    engine = ReferenceEngine("bybit")
    engine.apply(snapshot)
    assert book(engine) == (
        [("100", "1"), ("99", "1"), ("98", "1")],
        [("101", "1"), ("102", "1"), ("103", "1")],
    )
    # A better level pushes the worst one out after the delta.
    engine.apply(bybit("delta", 2, [["100.5", "2"]], [], depth=3))
    assert book(engine)[0] == [("100.5", "2"), ("100", "1"), ("99", "1")]
    # Deleting inside the window does not bring back a truncated level.
    engine.apply(bybit("delta", 3, [["100", "0"]], [], depth=3))
    assert book(engine)[0] == [("100.5", "2"), ("99", "1")]
    narrow = ReferenceEngine("bybit", depth=2)
    narrow.apply(snapshot)
    assert book(narrow) == ([("100", "1"), ("99", "1")], [("101", "1"), ("102", "1")])
    assert narrow.stats("BTCUSDT")["depth"] == 2


def test_bybit_snapshot_zero_sizes_and_duplicates() -> None:
    engine = ReferenceEngine("bybit")
    bids = [["10", "0"], ["9", "1"], ["9", "2"], ["8", "3"], ["8", "0"], ["7", "0"], ["7", "4"]]
    engine.apply(bybit("snapshot", 1, bids, [["11", "1"]]))
    # An empty book plus the levels in order: a zero size has nothing to delete (10), a later
    # duplicate wins (9 -> 2, 7 -> 4), including a zero one (8 is gone).
    assert book(engine)[0] == [("9", "2"), ("7", "4")]


def test_bybit_duplicate_prices_within_a_delta_apply_in_order() -> None:
    engine = live_bybit()
    engine.apply(bybit("delta", 101, [["99", "1"], ["99", "0"], ["98", "1"], ["98", "2"]]))
    assert book(engine)[0] == [("100.0", "1"), ("99.5", "2"), ("98", "2")]


def test_bybit_output_text_follows_the_latest_update() -> None:
    engine = live_bybit()
    engine.apply(bybit("delta", 101, [["100.00", "1.50"], ["007.5", "0010"]]))
    assert book(engine)[0] == [("100.00", "1.50"), ("99.5", "2"), ("7.5", "10")]
    engine.apply(bybit("delta", 102, [["100", "1.5"]]))
    assert engine.best_bid("BTCUSDT") == ("100", "1.5")
    engine.apply(bybit("delta", 103, [["100.000", "0.0"]]))  # same level, any decimals
    assert engine.best_bid("BTCUSDT") == ("99.5", "2")


def test_bybit_snapshot_resets_including_u_1_and_level1_repush() -> None:
    engine = live_bybit()
    assert engine.apply(bybit("snapshot", 1, [["50", "1"]], [["51", "1"]])) == (APPLIED, "BTCUSDT")
    assert engine.update_id("BTCUSDT") == 1
    assert book(engine) == ([("50", "1")], [("51", "1")])
    assert engine.apply(bybit("snapshot", 1, [["50", "2"]], [["51", "1"]], depth=1))[0] == APPLIED
    assert engine.apply(bybit("delta", 2, [["50", "3"]], depth=1))[0] == APPLIED
    assert engine.stats("BTCUSDT")["resyncs"] == 0


@pytest.mark.parametrize(
    "frame",
    [
        {"success": True, "ret_msg": "pong", "conn_id": "x", "op": "ping"},
        {"success": True, "ret_msg": "", "conn_id": "x", "req_id": "1", "op": "subscribe"},
        {"op": "pong", "args": ["1"], "conn_id": "x"},
        {"success": True, "op": "auth"},
        {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "data": []},
        {"topic": "tickers.BTCUSDT", "type": "delta", "data": {}},
        {"topic": "kline.1.BTCUSDT", "data": []},
        {"topic": "orderbook.rpi.BTCUSDT", "type": "delta", "data": {}},
        {"topic": "orderbook.full.BTCUSDT", "type": "delta", "data": {}},
        {"topic": "wallet", "data": []},
    ],
)
def test_bybit_non_book_frames_are_skipped(frame: dict[str, Any]) -> None:
    engine = ReferenceEngine("bybit")
    assert engine.apply(json.dumps(frame)) == (SKIPPED, None)
    assert engine.symbols() == []
    assert engine.totals()["skipped"] == 1 and engine.totals()["messages"] == 1


BYBIT_MALFORMED = [
    b"not json",
    b"",
    b"[1, 2]",
    b"42",
    b'{"data": {}}',
    b'{"topic": "funding.BTCUSDT", "data": {}}',
    b'{"topic": 7}',
    bybit("update", 101).encode(),
    bybit("delta", 101).replace('"u": 101', '"u": "101"').encode(),
    bybit("delta", 101).replace('"u": 101', '"u": -1').encode(),
    bybit("delta", 101).replace(', "u": 101', "").encode(),
    bybit("delta", 101).replace('"s": "BTCUSDT"', '"s": "ETHUSDT"').encode(),
    bybit("delta", 101, [["0", "1"]]).encode(),
    bybit("delta", 101, [["0.000", "1"]]).encode(),
    bybit("delta", 101, [["-1", "1"]]).encode(),
    bybit("delta", 101, [["1e3", "1"]]).encode(),
    bybit("delta", 101, [["1", "1.0000000000000000001"]]).encode(),
    bybit("delta", 101, [["1234567890123456789", "1"]]).encode(),
    bybit("delta", 101, [["1"]]).encode(),
    bybit("delta", 101).replace('"b": []', '"b": [[1.5, "1"]]').encode(),
    bybit("delta", 101).replace('"b": []', '"b": {}').encode(),
    bybit("delta", 101).replace('"b": []', '"b": ["1", "2"]').encode(),
    # The last level is bad: the good first level must not have been applied.
    bybit("delta", 101, [["100.0", "77"], ["bad", "1"]]).encode(),
    bybit("delta", 101, [["100.0", "77"]], [["1", "x"]]).encode(),
]


@pytest.mark.parametrize("message", BYBIT_MALFORMED)
def test_bybit_malformed_raises_and_changes_nothing(message: bytes) -> None:
    engine = live_bybit()
    before = (book(engine), engine.stats("BTCUSDT"), engine.symbols())
    with pytest.raises(ReferenceMalformed):
        engine.apply(message)
    assert (book(engine), engine.stats("BTCUSDT"), engine.symbols()) == before
    totals = engine.totals()
    assert totals["errors"] == 1 and totals["messages"] == 1  # only the snapshot counted


def test_bybit_malformed_creates_no_book() -> None:
    engine = ReferenceEngine("bybit")
    with pytest.raises(ReferenceMalformed):
        engine.apply(bybit("delta", 1, [["x", "1"]], symbol="NEWUSDT"))
    assert engine.symbols() == [] and not engine.has_book("NEWUSDT")


def test_too_many_levels_is_malformed() -> None:
    levels = [["1", "1"]] * 100_001
    engine = ReferenceEngine("bybit")
    with pytest.raises(ReferenceMalformed):
        engine.apply(bybit("snapshot", 1, levels, []))
    engine.apply(bybit("snapshot", 1, levels[:100_000], []))  # exactly the limit is fine
    assert engine.stats("BTCUSDT")["bid_levels"] == 1


def test_bybit_rest_snapshot_envelope_and_result() -> None:
    result = {"s": "BTCUSDT", "b": [["10", "1"]], "a": [["11", "2"]], "ts": 1, "u": 7, "seq": 9}
    envelope = {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 2}
    engine = ReferenceEngine("bybit")
    assert engine.apply_snapshot("BTCUSDT", json.dumps(envelope)) == (APPLIED, "BTCUSDT")
    assert (engine.update_id("BTCUSDT"), engine.last_ts("BTCUSDT")) == (7, 1)
    assert engine.apply(bybit("delta", 8, [["10", "3"]], depth=1000))[0] == APPLIED
    assert engine.apply_snapshot("BTCUSDT", json.dumps(result))[0] == APPLIED
    assert book(engine) == ([("10", "1")], [("11", "2")])
    with pytest.raises(ReferenceMalformed):
        engine.apply_snapshot("ETHUSDT", json.dumps(result))
    assert not engine.has_book("ETHUSDT")


def test_reset_waits_for_a_fresh_snapshot() -> None:
    engine = live_bybit()
    engine.reset("BTCUSDT")
    assert engine.state("BTCUSDT") == "awaiting_snapshot"
    assert book(engine) == ([], []) and engine.update_id("BTCUSDT") == 0
    assert engine.apply(bybit("delta", 101, [["1", "1"]]))[0] == WAITING
    assert engine.apply(bybit("snapshot", 300, [["1", "1"]], [["2", "1"]]))[0] == APPLIED
    assert engine.stats("BTCUSDT")["messages"] == 3


def test_reset_of_a_broken_book_also_waits_for_a_snapshot() -> None:
    """The page: ``awaiting_snapshot`` is the state of a new book "or after reset", and the first
    snapshot after a book broke counts one resync whether or not ``reset`` came in between."""
    engine = live_bybit()
    engine.apply(bybit("delta", 105))
    assert engine.state("BTCUSDT") == "needs_resync"
    engine.reset("BTCUSDT")
    assert engine.state("BTCUSDT") == "awaiting_snapshot" and engine.needs_resync() == []
    engine.apply(bybit("snapshot", 300, [["1", "1"]], [["2", "1"]]))
    assert engine.stats("BTCUSDT")["resyncs"] == 1
    engine.reset("BTCUSDT")  # a reset of a healthy book is not a break
    engine.apply(bybit("snapshot", 400, [["1", "1"]], [["2", "1"]]))
    assert engine.stats("BTCUSDT")["resyncs"] == 1


def test_crossed_snapshot_counts_its_resync_and_breaks_again() -> None:
    engine = live_bybit()
    engine.apply(bybit("delta", 102))  # gap
    assert engine.apply(bybit("snapshot", 200, [["5", "1"]], [["4", "1"]]))[0] == CROSSED
    assert engine.apply(bybit("snapshot", 201, [["4", "1"]], [["5", "1"]]))[0] == APPLIED
    stats = engine.stats("BTCUSDT")
    assert (stats["gaps"], stats["crossed"], stats["resyncs"]) == (1, 1, 2)


def test_bytes_and_str_are_equivalent() -> None:
    a, b = ReferenceEngine("bybit"), ReferenceEngine("bybit")
    message = bybit("snapshot", 1, [["1", "1"]], [["2", "1"]])
    assert a.apply(message) == b.apply(message.encode())
    assert a.levels("BTCUSDT", 0) == b.levels("BTCUSDT", 0)


# ---- Binance -------------------------------------------------------------------------------


def test_binance_buffer_snapshot_replay_and_chain() -> None:
    engine = ReferenceEngine("binance")
    assert engine.apply(binance(90, 95, 89, [["10", "1"]])) == (BUFFERED, "BTCUSDT")
    assert engine.apply(binance(96, 105, 95, [["10", "2"]])) == (BUFFERED, "BTCUSDT")
    assert engine.state("BTCUSDT") == "awaiting_snapshot" and book(engine) == ([], [])
    # lastUpdateId 100: the first update is stale (u < 100), the second bridges (96 <= 100 <= 105).
    rest = binance_rest(100, [["10", "5"], ["9", "1"]], [["11", "1"]])
    assert engine.apply_snapshot("BTCUSDT", rest) == (APPLIED, "BTCUSDT")
    assert book(engine) == ([("10", "2"), ("9", "1")], [("11", "1")])
    assert engine.update_id("BTCUSDT") == 105
    assert engine.stats("BTCUSDT")["stale"] == 1 and engine.totals()["stale"] == 1
    # Bridged: now every update must chain on pu.
    assert engine.apply(binance(106, 110, 105, [], [["11", "0"], ["12", "3"]]))[0] == APPLIED
    assert engine.apply(binance(100, 110, 105))[0] == STALE  # u <= update_id
    assert engine.apply(binance(111, 111, 110, [["9", "0"]]))[0] == APPLIED
    assert book(engine) == ([("10", "2")], [("12", "3")])
    assert engine.last_ts("BTCUSDT") == 1_600_000_000_000 + 111
    totals = engine.totals()
    assert (totals["buffered"], totals["applied"], totals["messages"]) == (2, 3, 6)


def test_binance_first_update_after_snapshot_must_cover_it() -> None:
    engine = ReferenceEngine("binance")
    engine.apply_snapshot("BTCUSDT", binance_rest(100, [["10", "1"]], [["11", "1"]]))
    assert engine.apply(binance(90, 99, 89))[0] == STALE  # u < lastUpdateId
    assert (
        engine.apply(binance(90, 100, 89, [["10", "4"]]))[0] == APPLIED
    )  # u == lastUpdateId bridges
    assert engine.best_bid("BTCUSDT") == ("10", "4")
    fresh = ReferenceEngine("binance")
    fresh.apply_snapshot("BTCUSDT", binance_rest(100, [["10", "1"]], [["11", "1"]]))
    assert fresh.apply(binance(102, 110, 101))[0] == GAP  # U > lastUpdateId: snapshot too old
    assert fresh.state("BTCUSDT") == "needs_resync"


def test_binance_gap_buffers_the_revealing_update_for_the_next_snapshot() -> None:
    engine = ReferenceEngine("binance")
    engine.apply_snapshot("BTCUSDT", binance_rest(100, [["10", "1"]], [["11", "1"]]))
    engine.apply(binance(100, 105, 99, [["10", "2"]]))
    assert engine.apply(binance(110, 120, 108, [["10", "3"]]))[0] == GAP  # pu 108 != 105
    assert engine.best_bid("BTCUSDT") == ("10", "2")  # nothing applied
    assert engine.apply(binance(121, 125, 120, [["9", "1"]]))[0] == BUFFERED
    # The next snapshot (lastUpdateId 115) is bridged by the update that revealed the gap.
    assert (
        engine.apply_snapshot("BTCUSDT", binance_rest(115, [["10", "7"]], [["11", "1"]]))[0]
        == APPLIED
    )
    assert book(engine) == ([("10", "3"), ("9", "1")], [("11", "1")])
    stats = engine.stats("BTCUSDT")
    assert (stats["gaps"], stats["resyncs"], stats["state"], stats["update_id"]) == (
        1,
        1,
        "live",
        125,
    )


def test_binance_replay_reports_the_first_break_and_keeps_the_rest() -> None:
    engine = ReferenceEngine("binance")
    engine.apply(binance(96, 105, 95, [["10", "2"]]))
    engine.apply(binance(106, 110, 104))  # pu 104 != 105: breaks the chain after bridging
    engine.apply(binance(111, 112, 110))
    assert engine.apply_snapshot("BTCUSDT", binance_rest(100, [["10", "5"]], [["11", "1"]])) == (
        GAP,
        "BTCUSDT",
    )
    assert engine.state("BTCUSDT") == "needs_resync"
    # The two updates after the bridge are kept: a snapshot at 108 is bridged by (106, 110).
    assert (
        engine.apply_snapshot("BTCUSDT", binance_rest(108, [["10", "6"]], [["11", "1"]]))[0]
        == APPLIED
    )
    assert engine.update_id("BTCUSDT") == 112
    assert engine.stats("BTCUSDT")["resyncs"] == 1


def test_binance_buffer_limit_drops_the_oldest() -> None:
    engine = ReferenceEngine("binance", buffer_limit=2)
    engine.apply(binance(96, 100, 95, [["1", "1"]]))  # would bridge lastUpdateId 100, but dropped
    engine.apply(binance(101, 102, 100, [["2", "1"]]))
    engine.apply(binance(103, 104, 102, [["3", "1"]]))
    assert engine.apply_snapshot("BTCUSDT", binance_rest(100, [], [["9", "1"]]))[0] == GAP


def test_binance_crossed_update() -> None:
    engine = ReferenceEngine("binance")
    engine.apply_snapshot("BTCUSDT", binance_rest(100, [["10", "1"]], [["11", "1"]]))
    assert engine.apply(binance(99, 101, 98, [["11", "1"]]))[0] == CROSSED
    assert engine.apply(binance(102, 103, 101))[0] == BUFFERED


@pytest.mark.parametrize(
    "frame",
    [
        {"stream": "btcusdt@bookTicker", "data": {"e": "bookTicker", "s": "BTCUSDT"}},
        {"e": "aggTrade", "s": "BTCUSDT"},
        {"result": None, "id": 1},
        {"id": 3, "result": ["btcusdt@depth"]},
    ],
)
def test_binance_non_book_frames_are_skipped(frame: dict[str, Any]) -> None:
    assert ReferenceEngine("binance").apply(json.dumps(frame)) == (SKIPPED, None)


@pytest.mark.parametrize(
    "message",
    [
        binance_rest(1, [], []),
        json.dumps({"foo": 1}),
        json.dumps({"stream": "x", "data": [1]}),
        binance(1, 2, 0).replace('"pu": 0', '"pu": "0"'),
        binance(1, 2, 0).replace('"s": "BTCUSDT", ', ""),
        binance(1, 2, 0, [["1", "-1"]]),
    ],
)
def test_binance_malformed(message: str) -> None:
    engine = ReferenceEngine("binance")
    with pytest.raises(ReferenceMalformed):
        engine.apply(message)
    assert engine.symbols() == [] and engine.totals()["errors"] == 1


def test_binance_raw_event_without_stream_wrapper() -> None:
    engine = ReferenceEngine("binance")
    event = json.loads(binance(1, 2, 0))["data"]
    assert engine.apply(json.dumps(event)) == (BUFFERED, "BTCUSDT")


# ---- OKX -----------------------------------------------------------------------------------


def okx_sum(bids: Levels, asks: Levels) -> int:
    return okx_checksum([tuple(b) for b in bids], [tuple(a) for a in asks])  # type: ignore[misc]


def live_okx() -> ReferenceEngine:
    engine = ReferenceEngine("okx")
    bids, asks = [["100", "1"], ["99", "2"]], [["101", "3"]]
    assert engine.apply(okx("snapshot", bids, asks, checksum=okx_sum(bids, asks)))[0] == APPLIED
    return engine


def test_okx_checksum_verified_after_each_update() -> None:
    engine = live_okx()
    message = okx(
        "update",
        [["99", "0"]],
        [["102", "1"]],
        checksum=okx_sum([["100", "1"]], [["101", "3"], ["102", "1"]]),
    )
    assert engine.apply(message) == (APPLIED, "BTC-USDT")
    stats = engine.stats("BTC-USDT")
    assert (stats["checksums_checked"], stats["checksum_failures"]) == (2, 0)
    assert engine.last_ts("BTC-USDT") == 1652459225464
    assert engine.update_id("BTC-USDT") == 0  # no seqId in this feed


def test_okx_checksum_mismatch_then_snapshot_resyncs() -> None:
    engine = live_okx()
    assert engine.apply(okx("update", [["100", "5"]], [], checksum=12345))[0] == CHECKSUM_MISMATCH
    assert engine.best_bid("BTC-USDT") == ("100", "5")  # applied, then found wrong
    assert engine.state("BTC-USDT") == "needs_resync"
    assert engine.apply(okx("update", [["100", "6"]], [], checksum=1))[0] == WAITING
    bids, asks = [["100", "1"]], [["101", "1"]]
    assert engine.apply(okx("snapshot", bids, asks, checksum=okx_sum(bids, asks)))[0] == APPLIED
    stats = engine.stats("BTC-USDT")
    # Checked: the first snapshot, the bad update, the new snapshot (not the WAITING update).
    assert (stats["checksum_failures"], stats["checksums_checked"], stats["resyncs"]) == (1, 3, 1)
    totals = engine.totals()
    assert (totals["checksum_failures"], totals["checksums_checked"], totals["waiting"]) == (
        1,
        3,
        1,
    )


def test_okx_zero_or_absent_checksum_is_not_verified() -> None:
    engine = live_okx()
    assert engine.apply(okx("update", [["100", "5"]], [], checksum=0))[0] == APPLIED
    assert engine.apply(okx("update", [["100", "6"]], []))[0] == APPLIED
    assert engine.stats("BTC-USDT")["checksums_checked"] == 1  # the snapshot's


def test_okx_crossed_guard_only_after_a_good_checksum() -> None:
    engine = live_okx()
    assert engine.apply(okx("update", [["101", "1"]], [], checksum=7))[0] == CHECKSUM_MISMATCH
    assert engine.stats("BTC-USDT")["crossed"] == 0
    engine = live_okx()
    message = okx(
        "update",
        [["101", "1"]],
        [],
        checksum=okx_sum([["101", "1"], ["100", "1"], ["99", "2"]], [["101", "3"]]),
    )
    assert engine.apply(message)[0] == CROSSED


def test_okx_seq_ids() -> None:
    engine = ReferenceEngine("okx")
    assert (
        engine.apply(okx("snapshot", [["1", "1"]], [["2", "1"]], seqId=10, prevSeqId=-1))[0]
        == APPLIED
    )
    assert engine.update_id("BTC-USDT") == 10
    assert engine.apply(okx("update", [["1", "2"]], [], seqId=12, prevSeqId=10))[0] == APPLIED
    assert engine.apply(okx("update", [], [], seqId=12, prevSeqId=12))[0] == APPLIED  # heartbeat
    assert engine.apply(okx("update", [["1", "3"]], [], seqId=20, prevSeqId=15))[0] == GAP
    assert engine.best_bid("BTC-USDT") == ("1", "2") and engine.update_id("BTC-USDT") == 12
    assert engine.stats("BTC-USDT")["gaps"] == 1


def test_okx_update_before_snapshot_waits() -> None:
    engine = ReferenceEngine("okx")
    assert engine.apply(okx("update", [["1", "1"]], [])) == (WAITING, "BTC-USDT")
    assert engine.state("BTC-USDT") == "awaiting_snapshot"


def test_okx_books5_has_no_action_and_is_a_snapshot() -> None:
    engine = ReferenceEngine("okx")
    assert engine.apply(okx(None, [["1", "1"]], [["2", "1"]], channel="books5"))[0] == APPLIED
    assert engine.apply(okx(None, [["1.5", "1"]], [["2", "1"]], channel="books5"))[0] == APPLIED
    assert engine.levels("BTC-USDT", 0) == ([("1.5", "1")], [("2", "1")])


def test_okx_engine_depth_truncates_before_the_checksum() -> None:
    engine = ReferenceEngine("okx", depth=1)
    bids, asks = [["100", "1"], ["99", "2"]], [["101", "3"], ["102", "1"]]
    top = okx_sum(bids[:1], asks[:1])
    assert engine.apply(okx("snapshot", bids, asks, checksum=top))[0] == APPLIED
    assert engine.levels("BTC-USDT", 0) == ([("100", "1")], [("101", "3")])


@pytest.mark.parametrize(
    "frame",
    [
        "pong",
        json.dumps({"event": "subscribe", "arg": {"channel": "books", "instId": "BTC-USDT"}}),
        json.dumps({"event": "error", "code": "60012", "msg": "Invalid request"}),
        json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [{}]}),
        json.dumps({"arg": {"channel": "tickers", "instId": "BTC-USDT"}, "data": [{}]}),
    ],
)
def test_okx_non_book_frames_are_skipped(frame: str) -> None:
    assert ReferenceEngine("okx").apply(frame) == (SKIPPED, None)


@pytest.mark.parametrize(
    "message",
    [
        "ping",
        json.dumps({"data": []}),
        json.dumps({"arg": {"channel": "books"}, "action": "snapshot", "data": [{}]}),
        okx("partial", [], []),
        okx("snapshot", [["1", "1"]], []).replace('"1", "1", "0", "1"', '"1"'),
        okx("snapshot", [], [], checksum=None).replace('"ts": "1652459225464"', '"ts": "soon"'),
        okx("snapshot", [], []).replace('"data": [', '"data": 5, "x": ['),
    ],
)
def test_okx_malformed(message: str) -> None:
    engine = ReferenceEngine("okx")
    with pytest.raises(ReferenceMalformed):
        engine.apply(message)
    assert engine.symbols() == []


# ---- Kraken v1 -----------------------------------------------------------------------------

KV1_ASKS = [["27120.00000", "4.28732553"], ["27127.30000", "0.13827025"]]
KV1_BIDS = [["27119.90000", "13.54067548"], ["27119.30000", "0.03686228"]]


def kv1_sum(asks: Levels, bids: Levels) -> int:
    return kraken_checksum([tuple(a) for a in asks], [tuple(b) for b in bids], 5, 8)  # type: ignore[misc]


def live_kraken_v1(depth: int = 10) -> ReferenceEngine:
    engine = ReferenceEngine("kraken")
    snapshot = kraken_v1([{"as": kv1_levels(KV1_ASKS), "bs": kv1_levels(KV1_BIDS)}], depth=depth)
    assert engine.apply(snapshot) == (APPLIED, "XBT/USD")
    return engine


def test_kraken_v1_snapshot_and_checked_update() -> None:
    engine = live_kraken_v1()
    assert engine.last_ts("XBT/USD") == 1693415330621
    bids = [["27119.90000", "13.54109952"], KV1_BIDS[1]]
    update = kraken_v1(
        [{"b": kv1_levels(bids[:1], "1693415331.000999"), "c": str(kv1_sum(KV1_ASKS, bids))}]
    )
    assert engine.apply(update) == (APPLIED, "XBT/USD")
    assert engine.best_bid("XBT/USD") == ("27119.90000", "13.54109952")
    assert engine.last_ts("XBT/USD") == 1693415331000
    assert engine.stats("XBT/USD")["checksums_checked"] == 1
    assert engine.update_id("XBT/USD") == 0


def test_kraken_v1_separate_ask_and_bid_payloads_and_republish() -> None:
    engine = live_kraken_v1()
    asks = [KV1_ASKS[0], ["27127.30000", "0.50000000"]]
    bids = [KV1_BIDS[0]]
    message = kraken_v1(
        [
            {"a": [["27127.30000", "0.50000000", "1693415331.1", "r"]]},
            {"b": kv1_levels([["27119.30000", "0.00000000"]]), "c": str(kv1_sum(asks, bids))},
        ]
    )
    assert engine.apply(message)[0] == APPLIED
    assert engine.levels("XBT/USD", 0) == ([tuple(b) for b in bids], [tuple(a) for a in asks])


def test_kraken_v1_truncates_before_the_checksum() -> None:
    engine = live_kraken_v1(depth=2)
    # A better ask pushes the worst out of a book-2: the checksum covers the truncated book.
    asks = [["27119.95000", "1.00000000"], KV1_ASKS[0]]
    message = kraken_v1([{"a": kv1_levels(asks[:1]), "c": str(kv1_sum(asks, KV1_BIDS))}], depth=2)
    assert engine.apply(message)[0] == APPLIED
    assert engine.stats("XBT/USD")["ask_levels"] == 2


def test_kraken_v1_checksum_mismatch() -> None:
    engine = live_kraken_v1()
    message = kraken_v1([{"b": kv1_levels([["27119.90000", "1.00000000"]]), "c": "1"}])
    assert engine.apply(message)[0] == CHECKSUM_MISMATCH
    assert engine.state("XBT/USD") == "needs_resync"
    assert engine.apply(message)[0] == WAITING


@pytest.mark.parametrize(
    "frame",
    [
        {"event": "heartbeat"},
        {"connectionID": 1, "event": "systemStatus", "status": "online", "version": "1.9.1"},
        {"event": "pong", "reqid": 1},
        {
            "channelID": 336,
            "channelName": "book-10",
            "event": "subscriptionStatus",
            "pair": "XBT/USD",
        },
        [0, [["5541.2", "0.15", "1534614057.3", "s", "l", ""]], "trade", "XBT/USD"],
        [42, ["5698.4", "5700.0", "1542057299.5", "1.01", "2.83"], "spread", "XBT/USD"],
        {"channel": "heartbeat"},
        {"channel": "status", "type": "update", "data": [{"system": "online"}]},
        {"method": "subscribe", "result": {"channel": "book"}, "success": True},
    ],
)
def test_kraken_non_book_frames_are_skipped(frame: object) -> None:
    assert ReferenceEngine("kraken").apply(json.dumps(frame)) == (SKIPPED, None)


@pytest.mark.parametrize(
    "message",
    [
        json.dumps([336, {"b": [["1", "1"]], "c": "abc"}, "book-10", "XBT/USD"]),
        json.dumps([336, {"b": [["1", "1"]]}, "book-10", "XBT/USD"]),  # no timestamp
        json.dumps([336, {"b": [["1", "1", "x"]]}, "book-10", "XBT/USD"]),
        json.dumps([336, ["b"], "book-10", "XBT/USD"]),
        '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","checksum":5.0}]}',
        '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","timestamp":"2023-07-30T15:29:58"}]}',
        '{"channel":"book","type":"update","data":{}}',
        json.dumps([336, {"b": []}, "book-ten", "XBT/USD"]),
        json.dumps([336, "book-10", "XBT/USD"]),
        json.dumps(
            {
                "channel": "book",
                "type": "snapshot",
                "data": [{"symbol": "BTC/USD", "bids": [{"price": "1", "qty": 1}]}],
            }
        ),
        '{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":NaN,"qty":1}]}]}',
        '{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":-1.5,"qty":1}]}]}',
        '{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":0.0,"qty":1}]}]}',
        '{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[],"timestamp":"yesterday"}]}',
        '{"channel":"book","type":"partial","data":[{"symbol":"BTC/USD"}]}',
        '{"foo":1}',
        "7",
    ],
)
def test_kraken_malformed(message: str) -> None:
    engine = ReferenceEngine("kraken")
    with pytest.raises(ReferenceMalformed):
        engine.apply(message)
    assert engine.symbols() == []


def test_kraken_v1_checksum_only_update_and_empty_v2_data() -> None:
    engine = live_kraken_v1()
    assert engine.apply(kraken_v1([{"c": str(kv1_sum(KV1_ASKS, KV1_BIDS))}]))[0] == APPLIED
    assert engine.stats("XBT/USD")["checksums_checked"] == 1
    # A v2 book message with no entry touches no book.
    assert engine.apply('{"channel":"book","type":"update","data":[]}') == (SKIPPED, None)


# ---- Kraken v2 -----------------------------------------------------------------------------


def kv2_doc_book() -> tuple[str, str]:
    """The documentation book (bybit-v5.md section 10) as ``price:qty`` texts."""
    asks = " ".join(item.replace("/", ":") for item in KRAKEN_V2_DOC_ASKS.split())
    bids = " ".join(item.replace("/", ":") for item in KRAKEN_V2_DOC_BIDS.split())
    return bids, asks


def test_kraken_v2_snapshot_checksum_on_the_docs_book() -> None:
    bids, asks = kv2_doc_book()
    engine = ReferenceEngine("kraken")
    assert engine.apply(kraken_v2("snapshot", bids, asks, 3310070434)) == (APPLIED, "BTC/USD")
    assert engine.best_ask("BTC/USD") == ("45285.2", "0.00100000")
    assert engine.stats("BTC/USD")["depth"] == 10
    assert engine.last_ts("BTC/USD") is None


def test_kraken_v2_scale_restores_trailing_zeros_and_exponents() -> None:
    """JSON numbers may lose trailing zeros (``0.001``) or use exponents (``1e-05``): the
    checksum writes them with the most decimals seen on the book (here 8 for sizes)."""
    engine = ReferenceEngine("kraken")
    bids, asks = "100.5:0.12345678 100.4:0.001", "100.6:1e-05 100.7:4.0"
    expected = kraken_checksum(
        [("100.6", "0.00001000"), ("100.7", "4.00000000")],
        [("100.5", "0.12345678"), ("100.4", "0.00100000")],
        1,
        8,
    )
    assert engine.apply(kraken_v2("snapshot", bids, asks, expected))[0] == APPLIED
    assert engine.levels("BTC/USD", 0) == (
        [("100.5", "0.12345678"), ("100.4", "0.001")],
        [("100.6", "0.00001"), ("100.7", "4.0")],
    )
    update = kraken_v2(
        "update",
        "",
        "100.6:0.0",
        kraken_checksum(
            [("100.7", "4.00000000")], [("100.5", "0.12345678"), ("100.4", "0.00100000")], 1, 8
        ),
        ts="2023-07-30T15:29:58.343415Z",
    )
    assert engine.apply(update)[0] == APPLIED
    assert engine.last_ts("BTC/USD") == 1690730998343


def test_kraken_v2_default_depth_is_10() -> None:
    engine = ReferenceEngine("kraken")
    bids = " ".join(f"{100 - i}.0:1.0" for i in range(12))
    asks = " ".join(f"{101 + i}.0:1.0" for i in range(12))
    assert engine.apply(kraken_v2("snapshot", bids, asks, None))[0] == APPLIED
    assert (
        engine.stats("BTC/USD")["bid_levels"] == 10 and engine.stats("BTC/USD")["ask_levels"] == 10
    )


def test_kraken_v2_update_before_snapshot_waits() -> None:
    engine = ReferenceEngine("kraken")
    assert engine.apply(kraken_v2("update", "1.0:1.0", "", 5)) == (WAITING, "BTC/USD")
    assert engine.stats("BTC/USD")["checksums_checked"] == 0


@pytest.mark.parametrize(
    ("stamp", "ms"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2023-07-30T15:29:58.343415Z", 1690730998343),  # truncated, not rounded
        ("2000-02-29T23:59:59.999+00:00", 951868799999),
        ("2024-03-01T00:00:00.5Z", 1709251200500),
    ],
)
def test_kraken_v2_timestamp_in_ms(stamp: str, ms: int) -> None:
    engine = ReferenceEngine("kraken")
    engine.apply(kraken_v2("snapshot", "1.0:1.0", "2.0:1.0", None, ts=stamp))
    assert engine.last_ts("BTC/USD") == ms


# ---- validation first, on every exchange ---------------------------------------------------


def _live(exchange: str) -> tuple[ReferenceEngine, str]:
    engine = ReferenceEngine(exchange)
    if exchange == "bybit":
        engine.apply(bybit("snapshot", 1, [["10", "1"]], [["11", "1"]]))
        return engine, "BTCUSDT"
    if exchange == "binance":
        engine.apply_snapshot("BTCUSDT", binance_rest(1, [["10", "1"]], [["11", "1"]]))
        return engine, "BTCUSDT"
    if exchange == "okx":
        engine.apply(okx("snapshot", [["10", "1"]], [["11", "1"]]))
        return engine, "BTC-USDT"
    engine.apply(
        kraken_v1([{"as": kv1_levels([["11.0", "1.0"]]), "bs": kv1_levels([["10.0", "1.0"]])}])
    )
    return engine, "XBT/USD"


HALF_BAD = {
    # A good first level, then a bad one: nothing may be applied.
    "bybit": bybit("delta", 2, [["10", "5"], ["9", "abc"]]),
    "binance": binance(2, 2, 1, [["10", "5"], ["9", "1", "x"]], [["11", "0.0.1"]]),
    "okx": okx("update", [["10", "5"]], [["11", ""]]),
    "kraken": kraken_v1([{"b": kv1_levels([["10.0", "5.0"]])}, {"a": [["11.0", "1.0", "x"]]}]),
}


@pytest.mark.parametrize("exchange", list(HALF_BAD))
def test_malformed_message_changes_no_book(exchange: str) -> None:
    engine, symbol = _live(exchange)
    before = (engine.levels(symbol, 0), engine.stats(symbol), engine.symbols())
    totals = engine.totals()
    with pytest.raises(ReferenceMalformed):
        engine.apply(HALF_BAD[exchange])
    assert (engine.levels(symbol, 0), engine.stats(symbol), engine.symbols()) == before
    assert engine.totals() == {**totals, "errors": totals["errors"] + 1}
