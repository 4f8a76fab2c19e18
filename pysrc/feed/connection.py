"""One public WebSocket connection of the pool: connect, subscribe, read, watch, reconnect.

Life of a connection (:meth:`FeedConnection.run`, until :meth:`close`):

1. connect (``connect_timeout``); on failure wait the backoff delay and try again;
2. ``on_connect`` (the feed resets every book of this connection: whatever the books held is
   unusable until a fresh snapshot arrives), then subscribe every topic (``req_id`` per request,
   state per topic from the acks, see :mod:`pysrc.feed.subscriptions`);
3. three tasks run until one of them ends the session:

   * the **reader** hands every frame to the pipeline as raw bytes (the engine reads bytes, so
     no UTF-8 decode in Python). With the ``native`` transport (the default,
     :mod:`pysrc.feed.wsproto`) it is not a task at all: the protocol calls the pipeline
     synchronously from ``data_received`` for every message of a socket read, and the session
     only awaits the end of the socket. With the ``aiohttp`` transport (the fallback) it is a
     task awaiting ``ws.receive()`` (``decode_text=False``), one event-loop wake-up per message;
   * the **writer** sends queued requests (subscribe, unsubscribe, ping) one at a time, so a slow
     socket write never stalls the reader;
   * the **keeper** sends the JSON ping every ``ping_interval`` (Bybit: 20 s), declares the socket
     dead when a ping got neither a pong nor any other frame within ``pong_timeout``, declares it
     stalled when subscribed data stopped for ``silence_timeout`` (pongs may still come on a
     stalled stream), and sends subscription retries;
4. stop delivering frames, close the socket, ``on_disconnect`` (books reset again and consumers
   notified), log the reason, wait the backoff delay (jittered; reset once a session lasted
   ``stable_after`` seconds), and go back to 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import aiohttp
import orjson

from pysrc.feed.backoff import Backoff
from pysrc.feed.metrics import ConnectionMetrics
from pysrc.feed.pipeline import FramePipeline
from pysrc.feed.subscriptions import FAILED, Request, SubscriptionTracker
from pysrc.feed.wsproto import WebSocketClient
from pysrc.feed.wsproto import connect as ws_connect

log = logging.getLogger("pysrc.feed.connection")

Transport: TypeAlias = Literal["native", "aiohttp"]
TRANSPORTS: tuple[Transport, ...] = ("native", "aiohttp")


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    ping_interval: float = 20.0
    """Seconds between JSON pings (Bybit recommends 20)."""
    pong_timeout: float = 10.0
    """A ping answered by nothing at all within this many seconds means a dead socket."""
    silence_timeout: float | None = 30.0
    """No market data for this long on a connection with active data topics means a stalled
    stream (None: off). The default suits liquid pairs; a quiet symbol set needs more."""
    connect_timeout: float = 10.0
    ack_timeout: float = 10.0
    close_timeout: float = 2.0
    stable_after: float = 30.0
    """A session that lasted this long resets the reconnect backoff."""
    tick: float = 0.5
    """Keeper period: watchdog resolution, in seconds."""
    max_msg_size: int = 64 * 1024 * 1024
    max_args_per_request: int | None = 10
    transport: Transport = "native"
    """``native``: :mod:`pysrc.feed.wsproto`, frames handed to the pipeline inside the socket
    read (lower and flatter latency under bursts). ``aiohttp``: the aiohttp client, one task
    wake-up per frame (kept as a fallback)."""

    def __post_init__(self) -> None:
        if self.ping_interval <= 0 or self.pong_timeout <= 0 or self.tick <= 0:
            raise ValueError("ping_interval, pong_timeout and tick must be > 0")
        if self.silence_timeout is not None and self.silence_timeout <= 0:
            raise ValueError("silence_timeout must be > 0 or None")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, not {self.transport!r}")


class FeedConnection:
    """A supervised WebSocket carrying the topics of a fixed group of symbols."""

    def __init__(
        self,
        name: str,
        url: str,
        symbols: Sequence[str],
        topics: Sequence[str],
        *,
        session: aiohttp.ClientSession | None,
        pipeline: FramePipeline,
        settings: ConnectionSettings,
        backoff: Backoff,
        on_connect: Callable[[FeedConnection], None],
        on_disconnect: Callable[[FeedConnection], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.url = url
        self.symbols: tuple[str, ...] = tuple(symbols)
        self.metrics = ConnectionMetrics(name)
        self.backoff = backoff
        self.state = "idle"
        self.tracker = SubscriptionTracker(
            topics,
            req_prefix=f"{name}:",
            max_args=settings.max_args_per_request,
            ack_timeout=settings.ack_timeout,
            clock=clock,
        )
        self.topics: tuple[str, ...] = tuple(topics)
        self._data_topics = bool(self.topics)
        if settings.transport == "aiohttp" and session is None:
            raise ValueError("the aiohttp transport needs an aiohttp session")
        self._session = session
        self._pipeline = pipeline
        self._settings = settings
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._clock = clock
        self._outbox: asyncio.Queue[str] | None = None
        self._pings: dict[str, float] = {}
        self._ping_n = 0
        self._awaiting_pong_since: float | None = None
        self._closing = False
        self._session_tasks: set[asyncio.Task[str]] = set()

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    # ---- control-frame callbacks from the pipeline ------------------------------------------------

    def on_pong(self, req_id: str) -> None:
        now = self._clock()
        m = self.metrics
        m.control_frames += 1
        m.pongs += 1
        sent = self._pings.pop(req_id, None)
        if sent is None and self._pings:  # a server that does not echo req_id: the oldest ping
            sent = self._pings.pop(next(iter(self._pings)))
        if sent is not None:
            rtt = (now - sent) * 1000.0
            m.rtt_ms = rtt
            if m.rtt_ms_max is None or rtt > m.rtt_ms_max:
                m.rtt_ms_max = rtt
        self._awaiting_pong_since = None

    def on_ack(self, req_id: str, op: str, success: bool, ret_msg: str) -> None:
        self.metrics.control_frames += 1
        result = self.tracker.on_ack(req_id, op, success, ret_msg)
        if result is None:
            log.debug("%s: ack for unknown request %r (%s)", self.name, req_id, op)

    # ---- sending ---------------------------------------------------------------------------------

    def _enqueue(self, requests: Sequence[Request]) -> None:
        outbox = self._outbox
        if outbox is None:
            return
        for request in requests:
            outbox.put_nowait(request.encode())

    def resubscribe(self, topic: str) -> bool:
        """Unsubscribe + subscribe ``topic`` on this socket (for a fresh snapshot). False when
        not connected: the next connection subscribes everything anyway."""
        if not self.connected or self._outbox is None:
            return False
        if self.tracker.state(topic) == FAILED:
            log.warning("%s: resubscribing %s, which had failed before", self.name, topic)
        self._enqueue(self.tracker.resubscribe(topic))
        return True

    # ---- the supervising loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and reconnect until :meth:`close`."""
        while not self._closing:
            self.state = "connecting"
            ws = await self._connect()
            if ws is None:
                await self._wait_backoff()
                continue
            started = self._clock()
            try:
                reason = await self._session_loop(ws)
            finally:
                await self._teardown(ws)
            if self._closing:
                break
            log.warning(
                "%s: disconnected after %.1fs (%s); reconnecting",
                self.name,
                self._clock() - started,
                reason,
            )
            if self._clock() - started >= self._settings.stable_after:
                self.backoff.reset()
            await self._wait_backoff()
        self.state = "closed"

    async def _connect(self) -> WebSocketClient | aiohttp.ClientWebSocketResponse[bool] | None:
        s = self._settings
        try:
            async with asyncio.timeout(s.connect_timeout):
                if s.transport == "native":
                    # TLS for wss:// with the system CAs; no extensions offered (Bybit's frames
                    # are small JSON, and permessage-deflate would cost more CPU than it saves).
                    return await ws_connect(self.url, max_msg_size=s.max_msg_size)
                assert self._session is not None
                return await self._session.ws_connect(
                    self.url,
                    autoping=True,
                    heartbeat=None,  # Bybit wants its JSON ping; the keeper sends it
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=s.close_timeout),
                    max_msg_size=s.max_msg_size,
                    decode_text=False,
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # OSError includes wsproto's HandshakeError (a ConnectionError).
            self.metrics.connect_failures += 1
            log.warning("%s: connect to %s failed: %r", self.name, self.url, exc)
            return None

    async def _wait_backoff(self) -> None:
        if self._closing:
            return
        self.state = "backoff"
        delay = self.backoff.next_delay()
        log.info("%s: next connect attempt in %.2fs (attempt %d)", self.name, delay, self.backoff.attempts)
        await asyncio.sleep(delay)

    async def _session_loop(self, ws: WebSocketClient | aiohttp.ClientWebSocketResponse[bool]) -> str:
        now = self._clock()
        m = self.metrics
        m.connects += 1
        m.connected_at = now
        m.last_rx = now
        m.last_data = None
        self._pings.clear()
        self._awaiting_pong_since = None
        self._outbox = asyncio.Queue()
        self.tracker.reset()
        self.state = "connected"
        log.info("%s: connected to %s (%d symbols, %d topics)", self.name, self.url, len(self.symbols), len(self.topics))
        self._on_connect(self)
        reader: Coroutine[None, None, str]
        if isinstance(ws, WebSocketClient):
            # After on_connect (books reset) and before the first subscription: from here on every
            # message goes to the pipeline inside the socket read.
            ws.start(self._frame_handler())
            reader = self._watch(ws)
        else:
            reader = self._read(ws)
        self._enqueue(self.tracker.subscribe_all())
        tasks = {
            asyncio.create_task(reader, name=f"{self.name}-reader"),
            asyncio.create_task(self._write(ws), name=f"{self.name}-writer"),
            asyncio.create_task(self._keep(), name=f"{self.name}-keeper"),
        }
        self._session_tasks = tasks
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if isinstance(ws, WebSocketClient):
                # The session is over (a watchdog, a failed send, cancellation): no frame may
                # reach the books between now and on_disconnect, as with a cancelled reader task.
                ws.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._session_tasks = set()
        task = done.pop()
        if task.cancelled():
            reason = "cancelled"
        elif (exc := task.exception()) is not None:
            log.error("%s: %s failed", self.name, task.get_name(), exc_info=exc)
            reason = f"{task.get_name()} failed: {exc!r}"
        else:
            reason = task.result()
        self.metrics.last_disconnect_reason = reason
        return reason

    async def _teardown(self, ws: WebSocketClient | aiohttp.ClientWebSocketResponse[bool]) -> None:
        was_connected = self.state == "connected"
        self.state = "disconnected"
        self._outbox = None
        with contextlib.suppress(Exception):
            # The close handshake is bounded by close_timeout (ws_close for aiohttp), so a dead
            # peer cannot hold us here.
            if isinstance(ws, WebSocketClient):
                await asyncio.shield(ws.close(timeout=self._settings.close_timeout))
            else:
                await asyncio.shield(ws.close())
        if was_connected:
            self.metrics.disconnects += 1
            self.metrics.connected_at = None
            self._on_disconnect(self)

    # ---- session tasks ---------------------------------------------------------------------------

    def _frame_handler(self) -> Callable[[bytes], None]:
        """The native transport's per-message callback: what :meth:`_read` does per message,
        called synchronously by the protocol. A closure over locals, because it runs for every
        frame and attribute lookups on ``self`` are the larger part of its own cost."""
        on_frame = self._pipeline.on_frame
        dead = self._pipeline.dead_letters
        clock = self._clock
        m = self.metrics
        name = self.name

        def on_message(data: bytes) -> None:
            now = clock()
            m.messages += 1
            m.bytes += len(data)
            m.last_rx = now
            try:
                if on_frame(self, data):
                    m.last_data = now
            except Exception as exc:  # a bug must not end the connection: record and go on
                log.exception("%s: frame handler failed", name)
                dead.put(name, data, f"internal error: {exc!r}")

        return on_message

    async def _watch(self, ws: WebSocketClient) -> str:
        """The native transport's reader task: nothing to read, only the end to wait for."""
        info = await ws.wait_closed()
        if info.error is None:
            detail = f": {info.reason}" if info.reason else ""
            return f"closed by peer (code {info.code}{detail})"
        return f"socket error: {info.reason} ({info.error!r})"

    async def _read(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> str:
        receive = ws.receive
        on_frame = self._pipeline.on_frame
        dead = self._pipeline.dead_letters
        clock = self._clock
        m = self.metrics
        text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        closing = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)
        while True:
            msg = await receive()
            kind = msg.type
            if kind is text or kind is binary:
                data = msg.data
                now = clock()
                m.messages += 1
                m.bytes += len(data)
                m.last_rx = now
                try:
                    if on_frame(self, data):
                        m.last_data = now
                except Exception as exc:  # a bug must not kill the reader: record and go on
                    log.exception("%s: frame handler failed", self.name)
                    dead.put(self.name, data, f"internal error: {exc!r}")
            elif kind in closing:
                return f"closed by peer (code {ws.close_code})"
            elif kind is aiohttp.WSMsgType.ERROR:
                return f"socket error: {ws.exception()!r}"

    async def _write(self, ws: WebSocketClient | aiohttp.ClientWebSocketResponse[bool]) -> str:
        outbox = self._outbox
        assert outbox is not None
        while True:
            text = await outbox.get()
            try:
                if isinstance(ws, WebSocketClient):
                    ws.send_text(text)
                    await ws.drain()  # a full socket buffer holds the writer, never the reader
                else:
                    await ws.send_str(text)
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
                return f"send failed: {exc!r}"

    def _ping(self, now: float) -> None:
        self._ping_n += 1
        req_id = f"{self.name}:ping:{self._ping_n}"
        if len(self._pings) >= 8:  # unanswered pings are not kept forever
            self._pings.pop(next(iter(self._pings)))
        self._pings[req_id] = now
        # Remember the first ping sent after the last frame received: if nothing at all arrives
        # for pong_timeout after it, the socket is dead.
        since = self._awaiting_pong_since
        if since is None or (self.metrics.last_rx or 0.0) >= since:
            self._awaiting_pong_since = now
        self.metrics.pings += 1
        if self._outbox is not None:
            self._outbox.put_nowait(orjson.dumps({"req_id": req_id, "op": "ping"}).decode())

    async def _keep(self) -> str:
        s = self._settings
        m = self.metrics
        clock = self._clock
        next_ping = clock() + s.ping_interval
        while True:
            await asyncio.sleep(s.tick)
            now = clock()
            if now >= next_ping:
                self._ping(now)
                next_ping = now + s.ping_interval
            since = self._awaiting_pong_since
            if since is not None and now - since >= s.pong_timeout and (m.last_rx or 0.0) < since:
                m.dead_socket += 1
                return f"dead socket: no pong and no data for {now - since:.1f}s after a ping"
            if s.silence_timeout is not None and self._data_topics:
                last = m.last_data if m.last_data is not None else m.connected_at
                if last is not None and now - last >= s.silence_timeout:
                    m.silence += 1
                    return f"data silence for {now - last:.1f}s"
            self._enqueue(self.tracker.due())

    async def close(self) -> None:
        """Stop reconnecting; the owner cancels and awaits the :meth:`run` task."""
        self._closing = True

    def snapshot(self, now: float) -> dict[str, object]:
        out: dict[str, object] = {"state": self.state, "symbols": list(self.symbols)}
        out.update(self.metrics.snapshot(now))
        out["subscriptions"] = self.tracker.counts()
        out["subscribe_failures"] = self.tracker.failures()
        out["backoff_attempts"] = self.backoff.attempts
        return out


__all__ = ["TRANSPORTS", "ConnectionSettings", "FeedConnection", "Transport"]
