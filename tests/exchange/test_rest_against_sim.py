"""BybitRest against the real local exchange (pysrc.sim) on loopback: signed calls, the clock
offset, the rate limiter under a burst, and every injected REST fault with its recovery.

Each test starts its own SimExchange on 127.0.0.1:0. Faults are injected through ``sim.faults``
(see pysrc/sim/faults.py); ``sim.faults.counts`` proves the fault really fired, and the sim's own
counters (``rest_requests``, ``rest_10006``, rate-limit rejections) prove what reached it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from pysrc.exchange.breaker import BreakerBoard, BreakerOpenError, BreakerState
from pysrc.exchange.bybit.clock import ServerClock
from pysrc.exchange.bybit.errors import BybitApiError, BybitHttpError, IpBannedError
from pysrc.exchange.bybit.orders import AmendStatus, CancelStatus, CreateStatus
from pysrc.exchange.bybit.ratelimit import RestRateLimiter
from pysrc.exchange.bybit.rest import BybitRest
from pysrc.exchange.errors import RetryClass
from pysrc.exchange.instruments import Instrument, PriceRounding
from pysrc.exchange.retry import RetryPolicy

from .conftest import SIM_KEY, SIM_SECRET, running_sim, wait_until

SYMBOL = "BTCUSDT"


def fast_retry(max_attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(max_attempts=max_attempts, base_delay=0.02, max_delay=0.2, rng=random.Random(5))


def run(body: Callable[[Any, BybitRest], Awaitable[None]], *, sim_kwargs: dict[str, Any] | None = None,
        **rest_kwargs: Any) -> None:
    async def main() -> None:
        async with running_sim(**(sim_kwargs or {})) as sim:
            rest_kwargs.setdefault("retry", fast_retry())
            rest_kwargs.setdefault("limiter", RestRateLimiter(ban_seconds=0.5))
            async with BybitRest(sim.rest_url, SIM_KEY, SIM_SECRET, **rest_kwargs) as rest:
                await body(sim, rest)

    asyncio.run(main())


async def passive_buy_price(rest: BybitRest, inst: Instrument, ticks_below: int = 50) -> Decimal:
    """A price well below the best bid, on the tick grid: rests, never fills."""
    ob = await rest.orderbook(inst.symbol, 1)
    return inst.round_price(Decimal(ob["b"][0][0]) - inst.tick_size * ticks_below, "Buy")


async def orders_with_link(rest: BybitRest, link_id: str) -> list[dict[str, Any]]:
    """Every order the exchange knows with this link id (open, recent closed and history)."""
    found = {o["orderId"]: o for o in await rest.open_orders(SYMBOL) if o["orderLinkId"] == link_id}
    for o in await rest.order_history(SYMBOL):
        if o["orderLinkId"] == link_id:
            found[o["orderId"]] = o
    return list(found.values())


# ---- plain operation ------------------------------------------------------------------------------


def test_market_data_and_paginated_instruments() -> None:
    async def body(sim: Any, rest: BybitRest) -> None:
        one_page = await rest.instruments()
        paged = await rest.instruments(limit=1)  # one symbol per page: follows nextPageCursor
        assert [i["symbol"] for i in paged] == [i["symbol"] for i in one_page] == sim.symbols
        specs = await rest.instrument_specs()
        assert all(s.tick_size > 0 and s.qty_step > 0 and s.min_notional is not None for s in specs)
        ob = await rest.orderbook(SYMBOL, 5)
        assert ob["s"] == SYMBOL and len(ob["b"]) == 5 and Decimal(ob["b"][0][0]) < Decimal(ob["a"][0][0])
        (ticker,) = await rest.tickers(SYMBOL)
        assert ticker["symbol"] == SYMBOL and Decimal(ticker["lastPrice"]) > 0
        kl = await rest.klines(SYMBOL, "1", limit=3)
        assert len(kl) >= 2 and int(kl[0][0]) > int(kl[1][0])  # newest first
        assert isinstance(await rest.recent_trades(SYMBOL, 5), list)
        assert abs(await rest.server_time() - time.time() * 1000) < 5000

    run(body)


def test_signed_order_position_and_account_calls() -> None:
    async def body(sim: Any, rest: BybitRest) -> None:
        wallet = await rest.wallet_balance()
        assert wallet["accountType"] == "UNIFIED" and Decimal(wallet["totalEquity"]) > 0
        (pos,) = await rest.positions(SYMBOL)
        assert pos["symbol"] == SYMBOL and Decimal(pos["size"]) == 0
        assert await rest.set_leverage(SYMBOL, "5") is True
        assert await rest.set_leverage(SYMBOL, Decimal(5)) is False  # 110043: not modified = success

        with pytest.raises(TypeError):  # money is exact: floats never reach the wire
            await rest.place_order(SYMBOL, "Buy", "Limit", 0.001, "60000")  # type: ignore[arg-type]
        cache = rest.instrument_cache()
        inst = await cache.get(SYMBOL)
        qty, price = inst.prepare("Buy", "0.0019", await passive_buy_price(rest, inst))
        assert qty == "0.001"
        placed = await rest.place_order(SYMBOL, "Buy", "Limit", qty, price, time_in_force="PostOnly")
        assert placed.status is CreateStatus.ACCEPTED and placed.order_id
        open_ids = [o["orderId"] for o in await rest.open_orders(SYMBOL)]
        assert placed.order_id in open_ids

        new_price = inst.round_price(Decimal(price) - inst.tick_size, "Buy")
        amended = await rest.amend_order(SYMBOL, order_link_id=placed.order_link_id, price=new_price)
        assert amended.status is AmendStatus.ACCEPTED
        order = await rest.find_order(SYMBOL, order_id=placed.order_id)
        assert order is not None and Decimal(order["price"]) == new_price

        cancelled = await rest.cancel_order(SYMBOL, order_id=placed.order_id)
        assert cancelled.status is CancelStatus.CANCELLED
        hist = await rest.order_history(SYMBOL)
        assert any(o["orderId"] == placed.order_id and o["orderStatus"] == "Cancelled" for o in hist)
        with pytest.raises(BybitApiError) as e:  # a first 110001 is reported, not hidden
            await rest.cancel_order(SYMBOL, order_id=placed.order_id)
        assert e.value.ret_code == 110001 and e.value.retry is RetryClass.ORDER_GONE

        bought = await rest.place_order(SYMBOL, "Buy", "Market", "0.002")
        assert bought.status is CreateStatus.ACCEPTED
        fills = await rest.executions(SYMBOL, order_id=bought.order_id)
        assert fills and all(f["execType"] == "Trade" for f in fills)
        assert sum(Decimal(f["execQty"]) for f in fills) == Decimal("0.002")
        (pos,) = await rest.positions(SYMBOL)
        assert Decimal(pos["size"]) == Decimal("0.002") and pos["side"] == "Buy"
        (ticker,) = await rest.tickers(SYMBOL)
        stop = inst.round_price(Decimal(ticker["lastPrice"]) * Decimal("0.9"), "Sell", PriceRounding.NEAREST)
        assert await rest.trading_stop(SYMBOL, stop_loss=stop) is True
        assert await rest.trading_stop(SYMBOL, stop_loss=stop) is False  # 34040: not modified
        closed = await rest.place_order(SYMBOL, "Sell", "Market", "0.002", reduce_only=True)
        assert closed.status is CreateStatus.ACCEPTED
        assert await rest.positions() == []  # settleCoin=USDT lists only non-zero positions
        assert await rest.cancel_all(symbol=SYMBOL) == []

        snap = rest.snapshot()
        assert snap["endpoints"]["POST /v5/order/create"]["ok"] == 3
        assert set(snap["breakers"]) == {"market", "order", "position", "account"}
        assert all(b["state"] == "closed" for b in snap["breakers"].values())

    run(body)


def test_clock_offset_is_measured_and_a_drifted_clock_is_resynced_on_10002() -> None:
    skew = {"ms": 7000}  # local clock 7 s ahead of the exchange

    def wall() -> int:
        return time.time_ns() // 1_000_000 + skew["ms"]

    async def body(sim: Any, rest: BybitRest) -> None:
        assert rest.clock.sample is not None
        assert -7500 < rest.clock.offset_ms < -6500  # measured against /v5/market/time
        await rest.wallet_balance()  # signed with the corrected time: accepted
        assert rest.metrics.counters.get("clock_resyncs_on_10002", 0) == 0
        skew["ms"] += 4000  # the local clock jumps: timestamps now 4 s in the future -> real 10002
        await rest.wallet_balance()
        assert rest.metrics.counters["clock_resyncs_on_10002"] == 1
        assert -11500 < rest.clock.offset_ms < -10500
        assert rest.metrics.endpoints["GET /v5/account/wallet-balance"].errors["ret_10002"] == 1
        # a burst that all hits 10002 re-measures the clock once, not once per request
        skew["ms"] += 4000
        before = rest.clock.measurements
        await asyncio.gather(*(rest.wallet_balance() for _ in range(5)))
        assert rest.metrics.counters["clock_resyncs_on_10002"] == 6
        assert rest.clock.measurements == before + 1

    run(body, clock=ServerClock(wall))


def test_burst_at_the_max_order_rate_gets_zero_10006() -> None:
    async def body(sim: Any, rest: BybitRest) -> None:
        inst = await rest.instrument_cache().get(SYMBOL)
        price = await passive_buy_price(rest, inst, 200)
        results = await asyncio.gather(
            *(rest.place_order(SYMBOL, "Buy", "Limit", "0.001", price, time_in_force="PostOnly") for _ in range(25))
        )
        assert all(r.status is CreateStatus.ACCEPTED for r in results)
        # and a read burst through the IP bucket
        await asyncio.gather(*(rest.tickers(SYMBOL) for _ in range(150)))
        assert len(await rest.cancel_all(symbol=SYMBOL)) == 25
        assert sim.stats.get("rest_10006", 0) == 0
        assert sim.limits.rejected_uid == 0 and sim.limits.rejected_ip == 0
        assert rest.metrics.endpoints["POST /v5/order/create"].errors == {}

        # Control: the same burst through a limiter sized above the published limit is refused by
        # the exchange (so the zero above is the limiter's doing, not a lenient exchange).
        async with BybitRest(sim.rest_url, SIM_KEY, SIM_SECRET, retry=fast_retry(max_attempts=1),
                             limiter=RestRateLimiter(uid_headroom=5.0)) as loose:
            outcomes = await asyncio.gather(
                *(loose.place_order(SYMBOL, "Buy", "Limit", "0.001", price) for _ in range(25)),
                return_exceptions=True,
            )
        refused = [o for o in outcomes if isinstance(o, BybitApiError)]
        assert refused and all(e.ret_code == 10006 for e in refused)
        assert sim.stats["rest_10006"] == len(refused)
        accepted = [o for o in outcomes if not isinstance(o, BaseException)]
        assert len(accepted) + len(refused) == 25
        assert len(await rest.cancel_all(symbol=SYMBOL)) == len(accepted)  # 10006 = not executed

    run(body)


# ---- injected faults ------------------------------------------------------------------------------


def test_injected_10006_waits_for_the_reset_then_succeeds_once() -> None:
    async def body(sim: Any, rest: BybitRest) -> None:
        sim.faults.rest("/v5/order/realtime", "10006")
        assert isinstance(await rest.open_orders(SYMBOL), list)
        inst = await rest.instrument_cache().get(SYMBOL)
        price = await passive_buy_price(rest, inst)
        sim.faults.rest("/v5/order/create", "10006")
        r = await rest.place_order(SYMBOL, "Buy", "Limit", "0.001", price)
        assert r.status is CreateStatus.ACCEPTED
        assert sim.faults.counts["rest.10006"] == 2
        assert rest.metrics.counters["rate_limit_retries"] == 2
        assert len(await orders_with_link(rest, r.order_link_id)) == 1  # resent once, created once
        # an endpoint without a UID bucket (market data) waits for the announced reset as well
        sim.faults.rest("/v5/market/tickers", "10006")
        assert len(await rest.tickers(SYMBOL)) == 1
        assert sim.faults.counts["rest.10006"] == 3

    run(body)


def test_injected_10002_resyncs_the_clock_and_resigns() -> None:
    async def body(sim: Any, rest: BybitRest) -> None:
        before = rest.clock.measurements
        sim.faults.rest("/v5/account/wallet-balance", "10002")
        assert (await rest.wallet_balance())["accountType"] == "UNIFIED"
        assert sim.faults.counts["rest.10002"] == 1
        assert rest.clock.measurements == before + 1
        assert rest.metrics.counters["clock_resyncs_on_10002"] == 1

    run(body)


def test_injected_10004_is_raised_not_retried() -> None:
    async def body(sim: Any, rest: BybitRest) -> None:
        sim.faults.rest("/v5/position/list", "10004")
        with pytest.raises(BybitApiError) as e:
            await rest.positions(SYMBOL)
        assert e.value.ret_code == 10004 and e.value.retry is RetryClass.FATAL
        assert sim.faults.counts["rest.10004"] == 1
        assert rest.metrics.counters.get("retries", 0) == 0
        assert rest.breakers["position"].state is BreakerState.CLOSED  # the service answered
        assert len(await rest.positions(SYMBOL)) == 1  # the next call is fine

    run(body)


def test_http_403_stops_all_rest_until_the_ban_window_passes() -> None:
    async def body(sim: Any, rest: BybitRest) -> None:
        sim.faults.rest("/v5/market/tickers", "403")
        with pytest.raises(IpBannedError):
            await rest.tickers(SYMBOL)
        seen = sim.stats["rest_requests"]
        for call in (rest.wallet_balance(), rest.orderbook(SYMBOL), rest.place_order(SYMBOL, "Buy", "Market", "0.001")):
            with pytest.raises(IpBannedError):  # every endpoint, failing fast
                await call
        assert sim.stats["rest_requests"] == seen  # nothing reached the exchange
        assert rest.limiter.bans == 1
        await wait_until(lambda: rest.limiter.banned_for() == 0, what="ban window")
        assert (await rest.wallet_balance())["accountType"] == "UNIFIED"

    run(body, limiter=RestRateLimiter(ban_seconds=2.0))


def test_5xx_on_reads_is_retried_with_backoff() -> None:
    async def body(sim: Any, rest: BybitRest) -> None:
        sim.faults.rest("/v5/market/orderbook", "502", count=2)
        ob = await rest.orderbook(SYMBOL, 1)
        assert ob["s"] == SYMBOL
        assert sim.faults.counts["rest.502"] == 2
        assert rest.metrics.endpoints["GET /v5/market/orderbook"].errors["http_502"] == 2

    run(body)


def test_delayed_and_timed_out_reads() -> None:
    async def body(sim: Any, rest: BybitRest) -> None:
        sim.faults.rest("/v5/market/tickers", "delay", seconds=0.05)
        assert len(await rest.tickers(SYMBOL)) == 1
        sim.faults.rest("/v5/market/tickers", "timeout", seconds=10)
        assert len(await rest.tickers(SYMBOL)) == 1  # timed out after 2 s, retried
        assert sim.faults.counts["rest.timeout"] == 1 and sim.faults.counts["rest.delay"] == 1
        assert rest.metrics.endpoints["GET /v5/market/tickers"].errors["TransportError"] == 1

    run(body, timeout=2.0)


def test_lost_ack_on_create_is_resolved_by_link_id_without_a_duplicate() -> None:
    async def body(sim: Any, rest: BybitRest) -> None:
        inst = await rest.instrument_cache().get(SYMBOL)
        price = await passive_buy_price(rest, inst)
        sim.faults.rest("/v5/order/create", "lose_ack")
        sim.faults.rest("/v5/order/realtime", "502")  # and the first lookup fails too (retried)
        r = await rest.place_order(SYMBOL, "Buy", "Limit", "0.001", price, order_link_id="lost-ack-1")
        assert sim.faults.counts["rest.lose_ack"] == 1
        assert r.status is CreateStatus.RECOVERED and r.exists and not r.safe_to_retry
        assert r.order is not None and r.order["orderLinkId"] == "lost-ack-1" and r.order_id
        assert r.error is not None and r.error.retry is RetryClass.UNKNOWN_OUTCOME
        assert len(await orders_with_link(rest, "lost-ack-1")) == 1
        assert rest.metrics.counters["create_reconciliations"] == 1
        # a resend with the same link id is refused by the exchange and resolved as a duplicate
        again = await rest.place_order(SYMBOL, "Buy", "Limit", "0.001", price, order_link_id="lost-ack-1")
        assert again.status is CreateStatus.DUPLICATE and again.order_id == r.order_id
        assert len(await orders_with_link(rest, "lost-ack-1")) == 1

    run(body)


def test_create_that_never_reached_the_book_is_reported_safe_to_retry() -> None:
    async def body(sim: Any, rest: BybitRest) -> None:
        inst = await rest.instrument_cache().get(SYMBOL)
        price = await passive_buy_price(rest, inst)
        sim.faults.rest("/v5/order/create", "timeout", seconds=10)
        r = await rest.place_order(SYMBOL, "Buy", "Limit", "0.001", price, order_link_id="never-1")
        assert r.status is CreateStatus.NOT_FOUND and r.safe_to_retry and r.order_id is None
        assert await orders_with_link(rest, "never-1") == []
        retry = await rest.place_order(SYMBOL, "Buy", "Limit", "0.001", price, order_link_id="never-1")
        assert retry.status is CreateStatus.ACCEPTED
        # 5xx from the gateway, with the automatic resend under the same link id
        sim.faults.rest("/v5/order/create", "503")
        r2 = await rest.place_order(SYMBOL, "Buy", "Limit", "0.001", price, order_link_id="never-2",
                                    resend_if_absent=True)
        assert r2.status is CreateStatus.ACCEPTED and r2.resent and r2.error is not None
        assert sim.faults.counts["rest.timeout"] == 1 and sim.faults.counts["rest.503"] == 1
        assert len(await orders_with_link(rest, "never-1")) == 1
        assert len(await orders_with_link(rest, "never-2")) == 1

    run(body, timeout=2.0)


def test_lost_acks_on_amend_and_cancel_are_reconciled() -> None:
    async def body(sim: Any, rest: BybitRest) -> None:
        inst = await rest.instrument_cache().get(SYMBOL)
        price = await passive_buy_price(rest, inst)
        placed = await rest.place_order(SYMBOL, "Buy", "Limit", "0.001", price)
        new_price = price - inst.tick_size
        sim.faults.rest("/v5/order/amend", "lose_ack")
        amended = await rest.amend_order(SYMBOL, order_id=placed.order_id, price=new_price)
        assert amended.status is AmendStatus.CONFIRMED and amended.error is not None
        sim.faults.rest("/v5/order/cancel", "lose_ack")
        cancelled = await rest.cancel_order(SYMBOL, order_id=placed.order_id)
        assert cancelled.status is CancelStatus.ALREADY_GONE and cancelled.attempts == 2
        assert sim.faults.counts["rest.lose_ack"] == 2
        order = await rest.find_order(SYMBOL, order_id=placed.order_id)
        assert order is not None and order["orderStatus"] == "Cancelled" and Decimal(order["price"]) == new_price

    run(body)


def test_breaker_opens_after_repeated_5xx_and_closes_after_the_probe() -> None:
    async def body(sim: Any, rest: BybitRest) -> None:
        market = rest.breakers["market"]
        sim.faults.rest("/v5/market/tickers", "502", count=5)
        for _ in range(5):
            with pytest.raises(BybitHttpError):
                await rest.tickers(SYMBOL)
        assert market.state is BreakerState.OPEN
        seen = sim.stats["rest_requests"]
        with pytest.raises(BreakerOpenError):
            await rest.orderbook(SYMBOL)  # the whole market group is cut off
        assert sim.stats["rest_requests"] == seen
        assert (await rest.wallet_balance())["accountType"] == "UNIFIED"  # other groups unaffected
        # a failing probe re-opens it
        await wait_until(lambda: market.state is BreakerState.HALF_OPEN, what="half-open")
        sim.faults.rest("/v5/market/tickers", "502", count=1)
        with pytest.raises(BybitHttpError):
            await rest.tickers(SYMBOL)
        assert market.state is BreakerState.OPEN and market.times_opened == 2
        # a successful probe closes it
        await wait_until(lambda: market.state is BreakerState.HALF_OPEN, what="half-open")
        assert len(await rest.tickers(SYMBOL)) == 1
        assert market.state is BreakerState.CLOSED
        snap = rest.snapshot()["breakers"]["market"]
        assert snap["state"] == "closed" and snap["times_opened"] == 2 and snap["rejected"] >= 1

    run(body, retry=fast_retry(max_attempts=1), breakers=BreakerBoard(open_seconds=1.0))
