"""PrivateStream against a small loopback WebSocket peer that misbehaves on purpose: garbage
frames and failing callbacks go to the dead-letter sink, pongs are detected, a refused auth is
retried with backoff, a closed socket is re-authenticated and resubscribed.

The peer is a real aiohttp server on 127.0.0.1:0; the stream under test is the real one. The
behaviour against the full local exchange is in test_private_against_sim.py."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType, web

from pysrc.exchange.bybit.private import PrivateStream
from pysrc.exchange.bybit.signing import ws_auth_signature
from pysrc.exchange.deadletter import DeadLetterSink, MemoryDeadLetters

KEY, SECRET = "k", "s"


class Peer:
    """Accepts auth (verifying the signature and that expires is in the future), records every
    request, answers pings with the private pong shape, and runs a per-connection script."""

    def __init__(self, script: Callable[[web.WebSocketResponse, int], Awaitable[None]], accept_auth: bool = True):
        self.script = script
        self.accept_auth = accept_auth
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        n = self.connections
        script_task: asyncio.Task[None] | None = None
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            req = orjson.loads(msg.data)
            self.requests.append(req)
            op = req.get("op")
            if op == "auth":
                key, expires, sign = req["args"]
                now = time.time() * 1000
                ok = self.accept_auth and key == KEY and sign == ws_auth_signature(SECRET, expires) and expires > now
                await ws.send_str(orjson.dumps({"success": ok, "ret_msg": "" if ok else "Params Error",
                                                "op": "auth", "conn_id": f"c{n}"}).decode())
            elif op == "subscribe":
                await ws.send_str(orjson.dumps({"success": True, "ret_msg": "", "op": "subscribe",
                                                "conn_id": f"c{n}", "req_id": req.get("req_id")}).decode())
                script_task = asyncio.create_task(self.script(ws, n))
            elif op == "ping":
                await ws.send_str(orjson.dumps({"req_id": req.get("req_id"), "op": "pong",
                                                "args": ["1"], "conn_id": f"c{n}"}).decode())
        if script_task is not None:
            script_task.cancel()
        return ws

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v5/private", self.handler)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/v5/private"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


class Sink:
    def __init__(self) -> None:
        self.items: list[tuple[str, bytes | str, str]] = []

    def put(self, source: str, raw: bytes | str, error: str) -> None:
        self.items.append((source, raw, error))


async def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def order_msg(i: int) -> str:
    return orjson.dumps({"id": f"m{i}", "topic": "order", "creationTime": 1,
                         "data": [{"orderId": str(i), "orderStatus": "New"}]}).decode()


def test_dead_letters_callback_errors_pongs_and_reauth() -> None:
    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_str("{not json")
        await ws.send_str("[1, 2]")
        await ws.send_str(orjson.dumps({"op": "weird"}).decode())
        await ws.send_str(order_msg(1))
        await ws.send_str(order_msg(666))  # the callback raises on this one
        await ws.send_str(order_msg(2))
        if n == 1:
            await asyncio.sleep(0.3)
            await ws.close()  # server drops the first connection

    async def main() -> None:
        peer = Peer(script)
        await peer.start()
        got: list[dict[str, Any]] = []
        sink = Sink()

        async def on_message(msg: dict[str, Any]) -> None:
            if msg["data"][0]["orderId"] == "666":
                raise RuntimeError("handler bug")
            got.append(msg)

        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        stream = PrivateStream(peer.url, KEY, SECRET, on_message=on_message, queue=queue, dead_letters=sink,
                               ping_interval=0.05, backoff_base=0.05, rng=random.Random(3))
        async with stream:
            assert await stream.wait_live(10)
            await wait_for(lambda: len(got) >= 4 and stream.auth_ok >= 2 and stream.pongs >= 1)
        assert stream.state.value == "closed"
        await peer.stop()

        assert [m["data"][0]["orderId"] for m in got[:2]] == ["1", "2"]
        assert queue.qsize() >= 6  # every data message also went to the queue (incl. the failing one)
        errors = [e for _, _, e in sink.items]
        assert any(e.startswith("unparsable") for e in errors)
        assert any("not a JSON object" in e for e in errors)
        assert any("unexpected frame" in e for e in errors)
        assert any("callback failed: RuntimeError" in e for e in errors)
        assert all(src == "bybit.private" for src, _, _ in sink.items)
        assert stream.callback_errors >= 2 and stream.reconnects >= 1 and stream.connects >= 2
        # every connection authenticated first, then subscribed to all four topics
        ops = [r["op"] for r in peer.requests if r["op"] != "ping"]
        assert ops[:4] == ["auth", "subscribe", "auth", "subscribe"]
        subs = [r["args"] for r in peer.requests if r["op"] == "subscribe"]
        assert all(a == ["order", "execution", "position", "wallet"] for a in subs)

    asyncio.run(main())


def test_refused_auth_is_retried_and_never_goes_live() -> None:
    async def script(ws: web.WebSocketResponse, n: int) -> None:
        return None

    async def main() -> None:
        peer = Peer(script, accept_auth=False)
        await peer.start()
        stream = PrivateStream(peer.url, KEY, SECRET, backoff_base=0.02, backoff_cap=0.05)
        await stream.start()
        await wait_for(lambda: stream.auth_failures >= 3)
        assert not stream.live and not await stream.wait_live(0.05)
        assert "auth refused" in (stream.last_error or "")
        await stream.close()
        await peer.stop()

    asyncio.run(main())


def test_dead_socket_is_detected_and_replaced() -> None:
    """A peer that answers nothing after subscribing (no pongs): the stream gives up on the
    socket after ``dead_timeout`` and reconnects."""

    class SilentPeer(Peer):
        async def handler(self, request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            self.connections += 1
            async for msg in ws:
                req = orjson.loads(msg.data)
                if req.get("op") == "auth":
                    await ws.send_str(orjson.dumps({"success": True, "ret_msg": "", "op": "auth"}).decode())
                # pings and subscribes are swallowed: a half-dead server
            return ws

    async def noop(ws: web.WebSocketResponse, n: int) -> None:
        return None

    async def main() -> None:
        peer = SilentPeer(noop)
        await peer.start()
        stream = PrivateStream(peer.url, KEY, SECRET, ping_interval=0.05, dead_timeout=0.3, backoff_base=0.01)
        async with stream:
            await wait_for(lambda: stream.dead_sockets >= 2 and peer.connections >= 3)
        await peer.stop()
        assert "nothing received" in (stream.last_error or "")

    asyncio.run(main())


def test_the_memory_dead_letter_sink_fits_the_interface() -> None:
    sink = MemoryDeadLetters(capacity=10)
    assert isinstance(sink, DeadLetterSink)

    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_str("garbage")

    async def main() -> None:
        peer = Peer(script)
        await peer.start()
        async with PrivateStream(peer.url, KEY, SECRET, dead_letters=sink) as stream:
            await wait_for(lambda: len(sink) == 1)
            assert stream.dead_lettered == 1
        await peer.stop()
        (entry,) = sink.entries()
        assert entry.source == "bybit.private" and entry.raw == "garbage" and "unparsable" in entry.error

    asyncio.run(main())
