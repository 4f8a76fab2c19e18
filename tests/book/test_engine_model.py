"""Model-based tests: the native ``BookEngine`` against the pure-Python ``ReferenceEngine``.

Hypothesis drives random message sequences through both engines and requires, after every step,
the same outcome (or both raising on malformed input) and the same observable books: ``levels``
in full, ``state``, ``update_id``, ``last_ts``, ``stats``, ``totals``, ``needs_resync``.

* Bybit: a stateful machine with snapshots (``u == 1`` restarts, level-1 re-pushes with an equal
  ``u``), deltas (in sequence, stale, gaps), deletes of absent levels, zero sizes, duplicate prices
  within a message, crossing deltas, mixed decimal texts (``1.5`` / ``1.50`` / ``01.5``), depth
  truncation (topic depth and engine depth), REST snapshots, resets, control frames and malformed
  messages.
* Binance: a stream with a ``pu`` chain, gaps, re-sent stale updates, REST snapshots taken around
  the stream position, a small buffer limit.
* OKX: messages carrying correct checksums (computed with :func:`okx_checksum` on what the book
  will be), wrong ones, zero and absent ones, with and without ``seqId`` / ``prevSeqId``.
* Kraken: v1 (``book-N``, split ask/bid payloads, republish levels) and v2 (JSON numbers with
  exponents and dropped trailing zeros) on one engine, with correct and wrong checksums.
* A fuzz test: random bytes and truncated or mutated real messages never crash the native
  engine (nor the reference); they either apply or raise ``MalformedMessage``, and then no book
  and no counter but ``errors`` changed.

Example counts are moderate (the file runs in well under a minute on two cores); set
``BOOK_MODEL_EXAMPLES`` to run more.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pysrc.book import BookEngine, MalformedMessage
from pysrc.book.reference import (
    APPLIED,
    CHECKSUM_MISMATCH,
    CROSSED,
    GAP,
    OUTCOME_NAMES,
    SKIPPED,
    WAITING,
    ReferenceEngine,
    ReferenceMalformed,
    kraken_checksum,
    okx_checksum,
)

EXAMPLES = int(os.environ.get("BOOK_MODEL_EXAMPLES", "40"))
MACHINE_SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# ---- shared comparison ---------------------------------------------------------------------


def apply_both(native: Any, reference: Any, call: Callable[[Any], Any]) -> Any:
    """Run ``call`` on both engines: both raise (malformed) or both return the same value."""
    try:
        expected, expected_error = call(reference), None
    except ReferenceMalformed as exc:
        expected, expected_error = None, exc
    try:
        got, got_error = call(native), None
    except MalformedMessage as exc:
        got, got_error = None, exc
    native_said = f"raised {got_error!r}" if got_error else f"returned {got!r}"
    reference_said = f"raised {expected_error!r}" if expected_error else f"returned {expected!r}"
    assert (got_error is None) == (expected_error is None), (
        f"native {native_said}, reference {reference_said}"
    )
    assert got == expected
    # Shown by --hypothesis-show-statistics: how often each outcome was exercised.
    event("malformed" if expected_error else OUTCOME_NAMES.get(expected[0], "?"))
    return expected


def assert_same_books(native: Any, reference: Any) -> None:
    assert native.symbols() == reference.symbols()
    for symbol in reference.symbols():
        assert native.levels(symbol, 0) == reference.levels(symbol, 0), symbol
        assert native.state(symbol) == reference.state(symbol), symbol
        assert native.update_id(symbol) == reference.update_id(symbol), symbol
        assert native.last_ts(symbol) == reference.last_ts(symbol), symbol
        assert native.stats(symbol) == reference.stats(symbol), symbol
        assert native.best_bid(symbol) == reference.best_bid(symbol), symbol
        assert native.best_ask(symbol) == reference.best_ask(symbol), symbol
        assert native.is_live(symbol) == reference.is_live(symbol), symbol
        assert native.levels(symbol, 2) == reference.levels(symbol, 2), symbol
        top_n, top_r = native.top_of_book(symbol), reference.top_of_book(symbol)
        assert (top_n is None) == (top_r is None)
        if top_r is not None:
            assert top_n == pytest.approx(top_r, rel=1e-12)
    assert native.needs_resync() == reference.needs_resync()
    assert native.totals() == reference.totals()


# ---- generated numbers ---------------------------------------------------------------------


def price_text(tick: int, style: str) -> str:
    """Tick ``t`` is the price ``t / 10`` written in one of several equivalent ways."""
    value = Decimal(tick).scaleb(-1)
    plain = format(value, "f")
    if style == "2dp":
        return f"{value:.2f}"
    if style == "lead0":
        return "0" + plain
    if style == "int" and value == value.to_integral_value():
        return str(int(value))
    return plain


PRICE_STYLES = st.sampled_from(["plain", "plain", "2dp", "lead0", "int"])
SIZES = st.sampled_from(
    ["1", "1.0", "2.5", "2.50", "0.001", "10", "007", "3.25", "0", "0.0", "0.000"]
)


def levels(low: int, high: int, max_size: int = 6) -> st.SearchStrategy[list[list[str]]]:
    """Levels on a small price grid, so duplicates, deletes of absent levels and re-inserts
    happen often; sizes include zeros in several spellings."""
    level = st.builds(
        lambda tick, style, size: [price_text(tick, style), size],
        st.integers(low, high),
        PRICE_STYLES,
        SIZES,
    )
    return st.lists(level, max_size=max_size)


BIDS = levels(1, 15)
ASKS = levels(16, 30)


# ---- Bybit ---------------------------------------------------------------------------------


def bybit_message(
    kind: str,
    symbol: str,
    depth: int,
    u: int,
    bids: Any,
    asks: Any,
    ts: int,
    layout: str = "spaced",
) -> str:
    """A Bybit book message. ``layout``: ``compact`` (the wire's own form), ``spaced``, or
    ``ts-first`` (spot and level-1 topics put ``ts`` before ``type``, and ``u`` before ``b``):
    the native fast-path scanner must read them all alike."""
    data = {"s": symbol, "b": bids, "a": asks, "u": u, "seq": u}
    message = {"topic": f"orderbook.{depth}.{symbol}", "type": kind, "ts": ts, "data": data}
    if layout == "ts-first":
        data = {"u": u, "seq": u, "a": asks, "b": bids, "s": symbol}
        message = {"ts": ts, "topic": message["topic"], "data": data, "type": kind}
    separators = (",", ":") if layout in ("compact", "ts-first") else (", ", ": ")
    return json.dumps({**message, "cts": ts}, separators=separators)


LAYOUTS = st.sampled_from(["compact", "compact", "spaced", "ts-first"])


BYBIT_CONTROL = [
    '{"success":true,"ret_msg":"pong","conn_id":"a","op":"ping"}',
    '{"success":true,"ret_msg":"","conn_id":"a","req_id":"x","op":"subscribe"}',
    '{"topic":"publicTrade.AAA","type":"snapshot","ts":1,"data":[]}',
    '{"topic":"orderbook.rpi.AAA","type":"delta","ts":1,"data":{}}',
]
BYBIT_MALFORMED = [
    "",
    "{",
    "[]",
    '{"topic":"orderbook.50.AAA","type":"delta","data":{"s":"AAA","b":[],"a":[]}}',
    '{"topic":"orderbook.50.AAA","type":"delta","data":{"s":"BBB","b":[],"a":[],"u":5}}',
    '{"topic":"orderbook.50.AAA","type":"patch","data":{"s":"AAA","b":[],"a":[],"u":5}}',
    '{"topic":"orderbook.50.AAA","type":"delta","data":{"s":"AAA","b":[["1.0","1"],["0","1"]],"a":[],"u":5}}',
    '{"topic":"orderbook.50.AAA","type":"delta","data":{"s":"AAA","b":[["1.0","1"]],"a":[["2","-1"]],"u":5}}',
    '{"topic":"orderbook.50.NEW","type":"snapshot","data":{"s":"NEW","b":[["1e1","1"]],"a":[],"u":5}}',
    '{"topic":"nonsense.AAA","data":{}}',
]


class BybitMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.native: Any = None
        self.reference: Any = None
        self.topic_depth = 50
        self.ts = 1_700_000_000_000

    @initialize(
        engine_depth=st.sampled_from([0, 0, 2]),
        topic_depth=st.sampled_from([1, 4, 50]),
        bids=BIDS,
        asks=ASKS,
    )
    def start(self, engine_depth: int, topic_depth: int, bids: Any, asks: Any) -> None:
        self.native = BookEngine("bybit", depth=engine_depth)
        self.reference = ReferenceEngine("bybit", depth=engine_depth)
        self.topic_depth = topic_depth
        self.send(bybit_message("snapshot", "AAA", topic_depth, 1, bids, asks, self.ts))

    def current_u(self, symbol: str) -> int:
        return self.reference.update_id(symbol) if self.reference.has_book(symbol) else 0

    def send(self, message: str) -> Any:
        self.ts += 7
        return apply_both(self.native, self.reference, lambda e: e.apply(message))

    @rule(
        symbol=st.sampled_from(["AAA", "BBB"]),
        u_kind=st.sampled_from(["next", "next", "same", "one", "jump"]),
        bids=BIDS,
        asks=ASKS,
        layout=LAYOUTS,
    )
    def snapshot(self, symbol: str, u_kind: str, bids: Any, asks: Any, layout: str) -> None:
        cur = self.current_u(symbol)
        u = {"next": cur + 1, "same": cur, "one": 1, "jump": cur + 100}[u_kind]
        depth = self.topic_depth
        self.send(bybit_message("snapshot", symbol, depth, u, bids, asks, self.ts, layout))

    @rule(
        symbol=st.sampled_from(["AAA", "BBB"]),
        u_kind=st.sampled_from(["next"] * 6 + ["same", "older", "gap"]),
        bids=BIDS,
        asks=ASKS,
        layout=LAYOUTS,
    )
    def delta(self, symbol: str, u_kind: str, bids: Any, asks: Any, layout: str) -> None:
        cur = self.current_u(symbol)
        u = {"next": cur + 1, "same": cur, "older": max(cur - 3, 0), "gap": cur + 3}[u_kind]
        depth = self.topic_depth
        self.send(bybit_message("delta", symbol, depth, u, bids, asks, self.ts, layout))

    @rule(
        symbol=st.sampled_from(["AAA", "BBB"]),
        side=st.sampled_from(["bid", "ask"]),
        style=PRICE_STYLES,
    )
    def crossing_delta(self, symbol: str, side: str, style: str) -> None:
        """A bid at the best ask (or an ask at the best bid), possibly written differently."""
        if not self.reference.has_book(symbol):
            return
        other = (
            self.reference.best_ask(symbol) if side == "bid" else self.reference.best_bid(symbol)
        )
        tick = int(Decimal(other[0]) * 10) if other else 15
        level = [[price_text(tick, style), "4"]]
        bids, asks = (level, []) if side == "bid" else ([], level)
        u = self.current_u(symbol) + 1
        self.send(bybit_message("delta", symbol, self.topic_depth, u, bids, asks, self.ts))

    @rule(symbol=st.sampled_from(["AAA", "BBB"]), bids=BIDS, asks=ASKS, envelope=st.booleans())
    def rest_snapshot(self, symbol: str, bids: Any, asks: Any, envelope: bool) -> None:
        result = {
            "s": symbol,
            "b": bids,
            "a": asks,
            "ts": self.ts,
            "u": self.current_u(symbol) + 1,
            "seq": 1,
        }
        body = (
            {"retCode": 0, "retMsg": "OK", "result": result, "time": self.ts}
            if envelope
            else result
        )
        text = json.dumps(body)
        apply_both(self.native, self.reference, lambda e: e.apply_snapshot(symbol, text))

    @rule(symbol=st.sampled_from(["AAA", "BBB"]))
    def reset(self, symbol: str) -> None:
        if self.reference.has_book(symbol):
            self.native.reset(symbol)
            self.reference.reset(symbol)

    @rule(frame=st.sampled_from(BYBIT_CONTROL))
    def control(self, frame: str) -> None:
        assert self.send(frame) == (1, None)

    @rule(message=st.sampled_from(BYBIT_MALFORMED))
    def malformed(self, message: str) -> None:
        before = self.reference.totals()["errors"]
        self.send(message)
        assert self.reference.totals()["errors"] == before + 1

    @invariant()
    def same(self) -> None:
        if self.native is not None:
            assert_same_books(self.native, self.reference)


TestBybitModel = BybitMachine.TestCase
TestBybitModel.settings = MACHINE_SETTINGS


# ---- Binance -------------------------------------------------------------------------------


def binance_update(first: int, last: int, prev: int, bids: Any, asks: Any) -> str:
    data = {
        "e": "depthUpdate",
        "E": 1_600_000_000_000 + last,
        "T": 1_600_000_000_000 + last,
        "s": "BTCUSDT",
        "U": first,
        "u": last,
        "pu": prev,
        "b": bids,
        "a": asks,
    }
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": data})


class BinanceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.native: Any = None
        self.reference: Any = None
        self.stream_u = 1000
        self.sent: list[str] = []

    @initialize(
        engine_depth=st.sampled_from([0, 3]),
        buffer_limit=st.sampled_from([3, 10000]),
        spans=st.lists(st.integers(0, 3), max_size=4),
        offset=st.integers(-6, 0),
        bids=BIDS,
        asks=ASKS,
    )
    def start(
        self,
        engine_depth: int,
        buffer_limit: int,
        spans: list[int],
        offset: int,
        bids: Any,
        asks: Any,
    ) -> None:
        """The documented sync: buffer a few updates, then a REST snapshot taken meanwhile."""
        self.native = BookEngine("binance", depth=engine_depth, buffer_limit=buffer_limit)
        self.reference = ReferenceEngine("binance", depth=engine_depth, buffer_limit=buffer_limit)
        for span in spans:
            self.update("next", span, [], [])
        self.snapshot(offset, bids, asks)

    @rule(
        kind=st.sampled_from(["next"] * 6 + ["gap", "resend"]),
        span=st.integers(0, 3),
        bids=BIDS,
        asks=ASKS,
    )
    def update(self, kind: str, span: int, bids: Any, asks: Any) -> None:
        if kind == "resend" and self.sent:
            message = self.sent[-1 - span % len(self.sent)]
        else:
            first = self.stream_u + (1 if kind == "next" else 4)
            prev = self.stream_u if kind == "next" else self.stream_u + 2
            message = binance_update(first, first + span, prev, bids, asks)
            self.stream_u = first + span
            self.sent.append(message)
        apply_both(self.native, self.reference, lambda e: e.apply(message))

    @rule(offset=st.integers(-8, 2), bids=BIDS, asks=ASKS)
    def snapshot(self, offset: int, bids: Any, asks: Any) -> None:
        body = json.dumps(
            {
                "lastUpdateId": max(self.stream_u + offset, 0),
                "E": 5,
                "T": 5,
                "bids": bids,
                "asks": asks,
            }
        )
        apply_both(self.native, self.reference, lambda e: e.apply_snapshot("BTCUSDT", body))

    @rule(side=st.sampled_from(["bid", "ask"]))
    def crossing_update(self, side: str) -> None:
        if not self.reference.has_book("BTCUSDT"):
            return
        other = (
            self.reference.best_ask("BTCUSDT")
            if side == "bid"
            else self.reference.best_bid("BTCUSDT")
        )
        level = [[other[0] if other else "1.5", "9"]]
        first = self.stream_u + 1
        message = binance_update(
            first, first, self.stream_u, *((level, []) if side == "bid" else ([], level))
        )
        self.stream_u = first
        self.sent.append(message)
        apply_both(self.native, self.reference, lambda e: e.apply(message))

    @rule(
        frame=st.sampled_from(
            [
                '{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","s":"BTCUSDT"}}',
                '{"result":null,"id":1}',
                '{"lastUpdateId":1,"bids":[],"asks":[]}',
                '{"stream":"x","data":{"e":"depthUpdate","s":"BTCUSDT","U":1,"u":2}}',
                "nope",
            ]
        )
    )
    def other_frame(self, frame: str) -> None:
        apply_both(self.native, self.reference, lambda e: e.apply(frame))

    @rule()
    def reset(self) -> None:
        if self.reference.has_book("BTCUSDT"):
            self.native.reset("BTCUSDT")
            self.reference.reset("BTCUSDT")

    @invariant()
    def same(self) -> None:
        if self.native is not None:
            assert_same_books(self.native, self.reference)


TestBinanceModel = BinanceMachine.TestCase
TestBinanceModel.settings = MACHINE_SETTINGS


# ---- OKX -----------------------------------------------------------------------------------


def okx_message(
    action: str | None, bids: Any, asks: Any, extra: dict[str, Any], channel: str = "books"
) -> str:
    entry = {
        "asks": [[p, s, "0", "1"] for p, s in asks],
        "bids": [[p, s, "0", "1"] for p, s in bids],
        "ts": str(1_652_459_225_000 + len(bids) + 10 * len(asks)),
        **extra,
    }
    message: dict[str, Any] = {"arg": {"channel": channel, "instId": "BTC-USDT"}, "data": [entry]}
    if action is not None:
        message["action"] = action
    return json.dumps(message)


def checksummed(
    reference: Any,
    build: Callable[[dict[str, Any]], str],
    symbol: str,
    kind: str,
    checksum_of: Callable[[Any, str], int],
    key: str,
    extra: dict[str, Any],
) -> str:
    """Build a message whose checksum is right (or deliberately wrong, zero or absent): the
    right value is computed on a copy of the reference after applying the message unchecked."""
    if kind == "absent":
        return build(extra)
    if kind == "zero":
        return build({**extra, key: 0})
    shadow = copy.deepcopy(reference)
    outcome, _ = shadow.apply(build(extra))
    good = checksum_of(shadow, symbol) if outcome in (APPLIED, CROSSED) else 12345
    value = good if kind == "good" else (good ^ 0x5A5A) or 1
    return build({**extra, key: value})


def check_kind(kind: str, outcome: Any) -> None:
    """The generator's own sanity: a good checksum never mismatches, a bad one always does
    when the message reaches a live book."""
    if outcome is None:
        return
    if kind == "good":
        assert outcome[0] != CHECKSUM_MISMATCH, "generated a wrong 'good' checksum"
    elif kind == "bad":
        assert outcome[0] in (CHECKSUM_MISMATCH, WAITING, GAP), "a 'bad' checksum was accepted"


def okx_book_checksum(engine: Any, symbol: str) -> int:
    bids, asks = engine.levels(symbol, 0)
    return okx_checksum(bids, asks)


# Mostly correct checksums, so books stay live long enough for sequences to matter.
OKX_CHECKSUM_KIND = st.sampled_from(["good"] * 8 + ["bad", "zero", "absent"])
KRAKEN_CHECKSUM_KIND = st.sampled_from(["good"] * 8 + ["bad", "absent"])


class OkxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.native: Any = None
        self.reference: Any = None
        self.seq = 100

    @initialize(engine_depth=st.sampled_from([0, 0, 3]), bids=BIDS, asks=ASKS)
    def start(self, engine_depth: int, bids: Any, asks: Any) -> None:
        self.native = BookEngine("okx", depth=engine_depth)
        self.reference = ReferenceEngine("okx", depth=engine_depth)
        self.snapshot(bids, asks, "good", "next")

    def send(self, message: str, kind: str = "") -> Any:
        outcome = apply_both(self.native, self.reference, lambda e: e.apply(message))
        check_kind(kind, outcome)
        return outcome

    def send_checked(
        self, action: str, bids: Any, asks: Any, checksum: str, extra: dict[str, Any]
    ) -> None:
        build = partial(okx_message, action, bids, asks)
        message = checksummed(
            self.reference, build, "BTC-USDT", checksum, okx_book_checksum, "checksum", extra
        )
        self.send(message, checksum)

    def seq_fields(self, kind: str, snapshot: bool) -> dict[str, Any]:
        if kind == "none":
            return {}
        prev = (
            -1 if snapshot else {"next": self.seq, "gap": self.seq + 5, "heartbeat": self.seq}[kind]
        )
        new = (
            self.seq if kind == "heartbeat" and not snapshot else self.seq + 1 + (kind == "gap") * 6
        )
        self.seq = new
        return {"prevSeqId": prev, "seqId": new}

    @rule(bids=BIDS, asks=ASKS, checksum=OKX_CHECKSUM_KIND, seq=st.sampled_from(["none", "next"]))
    def snapshot(self, bids: Any, asks: Any, checksum: str, seq: str) -> None:
        self.send_checked("snapshot", bids, asks, checksum, self.seq_fields(seq, snapshot=True))

    @rule(
        bids=BIDS,
        asks=ASKS,
        checksum=OKX_CHECKSUM_KIND,
        seq=st.sampled_from(["none", "next", "next", "gap", "heartbeat"]),
    )
    def update(self, bids: Any, asks: Any, checksum: str, seq: str) -> None:
        self.send_checked("update", bids, asks, checksum, self.seq_fields(seq, snapshot=False))

    @rule(side=st.sampled_from(["bid", "ask"]), checksum=st.sampled_from(["good", "bad"]))
    def crossing_update(self, side: str, checksum: str) -> None:
        if not self.reference.has_book("BTC-USDT"):
            return
        other = (
            self.reference.best_ask("BTC-USDT")
            if side == "bid"
            else self.reference.best_bid("BTC-USDT")
        )
        level = [[other[0] if other else "1.5", "2"]]
        bids, asks = (level, []) if side == "bid" else ([], level)
        self.send_checked("update", bids, asks, checksum, {})

    @rule(bids=levels(1, 15, 5), asks=levels(16, 30, 5))
    def books5(self, bids: Any, asks: Any) -> None:
        self.send(okx_message(None, bids, asks, {}, channel="books5"))

    @rule(
        frame=st.sampled_from(
            [
                "pong",
                '{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}}',
                '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{}]}',
                '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"bids":[["1","x","0","1"]]}]}',
                '{"arg":{"channel":"books"},"action":"update","data":[{}]}',
                "ping",
            ]
        )
    )
    def other_frame(self, frame: str) -> None:
        self.send(frame)

    @invariant()
    def same(self) -> None:
        if self.native is not None:
            assert_same_books(self.native, self.reference)


TestOkxModel = OkxMachine.TestCase
TestOkxModel.settings = MACHINE_SETTINGS


# ---- Kraken --------------------------------------------------------------------------------

KV1_PAIR, KV2_SYMBOL = "XBT/USD", "BTC/USD"
KV1_STAMPS = st.sampled_from(["1693415330.621700", "1693415331.000001", "1693415329.999999"])
# v2 JSON number spellings: exponents, dropped trailing zeros, integers.
KV2_SIZES = st.sampled_from(
    ["0.001", "0.00100000", "1e-05", "4.0", "4", "2.5", "0", "0.0", "1.25E-2"]
)


def kv2_levels(low: int, high: int) -> st.SearchStrategy[list[tuple[str, str]]]:
    def price(tick: int, style: str) -> str:
        text = price_text(tick, "plain" if style == "lead0" else style)
        return f"{tick}e-1" if style == "int" else text

    level = st.tuples(st.builds(price, st.integers(low, high), PRICE_STYLES), KV2_SIZES)
    return st.lists(level, max_size=6)


def kraken_v1_message(depth: int, payloads: list[dict[str, Any]]) -> str:
    return json.dumps([336, *payloads, f"book-{depth}", KV1_PAIR])


def kraken_v2_message(kind: str, bids: Any, asks: Any, extra: dict[str, Any]) -> str:
    def side(levels_: Any) -> str:
        return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels_) + "]"

    fields = [f'"symbol":"{KV2_SYMBOL}"', f'"bids":{side(bids)}', f'"asks":{side(asks)}']
    fields += [f'"{k}":{json.dumps(v)}' for k, v in extra.items()]
    return f'{{"channel":"book","type":"{kind}","data":[{{{",".join(fields)}}}]}}'


def decimals(text: str) -> int:
    text = format(Decimal(text), "f")
    return len(text.partition(".")[2])


class KrakenMachine(RuleBasedStateMachine):
    """Kraken v1 (XBT/USD on book-N) and v2 (BTC/USD) messages on one engine."""

    def __init__(self) -> None:
        super().__init__()
        self.native: Any = None
        self.reference: Any = None
        self.v1_depth = 10
        # Most decimals seen per book (price, size): the checksum is written at this scale.
        self.scales: dict[str, tuple[int, int]] = {}

    @initialize(
        engine_depth=st.sampled_from([0, 0, 3]),
        v1_depth=st.sampled_from([3, 10, 25]),
        asks=ASKS,
        bids=BIDS,
        v2_asks=kv2_levels(16, 30),
        v2_bids=kv2_levels(1, 15),
    )
    def start(
        self, engine_depth: int, v1_depth: int, asks: Any, bids: Any, v2_asks: Any, v2_bids: Any
    ) -> None:
        self.native = BookEngine("kraken", depth=engine_depth)
        self.reference = ReferenceEngine("kraken", depth=engine_depth)
        self.v1_depth = v1_depth
        self.v1_snapshot(asks, bids, "1693415330.621700")
        self.v2_message("snapshot", v2_bids, v2_asks, "good", False)

    def checksum_of(self, levels_seen: list[tuple[str, str]]) -> Callable[[Any, str], int]:
        def compute(engine: Any, symbol: str) -> int:
            price_scale, size_scale = self.scales.get(symbol, (0, 0))
            price_scale = max([price_scale, *(decimals(p) for p, _ in levels_seen)])
            size_scale = max([size_scale, *(decimals(s) for _, s in levels_seen)])
            bids, asks = engine.levels(symbol, 0)
            return kraken_checksum(asks, bids, price_scale, size_scale)

        return compute

    def send(
        self, message: str, symbol: str, levels_seen: list[tuple[str, str]], kind: str = ""
    ) -> None:
        outcome = apply_both(self.native, self.reference, lambda e: e.apply(message))
        check_kind(kind, outcome)
        if outcome is not None and outcome[0] != SKIPPED:
            # Every valid message routed to a book widens its scales, whatever the outcome.
            old = self.scales.get(symbol, (0, 0))
            self.scales[symbol] = (
                max([old[0], *(decimals(p) for p, _ in levels_seen)]),
                max([old[1], *(decimals(s) for _, s in levels_seen)]),
            )

    @rule(asks=ASKS, bids=BIDS, stamp=KV1_STAMPS)
    def v1_snapshot(self, asks: Any, bids: Any, stamp: str) -> None:
        payload = {"as": [[p, s, stamp] for p, s in asks], "bs": [[p, s, stamp] for p, s in bids]}
        self.send(
            kraken_v1_message(self.v1_depth, [payload]),
            KV1_PAIR,
            [*map(tuple, asks), *map(tuple, bids)],
        )

    @rule(
        asks=ASKS,
        bids=BIDS,
        stamp=KV1_STAMPS,
        checksum=KRAKEN_CHECKSUM_KIND,
        split=st.booleans(),
        republish=st.booleans(),
    )
    def v1_update(
        self, asks: Any, bids: Any, stamp: str, checksum: str, split: bool, republish: bool
    ) -> None:
        if not asks and not bids:
            bids = [["1.0", "0"]]  # an update carries at least one level
        tail = [stamp, "r"] if republish else [stamp]
        a = [[p, s, *tail] for p, s in asks]
        b = [[p, s, stamp] for p, s in bids]
        seen = [*map(tuple, asks), *map(tuple, bids)]

        def build(extra: dict[str, Any]) -> str:
            c = {"c": str(extra["c"])} if "c" in extra else {}
            if split and a and b:
                return kraken_v1_message(self.v1_depth, [{"a": a}, {"b": b, **c}])
            payload = {**({"a": a} if a else {}), **({"b": b} if b else {}), **c}
            return kraken_v1_message(self.v1_depth, [payload])

        self.send(
            checksummed(self.reference, build, KV1_PAIR, checksum, self.checksum_of(seen), "c", {}),
            KV1_PAIR,
            seen,
            checksum,
        )

    @rule(
        kind=st.sampled_from(["snapshot", "update", "update", "update"]),
        bids=kv2_levels(1, 15),
        asks=kv2_levels(16, 30),
        checksum=KRAKEN_CHECKSUM_KIND,
        with_ts=st.booleans(),
    )
    def v2_message(self, kind: str, bids: Any, asks: Any, checksum: str, with_ts: bool) -> None:
        extra = {"timestamp": "2023-07-30T15:29:58.343415Z"} if with_ts else {}
        build = partial(kraken_v2_message, kind, bids, asks)
        seen = [*bids, *asks]
        message = checksummed(
            self.reference, build, KV2_SYMBOL, checksum, self.checksum_of(seen), "checksum", extra
        )
        self.send(message, KV2_SYMBOL, seen, checksum)

    @rule(side=st.sampled_from(["bid", "ask"]))
    def v1_crossing_update(self, side: str) -> None:
        if not self.reference.has_book(KV1_PAIR):
            return
        other = (
            self.reference.best_ask(KV1_PAIR)
            if side == "bid"
            else self.reference.best_bid(KV1_PAIR)
        )
        level = [other[0] if other else "1.5", "2", "1693415330.5"]
        payload = {"b": [level]} if side == "bid" else {"a": [level]}
        seen = [(level[0], level[1])]

        def build(extra: dict[str, Any]) -> str:
            checksum = {"c": str(extra["c"])} if "c" in extra else {}
            return kraken_v1_message(self.v1_depth, [{**payload, **checksum}])

        self.send(
            checksummed(self.reference, build, KV1_PAIR, "good", self.checksum_of(seen), "c", {}),
            KV1_PAIR,
            seen,
            "good",
        )

    @rule(
        frame=st.sampled_from(
            [
                '{"event":"heartbeat"}',
                '{"channel":"heartbeat"}',
                '{"method":"subscribe","result":{"channel":"book"},"success":true}',
                '[0,[["1.0","0.1","1.0","s","l",""]],"trade","XBT/USD"]',
                '[336,{"b":[["1.0","0.1"]]},"book-10","XBT/USD"]',
                '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":-1,"qty":1}]}]}',
                "[",
            ]
        )
    )
    def other_frame(self, frame: str) -> None:
        apply_both(self.native, self.reference, lambda e: e.apply(frame))

    @invariant()
    def same(self) -> None:
        if self.native is not None:
            assert_same_books(self.native, self.reference)


TestKrakenModel = KrakenMachine.TestCase
TestKrakenModel.settings = MACHINE_SETTINGS


# ---- the native engine never crashes -------------------------------------------------------

FUZZ_SOURCES = {
    "bybit": ("bybit-ob500", 5),
    "okx": ("okx-books", 60),
    "kraken": ("kraken-sdk-v1", 30),
    "binance": ("binance-usdm", 40),
}


def _mutations(corpus: list[bytes]) -> st.SearchStrategy[bytes]:
    message = st.sampled_from(corpus)
    truncated = st.builds(lambda m, f: m[: int(len(m) * f)], message, st.floats(0, 1))
    flipped = st.builds(
        lambda m, f, b: m[: int(len(m) * f)] + bytes([b]) + m[int(len(m) * f) + 1 :],
        message,
        st.floats(0, 0.999),
        st.integers(0, 255),
    )
    spliced = st.builds(
        lambda m, t: m.replace(b'"', t, 1),
        message,
        st.sampled_from([b"", b"'", b'"\\u0000', b"1e999"]),
    )
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "topic",
                        "type",
                        "data",
                        "u",
                        "b",
                        "a",
                        "e",
                        "s",
                        "arg",
                        "action",
                        "channel",
                        "event",
                        "op",
                    ]
                ),
                inner,
                max_size=5,
            )
        ),
        max_leaves=12,
    )
    return st.one_of(
        st.binary(max_size=200),
        truncated,
        flipped,
        spliced,
        json_values.map(lambda v: json.dumps(v).encode()),
    )


def survives_garbage(engine: Any, message: bytes | str, malformed: type[Exception]) -> None:
    """Garbage either applies (one outcome, counted) or raises the malformed error, and then no
    book and no counter other than ``errors`` changed."""
    before = {s: (engine.levels(s, 0), engine.stats(s)) for s in engine.symbols()}
    totals = engine.totals()
    try:
        outcome, symbol = engine.apply(message)
    except malformed:
        assert {s: (engine.levels(s, 0), engine.stats(s)) for s in engine.symbols()} == before
        assert engine.totals() == {**totals, "errors": totals["errors"] + 1}
    else:
        assert outcome in range(8)
        assert symbol is None or engine.has_book(symbol)
        assert engine.totals()["messages"] == totals["messages"] + 1


@pytest.mark.parametrize("exchange", list(FUZZ_SOURCES))
def test_never_crashes_on_garbage(
    exchange: str, recording: Callable[[str], Any], step_runner: Callable[[Any, Any], Any]
) -> None:
    name, warmup = FUZZ_SOURCES[exchange]
    steps = recording(name).steps
    corpus = [p if isinstance(p, bytes) else p.encode() for kind, _, p in steps if kind == "apply"][
        :300
    ]

    @settings(
        max_examples=max(EXAMPLES * 2, 60),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(garbage=_mutations(corpus), as_text=st.booleans())
    def run(garbage: bytes, as_text: bool) -> None:
        message: bytes | str = garbage
        if as_text:
            with contextlib.suppress(UnicodeDecodeError):
                message = garbage.decode("utf-8")
        for factory, malformed in (
            (BookEngine, MalformedMessage),
            (ReferenceEngine, ReferenceMalformed),
        ):
            engine = factory(exchange)
            for step in steps[:warmup]:
                step_runner(engine, step)
            survives_garbage(engine, message, malformed)

    run()


@settings(max_examples=max(EXAMPLES, 30), deadline=None)
@given(
    exchange=st.sampled_from(["bybit", "binance"]),
    garbage=st.binary(max_size=120),
    symbol=st.sampled_from(["BTCUSDT", "X"]),
)
def test_native_rest_snapshot_garbage(exchange: str, garbage: bytes, symbol: str) -> None:
    engine = BookEngine(exchange)
    try:
        engine.apply_snapshot(symbol, garbage)
    except MalformedMessage:
        assert engine.symbols() == [] and engine.totals()["errors"] == 1


# ---- the same message, spelled differently -------------------------------------------------
#
# JSON gives one message many spellings: whitespace, key order, escaped characters in strings
# ("\u0041" is "A", "\/" is "/"). The engines must read them all alike; exchanges do not escape
# plain ASCII today, but nothing in JSON (or in the semantics page) lets a parser refuse it.


def _dump(value: Any, style: str, indent: int = 0) -> str:
    """JSON text of ``value`` in one ``style``: ``plain``, ``pretty`` (newlines and spaces),
    ``reversed`` (every object's keys in reverse order), ``slash`` (``/`` in strings written
    ``\\/``, as some encoders do: ``"XBT\\/USD"``) or ``escaped`` (also every letter as a
    ``\\uXXXX`` escape). Decimals are written as literal numbers."""
    pad = "\n" + "  " * (indent + 1) if style == "pretty" else ""
    end = "\n" + "  " * indent if style == "pretty" else ""
    if isinstance(value, dict):
        items = list(value.items())[:: -1 if style == "reversed" else 1]
        body = ",".join(f"{pad}{_dump(k, style)}: {_dump(v, style, indent + 1)}" for k, v in items)
        return "{" + body + end + "}"
    if isinstance(value, list):
        return "[" + ",".join(pad + _dump(v, style, indent + 1) for v in value) + end + "]"
    if isinstance(value, str) and style in ("slash", "escaped"):
        return '"' + "".join(_escape(c, style) for c in value) + '"'
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


def _escape(char: str, style: str) -> str:
    if char == "/":
        return "\\/"
    return f"\\u{ord(char):04x}" if style == "escaped" and char.isalpha() else char


def _k2(kind: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> dict[str, Any]:
    def side(levels_: list[tuple[str, str]]) -> list[dict[str, Decimal]]:
        return [{"price": Decimal(p), "qty": Decimal(q)} for p, q in levels_]

    book = {"bids": bids, "asks": asks}
    after = book if kind == "snapshot" else {"bids": [("1.5", "2.00")], "asks": [("2.5", "1.00")]}
    checksum = kraken_checksum(after["asks"], after["bids"], 1, 2)
    entry = {"symbol": "BTC/USD", "bids": side(bids), "asks": side(asks), "checksum": checksum}
    return {"channel": "book", "type": kind, "data": [entry]}


SPELLING_CASES: dict[str, tuple[str, list[Any], Any]] = {
    # exchange, warm-up messages (objects), the message to respell
    "bybit": (
        "bybit",
        [
            {
                "topic": "orderbook.50.AAA",
                "type": "snapshot",
                "ts": 1,
                "data": {"s": "AAA", "b": [["1.5", "1"]], "a": [["2.5", "1"]], "u": 1},
            }
        ],
        {
            "topic": "orderbook.50.AAA",
            "type": "delta",
            "ts": 2,
            "data": {"s": "AAA", "b": [["1.5", "2"]], "a": [["2.6", "1"]], "u": 2},
        },
    ),
    "binance": (
        "binance",
        [("BTCUSDT", {"lastUpdateId": 10, "bids": [["1.5", "1"]], "asks": [["2.5", "1"]]})],
        {
            "stream": "btcusdt@depth",
            "data": {
                "e": "depthUpdate",
                "E": 5,
                "s": "BTCUSDT",
                "U": 9,
                "u": 11,
                "pu": 8,
                "b": [["1.5", "2"]],
                "a": [],
            },
        },
    ),
    "okx": (
        "okx",
        [
            {
                "arg": {"channel": "books", "instId": "BTC-USDT"},
                "action": "snapshot",
                "data": [
                    {
                        "bids": [["1.5", "1", "0", "1"]],
                        "asks": [["2.5", "1", "0", "1"]],
                        "ts": "1",
                        "checksum": okx_checksum([("1.5", "1")], [("2.5", "1")]),
                    }
                ],
            }
        ],
        {
            "arg": {"channel": "books", "instId": "BTC-USDT"},
            "action": "update",
            "data": [
                {
                    "bids": [["1.5", "2", "0", "1"]],
                    "asks": [],
                    "ts": "2",
                    "checksum": okx_checksum([("1.5", "2")], [("2.5", "1")]),
                }
            ],
        },
    ),
    "kraken-v1": (
        "kraken",
        [
            [
                7,
                {"as": [["2.5", "1.00", "1.5"]], "bs": [["1.5", "1.00", "1.5"]]},
                "book-10",
                "XBT/USD",
            ]
        ],
        [
            7,
            {
                "b": [["1.5", "2.00", "2.5"]],
                "c": str(kraken_checksum([("2.5", "1.00")], [("1.5", "2.00")], 1, 2)),
            },
            "book-10",
            "XBT/USD",
        ],
    ),
    "kraken-v2": (
        "kraken",
        [_k2("snapshot", [("1.5", "1.00")], [("2.5", "1.00")])],
        _k2("update", [("1.5", "2.00")], []),
    ),
}


def _observe(exchange: str, warmup: list[Any], message: str) -> Any:
    """Outcome and books of both engines after the warm-up and ``message``."""
    seen = []
    for factory, malformed in (
        (BookEngine, MalformedMessage),
        (ReferenceEngine, ReferenceMalformed),
    ):
        engine = factory(exchange)
        for item in warmup:
            if isinstance(item, tuple):
                engine.apply_snapshot(item[0], json.dumps(item[1]))
            else:
                engine.apply(_dump(item, "plain"))
        try:
            outcome: Any = engine.apply(message)
        except malformed:
            outcome = "malformed"
        seen.append(
            (outcome, {s: (engine.levels(s, 0), engine.stats(s)) for s in engine.symbols()})
        )
    return seen


@pytest.mark.parametrize("style", ["pretty", "reversed", "slash", "escaped"])
@pytest.mark.parametrize("case", list(SPELLING_CASES))
def test_equivalent_json_spellings_agree(case: str, style: str) -> None:
    exchange, warmup, message = SPELLING_CASES[case]
    native_plain, reference_plain = _observe(exchange, warmup, _dump(message, "plain"))
    assert reference_plain[0][0] == APPLIED and native_plain == reference_plain
    native, reference = _observe(exchange, warmup, _dump(message, style))
    assert reference == reference_plain, "the reference reads every spelling alike"
    assert native == native_plain, f"native: {style} spelling of a valid {case} message"
