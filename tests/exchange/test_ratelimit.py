"""The Bybit quota layer on the native buckets: sizing, header re-sync, 10006 hold, IP-ban gate."""

from __future__ import annotations

import asyncio
import math

import pytest

from pysrc.exchange.bybit import endpoints as ep
from pysrc.exchange.bybit.errors import IpBannedError, RateLimitWaitError
from pysrc.exchange.bybit.ratelimit import IP_BUCKET, RestRateLimiter, size_bucket

from .conftest import FakeClock


@pytest.mark.parametrize("limit", [1, 5, 10, 20, 50, 600])
@pytest.mark.parametrize("window", [1.0, 5.0])
def test_bucket_never_allows_more_than_the_limit_in_any_window(limit: int, window: float) -> None:
    spec = size_bucket(limit, window, 0.9, 0.2)
    assert spec.capacity >= 1 and spec.refill_per_second > 0
    # worst case in any window: a full bucket plus a window's refill (whole requests)
    assert spec.capacity + math.floor(spec.refill_per_second * window + 1e-9) <= limit


def test_default_buckets_match_the_published_table() -> None:
    lim = RestRateLimiter()
    ip = lim.spec(IP_BUCKET)
    assert (ip.limit, ip.window) == (600, 5.0)
    assert ip.capacity + ip.refill_per_second * 5 <= 600 * 0.85 + 1e-9
    create = lim.bucket_for(ep.ORDER_CREATE, "linear")
    assert create == "uid:/v5/order/create:linear"
    assert lim.spec(create).limit == 10
    assert lim.spec(lim.bucket_for(ep.ORDER_CREATE, "spot") or "").limit == 20  # per category
    assert lim.bucket_for(ep.OPEN_ORDERS, "linear") == lim.bucket_for(ep.OPEN_ORDERS, "spot")  # shared
    assert lim.bucket_for(ep.TICKERS, "linear") is None  # market data: IP bucket only
    assert lim.spec(lim.bucket_for(ep.ORDER_CANCEL_ALL, "option") or "").limit == 1


def test_header_sync_lowers_the_bucket_and_adopts_a_higher_vip_limit(fake_clock: FakeClock) -> None:
    lim = RestRateLimiter(clock=fake_clock)
    b = lim.bucket_for(ep.OPEN_ORDERS, None) or ""
    before = lim.limits.available(b)
    lim.on_headers(ep.OPEN_ORDERS, None, {"X-Bapi-Limit": "50", "X-Bapi-Limit-Status": "2",
                                           "X-Bapi-Limit-Reset-Timestamp": "0"}, 0)
    assert lim.limits.available(b) <= 2.01 < before
    lim.on_headers(ep.ORDER_CREATE, "linear", {"X-Bapi-Limit": "20", "X-Bapi-Limit-Status": "19"}, 0)
    assert lim.spec("uid:/v5/order/create:linear").limit == 20
    # remaining 0 with a reset in the future holds the bucket until then (server clock -> local)
    lim.on_headers(ep.ORDER_CREATE, "linear", {"X-Bapi-Limit-Status": "0",
                                                "X-Bapi-Limit-Reset-Timestamp": "1700000000400"}, 1700000000000)
    assert lim.blocked_for("uid:/v5/order/create:linear") == pytest.approx(0.4)
    assert lim.header_syncs == 3


def test_rate_limited_answer_blocks_until_reset_then_acquire_waits() -> None:
    async def main() -> float:
        lim = RestRateLimiter()
        lim.on_rate_limited(ep.ORDER_AMEND, "linear", {"X-Bapi-Limit-Reset-Timestamp": "1000150"}, 1000000)
        assert lim.limits.available("uid:/v5/order/amend:linear") < 1
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await lim.acquire(ep.ORDER_AMEND, "linear", timeout=5)
        return loop.time() - t0

    waited = asyncio.run(main())
    assert waited >= 0.14  # waited for the exchange's reset time, on the loop


def test_acquire_timeout_is_a_typed_error() -> None:
    async def main() -> None:
        lim = RestRateLimiter()
        lim.on_rate_limited(ep.ORDER_AMEND, "linear", {"X-Bapi-Limit-Reset-Timestamp": "61000"}, 1000)
        await lim.acquire(ep.ORDER_AMEND, "linear", timeout=0.05)

    with pytest.raises(RateLimitWaitError):
        asyncio.run(main())


def test_ip_ban_gate_fails_fast_until_the_window_passes(fake_clock: FakeClock) -> None:
    lim = RestRateLimiter(clock=fake_clock, ban_seconds=600)
    assert lim.banned_for() == 0
    lim.ban()
    with pytest.raises(IpBannedError) as e:
        lim.check_ban("/v5/market/tickers", "GET")
    assert e.value.retry_after == pytest.approx(600) and e.value.status == 403

    async def try_acquire() -> None:
        await lim.acquire(ep.TICKERS, "linear")

    with pytest.raises(IpBannedError):
        asyncio.run(try_acquire())
    fake_clock.advance(600.01)
    lim.check_ban("/v5/market/tickers")
    assert lim.snapshot()["bans"] == 1
