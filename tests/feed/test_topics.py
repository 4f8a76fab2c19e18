"""Topic names, the 21,000-character args limit, and the connection plan."""

from __future__ import annotations

import itertools

import orjson
import pytest

from pysrc.feed.topics import (
    MAX_ARGS_CHARS,
    TopicSet,
    args_chars,
    plan_connections,
    split_args,
)


def test_topic_names() -> None:
    ts = TopicSet(("orderbook", "publicTrade", "tickers", "kline"), depth=200, kline_intervals=("1", "D"))
    assert ts.for_symbol("BTCUSDT") == [
        "orderbook.200.BTCUSDT",
        "publicTrade.BTCUSDT",
        "tickers.BTCUSDT",
        "kline.1.BTCUSDT",
        "kline.D.BTCUSDT",
    ]
    assert ts.orderbook("ETHUSDT") == "orderbook.200.ETHUSDT"
    assert TopicSet(("publicTrade",)).orderbook("X") is None


@pytest.mark.parametrize("depth", [1, 50, 200, 1000])
def test_supported_depths(depth: int) -> None:
    assert TopicSet(depth=depth).for_symbol("A")[0] == f"orderbook.{depth}.A"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"depth": 500},  # removed by Bybit in 2025
        {"kinds": ("orderbook", "liquidation")},
        {"kinds": ("kline",), "kline_intervals": ("2",)},
        {"kinds": ("kline",), "kline_intervals": ()},
        {"kinds": ("orderbook", "orderbook")},
    ],
)
def test_rejects_unsupported(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TopicSet(**kwargs)  # type: ignore[arg-type]


def test_split_respects_char_and_count_limits() -> None:
    topics = [f"orderbook.50.SYM{i:05d}USDT" for i in range(3000)]
    batches = split_args(topics, max_args=None)
    assert [t for b in batches for t in b] == topics  # order kept, nothing lost
    assert len(batches) > 1
    for batch in batches:
        assert args_chars(batch) <= MAX_ARGS_CHARS
        assert len(orjson.dumps(batch)) == args_chars(batch)
    # every batch but the last is full: adding its successor's first topic would break the limit
    for batch, nxt in itertools.pairwise(batches):
        assert args_chars([*batch, nxt[0]]) > MAX_ARGS_CHARS
    small = split_args(topics[:25], max_args=10)
    assert [len(b) for b in small] == [10, 10, 5]


def test_split_exact_boundary() -> None:
    # two topics that fill the limit exactly: ["a...","b..."] is len(a) + len(b) + 7 chars
    a, b = "a" * 46, "b" * 47
    assert args_chars([a, b]) == 100
    assert split_args([a, b], max_chars=100, max_args=None) == [[a, b]]
    assert split_args([a, b + "c"], max_chars=100, max_args=None) == [[a], [b + "c"]]
    with pytest.raises(ValueError):
        split_args(["x" * 200], max_chars=100)


def test_plan_groups_pairs_per_connection() -> None:
    symbols = [f"S{i}USDT" for i in range(23)]
    plan = plan_connections(symbols, TopicSet(), pairs_per_connection=10)
    assert [len(g) for g in plan] == [10, 10, 3]
    assert [s for g in plan for s in g] == symbols


def test_plan_respects_the_args_limit_per_connection() -> None:
    ts = TopicSet(("orderbook", "publicTrade", "tickers", "kline"), kline_intervals=("1", "5", "15"))
    symbols = [f"LONGSYMBOLNAME{i:04d}USDT" for i in range(400)]
    plan = plan_connections(symbols, ts, pairs_per_connection=1000, max_chars=5000)
    assert len(plan) > 1
    for group in plan:
        topics = [t for s in group for t in ts.for_symbol(s)]
        assert args_chars(topics) <= 5000
    with pytest.raises(ValueError):
        plan_connections(["A", "A"], ts, pairs_per_connection=2)
