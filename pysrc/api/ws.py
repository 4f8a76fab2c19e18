"""The WebSocket hub behind ``/ws``: subscriptions, fan-out, commands, slow-client handling.

Protocol (also in ``docs/api.md``)::

    client -> {"type": "subscribe",   "channel": "market_data", "symbols": ["BTCUSDT"]}
    client -> {"type": "unsubscribe", "channel": "market_data", "symbols": ["BTCUSDT"]}
    client -> {"type": "command", "command": "engage_kill_switch", "args": {"reason": "..."}, "id": "c1"}
    server -> {"type": "market_data" | "position_update" | "signal" | "alert",
               "ts": <ms>, "symbol": "BTCUSDT" | null, "data": {...}}
    server -> {"type": "subscribed" | "unsubscribed" | "command_result" | "error", "ts": <ms>, "data": {...}}

Design choices, and why:

* **The hub never waits for a client.** The backend publishes synchronously (one call per event,
  from the hot path); the hub serialises the event once, only if someone wants it, and offers the
  same string to every interested connection's **bounded** queue. A connection whose queue is full
  is a client that cannot keep up: it is closed with code 4008 and the reason, instead of
  buffering without limit or slowing everyone else.
* **Each connection has a reader and a sender task**, owned by the hub. The socket's handler waits
  on the connection's ``done`` event, set by whichever ends it first: the client leaving, a
  protocol error, the slow-client rule, the token expiring (4401) or shutdown (1001). The handler
  then cancels both tasks. :meth:`Hub.close` (called from the app's lifespan) ends every
  connection and waits for their handlers, so no task outlives the app.
* **Replies share the event queue**, so a client sees its ``subscribed`` before the first event
  of that subscription and nothing after its ``unsubscribed``.
* Client messages count against the same per-client rate limit as REST requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from pysrc.api.audit import audited
from pysrc.api.auth import AuthError, AuthStore
from pysrc.api.backend import CHANNELS, Backend, BackendError
from pysrc.api.middleware import ApiMetrics, client_key
from pysrc.api.models import SYMBOL_PATTERN
from pysrc.api.ratelimit import TokenBuckets
from pysrc.api.shapes import dumps
from pysrc.obs.log import EVENTS, get_logger, new_trace_id, trace

WS_NORMAL = 1000
WS_GOING_AWAY = 1001
WS_POLICY = 1008
WS_TRY_AGAIN_LATER = 1013
WS_SLOW_CONSUMER = 4008
WS_UNAUTHORIZED = 4401

MAX_CLIENT_MESSAGE = 64 * 1024
MAX_SYMBOLS = 1000

log = get_logger("pysrc.api.ws")

_ALL: None = None  # a subscription to every symbol of a channel
_SYMBOL = re.compile(SYMBOL_PATTERN)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Connection:
    """One authenticated client: its subscriptions, bounded send queue and tasks."""

    def __init__(self, ws: WebSocket, user: str, expires_at: float, queue_size: int, key: str) -> None:
        self.ws = ws
        self.user = user
        self.expires_at = expires_at
        self.key = key
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.subs: dict[str, set[str] | None] = {}
        self.done = asyncio.Event()
        self.finished = asyncio.Event()  # the handler has cleaned up
        self.close_code = WS_NORMAL
        self.close_reason = ""
        self.client_gone = False
        self.tasks: list[asyncio.Task[None]] = []

    def wants(self, channel: str, symbol: str | None) -> bool:
        if channel not in self.subs:
            return False
        symbols = self.subs[channel]
        return symbols is None or symbol is None or symbol in symbols

    def offer(self, text: str) -> bool:
        """Queue a message; a full queue ends the connection (slow consumer)."""
        if self.done.is_set():
            return False
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.finish(WS_SLOW_CONSUMER, f"slow consumer: {self.queue.maxsize} messages waiting")
            return False
        return True

    def reply(self, kind: str, data: Mapping[str, Any]) -> None:
        self.offer(dumps({"type": kind, "ts": now_ms(), "data": data}).decode())

    def error(self, code: str, message: str, *, field: str | None = None, id: Any = None) -> None:
        data: dict[str, Any] = {"code": code, "message": message}
        if field is not None:
            data["field"] = field
        if id is not None:
            data["id"] = id
        self.reply("error", data)

    def finish(self, code: int, reason: str) -> None:
        if not self.done.is_set():
            self.close_code, self.close_reason = code, reason
            self.done.set()


Args = dict[str, Any]
CommandFn = Callable[[Backend, Args, str], Awaitable[Any]]


class _CommandError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _no_args(args: Mapping[str, Any]) -> Args:
    return {}


def _symbol_arg(args: Mapping[str, Any]) -> Args:
    symbol = args.get("symbol")
    if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
        raise _CommandError("symbol", "expected a symbol such as BTCUSDT")
    return {"symbol": symbol}


def _reason_arg(args: Mapping[str, Any]) -> Args:
    reason = args.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500:
        raise _CommandError("reason", "expected a string of at most 500 characters")
    return {"reason": reason}


async def _ping(b: Backend, a: Args, u: str) -> Any:
    return {"pong": True}


async def _status(b: Backend, a: Args, u: str) -> Any:
    return await b.status()


async def _risk(b: Backend, a: Args, u: str) -> Any:
    return await b.risk_status()


async def _start(b: Backend, a: Args, u: str) -> Any:
    return await b.start_trading()


async def _stop(b: Backend, a: Args, u: str) -> Any:
    return await b.stop_trading()


async def _engage(b: Backend, a: Args, u: str) -> Any:
    return await b.engage_kill_switch(u, a["reason"] or f"engaged by {u} over the WebSocket")


async def _release(b: Backend, a: Args, u: str) -> Any:
    return await b.release_kill_switch(u, a["reason"] or f"released by {u} over the WebSocket")


async def _close(b: Backend, a: Args, u: str) -> Any:
    return await b.close_position(a["symbol"])


COMMANDS: dict[str, tuple[str | None, Callable[[Mapping[str, Any]], Args], CommandFn]] = {
    "ping": (None, _no_args, _ping),
    "status": (None, _no_args, _status),
    "risk_status": (None, _no_args, _risk),
    "start_trading": ("bot.start", _no_args, _start),
    "stop_trading": ("bot.stop", _no_args, _stop),
    "engage_kill_switch": ("kill_switch.engage", _reason_arg, _engage),
    "release_kill_switch": ("kill_switch.release", _reason_arg, _release),
    "close_position": ("position.close", _symbol_arg, _close),
}
"""name -> (audit action, None for reads; argument check; the call)."""


class Hub:
    """Connections, fan-out of backend events, and the lifecycle of the connection tasks."""

    def __init__(
        self,
        backend: Backend,
        auth: AuthStore,
        limiter: TokenBuckets,
        metrics: ApiMetrics,
        *,
        queue_size: int = 1000,
        max_connections: int = 100,
    ) -> None:
        if queue_size < 1 or max_connections < 1:
            raise ValueError("queue_size and max_connections must be >= 1")
        self.backend = backend
        self.auth = auth
        self.limiter = limiter
        self.metrics = metrics
        self.queue_size = queue_size
        self.max_connections = max_connections
        self.connections: set[Connection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.closing = False
        self.published = 0

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Bind to the running loop and subscribe to the backend's events (app start-up)."""
        self.loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self.closing = False
        if self._unsubscribe is None:
            self._unsubscribe = self.backend.subscribe_events(self.publish)

    def _bind(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            self._thread = threading.get_ident()

    async def close(self, timeout: float = 5.0) -> None:
        """Unsubscribe, end every connection (1001) and wait for their handlers to finish."""
        self.closing = True
        if self._unsubscribe is not None:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
            unsubscribe()
        conns = list(self.connections)
        for c in conns:
            c.finish(WS_GOING_AWAY, "server shutting down")
        if conns:
            waits = [asyncio.ensure_future(c.finished.wait()) for c in conns]
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for w in pending:
                w.cancel()
            for c in conns:  # handlers that did not finish in time: cancel their tasks here
                for t in c.tasks:
                    t.cancel()

    # ---- fan-out ------------------------------------------------------------------------------

    def publish(self, event: Mapping[str, Any]) -> None:
        """The backend's event callback: cheap, never blocks, never raises."""
        if not self.connections:
            return
        if self._thread is not None and threading.get_ident() != self._thread:
            assert self.loop is not None
            self.loop.call_soon_threadsafe(self.publish, event)
            return
        channel = event.get("type")
        if channel not in CHANNELS:
            log.warning("ws_bad_event", event_type=channel)
            return
        symbol = event.get("symbol")
        targets = [c for c in self.connections if c.wants(channel, symbol)]
        if not targets:
            return
        try:
            text = dumps(
                {"type": channel, "ts": event.get("ts") or now_ms(), "symbol": symbol, "data": event.get("data", {})}
            ).decode()
        except TypeError:
            log.exception("ws_event_not_serialisable", event_type=channel)
            return
        self.published += 1
        for c in targets:
            c.offer(text)

    # ---- one connection -----------------------------------------------------------------------

    async def handle(self, ws: WebSocket) -> None:
        """The ``/ws`` endpoint: authenticate, then run the connection until it ends."""
        self._bind()
        await ws.accept()
        token = ws.query_params.get("token")
        if not token:
            header = ws.headers.get("authorization", "")
            if header.lower().startswith("bearer "):
                token = header[7:].strip()
        try:
            if not token:
                raise AuthError("missing token")
            claims = self.auth.verify(token)
        except AuthError:
            self.metrics.ws_dropped.inc(reason="unauthorized")
            await ws.close(WS_UNAUTHORIZED, "missing, invalid or expired token")
            return
        if self.closing:
            await ws.close(WS_GOING_AWAY, "server shutting down")
            return
        if len(self.connections) >= self.max_connections:
            self.metrics.ws_dropped.inc(reason="too_many_connections")
            await ws.close(WS_TRY_AGAIN_LATER, f"too many connections (max {self.max_connections})")
            return
        conn = Connection(ws, str(claims["sub"]), float(claims["exp"]), self.queue_size, client_key(ws.scope))
        self.connections.add(conn)
        self.metrics.ws_connections.set(len(self.connections))
        log.info(EVENTS.WS_CONNECTED, user=conn.user, client=conn.key, api=True)
        assert self.loop is not None
        expiry = self.loop.call_later(
            max(0.0, conn.expires_at - time.time()), conn.finish, WS_UNAUTHORIZED, "token expired"
        )
        conn.tasks = [
            asyncio.create_task(self._reader(conn), name=f"ws-reader-{conn.user}"),
            asyncio.create_task(self._sender(conn), name=f"ws-sender-{conn.user}"),
        ]
        try:
            await conn.done.wait()
        finally:
            # Shielded: a cancellation of the handler (server shutdown, a test client) must not
            # cut the clean-up short and leave the reader or sender running.
            with anyio.CancelScope(shield=True):
                await self._cleanup(conn, expiry)

    async def _cleanup(self, conn: Connection, expiry: asyncio.TimerHandle) -> None:
        expiry.cancel()
        for t in conn.tasks:
            t.cancel()
        await asyncio.gather(*conn.tasks, return_exceptions=True)
        self.connections.discard(conn)
        self.metrics.ws_connections.set(len(self.connections))
        if not conn.client_gone and conn.close_code != WS_NORMAL:
            self.metrics.ws_dropped.inc(reason=_reason_label(conn.close_code))
        log.info(
            EVENTS.WS_DISCONNECTED,
            user=conn.user,
            client=conn.key,
            code=conn.close_code,
            reason=conn.close_reason,
            api=True,
        )
        ws = conn.ws
        if not conn.client_gone and ws.application_state != WebSocketState.DISCONNECTED:
            with anyio.move_on_after(1.0), contextlib.suppress(Exception):
                await ws.close(conn.close_code, conn.close_reason)
        conn.finished.set()

    async def _sender(self, conn: Connection) -> None:
        try:
            while True:
                text = await conn.queue.get()
                await conn.ws.send_text(text)
                self.metrics.ws_sent.inc()
        except (WebSocketDisconnect, RuntimeError, OSError):  # the socket broke under us
            conn.client_gone = True
            conn.finish(WS_NORMAL, "")

    async def _reader(self, conn: Connection) -> None:
        try:
            while True:
                message = await conn.ws.receive()
                if message["type"] == "websocket.disconnect":
                    conn.client_gone = True
                    conn.finish(int(message.get("code") or WS_NORMAL), "")
                    return
                text = message.get("text")
                if text is None:
                    raw = message.get("bytes") or b""
                    text = raw.decode("utf-8", "replace")
                await self._on_message(conn, text)
        except asyncio.CancelledError:
            raise
        except WebSocketDisconnect as exc:
            conn.client_gone = True
            conn.finish(exc.code, "")
        except Exception:
            log.exception("ws_reader_failed", user=conn.user)
            conn.finish(1011, "internal error")

    async def _on_message(self, conn: Connection, text: str) -> None:
        if self.limiter.check(conn.key) > 0:
            self.metrics.rate_limited.inc()
            conn.error("rate_limited", "too many messages; slow down")
            return
        if len(text) > MAX_CLIENT_MESSAGE:
            conn.error("too_large", f"messages are limited to {MAX_CLIENT_MESSAGE} bytes")
            return
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            conn.error("invalid", "not valid JSON", field="body")
            return
        if not isinstance(msg, dict):
            conn.error("invalid", "expected a JSON object", field="body")
            return
        kind = msg.get("type")
        if kind in ("subscribe", "unsubscribe"):
            self._on_subscription(conn, kind, msg)
        elif kind == "command":
            await self._on_command(conn, msg)
        else:
            conn.error("invalid", "type must be subscribe, unsubscribe or command", field="type")

    def _on_subscription(self, conn: Connection, kind: str, msg: Mapping[str, Any]) -> None:
        channel = msg.get("channel")
        if channel not in CHANNELS:
            conn.error("invalid", f"channel must be one of {', '.join(CHANNELS)}", field="channel")
            return
        raw = msg.get("symbols")
        symbols: set[str] | None
        if raw is None or raw == []:
            symbols = _ALL
        elif (
            isinstance(raw, list)
            and len(raw) <= MAX_SYMBOLS
            and all(isinstance(s, str) and _SYMBOL.fullmatch(s) for s in raw)
        ):
            symbols = set(raw)
        else:
            conn.error("invalid", f"symbols must be a list of at most {MAX_SYMBOLS} symbols such as BTCUSDT", field="symbols")
            return
        subscribed = channel in conn.subs
        existing = conn.subs.get(channel)  # None = every symbol (when subscribed)
        if kind == "subscribe":
            if symbols is None or (subscribed and existing is None):
                conn.subs[channel] = None
            else:
                conn.subs[channel] = (existing or set()) | symbols
            conn.reply("subscribed", {"channel": channel, "symbols": _listed(conn.subs[channel])})
            return
        if symbols is None:
            conn.subs.pop(channel, None)
        elif subscribed:
            if existing is None:
                conn.error(
                    "invalid",
                    "this channel is subscribed for every symbol; unsubscribe the channel (no symbols) instead",
                    field="symbols",
                )
                return
            left = existing - symbols
            if left:
                conn.subs[channel] = left
            else:
                del conn.subs[channel]
        conn.reply("unsubscribed", {"channel": channel, "symbols": _listed(conn.subs[channel]) if channel in conn.subs else []})

    async def _on_command(self, conn: Connection, msg: Mapping[str, Any]) -> None:
        cid = msg.get("id")
        if cid is not None and not isinstance(cid, (str, int)):
            cid = None
        name = msg.get("command")
        raw_args = msg.get("args", {})
        entry = COMMANDS.get(name) if isinstance(name, str) else None
        if entry is None:
            conn.error("invalid", f"command must be one of {', '.join(COMMANDS)}", field="command", id=cid)
            return
        if raw_args is None:
            raw_args = {}
        if not isinstance(raw_args, dict):
            conn.error("invalid", "args must be an object", field="args", id=cid)
            return
        action, check, fn = entry
        try:
            args = check(raw_args)
        except _CommandError as exc:
            conn.error("invalid", exc.message, field=exc.field, id=cid)
            return
        with trace(new_trace_id()) as tid:
            try:
                if action is None:
                    result = await fn(self.backend, args, conn.user)
                else:
                    result = await audited(
                        self.backend, conn.user, action, args, lambda: fn(self.backend, args, conn.user)
                    )
            except BackendError as exc:
                data: dict[str, Any] = {"code": exc.code, "message": exc.message, "trace_id": tid}
                if exc.field is not None:
                    data["field"] = exc.field
                if cid is not None:
                    data["id"] = cid
                conn.reply("error", data)
                return
            except Exception:
                log.exception("ws_command_failed", command=name, user=conn.user)
                conn.error("internal", f"internal error; trace id {tid}", id=cid)
                return
        conn.reply("command_result", {"id": cid, "command": name, "ok": True, "result": result, "trace_id": tid})


def _listed(symbols: set[str] | None) -> list[str] | None:
    return None if symbols is None else sorted(symbols)


def _reason_label(code: int) -> str:
    return {
        WS_SLOW_CONSUMER: "slow_consumer",
        WS_UNAUTHORIZED: "token_expired",
        WS_GOING_AWAY: "shutdown",
        1011: "internal_error",
    }.get(code, str(code))


__all__ = [
    "COMMANDS",
    "WS_GOING_AWAY",
    "WS_SLOW_CONSUMER",
    "WS_TRY_AGAIN_LATER",
    "WS_UNAUTHORIZED",
    "Connection",
    "Hub",
]
