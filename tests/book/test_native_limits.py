"""Hostile sizes never crash the native engine: they are malformed and change nothing."""

from __future__ import annotations

import orjson
import pytest

from pysrc.book import BookEngine, MalformedMessage

TOO_MANY = 100_001


def bybit_snapshot(n: int) -> bytes:
    levels = [[f"{1 + i / 1000:.3f}", "1"] for i in range(n)]
    return orjson.dumps(
        {"topic": "orderbook.50.X", "type": "snapshot", "ts": 1, "data": {"s": "X", "b": levels, "a": [], "u": 1}}
    )


def test_bybit_more_than_100k_levels_per_side_is_malformed() -> None:
    e = BookEngine("bybit")
    with pytest.raises(MalformedMessage, match="levels"):
        e.apply(bybit_snapshot(TOO_MANY))
    assert e.symbols() == [] and e.totals()["errors"] == 1
    assert e.apply(bybit_snapshot(1000)) == (0, "X")


@pytest.mark.parametrize(
    "exchange,message",
    [
        ("okx", {"arg": {"channel": "books", "instId": "X"}, "action": "snapshot",
                 "data": [{"asks": [["1", "1", "0", "1"]] * TOO_MANY, "bids": []}]}),
        ("kraken", [1, {"as": [["1.0", "1.0", "1.0"]] * TOO_MANY, "bs": []}, "book-10", "X"]),
        ("binance", {"e": "depthUpdate", "E": 1, "s": "X", "U": 1, "u": 2, "pu": 0,
                     "b": [["1.0", "1"]] * TOO_MANY, "a": []}),
    ],
)
def test_other_exchanges_refuse_huge_arrays(exchange: str, message: object) -> None:
    e = BookEngine(exchange)
    with pytest.raises(MalformedMessage):
        e.apply(orjson.dumps(message))
    assert e.symbols() == []


def test_messages_over_16_mib_are_refused_before_parsing() -> None:
    e = BookEngine("bybit")
    with pytest.raises(MalformedMessage, match="exceeds the limit"):
        e.apply(b" " * (16 * 1024 * 1024 + 1))


def test_deep_nesting_is_malformed_not_a_stack_overflow() -> None:
    e = BookEngine("bybit")
    deep = b'{"topic":"orderbook.1.X","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(MalformedMessage):
        e.apply(deep)
