"""Authenticated Bybit v5 private stream (``/v5/private``): order, execution, position, wallet.

Lifecycle of one connection: connect -> ``op: auth`` (``expires`` = server-corrected now + 10 s,
never pybit's +1 s) -> wait for the auth reply -> subscribe every topic -> read; the stream is
*live* once the subscription is acknowledged. A JSON
``{"op": "ping"}`` goes out every ``ping_interval`` s (Bybit recommends 20 s); the private pong is
``{"op": "pong", ...}`` (``ret_msg == "pong"`` is accepted as well). If nothing at all arrives for
``dead_timeout`` s (no pong, no data) the socket is declared dead and closed.

Any close, error, failed auth or dead socket leads to a reconnect after an exponential backoff
with full jitter, then RE-AUTH and RESUBSCRIBE of every topic. The backoff restarts from the base
once a connection has gone live.

Parsed messages (the envelope dict: ``topic``, ``id``, ``creationTime``, ``data``) go to an async
callback and/or an ``asyncio.Queue`` (``await put``: backpressure reaches the socket reader, which
is fine for this low-volume stream). Frames that cannot be parsed, unexpected frames and frames
whose callback raised go to the dead-letter sink with the raw payload; the stream keeps going.

Note: ``wallet`` sends no snapshot on subscribe and ``position`` pushes on every order action;
fetch a REST snapshot after (re)connecting to be sure of the state (bybit-v5.md 2.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson

from pysrc.exchange.bybit.clock import ServerClock
from pysrc.exchange.bybit.signing import WS_AUTH_EXPIRY_MARGIN_MS, ws_auth_message
from pysrc.exchange.deadletter import DeadLetterSink, MemoryDeadLetters

log = logging.getLogger(__name__)

DEFAULT_TOPICS: tuple[str, ...] = ("order", "execution", "position", "wallet")

Message = dict[str, Any]
Callback = Callable[[Message], Awaitable[None]]


class StreamState(str, Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    AUTHENTICATING = "authenticating"
    LIVE = "live"
    BACKOFF = "backoff"
    CLOSED = "closed"


class PrivateAuthError(Exception):
    """The exchange refused the auth message (bad key/signature, expired ``expires``)."""


class _SocketDead(Exception):
    """Nothing received within ``dead_timeout``."""


class PrivateStream:
    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        topics: Sequence[str] = DEFAULT_TOPICS,
        on_message: Callback | None = None,
        queue: asyncio.Queue[Message] | None = None,
        dead_letters: DeadLetterSink | None = None,
        clock: ServerClock | None = None,
        ping_interval: float = 20.0,
        dead_timeout: float | None = None,
        auth_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        expires_margin_ms: int = WS_AUTH_EXPIRY_MARGIN_MS,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
        session: aiohttp.ClientSession | None = None,
        name: str = "bybit.private",
    ) -> None:
        if not topics:
            raise ValueError("at least one topic")
        self.url = url
        self._api_key = api_key
        self._api_secret = api_secret
        self.topics = list(topics)
        self._on_message = on_message
        self.queue = queue
        self.dead_letters: DeadLetterSink = dead_letters if dead_letters is not None else MemoryDeadLetters()
        self.clock = clock or ServerClock()
        self.ping_interval = ping_interval
        self.dead_timeout = dead_timeout if dead_timeout is not None else ping_interval + 10.0
        self.auth_timeout = auth_timeout
        self.connect_timeout = connect_timeout
        self.expires_margin_ms = expires_margin_ms
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._rng = rng or random.Random()
        self._session = session
        self._owns_session = session is None
        self.name = name

        self.state = StreamState.IDLE
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._live = asyncio.Event()
        self._closing = False
        self._went_live = False
        self._req_ids = itertools.count(1)
        # counters
        self.connects = 0
        self.reconnects = 0
        self.auth_ok = 0
        self.auth_failures = 0
        self.pings_sent = 0
        self.pongs = 0
        self.dead_sockets = 0
        self.callback_errors = 0
        self.dead_lettered = 0
        self.subscribe_failures = 0
        self.messages: Counter[str] = Counter()
        self.last_error: str | None = None
        self.conn_id: str | None = None
        self.last_message_at: float | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the connection task (returns at once; see :meth:`wait_live`)."""
        if self._task is not None:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=f"{self.name}.run")

    async def wait_live(self, timeout: float | None = None) -> bool:
        """Wait until authenticated and the subscription acknowledged; False on timeout."""
        try:
            await asyncio.wait_for(self._live.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def live(self) -> bool:
        return self._live.is_set()

    async def close(self) -> None:
        """Stop: cancel and await the connection task, close the socket (and own session)."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:
            await ws.close()
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None
        self._live.clear()
        self.state = StreamState.CLOSED

    async def reconnect(self) -> None:
        """Drop the current socket on purpose (the run loop reconnects and re-auths)."""
        ws = self._ws
        if ws is not None and not ws.closed:
            await ws.close()

    # ---- the run loop ----------------------------------------------------------------------
    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            self._went_live = False
            try:
                await self._serve_one()
            except asyncio.CancelledError:
                raise
            except PrivateAuthError as exc:
                self.auth_failures += 1
                self._note_error(f"auth refused: {exc}")
            except _SocketDead as exc:
                self.dead_sockets += 1
                self._note_error(str(exc))
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self._note_error(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # never let the stream die silently
                log.exception("%s: unexpected error", self.name)
                self._note_error(f"{type(exc).__name__}: {exc}")
            finally:
                self._live.clear()
                ws, self._ws = self._ws, None
                if ws is not None and not ws.closed:
                    with contextlib.suppress(Exception):
                        await ws.close()
            if self._closing:
                break
            if self._went_live:
                attempt = 0  # a healthy connection that later died: start the backoff afresh
            delay = self._rng.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2**attempt))
            attempt += 1
            self.state = StreamState.BACKOFF
            log.info("%s: reconnecting in %.2f s (%s)", self.name, delay, self.last_error)
            await asyncio.sleep(delay)
            self.reconnects += 1

    async def _serve_one(self) -> None:
        """One connection from connect to close (returns or raises when it ends)."""
        assert self._session is not None
        self.state = StreamState.CONNECTING
        ws = await asyncio.wait_for(
            self._session.ws_connect(self.url, autoping=True, heartbeat=None, max_msg_size=16 * 2**20),
            self.connect_timeout,
        )
        self._ws = ws
        self.connects += 1
        self.state = StreamState.AUTHENTICATING
        await self._authenticate(ws)
        self.auth_ok += 1
        # live once the subscription is acknowledged (see _dispatch_control_or_data), so a caller
        # that waits for live and then takes a REST snapshot cannot miss a push in between
        await ws.send_str(self._subscribe_message())
        pinger = asyncio.create_task(self._ping_loop(ws), name=f"{self.name}.ping")
        try:
            await self._read_loop(ws)
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pinger

    async def _authenticate(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        msg = ws_auth_message(
            self._api_key,
            self._api_secret,
            self.clock.now_ms(),
            margin_ms=self.expires_margin_ms,
            req_id=f"auth-{next(self._req_ids)}",
        )
        await ws.send_str(orjson.dumps(msg).decode())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.auth_timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise PrivateAuthError("no auth reply within timeout")
            frame = await ws.receive(timeout=left)
            if frame.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                raise aiohttp.ClientConnectionError(f"socket closed during auth ({frame.type.name})")
            reply = self._parse(frame.data)
            if reply is None:
                continue
            if reply.get("op") == "auth":
                self.conn_id = reply.get("conn_id") or reply.get("connId") or self.conn_id
                ok = reply.get("success") is True or reply.get("retCode") == 0
                if not ok:
                    raise PrivateAuthError(str(reply.get("ret_msg") or reply.get("retMsg") or reply))
                return
            await self._dispatch(reply, frame.data)  # anything else that came early: handle normally

    def _subscribe_message(self) -> str:
        return orjson.dumps({"req_id": f"sub-{next(self._req_ids)}", "op": "subscribe", "args": self.topics}).decode()

    async def _ping_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self.ping_interval)
            await ws.send_str(orjson.dumps({"req_id": f"ping-{next(self._req_ids)}", "op": "ping"}).decode())
            self.pings_sent += 1

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            try:
                frame = await ws.receive(timeout=self.dead_timeout)
            except TimeoutError:
                raise _SocketDead(f"nothing received for {self.dead_timeout:.1f} s") from None
            if frame.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                self.last_message_at = time.monotonic()
                msg = self._parse(frame.data)
                if msg is not None:
                    await self._dispatch(msg, frame.data)
                continue
            if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                self._note_error(f"closed by peer ({ws.close_code})")
                return
            if frame.type is aiohttp.WSMsgType.ERROR:
                self._note_error(f"socket error: {ws.exception()}")
                return

    # ---- frames ------------------------------------------------------------------------------
    def _parse(self, raw: str | bytes) -> Message | None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self._dead_letter(raw, f"unparsable: {exc}")
            return None
        if not isinstance(msg, dict):
            self._dead_letter(raw, f"not a JSON object: {type(msg).__name__}")
            return None
        return msg

    def _dispatch_control_or_data(self, msg: Message, raw: str | bytes) -> bool:
        """Handle control frames; returns True if ``msg`` was one."""
        op = msg.get("op")
        if op == "pong" or msg.get("ret_msg") == "pong":
            self.pongs += 1
            return True
        if op == "subscribe":
            if msg.get("success") is False:
                self.subscribe_failures += 1
                self._note_error(f"subscribe refused: {msg.get('ret_msg')}")
                self._dead_letter(raw, f"subscribe refused: {msg.get('ret_msg')}")
            elif not self._live.is_set():
                self.state = StreamState.LIVE
                self._went_live = True
                self._live.set()
                log.info("%s: live (conn %s), topics %s", self.name, self.conn_id, self.topics)
            return True
        return op in ("auth", "ping", "unsubscribe")

    async def _dispatch(self, msg: Message, raw: str | bytes) -> None:
        if self._dispatch_control_or_data(msg, raw):
            return
        topic = msg.get("topic")
        if not isinstance(topic, str) or "data" not in msg:
            self._dead_letter(raw, "unexpected frame (no topic/data)")
            return
        self.messages[topic] += 1
        if self._on_message is not None:
            try:
                await self._on_message(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a consumer bug must not kill the stream
                self.callback_errors += 1
                self._dead_letter(raw, f"callback failed: {type(exc).__name__}: {exc}")
        if self.queue is not None:
            await self.queue.put(msg)

    def _dead_letter(self, raw: str | bytes, error: str) -> None:
        self.dead_lettered += 1
        try:
            self.dead_letters.put(self.name, raw, error)
        except Exception:  # a broken sink must not kill the reader
            log.exception("%s: dead-letter sink failed", self.name)

    def _note_error(self, text: str) -> None:
        self.last_error = text
        log.warning("%s: %s", self.name, text)

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "live": self.live,
            "conn_id": self.conn_id,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "auth_ok": self.auth_ok,
            "auth_failures": self.auth_failures,
            "pings_sent": self.pings_sent,
            "pongs": self.pongs,
            "dead_sockets": self.dead_sockets,
            "messages": dict(self.messages),
            "callback_errors": self.callback_errors,
            "dead_lettered": self.dead_lettered,
            "subscribe_failures": self.subscribe_failures,
            "last_error": self.last_error,
        }


__all__ = ["DEFAULT_TOPICS", "PrivateAuthError", "PrivateStream", "StreamState"]
