"""Instrument metadata, exact Decimal rounding (property-based) and the TTL cache."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysrc.exchange.instruments import (
    Instrument,
    InstrumentCache,
    OrderValidationError,
    PriceRounding,
    UnknownInstrument,
    ceil_to_step,
    floor_to_step,
    is_multiple,
    nearest_step,
)

from .conftest import FakeClock

BTC = {
    "symbol": "BTCUSDT",
    "contractType": "LinearPerpetual",
    "status": "Trading",
    "priceScale": "2",
    "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
    "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
    "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                      "maxMktOrderQty": "500.000", "minNotionalValue": "5"},
    "fundingInterval": 480,
    "settleCoin": "USDT",
}


def btc() -> Instrument:
    return Instrument.from_bybit(BTC)


def test_parse_bybit_item() -> None:
    i = btc()
    assert i.tick_size == Decimal("0.10") and i.qty_step == Decimal("0.001")
    assert i.min_qty == Decimal("0.001") and i.max_qty == Decimal(1190) and i.max_market_qty == Decimal(500)
    assert i.min_notional == Decimal(5) and i.max_leverage == Decimal(100)
    assert i.min_price == Decimal("0.1") and i.settle_coin == "USDT"


def test_direction_aware_price_rounding() -> None:
    i = btc()
    assert i.round_price("65000.17", "Buy") == Decimal("65000.1")  # passive buy: down
    assert i.round_price("65000.11", "Sell") == Decimal("65000.2")  # passive sell: up
    assert i.round_price("65000.17", "Buy", PriceRounding.AGGRESSIVE) == Decimal("65000.2")
    assert i.round_price("65000.11", "Sell", PriceRounding.AGGRESSIVE) == Decimal("65000.1")
    assert i.round_price("65000.15") == Decimal("65000.2")  # nearest, half up
    assert i.round_price("65000.14") == Decimal("65000.1")
    assert str(i.round_price("65000", "Buy")) == "65000.0"  # printed with the tick's decimals
    with pytest.raises(ValueError):
        i.round_price("1", "long")
    with pytest.raises(TypeError):
        i.round_price(1.5, "Buy")  # type: ignore[arg-type]


def test_qty_rounds_down_and_validation_errors() -> None:
    i = btc()
    assert i.round_qty("0.0129") == Decimal("0.012")
    i.validate("0.001", "65000.0")
    cases = [
        (("0.0005", "65000.0"), "qty"),  # below min and off-step
        (("0.0015", "65000.0"), "qty"),  # off step
        (("1191", "65000.0"), "qty"),  # above max
        (("0.001", "65000.05"), "price"),  # off tick
        (("0.001", None), "price"),  # limit without price
        (("0.001", "2000000.0"), "price"),  # above maxPrice
        (("0.001", "4000.0"), "notional"),  # 4 USDT < 5
    ]
    for (q, p), field in cases:
        with pytest.raises(OrderValidationError) as e:
            i.validate(q, p)
        assert e.value.field == field, (q, p)
    i.validate("0.001", "4000.0", reduce_only=True)  # reduce-only is exempt from the notional floor
    with pytest.raises(OrderValidationError):
        i.validate("501", None, order_type="Market")  # market max
    i.validate("1", None, order_type="Market")
    assert i.prepare("Buy", "0.0129", "65000.17") == ("0.012", "65000.1")
    with pytest.raises(OrderValidationError):
        i.prepare("Buy", "0.0009", "65000")  # rounds to 0 -> refused before sending


steps = st.sampled_from(["0.1", "0.01", "0.5", "0.025", "0.0001", "1", "5", "0.00000001", "0.3"]).map(Decimal)
values = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(10000000), places=10, allow_nan=False)


@settings(max_examples=400, deadline=None)
@given(values, steps)
def test_rounding_properties(value: Decimal, step: Decimal) -> None:
    down, up, near = floor_to_step(value, step), ceil_to_step(value, step), nearest_step(value, step)
    for r in (down, up, near):
        assert is_multiple(r, step)
    assert down <= value <= up
    assert up - down in (0, step)
    assert (up == down) == is_multiple(value, step)
    assert near in (down, up)
    assert abs(near - value) <= step / 2
    # exact: never more decimals than the step, never a float artefact
    assert -down.as_tuple().exponent <= max(0, -step.normalize().as_tuple().exponent)  # type: ignore[operator]


@settings(max_examples=200, deadline=None)
@given(values, st.sampled_from(["Buy", "Sell"]))
def test_passive_rounding_never_more_aggressive(price: Decimal, side: str) -> None:
    i = btc()
    r = i.round_price(price, side)
    assert (r <= price) if side == "Buy" else (r >= price)
    assert price - r < i.tick_size if side == "Buy" else r - price < i.tick_size


def test_cache_ttl_refresh_and_stale_on_failure(fake_clock: FakeClock) -> None:
    calls: list[int] = []
    fail = {"on": False}

    async def loader() -> list[Instrument]:
        calls.append(1)
        if fail["on"]:
            raise ConnectionError("exchange down")
        return [btc()]

    async def main() -> None:
        cache = InstrumentCache(loader, ttl=3600, clock=fake_clock)
        assert (await cache.get("BTCUSDT")).symbol == "BTCUSDT"
        await asyncio.gather(*(cache.get("BTCUSDT") for _ in range(5)))
        assert len(calls) == 1
        fake_clock.advance(3599)
        await cache.get("BTCUSDT")
        assert len(calls) == 1  # still fresh
        fake_clock.advance(2)
        await cache.get("BTCUSDT")
        assert len(calls) == 2 and cache.refreshes == 2
        # a failing refresh keeps serving the cached rules and retries after 30 s, not every call
        fake_clock.advance(3601)
        fail["on"] = True
        assert (await cache.get("BTCUSDT")).tick_size == Decimal("0.1")
        await cache.get("BTCUSDT")
        assert len(calls) == 3 and cache.refresh_errors == 1
        fake_clock.advance(31)
        fail["on"] = False
        await cache.get("BTCUSDT")
        assert len(calls) == 4
        # unknown symbol: one forced refresh, then UnknownInstrument; no second refresh within 60 s
        with pytest.raises(UnknownInstrument):
            await cache.get("NOPEUSDT")
        with pytest.raises(UnknownInstrument):
            await cache.get("NOPEUSDT")
        assert len(calls) == 5
        assert cache.cached("BTCUSDT") is not None and len(cache) == 1

    asyncio.run(main())


def test_cache_without_data_raises_the_loader_error(fake_clock: FakeClock) -> None:
    async def loader() -> list[Instrument]:
        raise ConnectionError("down")

    async def main() -> None:
        cache = InstrumentCache(loader, clock=fake_clock)
        with pytest.raises(ConnectionError):
            await cache.get("BTCUSDT")

    asyncio.run(main())
    with pytest.raises(ValueError):
        InstrumentCache(loader, ttl=0)
