"""A minimal RFC 6455 WebSocket client on :class:`asyncio.Protocol`, for the public feed's hot path.

Why not aiohttp here: aiohttp's client parses frames in ``data_received`` too, but then puts
every message on a queue and wakes the task awaiting ``ws.receive()`` through a future, once per
message. When the exchange pushes a burst of frames (every topic of a connection at once), the
frames of one socket read are handed over one event-loop turn at a time, about 30 µs each, and
the last frame of a burst waits for all the wake-ups before it. Here every complete message is
handed to the owner's callback synchronously inside ``data_received``: a burst that arrives in
one read is applied in one go, with no future, task or queue per message.

What is implemented (client side only):

* ``ws://`` and ``wss://`` (TLS through ``loop.create_connection(ssl=...)``, verified against the
  system CAs by default, with SNI and host name checking);
* the HTTP/1.1 upgrade handshake: a random ``Sec-WebSocket-Key``, the server's
  ``Sec-WebSocket-Accept`` verified, ``Upgrade``/``Connection`` checked; no extensions and no
  subprotocol are offered, so a response that selects either is refused;
* frames from the server: unmasked (a masked one is a protocol error), RSV bits zero, text,
  binary and continuation (fragmented messages reassembled), ping answered with a pong carrying
  the same payload, pong ignored, close answered with a close echoing the code; control frames
  must be final and at most 125 bytes, and may come between the fragments of a message;
* ``max_msg_size`` checked against the length in a frame header before the payload is buffered,
  so an oversized message costs no memory (closed with 1009);
* frames to the server: masked with a fresh key from ``os.urandom`` (text, binary, ping, close);
* a clean close (close frame, wait for the peer's close or a timeout, then the TCP close), and
  the end of the connection reported once as a :class:`CloseInfo` (``wait_closed``), whether it
  came from a close frame, a protocol error (the connection is failed with 1002/1007/1009/1011)
  or a lost TCP connection (1006).

UTF-8 validation of text messages is off by default (``validate_utf8``): the feed's consumers
(the native engine, orjson) parse the bytes and refuse invalid UTF-8 themselves, and the
frame then goes to the dead letters instead of costing the whole connection; aiohttp with
``decode_text=False`` does not validate either.

Parsing works on the ``bytes`` that ``data_received`` gets: headers are read with integer
indexing (no slicing), a complete unfragmented message is one ``data[start:end]`` slice (the only
allocation per message), and only a header or frame split across two reads is completed in a
small ``bytearray`` with just the bytes it is missing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import ssl as ssl_module
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

log = logging.getLogger("pysrc.feed.wsproto")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

MAX_HANDSHAKE_BYTES = 16 * 1024
"""A 101 response longer than this is refused (the real one is a few hundred bytes)."""

# Close codes a peer may put in a close frame (RFC 6455 7.4.1; 1004-1006 and 1015 are reserved,
# 1012-1014 are registered with IANA since).
_VALID_CLOSE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})

_CONNECTING, _OPEN, _CLOSING, _CLOSED = 0, 1, 2, 3
_U64 = struct.Struct("!Q")
_PACK_H16 = struct.Struct("!BBH").pack
_PACK_H64 = struct.Struct("!BBQ").pack

_default_ssl: ssl_module.SSLContext | None = None


def default_ssl_context() -> ssl_module.SSLContext:
    """``ssl.create_default_context()``, built once: loading the CA store costs milliseconds,
    and a reconnect storm of 10 sockets should not pay it 10 times."""
    global _default_ssl
    if _default_ssl is None:
        _default_ssl = ssl_module.create_default_context()
    return _default_ssl


class WebSocketError(ConnectionError):
    """Base of the errors raised here. A ``ConnectionError`` (so an ``OSError``), because to the
    owner a refused handshake or a failed protocol is one more way a connection fails."""


class HandshakeError(WebSocketError):
    """The server did not accept the upgrade (status, headers or ``Sec-WebSocket-Accept``)."""


class ProtocolError(WebSocketError):
    """The server broke RFC 6455; ``code`` is the close code the connection was failed with."""

    def __init__(self, message: str, code: int = CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class CloseInfo:
    """How a connection ended.

    ``code``: the close code (from the peer's close frame, the code we failed the connection
    with, ``1005`` for a close frame without one, ``1006`` when TCP went away without a close
    frame). ``by_peer``: the end came from the peer (its close frame came first, or its side of
    TCP went away). ``error``: set for a protocol error,
    a failing callback or a lost connection, None for a close handshake."""

    code: int
    reason: str = ""
    by_peer: bool = False
    error: BaseException | None = None


def accept_for(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer to ``key`` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def mask_payload(key: bytes, payload: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` repeated (RFC 6455 5.3). One big-integer XOR:
    client messages are small and rare here (subscriptions, pings), so this beats a loop."""
    n = len(payload)
    if not n:
        return b""
    k = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def close_payload(code: int, reason: str) -> bytes:
    """A close frame's payload: the code and at most 123 bytes of reason (control frames carry at
    most 125 bytes), cut on a character boundary so the reason stays valid UTF-8."""
    raw = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + raw


def encode_frame(opcode: int, payload: bytes, *, mask: bytes | None = None, fin: bool = True) -> bytes:
    """One frame. ``mask`` given: a client frame masked with it; None: an unmasked (server) frame
    (used by the tests to build server byte streams)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        header = bytes((b0, mbit | n))
    elif n < 65536:
        header = _PACK_H16(b0, mbit | 126, n)
    else:
        header = _PACK_H64(b0, mbit | 127, n)
    if mask is None:
        return header + payload
    return header + mask + mask_payload(mask, payload)


class WebSocketClient(asyncio.Protocol):
    """One client connection. Create it with :func:`connect`; call :meth:`start` to begin
    delivering messages.

    ``on_message(data)`` gets every complete text or binary message as ``bytes``, synchronously
    from ``data_received``. It must not block; if it raises, the connection is failed with 1011
    (the owner is expected to catch its own errors; an exception here is a bug worth a
    reconnect, not a silently skipped frame).

    Messages are held until :meth:`start`: the owner usually has to do something between the
    handshake and the first frame (the feed resets its books), and a frame must not overtake
    that. After :meth:`close` (or :meth:`stop`) nothing more is delivered.
    """

    def __init__(
        self,
        host_header: str,
        resource: str,
        *,
        max_msg_size: int = 64 * 1024 * 1024,
        validate_utf8: bool = False,
        extra_headers: Mapping[str, str] | None = None,
        key: str | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self.key = key if key is not None else base64.b64encode(os.urandom(16)).decode("ascii")
        self._host_header = host_header
        self._resource = resource
        self._extra_headers = dict(extra_headers or {})
        self.max_msg_size = max_msg_size
        self.validate_utf8 = validate_utf8
        self.transport: asyncio.Transport | None = None
        self.response_headers: dict[str, str] = {}
        self._state = _CONNECTING
        self._on_message: Callable[[bytes], None] | None = None
        self._deliver = False
        """True between start() and the end of the connection: checked once per message."""
        self._held: list[bytes] | None = []
        """Data received after the handshake but before start()."""
        self._hs = bytearray()
        self._buf = bytearray()
        """The start of a header or frame that continues in the next read (normally empty)."""
        self._need = 0
        """How many bytes ``_buf`` must hold before parsing it again is worth trying."""
        self._frag: bytearray | None = None
        self._frag_op = 0
        self._handshake: asyncio.Future[None] = self._loop.create_future()
        # connect() may have given up (timeout) before the handshake failed: retrieve the error
        # so an abandoned handshake does not log "exception was never retrieved".
        self._handshake.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._closed: asyncio.Future[CloseInfo] = self._loop.create_future()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.messages = 0
        self.pings = 0

    # ---- state ---------------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """The handshake is done and no close frame was sent or received."""
        return self._state == _OPEN

    @property
    def close_info(self) -> CloseInfo | None:
        """How the connection ended, once it has (None before)."""
        return self._closed.result() if self._closed.done() else None

    async def wait_closed(self) -> CloseInfo:
        """Wait until the connection has ended (close handshake, failure or TCP loss)."""
        return await asyncio.shield(self._closed)

    def start(self, on_message: Callable[[bytes], None]) -> None:
        """Begin delivering messages to ``on_message``; data held since the handshake is parsed
        now, synchronously."""
        if self._held is None:
            raise RuntimeError("already started")
        held, self._held = self._held, None
        self._on_message = on_message
        self._deliver = self._state == _OPEN
        for data in held:
            if self._state == _CLOSED:
                break
            self._frames(data)

    def stop(self) -> None:
        """Deliver nothing more (the socket stays as it is; control frames are still handled)."""
        self._deliver = False

    # ---- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they only behave like one.
        self.transport = cast(asyncio.Transport, transport)
        lines = [
            f"GET {self._resource} HTTP/1.1",
            f"Host: {self._host_header}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self.key}",
            "Sec-WebSocket-Version: 13",
        ]
        lines.extend(f"{name}: {value}" for name, value in self._extra_headers.items())
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def data_received(self, data: bytes) -> None:
        if self._state == _CONNECTING:
            self._handshake_data(data)
        elif self._held is not None:
            self._held.append(data)
        elif self._state != _CLOSED:
            self._frames(data)

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        self._deliver = False
        if not self._handshake.done():
            self._handshake.set_exception(
                HandshakeError(f"connection closed during the handshake: {exc!r}" if exc else
                               "connection closed during the handshake")
            )
        if not self._closed.done():
            where = " mid-frame" if self._buf or self._frag is not None else ""
            error: BaseException = exc if exc is not None else ConnectionResetError(
                f"connection closed without a close frame{where}"
            )
            self._closed.set_result(
                CloseInfo(CLOSE_ABNORMAL, f"connection lost{where}", by_peer=True, error=error)
            )
        self._state = _CLOSED
        if not self._lost.done():
            self._lost.set_result(None)
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("connection lost"))
            waiter.exception()  # retrieved: a drain that nobody awaits must not warn
        self._drain_waiter = None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        self._drain_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ---- handshake -----------------------------------------------------------------------------

    def _handshake_data(self, data: bytes) -> None:
        hs = self._hs
        scan_from = max(0, len(hs) - 3)
        hs += data
        end = hs.find(b"\r\n\r\n", scan_from)
        if end < 0:
            if len(hs) > MAX_HANDSHAKE_BYTES:
                self._handshake_failed(f"no end of the upgrade response within {MAX_HANDSHAKE_BYTES} bytes")
            return
        head = bytes(hs[:end]).decode("latin-1")
        rest = bytes(hs[end + 4 :])
        self._hs = bytearray()
        problem = self._check_response(head)
        if problem is not None:
            self._handshake_failed(problem)
            return
        self._state = _OPEN
        if rest:
            assert self._held is not None
            self._held.append(rest)
        self._handshake.set_result(None)

    def _check_response(self, head: str) -> str | None:
        status_line, _, header_block = head.partition("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            return f"not an HTTP response: {status_line[:100]!r}"
        if parts[1] != "101":
            return f"upgrade refused: {status_line[:200]!r}"
        headers: dict[str, str] = {}
        for line in header_block.split("\r\n"):
            name, sep, value = line.partition(":")
            if not sep:
                return f"malformed header line {line[:100]!r}"
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.response_headers = headers
        if headers.get("upgrade", "").lower() != "websocket":
            return f"Upgrade header is {headers.get('upgrade')!r}, not 'websocket'"
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        if "upgrade" not in tokens:
            return f"Connection header is {headers.get('connection')!r}, without 'upgrade'"
        accept = headers.get("sec-websocket-accept")
        if accept != accept_for(self.key):
            return f"bad Sec-WebSocket-Accept {accept!r}"
        if headers.get("sec-websocket-extensions"):
            return f"server selected extensions we did not offer: {headers['sec-websocket-extensions']!r}"
        if headers.get("sec-websocket-protocol"):
            return f"server selected a subprotocol we did not offer: {headers['sec-websocket-protocol']!r}"
        return None

    def _handshake_failed(self, problem: str) -> None:
        self._state = _CLOSED
        if not self._handshake.done():
            self._handshake.set_exception(HandshakeError(problem))
        if not self._closed.done():
            self._closed.set_result(CloseInfo(CLOSE_PROTOCOL_ERROR, problem, error=HandshakeError(problem)))
        if self.transport is not None:
            self.transport.abort()

    # ---- receiving -----------------------------------------------------------------------------

    def _frames(self, data: bytes) -> None:
        """Everything received after the handshake. The common case (no partial frame pending)
        parses ``data`` in place; a pending partial header or frame is first completed with just
        the bytes it lacks, so a large read never gets copied for the sake of a few bytes."""
        pos = 0
        buf = self._buf
        while buf:
            missing = self._need - len(buf)
            available = len(data) - pos
            if available < missing:
                buf += memoryview(data)[pos:] if pos else data
                return
            buf += memoryview(data)[pos : pos + missing]
            pos += missing
            chunk = bytes(buf)
            buf.clear()
            # ``chunk`` is at most one frame: either it is complete now, or _parse stores it
            # back with a larger ``_need`` (a header read in full tells the payload length).
            self._parse(chunk, 0)
            if self._state == _CLOSED:
                return
        if pos < len(data):
            self._parse(data, pos)

    def _parse(self, data: bytes, pos: int) -> None:
        n = len(data)
        while pos < n:
            avail = n - pos
            if avail < 2:
                self._stash(data, pos, 2)
                return
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if avail < 4:
                    self._stash(data, pos, 4)
                    return
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            else:
                if avail < 10:
                    self._stash(data, pos, 10)
                    return
                length = _U64.unpack_from(data, pos + 2)[0]
                start = pos + 10
            opcode = b0 & 0x0F
            if b1 & 0x80:
                self._fail("masked frame from the server", CLOSE_PROTOCOL_ERROR)
                return
            if b0 & 0x70:
                self._fail("RSV bits set without a negotiated extension", CLOSE_PROTOCOL_ERROR)
                return
            if opcode & 0x8:
                if length > 125 or not b0 & 0x80:
                    self._fail("control frame fragmented or longer than 125 bytes", CLOSE_PROTOCOL_ERROR)
                    return
            elif length > self.max_msg_size or (
                self._frag is not None and len(self._frag) + length > self.max_msg_size
            ):
                # Refused on the header: the payload is never buffered.
                self._fail(f"message larger than max_msg_size={self.max_msg_size}", CLOSE_MESSAGE_TOO_BIG)
                return
            end = start + length
            if end > n:
                self._stash(data, pos, end - pos)
                return
            pos = end
            if opcode == OP_TEXT or opcode == OP_BINARY:
                if self._frag is not None:
                    self._fail("new message inside a fragmented one", CLOSE_PROTOCOL_ERROR)
                    return
                if b0 & 0x80:
                    if not self._deliver:
                        continue
                    message = data[start:end]
                    if opcode == OP_TEXT and self.validate_utf8 and not self._utf8_ok(message):
                        return
                    self.messages += 1
                    try:
                        self._on_message(message)  # type: ignore[misc]
                    except Exception as exc:  # noqa: BLE001 - logged and reported as the close reason
                        self._callback_failed(exc)
                        return
                else:
                    self._frag = bytearray(memoryview(data)[start:end])
                    self._frag_op = opcode
            elif opcode == OP_CONTINUATION:
                frag = self._frag
                if frag is None:
                    self._fail("continuation frame without a message to continue", CLOSE_PROTOCOL_ERROR)
                    return
                frag += memoryview(data)[start:end]
                if b0 & 0x80:
                    self._frag = None
                    if not self._deliver:
                        continue
                    message = bytes(frag)
                    if self._frag_op == OP_TEXT and self.validate_utf8 and not self._utf8_ok(message):
                        return
                    self.messages += 1
                    try:
                        self._on_message(message)  # type: ignore[misc]
                    except Exception as exc:  # noqa: BLE001 - logged and reported as the close reason
                        self._callback_failed(exc)
                        return
            elif opcode == OP_PING:
                self.pings += 1
                if self._state == _OPEN:
                    self._write_frame(OP_PONG, data[start:end])
            elif opcode == OP_PONG:
                pass  # unsolicited pongs are allowed; we send no pings of our own at this level
            elif opcode == OP_CLOSE:
                self._close_frame(data[start:end])
                return
            else:
                self._fail(f"reserved opcode {opcode:#x}", CLOSE_PROTOCOL_ERROR)
                return
            if self._state == _CLOSED:  # the callback closed the connection
                return

    def _stash(self, data: bytes, pos: int, need: int) -> None:
        self._buf += memoryview(data)[pos:] if pos else data
        self._need = need

    def _utf8_ok(self, message: bytes) -> bool:
        try:
            message.decode("utf-8")
        except UnicodeDecodeError:
            self._fail("text message is not valid UTF-8", CLOSE_INVALID_DATA)
            return False
        return True

    def _close_frame(self, payload: bytes) -> None:
        code, reason = CLOSE_NO_STATUS, ""
        if payload:
            if len(payload) < 2:
                self._fail("close frame with a 1-byte payload", CLOSE_PROTOCOL_ERROR)
                return
            code = (payload[0] << 8) | payload[1]
            if code not in _VALID_CLOSE and not 3000 <= code <= 4999:
                self._fail(f"invalid close code {code}", CLOSE_PROTOCOL_ERROR)
                return
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                self._fail("close reason is not valid UTF-8", CLOSE_INVALID_DATA)
                return
        by_peer = self._state == _OPEN
        if by_peer:
            # Echo the code (RFC 6455 5.5.1); a close without a code is answered without one.
            self._write_frame(OP_CLOSE, payload[:2])
        self._finish(CloseInfo(code, reason, by_peer=by_peer))
        # Both close frames have been exchanged: nothing more may come, so our TCP close cannot
        # race unread data (which would turn it into a reset).
        assert self.transport is not None
        self.transport.close()

    def _fail(self, problem: str, code: int) -> None:
        """Fail the connection (RFC 6455 7.1.7): a close frame with ``code`` if none was sent
        yet, then the TCP close; reported as a :class:`ProtocolError`."""
        log.warning("websocket to %s failed: %s (close %d)", self._host_header, problem, code)
        if self._state == _OPEN:
            self._write_frame(OP_CLOSE, close_payload(code, problem))
        self._finish(CloseInfo(code, problem, error=ProtocolError(problem, code)))
        assert self.transport is not None
        self.transport.close()

    def _callback_failed(self, exc: Exception) -> None:
        log.error("websocket to %s: message callback failed", self._host_header, exc_info=exc)
        if self._state == _OPEN:
            self._write_frame(OP_CLOSE, CLOSE_INTERNAL_ERROR.to_bytes(2, "big"))
        self._finish(CloseInfo(CLOSE_INTERNAL_ERROR, f"message callback failed: {exc!r}", error=exc))
        assert self.transport is not None
        self.transport.close()

    def _finish(self, info: CloseInfo) -> None:
        self._state = _CLOSED
        self._deliver = False
        self._buf.clear()
        self._frag = None
        if not self._closed.done():
            self._closed.set_result(info)

    # ---- sending -------------------------------------------------------------------------------

    def _write_frame(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(encode_frame(opcode, payload, mask=os.urandom(4)))

    def _check_sendable(self) -> None:
        if self._state != _OPEN or self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("websocket is not open")

    def send_text(self, text: str | bytes) -> None:
        """Queue one text message on the transport (non-blocking; :meth:`drain` for flow
        control). Raises ``ConnectionResetError`` once the connection is closing."""
        self._check_sendable()
        self._write_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text)

    def send_binary(self, data: bytes) -> None:
        self._check_sendable()
        self._write_frame(OP_BINARY, data)

    def ping(self, payload: bytes = b"") -> None:
        """A protocol-level ping (Bybit wants its JSON ping instead; this is for other peers)."""
        self._check_sendable()
        if len(payload) > 125:
            raise ValueError("ping payload longer than 125 bytes")
        self._write_frame(OP_PING, payload)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        if self._state == _CLOSED and self._lost.done():
            raise ConnectionResetError("connection lost")
        if not self._write_paused:
            return
        waiter = self._drain_waiter
        if waiter is None or waiter.done():
            waiter = self._drain_waiter = self._loop.create_future()
        await asyncio.shield(waiter)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "", timeout: float = 2.0) -> CloseInfo:
        """Close cleanly: stop delivering, send a close frame, wait up to ``timeout`` for the
        peer's close frame (then TCP closes) and abort the socket if the peer does not answer.
        Returns how the connection ended; safe to call more than once."""
        self._deliver = False
        transport = self.transport
        if self._state == _OPEN:
            self._state = _CLOSING
            assert transport is not None
            self._write_frame(OP_CLOSE, close_payload(code, reason))
        elif self._state == _CONNECTING and transport is not None:
            transport.abort()
        if transport is not None and not self._lost.done():
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._lost)
            except TimeoutError:
                # A peer that neither answers nor reads: do not wait for it. No close frame came
                # back, so the close code is 1006 (RFC 6455 7.1.5).
                if not self._closed.done():
                    problem = f"no close frame from the peer within {timeout}s"
                    self._closed.set_result(CloseInfo(CLOSE_ABNORMAL, problem, error=TimeoutError(problem)))
                transport.abort()
                await asyncio.shield(self._lost)  # abort reports connection_lost on the next turn
        if not self._closed.done():
            self._closed.set_result(CloseInfo(code, reason))
        return self._closed.result()

    def abort(self) -> None:
        """Drop the TCP connection now, without a close frame."""
        self._deliver = False
        if self.transport is not None:
            self.transport.abort()


def _target(url: str) -> tuple[bool, str, int, str, str]:
    """``(tls, host, port, Host header, resource)`` of a ws:// or wss:// URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL: {url!r}")
    tls = scheme == "wss"
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    port = parts.port or (443 if tls else 80)
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == (443 if tls else 80) else f"{shown}:{port}"
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return tls, host, port, host_header, resource


async def connect(
    url: str,
    *,
    max_msg_size: int = 64 * 1024 * 1024,
    ssl: ssl_module.SSLContext | None = None,
    validate_utf8: bool = False,
    extra_headers: Mapping[str, str] | None = None,
) -> WebSocketClient:
    """Open ``url`` (``ws://`` or ``wss://``) and complete the upgrade handshake.

    ``ssl``: the context for ``wss://`` (default: :func:`default_ssl_context`, i.e. the system
    CAs, certificate and host name verified). Bound the call with ``asyncio.timeout``: on
    cancellation the socket is closed. Raises ``OSError`` (including :class:`HandshakeError`).
    Call :meth:`WebSocketClient.start` to begin receiving."""
    tls, host, port, host_header, resource = _target(url)
    loop = asyncio.get_running_loop()
    headers = {"User-Agent": "bybit-bot-feed"}
    headers.update(extra_headers or {})
    context = (ssl if ssl is not None else default_ssl_context()) if tls else None
    _, protocol = await loop.create_connection(
        lambda: WebSocketClient(
            host_header,
            resource,
            max_msg_size=max_msg_size,
            validate_utf8=validate_utf8,
            extra_headers=headers,
            loop=loop,
        ),
        host,
        port,
        ssl=context,
        server_hostname=host if context is not None else None,
    )
    try:
        await protocol._handshake
    except BaseException:
        protocol.abort()
        raise
    return protocol


__all__ = [
    "CloseInfo",
    "HandshakeError",
    "ProtocolError",
    "WebSocketClient",
    "WebSocketError",
    "accept_for",
    "close_payload",
    "connect",
    "default_ssl_context",
    "encode_frame",
    "mask_payload",
]
