"""Client order ids: at most 36 characters of Bybit's charset, unique under a burst (also across
threads), ordered by time as plain strings, and parseable back into their parts."""

from __future__ import annotations

import re
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysrc.domain.ids import (
    ORDER_LINK_ID_MAX,
    ClientOrderIdGenerator,
    base36,
    check_order_link_id,
    is_valid_order_link_id,
    new_client_order_id,
    parse_client_order_id,
    strategy_segment,
    symbol_segment,
)

BYBIT = re.compile(r"[A-Za-z0-9_-]{1,36}")
NOW = 1_735_689_600_000  # 2025-01-01T00:00:00Z

symbols = st.one_of(
    st.sampled_from(
        [
            "BTCUSDT",
            "ETHUSDT",
            "1000PEPEUSDT",
            "SHIB1000USDT",
            "10000SATSUSDT",
            "BTC-27DEC24",
            "BTCUSDC",
        ]
    ),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/_", min_size=1, max_size=40).filter(
        lambda s: any(c.isalnum() for c in s)
    ),
)
strategies_ = st.one_of(
    st.sampled_from(["breakout", "orderbook_scalper", "sar_wave", "SuperTrend", "volume profile", "x"]),
    st.text(min_size=1, max_size=60).filter(lambda s: any(c.isascii() and c.isalnum() for c in s)),
)


@given(symbol=symbols, strategy=strategies_, now=st.integers(0, 36**9 - 1), seed=st.integers(0, 36**8))
def test_any_input_gives_a_valid_parseable_id(symbol: str, strategy: str, now: int, seed: int) -> None:
    gen = ClientOrderIdGenerator(clock=lambda: now, randbelow=lambda n: seed % n)
    value = gen.next_id(symbol, strategy)
    assert len(value) <= ORDER_LINK_ID_MAX
    assert BYBIT.fullmatch(value)
    assert is_valid_order_link_id(value)
    parts = parse_client_order_id(value)
    assert parts is not None
    assert parts.timestamp_ms == now
    assert parts.symbol == symbol_segment(symbol)
    assert value.startswith(base36(now, 9) + "_")


def test_the_plans_fields_in_order() -> None:
    gen = ClientOrderIdGenerator(clock=lambda: NOW, randbelow=lambda n: 12345)
    value = gen.next_id("BTCUSDT", "orderbook_scalper")
    ts, sym, strat, nonce = value.split("_")
    assert (int(ts, 36), sym, strat, len(nonce)) == (NOW, "BTCUSDT", "orderbook", 8)
    assert len(value) == 36
    assert gen.next_id("1000PEPEUSDT", "sar_wave").split("_")[1:3] == ["1000PEPE", "sar-wave"]


def test_burst_is_unique_and_strictly_increasing() -> None:
    gen = ClientOrderIdGenerator(clock=lambda: NOW)  # every id in the same millisecond
    ids = [gen.next_id("BTCUSDT", "breakout") for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_sorted_by_time_even_if_the_clock_steps_back() -> None:
    times = iter([NOW, NOW + 5, NOW + 2, NOW + 2, NOW + 9])
    gen = ClientOrderIdGenerator(clock=lambda: next(times))
    ids = [gen.next_id("ETHUSDT", "x") for _ in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    stamps = [parse_client_order_id(i).timestamp_ms for i in ids]  # type: ignore[union-attr]
    assert stamps == [NOW, NOW + 5, NOW + 5, NOW + 5, NOW + 9]


def test_nonce_carry_moves_to_the_next_millisecond() -> None:
    gen = ClientOrderIdGenerator(clock=lambda: NOW, randbelow=lambda n: n - 1)
    gen._last_ms, gen._last_nonce = NOW, 36**8 - 1
    value = gen.next_id("BTCUSDT", "x")
    assert parse_client_order_id(value).timestamp_ms == NOW + 1  # type: ignore[union-attr]


def test_unique_across_threads() -> None:
    gen = ClientOrderIdGenerator()
    out: list[list[str]] = [[] for _ in range(4)]

    def work(k: int) -> None:
        out[k].extend(gen.next_id("BTCUSDT", "t") for _ in range(5_000))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for chunk in out for i in chunk]
    assert len(set(flat)) == len(flat) == 20_000
    for chunk in out:
        assert chunk == sorted(chunk)


def test_wall_clock_ids_are_current() -> None:
    a, b = new_client_order_id("BTCUSDT", "x"), new_client_order_id("BTCUSDT", "x")
    assert a < b
    assert parse_client_order_id(a).timestamp_ms > NOW  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a", True),
        ("x" * 36, True),
        ("x" * 37, False),
        ("", False),
        ("has space", False),
        ("dot.ted", False),
        ("9f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b", True),  # a UUID4 string is exactly 36
        ("ünï", False),
    ],
)
def test_bybit_validation(value: str, ok: bool) -> None:
    assert is_valid_order_link_id(value) is ok
    if ok:
        assert check_order_link_id(value) == value
    else:
        with pytest.raises(ValueError):
            check_order_link_id(value)


def test_foreign_ids_do_not_parse() -> None:
    assert parse_client_order_id("9f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b") is None
    assert parse_client_order_id("manual_order") is None
    assert parse_client_order_id("0m5xg1a2b_BTCUSDT_x_0000000") is None  # nonce too short


def test_segments_refuse_empty_names() -> None:
    with pytest.raises(ValueError):
        symbol_segment("---")
    with pytest.raises(ValueError):
        strategy_segment("___", 10)
    assert strategy_segment("Order-Book  Scalper!", 9) == "order-boo"
    assert strategy_segment("ab-cd", 3) == "ab"  # never ends on the separator-like '-'
