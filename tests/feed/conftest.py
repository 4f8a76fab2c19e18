"""Shared helpers of the feed tests.

Tests run with ``--import-mode=importlib`` and cannot import each other, so shared code is handed
out as fixtures. ``scripted_server`` is a small real WebSocket server on loopback that speaks the
control side of Bybit's public protocol (subscribe/unsubscribe acks with the echoed ``req_id``,
the linear pong) and sends exactly the market frames a test pushes, so connection behaviour can be
tested frame by frame. The market itself comes from the local exchange (``pysrc.sim``) in the
integration tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

import orjson
import pytest
from aiohttp import WSMsgType, web

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T], timeout: float = 25.0) -> T:
    """Run a test coroutine with an overall bound, so a hang fails instead of blocking."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@pytest.fixture
def arun() -> Callable[..., Any]:
    return run_async


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.01)


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    return wait_for


@dataclass
class ServerConn:
    ws: web.WebSocketResponse
    received: list[dict[str, Any]] = field(default_factory=list)
    topics: set[str] = field(default_factory=set)


class ScriptedServer:
    """Bybit-like public endpoint whose market frames are pushed by the test."""

    def __init__(self) -> None:
        self.conns: list[ServerConn] = []
        self.all_requests: list[dict[str, Any]] = []
        self.fail_topics: dict[str, int] = {}
        """topic -> how many more subscribe requests containing it fail."""
        self.answer_pings = True
        self.echo_req_id = True
        self.ack = True
        self.on_subscribe: Callable[[ServerConn, str], Awaitable[None]] | None = None
        self.connections_accepted = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v5/public/linear", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"ws://127.0.0.1:{port}/v5/public/linear"

    async def stop(self) -> None:
        for conn in list(self.conns):
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def live(self) -> list[ServerConn]:
        return [c for c in self.conns if not c.ws.closed]

    def conn_with(self, topic: str) -> ServerConn:
        for conn in self.live:
            if topic in conn.topics:
                return conn
        raise LookupError(topic)

    async def push(self, topic: str, frame: bytes | str | dict[str, Any]) -> None:
        """Send ``frame`` on the live connection subscribed to ``topic``."""
        conn = self.conn_with(topic)
        if isinstance(frame, dict):
            frame = orjson.dumps(frame)
        await conn.ws.send_str(frame.decode() if isinstance(frame, bytes) else frame)

    async def drop_all(self) -> None:
        for conn in self.live:
            await conn.ws.close()

    def requests(self, op: str) -> list[dict[str, Any]]:
        return [r for r in self.all_requests if r.get("op") == op]

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = ServerConn(ws)
        self.conns.append(conn)
        self.connections_accepted += 1
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            req = orjson.loads(msg.data)
            conn.received.append(req)
            self.all_requests.append(req)
            op = req.get("op")
            req_id = req.get("req_id", "") if self.echo_req_id else ""
            if op == "ping":
                if self.answer_pings:
                    await ws.send_str(orjson.dumps({
                        "success": True, "ret_msg": "pong", "conn_id": "c", "req_id": req_id, "op": "ping",
                    }).decode())
            elif op in ("subscribe", "unsubscribe"):
                args = req["args"]
                failing = [t for t in args if self.fail_topics.get(t, 0) > 0]
                ok = not failing
                for t in failing:
                    self.fail_topics[t] -= 1
                if op == "subscribe" and ok:
                    conn.topics.update(args)
                elif op == "unsubscribe":
                    conn.topics.difference_update(args)
                if self.ack:
                    await ws.send_str(orjson.dumps({
                        "success": ok, "ret_msg": "" if ok else f"error:handler not found,topic:{failing[0]}",
                        "conn_id": "c", "req_id": req_id, "op": op,
                    }).decode())
                if op == "subscribe" and ok and self.on_subscribe is not None:
                    for t in args:
                        await self.on_subscribe(conn, t)
        return ws


@pytest.fixture
def scripted_server() -> Callable[[], ScriptedServer]:
    """Factory: ``server = scripted_server(); await server.start()`` inside the test's loop."""
    return ScriptedServer


def book_frame(symbol: str, kind: str, u: int, bids: list[list[str]], asks: list[list[str]], *,
               depth: int = 50, ts: int = 1_700_000_000_000) -> bytes:
    return orjson.dumps({
        "topic": f"orderbook.{depth}.{symbol}", "type": kind, "ts": ts,
        "data": {"s": symbol, "b": bids, "a": asks, "u": u, "seq": u * 10}, "cts": ts - 1,
    })


@pytest.fixture
def book_msg() -> Callable[..., bytes]:
    return book_frame


# ---- the local exchange ---------------------------------------------------------------------


class SimRig:
    """A running local exchange (``pysrc.sim``) and a ``PublicFeed`` reading it, for one test.

    ``async with SimRig(symbols=6, seed=1, pairs_per_connection=2) as rig:``; ``rig.sim``,
    ``rig.engine``, ``rig.feed``. :meth:`assert_books_equal` freezes the market and compares
    every book with the exchange's, exactly.
    """

    FAST: ClassVar[dict[str, Any]] = {
        "ping_interval": 0.5,
        "pong_timeout": 1.5,
        "tick": 0.05,
        "resync_min_interval": 0.05,
        "resync_max_interval": 0.5,
        "snapshot_timeout": 5.0,
    }

    def __init__(self, symbols: int = 6, seed: int = 1, depth: int = 50, **feed_kwargs: Any) -> None:
        self.n = symbols
        self.seed = seed
        self.depth = depth
        self.feed_kwargs = {**self.FAST, **feed_kwargs}
        self.feed_kwargs.setdefault("backoff", lambda: _fast_backoff())

    async def __aenter__(self) -> Self:
        import aiohttp

        from pysrc.book import BookEngine
        from pysrc.feed import MemoryDeadLetters, PublicFeed
        from pysrc.sim import SimExchange

        self.sim = SimExchange(symbols=self.n, seed=self.seed)
        await self.sim.start(host="127.0.0.1", port=0)
        self.symbols: list[str] = list(self.sim.symbols)
        self.engine = BookEngine("bybit", features=True)
        self.dead = MemoryDeadLetters()
        self.http = aiohttp.ClientSession()
        self.feed = PublicFeed(
            self.sim.ws_public_url, self.engine, symbols=self.symbols, depth=self.depth,
            dead_letters=self.dead, **self.feed_kwargs,
        )
        await self.feed.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.feed.close()
        await self.http.close()
        await self.sim.stop()

    async def published_u(self, symbol: str) -> int | None:
        """``u`` of the exchange's last push of ``orderbook.{depth}.{symbol}`` (admin endpoint)."""
        async with self.http.get(
            f"{self.sim.rest_url}/sim/book", params={"symbol": symbol, "depth": str(self.depth)}
        ) as resp:
            body = await resp.json()
        u = body["u"].get(str(self.depth))
        return None if u is None else int(u)

    async def wait_applied(self, deltas: int = 20, timeout: float = 15.0) -> None:
        """Wait until every book is usable and has applied ``deltas`` more messages."""
        def applied() -> dict[str, int]:
            return {s: m["applied"] for s, m in self.feed.metrics()["symbols"].items()}

        start = applied()
        await wait_for(
            lambda: all(self.feed.is_usable(s) for s in self.symbols)
            and all(n >= start[s] + deltas for s, n in applied().items()),
            timeout,
            f"{deltas} applied book messages on every symbol",
        )

    async def assert_books_equal(self, timeout: float = 15.0) -> None:
        """Freeze the market, wait for the last push to be applied, and compare every book with
        ``sim.book(symbol, depth)`` as exact strings. Resumes the market afterwards."""
        self.sim.pause_market()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pending = set(self.symbols)
        last_u: dict[str, int | None] = {}
        while pending:
            assert loop.time() < deadline, f"books never caught up with the exchange: {sorted(pending)}"
            for s in list(pending):
                u = await self.published_u(s)
                # quiescent: the exchange pushed nothing new since the previous poll, and the
                # feed holds a live book at exactly that update
                if u is not None and last_u.get(s) == u and self.feed.is_usable(s) and self.engine.update_id(s) == u:
                    pending.discard(s)
                last_u[s] = u
            await asyncio.sleep(0.1)
        for s in self.symbols:
            bids, asks = self.sim.book(s, self.depth)
            assert self.engine.levels(s, self.depth) == (bids, asks), f"{s} differs from the exchange"
            assert len(bids) == self.depth and len(asks) == self.depth  # a full window compared
        self.sim.resume_market()


def _fast_backoff() -> Any:
    from pysrc.feed import Backoff

    return Backoff(base=0.05, cap=0.5)


@pytest.fixture
def sim_rig() -> type[SimRig]:
    """The class :class:`SimRig` (instantiate it inside the test's event loop)."""
    return SimRig
