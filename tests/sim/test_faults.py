"""Every injected fault is observable by a client and counted in /sim/stats."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from pysrc.book import ApplyOutcome, BookEngine
from pysrc.sim import SimExchange

SYM = "BTCUSDT"
TOPIC = f"orderbook.50.{SYM}"


async def _stats(s: aiohttp.ClientSession, sim: SimExchange) -> dict[str, Any]:
    async with s.get(f"{sim.rest_url}/sim/stats") as r:
        out: dict[str, Any] = await r.json()
        return out


async def _book_msgs(pub: Any, n: int, timeout: float = 15.0) -> list[tuple[dict[str, Any], str]]:
    out = []
    for _ in range(n):
        out.append(await pub.next(lambda d: d.get("topic") == TOPIC, timeout=timeout))
    return out


@pytest.mark.parametrize("kind", ["gap", "duplicate", "out_of_order", "snapshot", "restart"])
def test_book_faults(bybit: Any, kind: str) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=2, seed=4)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                pub = bybit.Public(await s.ws_connect(sim.ws_public_url))
                await pub.send({"op": "subscribe", "args": [TOPIC]})
                engine = BookEngine("bybit")
                for d, raw in await _book_msgs(pub, 5):
                    assert engine.apply(raw)[0] == ApplyOutcome.APPLIED
                # inject through the admin endpoint (the in-process API is the same object)
                async with s.post(f"{sim.rest_url}/sim/faults", json={"kind": kind, "symbol": SYM, "depth": 50}) as r:
                    assert (await r.json())["ok"] is True
                seen: list[tuple[str, int, int]] = []  # (type, u, outcome)
                for d, raw in await _book_msgs(pub, 6):
                    oc, _ = engine.apply(raw)
                    seen.append((d["type"], d["data"]["u"], oc))
                types = [t for t, _, _ in seen]
                us = [u for _, u, _ in seen]
                outs = [o for _, _, o in seen]
                if kind == "gap":
                    assert ApplyOutcome.GAP in outs
                    i = outs.index(ApplyOutcome.GAP)
                    assert us[i] == engine.update_id(SYM) + 2 if i == 0 else us[i] == us[i - 1] + 2
                    assert engine.state(SYM) == "needs_resync"
                elif kind == "duplicate":
                    assert ApplyOutcome.STALE in outs and ApplyOutcome.GAP not in outs
                    i = outs.index(ApplyOutcome.STALE)
                    assert us[i] == us[i - 1] and seen[i - 1][2] == ApplyOutcome.APPLIED
                elif kind == "out_of_order":
                    i = outs.index(ApplyOutcome.GAP)
                    assert us[i + 1] == us[i] - 1, "the held delta follows the one after it"
                elif kind == "snapshot":
                    assert "snapshot" in types
                    i = types.index("snapshot")
                    assert i == 0 or us[i] == us[i - 1] + 1
                    assert all(o == ApplyOutcome.APPLIED for o in outs)
                else:  # restart
                    i = types.index("snapshot")
                    assert us[i] == 1 and us[i + 1] == 2 and all(o == ApplyOutcome.APPLIED for o in outs)
                # a resubscription always repairs the book
                if engine.state(SYM) != "live":
                    await pub.send({"op": "unsubscribe", "args": [TOPIC]})
                    await pub.next(lambda d: d.get("op") == "unsubscribe")
                    await pub.send({"op": "subscribe", "args": [TOPIC]})
                    engine.reset(SYM)
                sim.pause_market()

                async def settle() -> None:
                    while engine.levels(SYM, 50) != sim.book(SYM, 50):
                        d, raw = await pub.next()
                        if d.get("topic") == TOPIC:
                            engine.apply(raw)
                await asyncio.wait_for(settle(), 15)
                st = await _stats(s, sim)
                assert st["faults"][f"book.{kind}"] == 1
                await pub.close()
        finally:
            await sim.stop()

    asyncio.run(main())


def test_drop_public_now_and_after_n_messages(bybit: Any) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=2, seed=4)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                pub = bybit.Public(await s.ws_connect(sim.ws_public_url))
                await pub.send({"op": "subscribe", "args": [TOPIC]})
                await pub.next(lambda d: d.get("topic") == TOPIC)
                sim.faults.drop_public()
                closed, _ = await pub.next(lambda d: d.get("_closed") is True)
                assert closed["_closed"]
                # reconnect, arm a drop after 20 messages
                pub2 = bybit.Public(await s.ws_connect(sim.ws_public_url))
                await pub2.send({"op": "subscribe", "args": [TOPIC]})
                await pub2.next(lambda d: d.get("topic") == TOPIC)
                sim.faults.drop("public", after_messages=20)
                n = 0
                while True:
                    d, _ = await pub2.next(timeout=15)
                    if d.get("_closed"):
                        break
                    n += 1
                assert n >= 20
                st = await _stats(s, sim)
                assert st["faults"]["drop.public"] == 2
                await pub.close()
                await pub2.close()
        finally:
            await sim.stop()

    asyncio.run(main())


def test_stall_public_sends_no_data_and_no_pongs(bybit: Any) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=2, seed=4)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                pub = bybit.Public(await s.ws_connect(sim.ws_public_url))
                await pub.send({"op": "subscribe", "args": [TOPIC]})
                await pub.next(lambda d: d.get("topic") == TOPIC)
                t_start = int(time.time() * 1000)
                sim.faults.stall("public", seconds=1.5)
                t_end = t_start + 1500
                await pub.send({"op": "ping", "req_id": "during"})
                got: list[dict[str, Any]] = []
                # data comes back after the stall on the same socket (it was never closed)
                while True:
                    d, _ = await pub.next(timeout=15)
                    got.append(d)
                    if d.get("topic") == TOPIC and d["ts"] > t_end + 20:
                        break
                await pub.send({"op": "ping", "req_id": "after"})
                while True:
                    d, _ = await pub.next(timeout=10)
                    got.append(d)
                    if d.get("req_id") == "after":
                        break
                # nothing was sent during the stall: no pong for "during", no data stamped inside it
                assert not any(d.get("req_id") == "during" for d in got)
                assert not any(t_start + 5 < d.get("ts", 0) < t_end - 5 for d in got)
                assert not pub.ws.closed
                assert sim.faults.counts["stall.public"] == 1
                await pub.close()
        finally:
            await sim.stop()

    asyncio.run(main())


def test_stall_and_drop_private(bybit: Any) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=2, seed=4)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                pv = bybit.Private(await s.ws_connect(sim.ws_private_url))
                assert (await pv.auth())["success"]
                sim.faults.stall("private", seconds=1.0)
                await pv.ws.send_str(json.dumps({"op": "ping", "req_id": "during"}))
                await asyncio.sleep(1.2)
                await pv.ws.send_str(json.dumps({"op": "ping", "req_id": "after"}))
                pong = await asyncio.wait_for(pv.replies.get(), 10)
                assert pong["req_id"] == "after", "the ping sent during the stall got no pong"
                sim.faults.drop_private()
                await asyncio.wait_for(pv._task, 10)
                assert pv.ws.closed
                assert sim.faults.counts["drop.private"] == 1
        finally:
            await sim.stop()

    asyncio.run(main())


def test_rest_faults(bybit: Any) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=2, seed=4)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                rest = bybit.Rest(s, sim.rest_url)
                wallet = ("/v5/account/wallet-balance", {"accountType": "UNIFIED"})
                f = sim.faults
                for code in ("10006", "10002", "10004"):
                    f.rest("/v5/account", code)
                    r = await rest.get(*wallet)
                    assert r["retCode"] == int(code)
                assert (await rest.get(*wallet))["retCode"] == 0, "each fault was for one request only"
                f.rest("/v5/", "403", count=2)
                assert (await rest.get(*wallet))["_http"] == 403
                async with s.get(f"{sim.rest_url}/v5/market/time") as resp:
                    assert resp.status == 403
                assert (await rest.get(*wallet))["retCode"] == 0
                for status in ("502", "503"):
                    f.rest("/v5/market", status)
                    async with s.get(f"{sim.rest_url}/v5/market/time") as resp:
                        assert resp.status == int(status)
                # a fault on one prefix leaves other paths alone
                f.rest("/v5/order", "10006")
                assert (await rest.get(*wallet))["retCode"] == 0
                assert (await rest.get("/v5/order/realtime", {"category": "linear", "symbol": SYM}))["retCode"] == 10006
                # delay, then a normal answer
                f.rest("/v5/market/time", "delay", seconds=0.3)
                t0 = time.monotonic()
                async with s.get(f"{sim.rest_url}/v5/market/time") as resp:
                    assert (await resp.json())["retCode"] == 0
                assert time.monotonic() - t0 >= 0.3
                # timeout: never answered
                f.rest("/v5/market/time", "timeout", seconds=30)
                with pytest.raises((asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
                    async with s.get(f"{sim.rest_url}/v5/market/time", timeout=aiohttp.ClientTimeout(total=0.5)):
                        pass
                st = await _stats(s, sim)
                for k in ("rest.10006", "rest.10002", "rest.10004", "rest.403", "rest.502", "rest.503",
                          "rest.delay", "rest.timeout"):
                    assert st["faults"][k] >= 1, k
        finally:
            await sim.stop()

    asyncio.run(main())


def test_lost_ack_creates_the_order(bybit: Any) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=2, seed=4)
        sim.pause_market()
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                rest = bybit.Rest(s, sim.rest_url)
                pv = bybit.Private(await s.ws_connect(sim.ws_private_url))
                assert (await pv.auth())["success"]
                await pv.subscribe(["order"])
                async with s.post(f"{sim.rest_url}/sim/faults",
                                  json={"kind": "lose_ack", "path": "/v5/order/create"}) as r:
                    assert r.status == 200
                (bid, _), *_ = sim.book(SYM, 1)[0]
                body = {"category": "linear", "symbol": SYM, "side": "Buy", "orderType": "Limit", "qty": "0.010",
                        "price": bid, "orderLinkId": "lost-ack-1"}
                with pytest.raises(aiohttp.ClientError):
                    await rest.post("/v5/order/create", body)
                # the order exists: pushed on the private stream and visible over REST
                m = await pv.next("order", lambda m: m["data"][0]["orderLinkId"] == "lost-ack-1")
                assert m["data"][0]["orderStatus"] == "New"
                rt = await rest.get("/v5/order/realtime", {"category": "linear", "orderLinkId": "lost-ack-1"})
                assert rt["result"]["list"][0]["orderStatus"] == "New"
                # resending with the same orderLinkId proves it landed
                again = await rest.post("/v5/order/create", body)
                assert again["retCode"] == 110072
                assert sim.stats_dict()["faults"]["rest.lose_ack"] == 1
                await pv.close()
        finally:
            await sim.stop()

    asyncio.run(main())
