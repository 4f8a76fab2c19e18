"""Signing, the recv_window check, private WebSocket auth, and the enforced rate limits."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from pysrc.sim import SimExchange


def test_rest_signature_and_timestamp_checks(bybit: Any) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=2, seed=1)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                rest = bybit.Rest(s, sim.rest_url)
                ok = await rest.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"})
                assert ok["retCode"] == 0
                assert ok["result"]["list"][0]["coin"][0]["walletBalance"] == "100000"
                # the rate-limit headers of a signed endpoint
                assert rest.last_headers["X-Bapi-Limit"] == "50"
                assert int(rest.last_headers["X-Bapi-Limit-Status"]) == 49
                assert abs(int(rest.last_headers["X-Bapi-Limit-Reset-Timestamp"]) - time.time() * 1000) < 60_000

                # POST: the exact body bytes are signed (pybit's json.dumps spacing included)
                body = {"category": "linear", "symbol": "BTCUSDT", "buyLeverage": "5", "sellLeverage": "5"}
                assert (await rest.post("/v5/position/set-leverage", body))["retCode"] == 0

                # bad secret -> 10004, with Bybit's origin_string in the message
                bad = await rest.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"}, secret="wrong")
                assert bad["retCode"] == 10004 and bad["retMsg"].startswith("error sign!")
                # a body that differs from the signed text -> 10004
                text = json.dumps({"category": "linear", "symbol": "BTCUSDT"})
                hdrs = rest.headers(text)
                async with s.post(f"{sim.rest_url}/v5/order/cancel-all", data=text.replace(" ", "").encode(),
                                  headers=hdrs) as r:
                    assert (await r.json())["retCode"] == 10004
                # timestamps: older than recv_window, or more than 1 s ahead -> 10002
                now = int(time.time() * 1000)
                old = await rest.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"}, ts=now - 6000)
                assert old["retCode"] == 10002 and "recv_window" in old["retMsg"]
                ahead = await rest.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"}, ts=now + 1500)
                assert ahead["retCode"] == 10002
                # unknown key -> 10003; missing headers -> 10003
                other = bybit.Rest(s, sim.rest_url, key="other-key")
                assert (await other.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"}))["retCode"] == 10003
                nohdr = await rest.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"}, signed=False)
                assert nohdr["retCode"] == 10003
                # a custom SimExchange key/secret is what the server checks
        finally:
            await sim.stop()

    asyncio.run(main())


def test_private_ws_auth(bybit: Any) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=1, seed=1, api_key="k2", api_secret="s2")
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                pv = bybit.Private(await s.ws_connect(sim.ws_private_url))
                # subscribing before auth fails
                r = await pv.subscribe(["order"])
                assert r["success"] is False and r["op"] == "subscribe"
                # expired
                r = await pv.auth(key="k2", secret="s2", expires=int(time.time() * 1000) - 1)
                assert r["success"] is False and r["op"] == "auth"
                # wrong signature
                r = await pv.auth(key="k2", secret="nope")
                assert r["success"] is False
                # right
                r = await pv.auth(key="k2", secret="s2")
                assert r == {"success": True, "ret_msg": "", "op": "auth", "conn_id": r["conn_id"]}
                r = await pv.subscribe(["order", "execution", "position", "wallet"])
                assert r["success"] is True and r["req_id"] == "s1"
                # private pong shape: op "pong", args [ms]
                await pv.ws.send_str(json.dumps({"op": "ping", "req_id": "p1"}))
                pong = await asyncio.wait_for(pv.replies.get(), 10)
                assert pong["op"] == "pong" and pong["req_id"] == "p1" and pong["args"][0].isdigit()
                await pv.close()
        finally:
            await sim.stop()

    asyncio.run(main())


def test_uid_rate_limit_answers_10006_with_headers(bybit: Any) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=2, seed=1)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                rest = bybit.Rest(s, sim.rest_url)
                codes: list[int] = []
                statuses: list[str] = []
                for _ in range(12):  # /v5/order/cancel-all allows 10 per rolling second
                    r = await rest.post("/v5/order/cancel-all", {"category": "linear", "symbol": "BTCUSDT"})
                    codes.append(r["retCode"])
                    statuses.append(rest.last_headers["X-Bapi-Limit-Status"])
                    if r["retCode"] == 10006:
                        assert r["retMsg"] == "Too many visits!"
                        assert rest.last_headers["X-Bapi-Limit"] == "10"
                        reset = int(rest.last_headers["X-Bapi-Limit-Reset-Timestamp"])
                        assert reset > time.time() * 1000 - 50
                        break
                assert codes[:10] == [0] * 10 and codes[10] == 10006
                assert statuses[:10] == [str(9 - i) for i in range(10)]
                # another endpoint has its own bucket
                assert (await rest.get("/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"}))["retCode"] == 0
                # the window rolls: after a second the endpoint answers again
                await asyncio.sleep(1.1)
                r = await rest.post("/v5/order/cancel-all", {"category": "linear", "symbol": "BTCUSDT"})
                assert r["retCode"] == 0
                stats = sim.stats_dict()
                assert stats["rate_limits"]["rejected_uid"] >= 1
        finally:
            await sim.stop()

    asyncio.run(main())


def test_ip_limit_600_per_5s_bans_with_http_403(bybit: Any) -> None:
    async def main() -> None:
        sim = SimExchange(symbols=1, seed=1, ip_ban_seconds=1.0)
        await sim.start()
        try:
            conn = aiohttp.TCPConnector(limit=50)
            async with aiohttp.ClientSession(connector=conn) as s:
                url = f"{sim.rest_url}/v5/market/time"

                async def one() -> int:
                    async with s.get(url) as r:
                        await r.read()
                        return r.status

                statuses = await asyncio.gather(*(one() for _ in range(600)))
                assert statuses.count(200) == 600
                async with s.get(url) as r:
                    assert r.status == 403
                    assert "access too frequent" in await r.text()
                # banned: even a signed private call gets 403
                rest = bybit.Rest(s, sim.rest_url)
                r2 = await rest.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"})
                assert r2["_http"] == 403
                await asyncio.sleep(1.2)  # the (shortened) ban lifts by itself
                async with s.get(url) as r:
                    assert r.status == 200
            assert sim.stats_dict()["rate_limits"]["bans"] == 1
        finally:
            await sim.stop()

    asyncio.run(main())
