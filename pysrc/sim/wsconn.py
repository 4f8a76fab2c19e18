"""A WebSocket connection as the publishers see it: pre-framed bytes written straight to the
socket.

aiohttp's ``send_str`` is a coroutine per message per subscriber; the publishers instead build
one complete text frame per topic push (server frames are never masked) and write those same
bytes to every subscriber's transport. Writes are synchronous, so a push never yields to the
event loop half-way. A client that stops reading is cut off once its socket buffer passes
:data:`MAX_BUFFER` rather than stalling everybody else (the real exchange drops slow consumers
too).
"""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

MAX_BUFFER = 16 * 1024 * 1024

_PACK2 = struct.Struct("!BBH").pack
_PACK8 = struct.Struct("!BBQ").pack


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented WebSocket text frame carrying ``payload``."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return _PACK2(0x81, 126, n) + payload
    return _PACK8(0x81, 127, n) + payload


def frame_of(obj: Any) -> bytes:
    return text_frame(orjson.dumps(obj))


class WsConn:
    """One accepted WebSocket (public or private)."""

    __slots__ = (
        "authed",
        "closed",
        "conn_id",
        "created",
        "kind",
        "sent",
        "stalled_until",
        "topics",
        "transport",
        "uid",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport, kind: str) -> None:
        self.ws = ws
        self.transport = transport
        self.kind = kind
        self.conn_id = str(uuid.uuid4())
        self.topics: set[str] = set()
        self.stalled_until = 0.0
        self.closed = False
        self.sent = 0
        self.authed = False
        self.uid = 0
        self.created = time.monotonic()

    def stalled(self) -> bool:
        return self.stalled_until > 0.0 and time.monotonic() < self.stalled_until

    def send(self, frame: bytes) -> bool:
        """Write one frame now; False when the connection is gone, stalled or was cut off."""
        if self.closed:
            return False
        t = self.transport
        if t.is_closing():
            self.closed = True
            return False
        if self.stalled_until and self.stalled():
            return False
        if t.get_write_buffer_size() > MAX_BUFFER:
            self.drop()
            return False
        t.write(frame)
        self.sent += 1
        return True

    def send_obj(self, obj: Any) -> bool:
        return self.send(frame_of(obj))

    def drop(self) -> None:
        """Cut the TCP connection without a close frame (what a network failure looks like)."""
        self.closed = True
        self.transport.abort()  # a no-op on a transport that is already closed
