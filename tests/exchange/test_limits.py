"""The native token buckets through their Python surface (real clock, generous margins: these
machines are shared, so nothing here asserts a duration tighter than the bucket math itself)."""

from __future__ import annotations

import asyncio
import time

import pytest

from pysrc import _native
from pysrc.exchange.limits import RateLimits


def test_capacity_then_refusal_then_wait_estimate() -> None:
    lim = _native.RateLimiter()
    lim.add_bucket("orders", 10, 10)
    assert all(lim.try_acquire("orders") for _ in range(10))
    assert not lim.try_acquire("orders")
    wait = lim.time_until_available("orders")
    assert 0.0 < wait <= 0.1 + 1e-9
    assert lim.buckets() == ["orders"]


def test_weighted_costs_and_sync_from_exchange_headers() -> None:
    lim = _native.RateLimiter()
    lim.add_bucket("ip", 600, 120)
    assert lim.try_acquire("ip", 599)
    assert not lim.try_acquire("ip", 5)
    lim.set_available("ip", 1000)  # clamped to capacity
    assert lim.available("ip") == pytest.approx(600, abs=1)
    lim.set_available("ip", 0)
    assert lim.available("ip") < 1


def test_errors_are_specific() -> None:
    lim = _native.RateLimiter()
    with pytest.raises(_native.UnknownBucket):
        lim.try_acquire("missing")
    with pytest.raises(KeyError):
        lim.available("missing")
    lim.add_bucket("b", 5, 1)
    with pytest.raises(ValueError, match="exceeds the bucket capacity"):
        lim.try_acquire("b", 6)
    with pytest.raises(ValueError):
        lim.add_bucket("c", -1, 1)


def test_async_acquire_waits_on_the_loop_not_the_thread() -> None:
    async def main() -> tuple[int, int]:
        limits = RateLimits()
        limits.add("orders", 2, 50)  # 2 now, then one every 20 ms
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        try:
            for _ in range(6):
                await limits.acquire("orders")
        finally:
            t.cancel()
            await asyncio.gather(t, return_exceptions=True)
        return ticks, 6

    start = time.monotonic()
    ticks, granted = asyncio.run(main())
    assert granted == 6
    # 4 tokens had to be refilled at 50/s: at least ~80 ms, during which the loop kept running.
    assert time.monotonic() - start >= 0.07
    assert ticks > 5


def test_async_acquire_times_out() -> None:
    async def main() -> None:
        limits = RateLimits()
        limits.add("slow", 1, 0.5)
        await limits.acquire("slow")
        await limits.acquire("slow", timeout=0.05)

    with pytest.raises(TimeoutError):
        asyncio.run(main())
