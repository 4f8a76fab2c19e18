"""The local Bybit v5 exchange: one aiohttp server on loopback serving REST, the public linear
stream and the private stream, with the market model and the account behind them.

Request path for ``/v5/...`` (in this order, as a gateway in front of Bybit would):
IP limit (403 + ban) -> injected REST faults -> signature check (private endpoints) ->
per-UID endpoint limit (10006) -> the handler. Handlers raise :class:`BybitError` for business
errors; the envelope and the ``X-Bapi-Limit*`` headers are added here.

One clock task drives everything periodic: every 10 ms it advances the market model by one step
and sends the trades printed; ``orderbook.1`` is pushed every tick, ``orderbook.50`` every 2nd,
``orderbook.200`` and ``tickers`` every 10th, ``orderbook.1000`` every 20th, klines every 100th.

The symbols are spread over ``phases`` equal slices of the 10 ms tick (symbol ``i`` in slice
``i % phases``): each symbol keeps Bybit's cadence, but the 100 symbols of a soak are not all
produced in the same millisecond. Bybit's per-symbol streams are independent, so a lockstep burst
of every symbol at once is an artefact of a single-clock simulator, and it would charge a client
the time to parse the whole burst as latency on its last frames. ``phases=1`` restores lockstep.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

import orjson
from aiohttp import web

from pysrc.sim import rest_market, rest_trade
from pysrc.sim.account import Account
from pysrc.sim.envelope import BybitError, envelope, error_response, json_response
from pysrc.sim.faults import Faults, RestFault
from pysrc.sim.instruments import instrument_for_recording, make_instruments
from pysrc.sim.market import STEP_MS, SymbolMarket
from pysrc.sim.private_ws import private_ws
from pysrc.sim.public_ws import public_ws
from pysrc.sim.publisher import Publisher
from pysrc.sim.ratelimit import RateLimits
from pysrc.sim.replay import read_bybit_book_stream

log = logging.getLogger("pysrc.sim")

SIM_UID = 100001
DEFAULT_RECV_WINDOW = 5000


class SimExchange:
    """A running local exchange (see ``docs/sim-exchange.md``).

    ``symbols`` instruments (real names first, then synthetic), a seeded market per symbol, one
    simulated unified account identified by ``api_key``/``api_secret`` with ``balance`` USDT.
    ``ip_ban_seconds`` is how long an IP that broke 600 requests / 5 s gets HTTP 403.
    ``replay`` names a recorded Bybit book stream (JSON lines): its symbols' books follow the
    recording (``replay_speed`` times real time), then the model takes over unless
    ``replay_hold``."""

    def __init__(
        self,
        symbols: int = 10,
        seed: int = 1,
        api_key: str = "sim-key",
        api_secret: str = "sim-secret",
        balance: str | Decimal = "100000",
        ip_ban_seconds: float = 60.0,
        ip_limit: int = 600,
        uid_limits: dict[str, int] | None = None,
        market_running: bool = True,
        replay: str | Path | None = None,
        replay_speed: float = 1.0,
        replay_hold: bool = False,
        phases: int = 5,
    ) -> None:
        if not 1 <= phases <= STEP_MS:
            raise ValueError(f"phases must be between 1 and {STEP_MS}, got {phases}")
        self.seed = seed
        self.phases = phases
        self.api_key = api_key
        self.api_secret = api_secret
        self.launch_ms = 1_600_000_000_000
        now_ms = int(time.time() * 1000)
        self.instruments = make_instruments(symbols)
        recorded = read_bybit_book_stream(replay) if replay is not None else {}
        for sym, msgs in recorded.items():
            _, _, bids, asks = msgs[0]
            names = [i.symbol for i in self.instruments]
            if sym in names:
                k = names.index(sym)
                self.instruments[k] = instrument_for_recording(sym, bids, asks, self.instruments[k])
            else:
                self.instruments.append(instrument_for_recording(sym, bids, asks, None))
        self.markets: dict[str, SymbolMarket] = {
            inst.symbol: SymbolMarket(inst, seed, i, now_ms) for i, inst in enumerate(self.instruments)
        }
        for i, m in enumerate(self.markets.values()):
            m.phase = i % phases
        self._groups = [[m for m in self.markets.values() if m.phase == j] for j in range(phases)]
        for sym, msgs in recorded.items():
            self.markets[sym].load_replay(msgs, replay_speed, replay_hold)
        self.faults = Faults()
        self.publisher = Publisher(self.markets, self.faults)
        self.limits = RateLimits(ip_limit=ip_limit, ip_ban_seconds=ip_ban_seconds, uid_limits=uid_limits)
        self.account = Account(self, SIM_UID, Decimal(balance))
        self.stats: defaultdict[str, int] = defaultdict(int)
        self.paused = not market_running
        self.steps = 0
        self.host = "127.0.0.1"
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._stopping_event: asyncio.Event | None = None  # created in start(), on the loop
        self._held: set[asyncio.Future[None]] = set()
        self.faults._drop_now = self._drop_stream
        self.faults._stall_now = self._stall_stream
        self.faults._depths_of = self.publisher.depths_of

    # ---- contract -------------------------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        return list(self.markets)

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_public_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v5/public/linear"

    @property
    def ws_private_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v5/private"

    def book(self, symbol: str, depth: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The exchange's current top-``depth`` book as exact wire strings, best first."""
        m = self.markets[symbol]
        bids, asks = m.book.top(depth)
        ps, ss = m.inst.price_str, m.inst.size_str
        return [(ps(t), ss(s)) for t, s in bids], [(ps(t), ss(s)) for t, s in asks]

    def pause_market(self) -> None:
        """Freeze the order-flow model (the account's own orders still trade)."""
        self.paused = True

    def resume_market(self) -> None:
        self.paused = False

    def step_market(self, steps: int = 1) -> None:
        """Advance every symbol's model by ``steps`` steps now (tests; works while paused)."""
        now = int(time.time() * 1000)
        for _ in range(steps):
            for m in self.markets.values():
                m.step(now)
            self.steps += 1

    def market_trade(self, symbol: str, side: str, qty: str, limit_price: str | None = None) -> str:
        """An anonymous taker order of the market model, now (tests use it to trade through the
        account's resting orders or to move the last price). Returns the quantity filled."""
        m = self.markets[symbol]
        lots = m.inst.parse_qty(qty)
        limit = None if limit_price is None else m.inst.parse_price(limit_price)
        filled = m.sweep(side == "Buy", lots, limit, int(time.time() * 1000), m.on_maker_fill)
        return m.inst.size_str(filled)

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._stopping_event = asyncio.Event()
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 20)
        app.router.add_get("/v5/public/linear", self._public_ws)
        app.router.add_get("/v5/private", self._private_ws)
        for path in rest_market.HANDLERS:
            app.router.add_get(path, self._rest)
        for path, (method, _h) in rest_trade.HANDLERS.items():
            app.router.add_route(method, path, self._rest)
        app.router.add_get("/sim/book", self._admin_book)
        app.router.add_get("/sim/stats", self._admin_stats)
        app.router.add_post("/sim/faults", self._admin_faults)
        app.router.add_post("/sim/market", self._admin_market)
        app.router.add_post("/sim/limits", self._admin_limits)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None)
        if not sockets:  # pragma: no cover - aiohttp always binds a socket here
            raise RuntimeError("the simulator's server did not bind a socket")
        self.host, self.port = host, int(sockets[0].getsockname()[1])
        self._clock_task = asyncio.create_task(self._clock(), name="sim-clock")

    async def stop(self) -> None:
        if self._clock_task is not None:
            self._clock_task.cancel()
            try:
                await self._clock_task
            except asyncio.CancelledError:
                pass
            self._clock_task = None
        if self._stopping_event is not None:
            self._stopping_event.set()
        self.publisher.drop_all()
        self.account.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _public_ws(self, request: web.Request) -> web.StreamResponse:
        return await public_ws(self, request)

    async def _private_ws(self, request: web.Request) -> web.StreamResponse:
        return await private_ws(self, request)

    # ---- the clock ---------------------------------------------------------------------------------
    async def _clock(self) -> None:
        loop = asyncio.get_running_loop()
        phases = self.phases
        period = STEP_MS / 1000.0 / phases  # one slice of the tick
        t0 = loop.time()
        k = phases - 1  # slice counter; the first slice run is phase 0 of tick 1
        pub = self.publisher
        while True:
            k += 1
            delay = t0 + (k - phases + 1) * period - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.25:
                t0 = loop.time() - (k - phases + 1) * period  # fell far behind: do not burst
            tick, phase = divmod(k, phases)
            now = int(time.time() * 1000)
            try:
                if not self.paused:
                    for m in self._groups[phase]:
                        m.step(now)
                    if phase == phases - 1:
                        self.steps += 1
                pub.push_trades(now, phase)
                pub.push_books(1, now, phase)
                if tick % 2 == 0:
                    pub.push_books(50, now, phase)
                if tick % 10 == 0:
                    pub.push_books(200, now, phase)
                    pub.push_tickers(now, phase)
                if tick % 20 == 0:
                    pub.push_books(1000, now, phase)
                if tick % 100 == 0 and phase == 0:
                    pub.push_klines(now)
                    self.account.housekeeping(now)
            except Exception:  # pragma: no cover - a bug must not stop the whole exchange
                log.exception("sim clock tick failed")
                self.stats["clock_errors"] += 1

    def _drop_stream(self, stream: str) -> int:
        return self.publisher.drop_all() if stream == "public" else self.account.drop_all()

    def _stall_stream(self, stream: str, seconds: float) -> int:
        if stream == "public":
            return self.publisher.stall_all(seconds)
        return self.account.stall_all(seconds)

    # ---- REST --------------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/v5/") or path in ("/v5/public/linear", "/v5/private"):
            return await handler(request)
        self.stats["rest_requests"] += 1
        ip = request.remote or "?"
        if not self.limits.check_ip(ip):
            self.stats["rest_403"] += 1
            return _ip_ban_response()
        fault = self.faults.take_rest(path) if self.faults.rest_pending else None
        if fault is not None:
            early = await self._apply_rest_fault(request, fault)
            if early is not None:
                return early
        resp = await handler(request)
        if fault is not None and fault.kind == "lose_ack":
            # the request was executed; the acknowledgement is lost with the connection
            _cut(request)
            raise asyncio.CancelledError()
        return resp

    async def _apply_rest_fault(self, request: web.Request, fault: RestFault) -> web.StreamResponse | None:
        kind = fault.kind
        if kind == "delay":
            await asyncio.sleep(fault.seconds)
            return None
        if kind == "timeout":
            assert self._stopping_event is not None
            try:
                await asyncio.wait_for(self._stopping_event.wait(), fault.seconds)
            except TimeoutError:
                pass
            _cut(request)
            raise asyncio.CancelledError()
        if kind == "10006":
            now_ms = int(time.time() * 1000)
            return error_response(10006, "Too many visits!", {
                "X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "0",
                "X-Bapi-Limit-Reset-Timestamp": str(now_ms + 1000)})
        if kind == "10002":
            return error_response(10002, _ts_msg(0, int(time.time() * 1000), DEFAULT_RECV_WINDOW))
        if kind == "10004":
            return error_response(10004, "error sign! origin_string[]")
        if kind == "403":
            return _ip_ban_response()
        if kind in ("502", "503"):
            text = "502 Bad Gateway" if kind == "502" else "503 Service Temporarily Unavailable"
            return web.Response(status=int(kind), text=f"<html><body><h1>{text}</h1></body></html>",
                                content_type="text/html")
        return None  # lose_ack: handled after the handler ran

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        market_handler = rest_market.HANDLERS.get(path)
        if market_handler is not None:
            try:
                result = market_handler(self, request.query)
            except BybitError as e:
                return error_response(e.code, e.msg)
            return json_response(envelope(result))
        _method, handler = rest_trade.HANDLERS[path]
        body = await request.read()
        # -- authentication
        headers = request.headers
        key = headers.get("X-BAPI-API-KEY")
        if not key or key != self.api_key:
            return error_response(10003, "API key is invalid.")
        ts_raw = headers.get("X-BAPI-TIMESTAMP", "")
        rw_raw = headers.get("X-BAPI-RECV-WINDOW", str(DEFAULT_RECV_WINDOW))
        now_ms = int(time.time() * 1000)
        try:
            ts = int(ts_raw)
            rw = int(rw_raw)
        except ValueError:
            return error_response(10002, _ts_msg(0, now_ms, DEFAULT_RECV_WINDOW))
        if not (now_ms - rw <= ts < now_ms + 1000):
            return error_response(10002, _ts_msg(ts, now_ms, rw))
        payload = request.rel_url.raw_query_string if request.method == "GET" else body.decode("utf-8", "replace")
        plain = f"{ts_raw}{key}{rw_raw}{payload}"
        expected = hmac.new(self.api_secret.encode(), plain.encode(), hashlib.sha256).hexdigest()
        sign = headers.get("X-BAPI-SIGN", "")
        if not hmac.compare_digest(expected, sign.lower()):
            return error_response(10004, f"error sign! origin_string[{plain}]")
        # -- per-UID endpoint limit
        status = self.limits.check_uid(self.account.uid, path)
        hdrs = status.headers() if status is not None else None
        if status is not None and not status.allowed:
            self.stats["rest_10006"] += 1
            return error_response(10006, "Too many visits!", hdrs)
        # -- the request itself
        if request.method == "GET":
            params: dict[str, Any] = dict(request.query)
        else:
            try:
                params = orjson.loads(body) if body else {}
            except orjson.JSONDecodeError:
                return error_response(10001, "params error: body is not valid JSON", hdrs)
            if not isinstance(params, dict):
                return error_response(10001, "params error: body must be a JSON object", hdrs)
        try:
            result = handler(self.account, params)
        except BybitError as e:
            return error_response(e.code, e.msg, hdrs)
        return json_response(envelope(result), hdrs)

    # ---- admin (not Bybit) --------------------------------------------------------------------------
    async def _admin_book(self, request: web.Request) -> web.Response:
        sym = request.query.get("symbol", "")
        if sym not in self.markets:
            return json_response({"error": f"unknown symbol {sym!r}"}, status=404)
        depth = int(request.query.get("depth", "50"))
        b, a = self.book(sym, depth)
        m = self.markets[sym]
        return json_response({"symbol": sym, "depth": depth, "b": b, "a": a, "seq": m.seq,
                              "u": {str(d): self.publisher.books[(sym, d)].u
                                    for d in self.publisher.depths_of(sym)}})

    def stats_dict(self) -> dict[str, Any]:
        pub = self.publisher
        return {
            "symbols": len(self.markets),
            "market": {"paused": self.paused, "steps": self.steps},
            "public": {
                "connections": len(pub.conns), "messages": pub.messages, "frames": pub.frames,
                "bytes": pub.bytes, "book_topics": len(pub.books),
            },
            "private": self.account.stats(),
            "rest": dict(self.stats),
            "rate_limits": {"rejected_uid": self.limits.rejected_uid, "rejected_ip": self.limits.rejected_ip,
                            "bans": self.limits.bans},
            "faults": dict(self.faults.counts),
            "faults_pending": self.faults.pending(),
        }

    async def _admin_stats(self, request: web.Request) -> web.Response:
        return json_response(self.stats_dict())

    async def _admin_faults(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            if not isinstance(spec, dict):
                raise TypeError("body must be a JSON object")
            self.faults.apply(spec)
        except (ValueError, KeyError, TypeError) as e:
            return json_response({"ok": False, "error": str(e)}, status=400)
        return json_response({"ok": True, "pending": self.faults.pending()})

    async def _admin_market(self, request: web.Request) -> web.Response:
        spec = await request.json()
        if isinstance(spec, dict) and "paused" in spec:
            if spec["paused"]:
                self.pause_market()
            else:
                self.resume_market()
        if isinstance(spec, dict) and "steps" in spec:
            self.step_market(int(spec["steps"]))
        return json_response({"ok": True, "paused": self.paused, "steps": self.steps})

    async def _admin_limits(self, request: web.Request) -> web.Response:
        spec = await request.json()
        if isinstance(spec, dict):
            if spec.get("unban"):
                self.limits.unban_all()
            if "ip_ban_seconds" in spec:
                self.limits.ip_ban_seconds = float(spec["ip_ban_seconds"])
        return json_response({"ok": True, "ip_ban_seconds": self.limits.ip_ban_seconds})


def _ts_msg(ts: int, now_ms: int, rw: int) -> str:
    return (f"invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{ts}],server_timestamp[{now_ms}],recv_window[{rw}]")


def _ip_ban_response() -> web.Response:
    return web.Response(status=403, text="access too frequent", content_type="text/plain")


def _cut(request: web.Request) -> None:
    """Close the client's connection without writing a response."""
    t = request.transport
    if t is not None:
        t.abort()
