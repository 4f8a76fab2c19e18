"""PrivateStream against the real local exchange: pushes for an order on all four topics, re-auth
and resubscribe after a dropped connection, dead-socket detection on a stalled stream, pong
detection, refused auth."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pysrc.exchange.bybit.clock import ServerClock
from pysrc.exchange.bybit.orders import CreateStatus
from pysrc.exchange.bybit.private import PrivateStream
from pysrc.exchange.bybit.rest import BybitRest

from .conftest import SIM_KEY, SIM_SECRET, running_sim, wait_until

SYMBOL = "ETHUSDT"


class Inbox:
    """Collects pushes by topic."""

    def __init__(self) -> None:
        self.msgs: list[dict[str, Any]] = []

    async def __call__(self, msg: dict[str, Any]) -> None:
        self.msgs.append(msg)

    def rows(self, topic: str) -> list[dict[str, Any]]:
        return [row for m in self.msgs if m["topic"] == topic for row in m["data"]]

    def saw_order(self, link_id: str) -> bool:
        """order + execution rows for this link id, a position row for the symbol, a wallet row."""
        return (
            any(r["orderLinkId"] == link_id and r["orderStatus"] == "Filled" for r in self.rows("order"))
            and any(r["orderLinkId"] == link_id and r["execType"] == "Trade" for r in self.rows("execution"))
            and any(r["symbol"] == SYMBOL for r in self.rows("position"))
            and bool(self.rows("wallet"))
        )


def run(body: Callable[[Any, BybitRest, PrivateStream, Inbox], Awaitable[None]], **stream_kwargs: Any) -> None:
    async def main() -> None:
        async with running_sim() as sim, BybitRest(sim.rest_url, SIM_KEY, SIM_SECRET) as rest:
            inbox = Inbox()
            stream_kwargs.setdefault("backoff_base", 0.05)
            stream_kwargs.setdefault("rng", random.Random(2))
            stream = PrivateStream(sim.ws_private_url, SIM_KEY, SIM_SECRET, on_message=inbox,
                                   clock=rest.clock, **stream_kwargs)
            async with stream:
                assert await stream.wait_live(15), stream.last_error
                await body(sim, rest, stream, inbox)
            assert stream.snapshot()["state"] == "closed"

    asyncio.run(main())


async def market_round_trip(rest: BybitRest, link_id: str) -> None:
    r = await rest.place_order(SYMBOL, "Buy", "Market", "0.05", order_link_id=link_id)
    assert r.status is CreateStatus.ACCEPTED


def test_order_execution_position_wallet_pushes_for_an_order() -> None:
    async def body(sim: Any, rest: BybitRest, stream: PrivateStream, inbox: Inbox) -> None:
        await market_round_trip(rest, "push-1")
        await wait_until(lambda: inbox.saw_order("push-1"), what="pushes for push-1")
        execution = next(r for r in inbox.rows("execution") if r["orderLinkId"] == "push-1")
        assert execution["symbol"] == SYMBOL and execution["side"] == "Buy"
        position = [r for r in inbox.rows("position") if r["symbol"] == SYMBOL][-1]
        assert position["side"] == "Buy" and position["size"] == "0.05" and "entryPrice" in position
        assert set(stream.messages) >= {"order", "execution", "position", "wallet"}
        assert stream.dead_lettered == 0 and stream.auth_ok == 1

    run(body)


def test_reauth_and_resubscribe_after_a_dropped_connection() -> None:
    async def body(sim: Any, rest: BybitRest, stream: PrivateStream, inbox: Inbox) -> None:
        first_conn = stream.conn_id
        sim.faults.drop_private()
        await wait_until(lambda: stream.auth_ok >= 2 and stream.live, what="re-auth after drop")
        assert stream.reconnects >= 1 and stream.conn_id != first_conn
        assert sim.faults.counts["drop.private"] == 1
        await market_round_trip(rest, "after-drop")
        await wait_until(lambda: inbox.saw_order("after-drop"), what="pushes after reconnect")

    run(body)


def test_stalled_stream_is_declared_dead_and_replaced() -> None:
    async def body(sim: Any, rest: BybitRest, stream: PrivateStream, inbox: Inbox) -> None:
        await wait_until(lambda: stream.pongs >= 2, what="pongs")  # op: pong is recognised
        sim.faults.stall("private", seconds=30)  # socket open, nothing sent: not even pongs
        await wait_until(lambda: stream.dead_sockets >= 1, what="dead socket detected")
        await wait_until(lambda: stream.live and stream.auth_ok >= 2, what="fresh connection")
        await market_round_trip(rest, "after-stall")
        await wait_until(lambda: inbox.saw_order("after-stall"), what="pushes after the stall")

    run(body, ping_interval=0.1, dead_timeout=0.6)


def test_refused_auth_never_goes_live() -> None:
    async def main() -> None:
        async with running_sim() as sim:
            stream = PrivateStream(sim.ws_private_url, SIM_KEY, "wrong-secret", backoff_base=0.02, backoff_cap=0.1)
            async with stream:
                await wait_until(lambda: stream.auth_failures >= 2, what="auth failures")
                assert not stream.live
                assert "auth refused" in (stream.last_error or "")

    asyncio.run(main())


def test_auth_expires_follows_the_server_clock_not_the_local_one() -> None:
    """A local clock 20 s behind: ``expires`` = local now + 10 s would already be in the past at the
    exchange. With the clock measured by the REST client the same stream authenticates."""

    def behind() -> int:
        return time.time_ns() // 1_000_000 - 20_000

    async def main() -> None:
        async with running_sim() as sim:
            unsynced = PrivateStream(sim.ws_private_url, SIM_KEY, SIM_SECRET, clock=ServerClock(behind),
                                     backoff_base=0.02, backoff_cap=0.1)
            async with unsynced:
                await wait_until(lambda: unsynced.auth_failures >= 1, what="expired auth refused")
                assert not unsynced.live
            async with BybitRest(sim.rest_url, SIM_KEY, SIM_SECRET, clock=ServerClock(behind)) as rest:
                assert 19_000 < rest.clock.offset_ms < 21_000
                synced = PrivateStream(sim.ws_private_url, SIM_KEY, SIM_SECRET, clock=rest.clock)
                async with synced:
                    assert await synced.wait_live(15), synced.last_error
                    assert synced.auth_failures == 0

    asyncio.run(main())
