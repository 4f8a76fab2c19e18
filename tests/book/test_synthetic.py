"""The synthetic Bybit stream generator (``pysrc.book.synthetic``).

The generator feeds the replay benchmarks and the demo command, so it must be deterministic and
its streams must be valid Bybit traffic: exactly the wire shape, ``u`` contiguous per symbol, never
a crossed book, each side kept at the topic depth by explicit deletes. These tests hold it to that
with an independent ``Decimal`` model, with the reference engine, and with the native engine.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from pysrc.book.synthetic import SYMBOLS, bybit_stream, write_stream

_NUMBER = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


def _small(**kwargs: Any) -> list[bytes]:
    args: dict[str, Any] = {"symbols": 6, "messages": 3000, "depth": 50, "seed": 11}
    args.update(kwargs)
    return list(bybit_stream(**args))


# ---- determinism ------------------------------------------------------------------------------


def test_same_seed_same_bytes() -> None:
    assert _small() == _small()


def test_other_seed_other_stream() -> None:
    assert _small() != _small(seed=12)


def test_short_stream_is_a_prefix_of_a_long_one() -> None:
    assert _small(messages=700) == _small()[:700]


# ---- wire shape -------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 5, 200])
def test_wire_shape_and_sequencing(depth: int) -> None:
    msgs = _small(depth=depth, messages=2500, symbols=20)
    last: dict[str, tuple[int, int, int]] = {}
    price_dec: dict[str, int] = {}
    size_dec: dict[str, int] = {}
    delta_sizes: list[int] = []
    prev_ts = 0
    for raw in msgs:
        assert b"\n" not in raw
        m = orjson.loads(raw)
        assert list(m) == ["topic", "type", "ts", "data", "cts"]
        data = m["data"]
        assert list(data) == ["s", "b", "a", "u", "seq"]
        sym = data["s"]
        assert m["topic"] == f"orderbook.{depth}.{sym}"
        assert isinstance(m["ts"], int) and isinstance(m["cts"], int) and m["cts"] <= m["ts"]
        assert m["ts"] >= prev_ts  # one merged connection: exchange time never goes back
        prev_ts = m["ts"]
        bids = [Decimal(p) for p, _ in data["b"]]
        asks = [Decimal(p) for p, _ in data["a"]]
        # Bybit order: bids best (highest) first, asks best (lowest) first; no repeated price.
        assert bids == sorted(bids, reverse=True) and len(set(bids)) == len(bids)
        assert asks == sorted(asks) and len(set(asks)) == len(asks)
        for price, size in data["b"] + data["a"]:
            assert _NUMBER.match(price) and _NUMBER.match(size), (price, size)
            assert Decimal(price) > 0
            # Fixed decimals per symbol, as Bybit sends them ("60000.10", "0.006"); "0" deletes.
            assert price_dec.setdefault(sym, _decimals(price)) == _decimals(price)
            if size != "0":
                assert Decimal(size) > 0
                assert size_dec.setdefault(sym, _decimals(size)) == _decimals(size)
        if sym not in last:
            assert m["type"] == "snapshot", "each symbol starts with its snapshot"
            assert len(data["b"]) == depth and len(data["a"]) == depth
            assert all(s != "0" for _, s in data["b"] + data["a"])
        else:
            assert m["type"] == "delta"
            u, seq, cts = last[sym]
            assert data["u"] == u + 1
            assert data["seq"] > seq
            assert m["cts"] >= cts
            assert data["b"] or data["a"], "a delta carries at least one level"
            delta_sizes.append(len(data["b"]) + len(data["a"]))
        last[sym] = (data["u"], data["seq"], m["cts"])
    assert len(last) == 20
    if depth >= 50:
        # "typically 1-10 levels", with a tail of bursts
        delta_sizes.sort()
        assert delta_sizes[len(delta_sizes) // 2] <= 5
        assert delta_sizes[int(len(delta_sizes) * 0.85)] <= 10
        assert delta_sizes[-1] > 10


def test_symbol_parameters() -> None:
    snapshots: dict[str, Any] = {}
    for raw in _small(symbols=20, messages=400):
        m = orjson.loads(raw)
        snapshots.setdefault(m["data"]["s"], m["data"])
    assert [s.symbol for s in SYMBOLS] == list(
        sorted(snapshots, key=[s.symbol for s in SYMBOLS].index)
    )
    btc = snapshots["BTCUSDT"]
    assert 55_000 < Decimal(btc["b"][0][0]) < 65_000
    # 0.10 tick written with two decimals, as Bybit does ("60000.10")
    assert all(_decimals(p) == 2 and p.endswith("0") for p, _ in btc["b"] + btc["a"])
    assert _decimals(snapshots["XRPUSDT"]["a"][0][0]) == 4
    assert _decimals(snapshots["1000PEPEUSDT"]["a"][0][0]) == 7
    # BNB: a 0.05 tick, not a power of ten
    assert all(int(p.replace(".", "")) % 5 == 0 for p, _ in snapshots["BNBUSDT"]["b"])


def test_symbols_by_name_and_beyond_the_table() -> None:
    names = {orjson.loads(m)["data"]["s"] for m in bybit_stream(["ETHUSDT", "FOOUSDT"], 200, 10)}
    assert names == {"ETHUSDT", "FOOUSDT"}
    many = {orjson.loads(m)["data"]["s"] for m in bybit_stream(len(SYMBOLS) + 3, 3000, 5)}
    assert len(many) == len(SYMBOLS) + 3
    assert f"SYN{len(SYMBOLS):03d}USDT" in many


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"symbols": 0}, ValueError),
        ({"symbols": "BTCUSDT"}, TypeError),
        ({"symbols": ["BTCUSDT", "BTCUSDT"]}, ValueError),
        ({"symbols": []}, ValueError),
        ({"depth": 0}, ValueError),
        ({"messages": -1}, ValueError),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        next(iter(bybit_stream(**kwargs)))


def test_write_stream_plain_and_gzip(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"symbols": 3, "messages": 5000, "depth": 20, "seed": 5}
    expected = list(bybit_stream(**kwargs))
    plain = tmp_path / "s.jsonl"
    packed = tmp_path / "s.jsonl.gz"
    assert write_stream(plain, **kwargs) == 5000
    assert write_stream(packed, **kwargs) == 5000
    assert plain.read_bytes() == b"".join(m + b"\n" for m in expected)
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()


# ---- replays --------------------------------------------------------------------------------


def _model_replay(msgs: list[bytes], depth: int) -> dict[str, tuple[list[tuple[str, str]], ...]]:
    """Independent model: dicts of Decimal, checking the exchange-side invariants after each
    message (every delete hits a level, each side exactly ``depth`` deep, never crossed)."""
    books: dict[str, tuple[dict[Decimal, str], dict[Decimal, str]]] = {}
    for raw in msgs:
        m = orjson.loads(raw)
        data = m["data"]
        sym = data["s"]
        if m["type"] == "snapshot":
            books[sym] = (
                {Decimal(p): s for p, s in data["b"]},
                {Decimal(p): s for p, s in data["a"]},
            )
        else:
            for side, levels in zip(books[sym], (data["b"], data["a"]), strict=True):
                for p, s in levels:
                    if s == "0":
                        assert Decimal(p) in side, f"{sym}: delete of absent level {p}"
                        del side[Decimal(p)]
                    else:
                        side[Decimal(p)] = s
        bids, asks = books[sym]
        assert len(bids) == depth and len(asks) == depth, (sym, len(bids), len(asks))
        assert max(bids) < min(asks), f"{sym} crossed: {max(bids)} >= {min(asks)}"
    out: dict[str, tuple[list[tuple[str, str]], ...]] = {}
    for sym, (bids, asks) in books.items():
        out[sym] = (
            [(format(p, "f"), bids[p]) for p in sorted(bids, reverse=True)],
            [(format(p, "f"), asks[p]) for p in sorted(asks)],
        )
    return out


@pytest.mark.parametrize("depth", [1, 5, 50])
def test_reference_engine_sees_no_gap_and_no_crossing(
    depth: int, reference_engine: Callable[..., Any]
) -> None:
    msgs = _small(depth=depth, messages=4000)
    expected = _model_replay(msgs, depth)
    engine = reference_engine("bybit")
    outcomes = {engine.apply(m)[0] for m in msgs}
    from pysrc.book.reference import APPLIED

    assert outcomes == {APPLIED}
    totals = engine.totals()
    assert totals["applied"] == len(msgs)
    for key in ("gaps", "crossed", "stale", "waiting", "errors"):
        assert totals[key] == 0, key
    for sym, (bids, asks) in expected.items():
        assert engine.state(sym) == "live"
        got_bids, got_asks = engine.levels(sym, 0)
        assert [tuple(x) for x in got_bids] == bids
        assert [tuple(x) for x in got_asks] == asks


def test_mid_drifts_without_crossing() -> None:
    """The stream is not a static book: the best prices move (and the model checks no cross)."""
    msgs = _small(symbols=1, messages=3000)
    _model_replay(msgs, 50)
    best_bids = set()
    book: dict[Decimal, str] = {}
    for raw in msgs:
        data = orjson.loads(raw)["data"]
        for p, s in data["b"]:
            if s == "0":
                book.pop(Decimal(p), None)
            else:
                book[Decimal(p)] = s
        best_bids.add(max(book))
    assert len(best_bids) > 10


def test_native_engine_agrees_with_reference(
    reference_engine: Callable[..., Any], book_dump: Callable[..., dict[str, Any]]
) -> None:
    pytest.importorskip("pysrc._native")
    from pysrc.book import ApplyOutcome, BookEngine

    msgs = _small(symbols=20, messages=6000, depth=200)
    native = BookEngine("bybit")
    reference = reference_engine("bybit")
    for m in msgs:
        got = native.apply(m)
        assert got == reference.apply(m)
        assert got[0] == ApplyOutcome.APPLIED
    assert native.totals()["gaps"] == 0 and native.totals()["crossed"] == 0
    assert book_dump(native) == book_dump(reference)
