"""The analytics surface of the native engine: trades, reads, errors, external inputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest

from pysrc import _native
from pysrc.analytics import FEATURE_NAMES, N_FEATURES, SCHEMA_VERSION, FeatureReader
from pysrc.book import ApplyOutcome, BookEngine, MalformedMessage, UnknownSymbol


def book(
    symbol: str,
    ts: int,
    bids: list[list[str]],
    asks: list[list[str]],
    u: int = 1,
    kind: str = "snapshot",
) -> bytes:
    return orjson.dumps(
        {
            "topic": f"orderbook.50.{symbol}",
            "type": kind,
            "ts": ts,
            "data": {"s": symbol, "b": bids, "a": asks, "u": u},
        }
    )


def trades(symbol: str, *rows: tuple[int, str, str, str]) -> bytes:
    return orjson.dumps(
        {
            "topic": f"publicTrade.{symbol}",
            "type": "snapshot",
            "ts": rows[-1][0],
            "data": [
                {"T": t, "s": symbol, "S": side, "v": v, "p": p, "i": "x", "BT": False}
                for t, side, v, p in rows
            ],
        }
    )


def test_schema_is_exposed_and_versioned() -> None:
    assert N_FEATURES == len(_native.feature_schema()) >= 50
    assert SCHEMA_VERSION == _native.FEATURE_SCHEMA_VERSION >= 1
    assert FEATURE_NAMES[:3] == ("best_bid", "best_ask", "mid")


def test_trades_feed_the_flow_only_when_features_are_on() -> None:
    msg = trades("BTCUSDT", (1_000, "Buy", "2", "100.0"), (1_500, "Sell", "0.5", "100.5"))
    assert BookEngine("bybit").apply(msg) == (ApplyOutcome.SKIPPED, None)
    e = BookEngine("bybit", features=True)
    assert e.apply(msg) == (ApplyOutcome.TRADES, "BTCUSDT")
    assert e.totals()["trades"] == 1
    e.apply(book("BTCUSDT", 2_000, [["99.5", "1"]], [["100.5", "1"]]))
    fv = FeatureReader(e).read("BTCUSDT").as_dict()
    assert fv["trade_volume_10s"] == 2.5
    assert fv["trade_count_10s"] == 2
    assert fv["volume_delta_10s"] == 1.5
    assert fv["buy_ratio_10s"] == pytest.approx(0.8)
    assert fv["mid"] == 100.0
    assert fv["trade_vwap_dev_bps"] == pytest.approx(
        ((2 * 100.0 + 0.5 * 100.5) / 2.5 - 100.0) / 100.0 * 1e4
    )


def test_malformed_trades_are_refused() -> None:
    e = BookEngine("bybit", features=True)
    for bad in (
        trades("X", (1, "Hold", "1", "1")),
        trades("X", (1, "Buy", "-1", "1")),
        trades("X", (1, "Buy", "1", "0")),
    ):
        with pytest.raises(MalformedMessage):
            e.apply(bad)


def test_reads_write_the_callers_buffers_and_never_nan() -> None:
    e = BookEngine("bybit", features=True)
    e.apply(book("ETHUSDT", 1_000, [["10", "1"], ["9", "2"]], [["11", "1"]]))
    values = np.full(N_FEATURES, np.nan)
    mask = np.zeros(N_FEATURES, dtype=np.uint8)
    assert e.features_into("ETHUSDT", values, mask) == 1
    assert np.isfinite(values).all()
    assert (values[mask == 0] == 0).all()
    assert values[FEATURE_NAMES.index("spread")] == 1.0
    z = np.empty(N_FEATURES)
    e.features_into("ETHUSDT", z, mask, True)
    assert np.isfinite(z).all() and (np.abs(z) <= 10).all()
    with pytest.raises(ValueError, match="writable contiguous"):
        e.features_into("ETHUSDT", np.zeros(3), mask)
    with pytest.raises(ValueError, match="writable contiguous"):
        e.features_into("ETHUSDT", values, np.zeros(N_FEATURES, dtype=np.uint8)[::1].copy()[:-1])
    with pytest.raises(UnknownSymbol):
        e.features_into("NOPE", values, mask)


def test_external_mid_and_reference_symbol() -> None:
    e = BookEngine("bybit", features=True)
    e.set_external_mid("BTCUSDT", 99.0)
    e.apply(book("BTCUSDT", 1_000, [["99", "1"]], [["101", "1"]]))
    r = FeatureReader(e)
    assert r.read("BTCUSDT").as_dict()["basis_ext_bps"] == pytest.approx(
        (100.0 - 99.0) / 99.0 * 1e4
    )
    e.set_external_mid("BTCUSDT", None)
    e.apply(book("BTCUSDT", 1_100, [["99", "2"]], [["101", "1"]], u=2, kind="delta"))
    assert r.read("BTCUSDT").as_dict()["basis_ext_bps"] is None
    with pytest.raises(ValueError):
        e.set_external_mid("BTCUSDT", math.nan)
    e.set_reference_symbol("BTCUSDT")
    assert r.read("BTCUSDT").as_dict()["corr_ref_100"] is None


def test_features_off_gives_clear_errors() -> None:
    e = BookEngine("bybit")
    assert not e.features_enabled
    with pytest.raises(ValueError, match="features"):
        FeatureReader(e)
    with pytest.raises(ValueError, match="not enabled"):
        e.set_reference_symbol("BTCUSDT")


def test_spoofing_detection_carries_its_evidence() -> None:
    e = BookEngine("bybit", features=True)
    small = [[f"{99.9 - i / 100:.2f}", "1"] for i in range(20)]
    bids = [["99.99", "1"], ["99.98", "9"], *small]
    asks = [[f"{100.01 + i / 100:.2f}", "1"] for i in range(20)]
    e.apply(book("X", 1_000, bids, asks))
    # price approaches the wall, then the wall vanishes without a trade
    e.apply(book("X", 1_500, [["99.985", "1"]], [["100.00", "1"]], u=2, kind="delta"))
    e.apply(book("X", 2_000, [["99.98", "0"]], [], u=3, kind="delta"))
    found = e.detections("X")
    assert [d["kind"] for d in found] == ["spoofing"]
    d = found[0]
    assert d["side"] == "bid" and d["ts"] == 2_000 and d["score"] > 0
    price, ratio, first, vanished = d["levels"][0]
    assert (price, first, vanished) == (99.98, 1_000, 2_000) and ratio >= 5
    assert FeatureReader(e).read("X").as_dict()["spoof_score_60s"] == pytest.approx(d["score"])


@pytest.mark.parametrize(
    "exchange,files",
    [
        ("okx", ["OKX.ws.1.0"]),
        ("kraken", ["KRAKEN.ws.50.0"]),
        ("binance", ["BINANCE_FUTURES.ws.1.0", "BINANCE_FUTURES.http.0.0"]),
    ],
)
def test_book_features_on_other_exchanges_recordings(realdata: Path, exchange: str, files: list[str]) -> None:
    """Book features do not depend on the exchange: every recording keeps them finite and sane."""
    from pysrc.book.replay import read_items

    e = BookEngine(exchange, features=True)
    r = FeatureReader(e)
    seen = 0
    for payload, rest_symbol in read_items([realdata / f for f in files]):
        if not payload.strip():
            continue
        code, sym = e.apply(payload) if rest_symbol is None else e.apply_snapshot(rest_symbol, payload)
        if code != ApplyOutcome.APPLIED or sym is None:
            continue
        fv = r.read(sym, copy=False)
        assert np.isfinite(fv.values).all()
        d = dict(zip(FEATURE_NAMES, fv.values.tolist(), strict=True))
        if fv.mask[FEATURE_NAMES.index("mid")]:
            assert d["spread"] > 0 and -1 <= d["imbalance_5"] <= 1 and -1 <= d["pressure_10"] <= 1
        seen += 1
    assert seen > 200
