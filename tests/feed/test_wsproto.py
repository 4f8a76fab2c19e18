"""The native WebSocket client (``pysrc.feed.wsproto``).

Two levels: against real servers on loopback (aiohttp's server for a conforming peer, a raw
asyncio server for byte streams aiohttp would never send, TLS with a throw-away certificate),
and the protocol object fed directly with recorded byte streams, split at every possible place
(byte by byte, and at random points with hypothesis), which must not change what is delivered.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import ipaddress
import itertools
import os
import ssl
import struct
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysrc.feed import wsproto
from pysrc.feed.connection import Transport
from pysrc.feed.wsproto import (
    CloseInfo,
    HandshakeError,
    ProtocolError,
    WebSocketClient,
    accept_for,
    encode_frame,
    mask_payload,
)

# ---- helpers ---------------------------------------------------------------------------------


def run(coro: Awaitable[Any], timeout: float = 20.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return encode_frame(opcode, payload, fin=fin)


def close_payload(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode()


def parse_client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Decode frames written by the client; every one of them must be masked."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b1 & 0x80, "client frames must be masked"
        n = b1 & 0x7F
        pos += 2
        if n == 126:
            n = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif n == 127:
            n = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        key = data[pos : pos + 4]
        pos += 4
        out.append((b0 & 0x0F, mask_payload(key, data[pos : pos + n])))
        pos += n
    return out


class FakeTransport:
    """What the protocol needs of a transport, recording what it writes."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def response_101(key: str, extra: str = "") -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_for(key)}\r\n{extra}\r\n"
    ).encode()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


class Opened:
    """A protocol past its handshake on a fake transport, delivering into ``messages``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        self.proto = WebSocketClient("example.test", "/ws", loop=loop, **kwargs)
        self.transport = FakeTransport()
        self.proto.connection_made(self.transport)  # type: ignore[arg-type]
        self.request = bytes(self.transport.written)
        self.proto.data_received(response_101(self.proto.key))
        self.messages: list[bytes] = []
        self.proto.start(self.messages.append)
        self.transport.written.clear()

    def feed(self, stream: bytes, cuts: list[int] | None = None) -> None:
        """``stream`` in pieces cut at ``cuts`` (sorted offsets), as separate socket reads."""
        points = [0, *(cuts or []), len(stream)]
        for a, b in itertools.pairwise(points):
            if b > a:
                self.proto.data_received(stream[a:b])

    def sent(self) -> list[tuple[int, bytes]]:
        return parse_client_frames(bytes(self.transport.written))

    @property
    def info(self) -> CloseInfo | None:
        return self.proto.close_info


# A recorded server stream with every frame kind, and what it must produce.
def recorded_stream() -> tuple[bytes, list[bytes], list[bytes]]:
    """(stream, messages, pong payloads)."""
    parts: list[bytes] = []
    messages: list[bytes] = []
    pongs: list[bytes] = []
    for i in range(20):
        m = b'{"topic":"orderbook.50.BTCUSDT","n":%d}' % i
        parts.append(server_frame(wsproto.OP_TEXT, m))
        messages.append(m)
    parts.append(server_frame(wsproto.OP_TEXT, b""))
    messages.append(b"")
    big16 = os.urandom(300)
    parts.append(server_frame(wsproto.OP_BINARY, big16))
    messages.append(big16)
    big64 = bytes(range(256)) * 300  # 76,800 bytes: a 64-bit length
    parts.append(server_frame(wsproto.OP_TEXT, big64))
    messages.append(big64)
    parts.append(server_frame(wsproto.OP_PING, b"are you there"))
    pongs.append(b"are you there")
    # a fragmented message with a ping and a pong between its fragments
    parts.append(server_frame(wsproto.OP_TEXT, b"frag-1,", fin=False))
    parts.append(server_frame(wsproto.OP_PING, b""))
    pongs.append(b"")
    parts.append(server_frame(wsproto.OP_CONTINUATION, b"frag-2,", fin=False))
    parts.append(server_frame(wsproto.OP_PONG, b"unsolicited"))
    parts.append(server_frame(wsproto.OP_CONTINUATION, b"frag-3"))
    messages.append(b"frag-1,frag-2,frag-3")
    parts.append(server_frame(wsproto.OP_TEXT, b"x" * 126))  # the first 16-bit length
    messages.append(b"x" * 126)
    parts.append(server_frame(wsproto.OP_TEXT, b"y" * 65535))  # the last 16-bit length
    messages.append(b"y" * 65535)
    parts.append(server_frame(wsproto.OP_TEXT, b"z" * 65536))  # the first 64-bit length
    messages.append(b"z" * 65536)
    parts.append(server_frame(wsproto.OP_TEXT, b"last"))
    messages.append(b"last")
    return b"".join(parts), messages, pongs


RECORDED = recorded_stream()


def pongs_of(opened: Opened) -> list[bytes]:
    return [p for op, p in opened.sent() if op == wsproto.OP_PONG]


# ---- unit: handshake request and response -----------------------------------------------------


def test_request_offers_no_extension_and_a_fresh_key(loop: asyncio.AbstractEventLoop) -> None:
    a, b = Opened(loop), Opened(loop)
    head = a.request.decode()
    assert head.startswith("GET /ws HTTP/1.1\r\n") and head.endswith("\r\n\r\n")
    lines = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:] if line}
    assert lines["host"] == "example.test"
    assert lines["upgrade"] == "websocket" and lines["connection"] == "Upgrade"
    assert lines["sec-websocket-version"] == "13"
    assert len(base64.b64decode(lines["sec-websocket-key"])) == 16
    assert "sec-websocket-extensions" not in lines and "sec-websocket-protocol" not in lines
    assert a.proto.key != b.proto.key


def test_accept_matches_the_rfc_example() -> None:
    # RFC 6455 section 1.3
    assert accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    "response",
    [
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: {bad}\r\n\r\n"),
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: {good}\r\n\r\n"),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
         "Sec-WebSocket-Accept: {good}\r\n\r\n"),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: {good}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"),
        "SSH-2.0-OpenSSH\r\n\r\n",
    ],
    ids=["bad-accept", "not-101", "upgrade-not-websocket", "no-connection-upgrade", "unoffered-extension", "not-http"],
)
def test_bad_handshake_responses_are_refused(loop: asyncio.AbstractEventLoop, response: str) -> None:
    proto = WebSocketClient("example.test", "/", loop=loop)
    transport = FakeTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    bad = base64.b64encode(hashlib.sha1(b"something else").digest()).decode()
    proto.data_received(response.format(bad=bad, good=accept_for(proto.key)).encode())
    assert transport.aborted
    assert proto._handshake.done() and isinstance(proto._handshake.exception(), HandshakeError)
    assert not proto.open


def test_handshake_split_byte_by_byte_and_frames_in_the_same_read(loop: asyncio.AbstractEventLoop) -> None:
    proto = WebSocketClient("example.test", "/", loop=loop)
    proto.connection_made(FakeTransport())  # type: ignore[arg-type]
    stream = response_101(proto.key, "Server: test\r\nDate: now\r\n") + server_frame(wsproto.OP_TEXT, b"early")
    got: list[bytes] = []
    for i in range(len(stream)):
        proto.data_received(stream[i : i + 1])
    assert proto.open and proto.response_headers["server"] == "test"
    assert got == []  # held until start(): the owner prepares before the first frame
    proto.start(got.append)
    assert got == [b"early"]


# ---- unit: frames -----------------------------------------------------------------------------


def test_recorded_stream_in_one_read(loop: asyncio.AbstractEventLoop) -> None:
    stream, messages, pongs = RECORDED
    o = Opened(loop)
    o.feed(stream)
    assert o.messages == messages
    assert pongs_of(o) == pongs
    assert o.info is None and o.proto.open


def test_many_frames_in_one_read_are_delivered_synchronously(loop: asyncio.AbstractEventLoop) -> None:
    frames = [b'{"u":%d}' % i for i in range(2000)]
    o = Opened(loop)
    o.proto.data_received(b"".join(server_frame(wsproto.OP_TEXT, f) for f in frames))
    # no await in between: every message of the read went to the callback inside data_received
    assert o.messages == frames
    assert all(type(m) is bytes for m in o.messages)


def test_recorded_stream_byte_by_byte(loop: asyncio.AbstractEventLoop) -> None:
    stream, messages, pongs = RECORDED
    o = Opened(loop)
    o.feed(stream, list(range(1, len(stream))))
    assert o.messages == messages
    assert pongs_of(o) == pongs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=1, max_value=len(RECORDED[0]) - 1), max_size=60))
def test_recorded_stream_split_anywhere(cuts: list[int]) -> None:
    stream, messages, pongs = RECORDED
    loop = asyncio.new_event_loop()
    try:
        o = Opened(loop)
        o.feed(stream, sorted(set(cuts)))
        assert o.messages == messages
        assert pongs_of(o) == pongs
        assert o.info is None
    finally:
        loop.close()


@st.composite
def frame_streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """Random messages, some fragmented, with control frames between fragments."""
    parts: list[bytes] = []
    expected: list[bytes] = []
    for _ in range(draw(st.integers(1, 12))):
        size = draw(st.sampled_from([0, 1, 125, 126, 127, 300, 65535, 65536, 70000]))
        body = bytes([draw(st.integers(0, 255))]) * size
        pieces = draw(st.integers(1, 4))
        opcode = draw(st.sampled_from([wsproto.OP_TEXT, wsproto.OP_BINARY]))
        step = max(1, size // pieces)
        chunks = [body[i : i + step] for i in range(0, size, step)] or [b""]
        for n, chunk in enumerate(chunks):
            parts.append(server_frame(opcode if n == 0 else wsproto.OP_CONTINUATION, chunk, fin=n == len(chunks) - 1))
            if n < len(chunks) - 1 and draw(st.booleans()):
                parts.append(server_frame(wsproto.OP_PONG, b"p"))
        expected.append(body)
    return b"".join(parts), expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frame_streams(), st.data())
def test_random_streams_split_anywhere(case: tuple[bytes, list[bytes]], data: st.DataObject) -> None:
    stream, expected = case
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30))
    loop = asyncio.new_event_loop()
    try:
        o = Opened(loop)
        o.feed(stream, sorted(set(cuts)))
        assert o.messages == expected
    finally:
        loop.close()


def test_lengths_at_the_16_and_64_bit_boundaries_are_encoded_as_rfc_says() -> None:
    assert server_frame(wsproto.OP_TEXT, b"a" * 125)[:2] == bytes((0x81, 125))
    assert server_frame(wsproto.OP_TEXT, b"a" * 126)[:4] == bytes((0x81, 126)) + struct.pack("!H", 126)
    assert server_frame(wsproto.OP_TEXT, b"a" * 65536)[:10] == bytes((0x81, 127)) + struct.pack("!Q", 65536)


def test_ping_is_answered_with_a_masked_pong_of_the_same_payload(loop: asyncio.AbstractEventLoop) -> None:
    o = Opened(loop)
    o.feed(server_frame(wsproto.OP_PING, b"hello"))
    raw = bytes(o.transport.written)
    assert raw[0] == 0x80 | wsproto.OP_PONG and raw[1] & 0x80  # final, masked
    assert o.sent() == [(wsproto.OP_PONG, b"hello")]
    assert o.messages == []


def test_send_text_is_masked_with_a_fresh_key(loop: asyncio.AbstractEventLoop) -> None:
    o = Opened(loop)
    o.proto.send_text('{"op":"ping"}')
    o.proto.send_text(b"x" * 70000)
    raw = bytes(o.transport.written)
    assert o.sent() == [(wsproto.OP_TEXT, b'{"op":"ping"}'), (wsproto.OP_TEXT, b"x" * 70000)]
    assert raw[6:19] != b'{"op":"ping"}'  # the payload on the wire is masked


def test_mask_payload_round_trips() -> None:
    key = b"\x01\x02\x03\x04"
    for n in (0, 1, 3, 4, 5, 1000):
        data = os.urandom(n)
        masked = mask_payload(key, data)
        assert len(masked) == n and mask_payload(key, masked) == data
        assert masked == bytes(b ^ key[i % 4] for i, b in enumerate(data))


def test_close_from_the_peer_is_echoed_and_reported(loop: asyncio.AbstractEventLoop) -> None:
    o = Opened(loop)
    o.feed(server_frame(wsproto.OP_TEXT, b"a") + server_frame(wsproto.OP_CLOSE, close_payload(4001, "bye"))
           + server_frame(wsproto.OP_TEXT, b"after close"))
    assert o.messages == [b"a"]
    assert o.info == CloseInfo(4001, "bye", by_peer=True)
    assert o.sent() == [(wsproto.OP_CLOSE, close_payload(4001))]
    assert o.transport.closed and not o.proto.open
    with pytest.raises(ConnectionResetError):
        o.proto.send_text("too late")


def test_close_reason_is_cut_to_a_control_frame_on_a_character_boundary() -> None:
    payload = wsproto.close_payload(1001, "é" * 100)  # 200 bytes of reason
    assert len(payload) <= 125 and payload[:2] == (1001).to_bytes(2, "big")
    assert payload[2:].decode("utf-8") == "é" * 61


def test_close_without_a_code_is_1005_and_answered_without_one(loop: asyncio.AbstractEventLoop) -> None:
    o = Opened(loop)
    o.feed(server_frame(wsproto.OP_CLOSE, b""))
    assert o.info == CloseInfo(wsproto.CLOSE_NO_STATUS, "", by_peer=True)
    assert o.sent() == [(wsproto.OP_CLOSE, b"")]


@pytest.mark.parametrize(
    ("stream", "code"),
    [
        (bytes((0x81, 0x80 | 1)) + b"\x00\x00\x00\x00a", wsproto.CLOSE_PROTOCOL_ERROR),  # masked
        (bytes((0xC1, 1)) + b"a", wsproto.CLOSE_PROTOCOL_ERROR),  # RSV1 without permessage-deflate
        (bytes((0x83, 1)) + b"a", wsproto.CLOSE_PROTOCOL_ERROR),  # reserved data opcode
        (bytes((0x8B, 0)), wsproto.CLOSE_PROTOCOL_ERROR),  # reserved control opcode
        (server_frame(wsproto.OP_CONTINUATION, b"a"), wsproto.CLOSE_PROTOCOL_ERROR),
        (server_frame(wsproto.OP_TEXT, b"a", fin=False) + server_frame(wsproto.OP_TEXT, b"b"),
         wsproto.CLOSE_PROTOCOL_ERROR),
        (server_frame(wsproto.OP_PING, b"a", fin=False), wsproto.CLOSE_PROTOCOL_ERROR),
        (bytes((0x89, 126)) + struct.pack("!H", 126) + b"a" * 126, wsproto.CLOSE_PROTOCOL_ERROR),
        (server_frame(wsproto.OP_CLOSE, b"\x03"), wsproto.CLOSE_PROTOCOL_ERROR),
        (server_frame(wsproto.OP_CLOSE, close_payload(1005)), wsproto.CLOSE_PROTOCOL_ERROR),
        (server_frame(wsproto.OP_CLOSE, close_payload(999)), wsproto.CLOSE_PROTOCOL_ERROR),
        (server_frame(wsproto.OP_CLOSE, b"\x03\xe8\xff"), wsproto.CLOSE_INVALID_DATA),
    ],
    ids=["masked", "rsv", "opcode-3", "opcode-b", "lone-continuation", "message-in-fragments",
         "fragmented-ping", "long-ping", "close-1-byte", "close-1005", "close-999", "close-bad-utf8"],
)
def test_protocol_errors_fail_the_connection(loop: asyncio.AbstractEventLoop, stream: bytes, code: int) -> None:
    o = Opened(loop)
    o.feed(server_frame(wsproto.OP_TEXT, b"before") + stream + server_frame(wsproto.OP_TEXT, b"after"))
    assert o.messages == [b"before"]
    info = o.info
    assert info is not None and info.code == code and isinstance(info.error, ProtocolError)
    sent = o.sent()
    assert sent[-1][0] == wsproto.OP_CLOSE and int.from_bytes(sent[-1][1][:2], "big") == code
    assert o.transport.closed


def test_utf8_validation_when_asked(loop: asyncio.AbstractEventLoop) -> None:
    lax = Opened(loop)
    lax.feed(server_frame(wsproto.OP_TEXT, b"\xff\xfe"))
    assert lax.messages == [b"\xff\xfe"]  # off by default: the consumer's parser refuses it
    strict = Opened(loop, validate_utf8=True)
    strict.feed(server_frame(wsproto.OP_TEXT, b"ok \xc3\xa9") + server_frame(wsproto.OP_TEXT, b"\xff\xfe"))
    assert strict.messages == ["ok é".encode()]
    assert strict.info is not None and strict.info.code == wsproto.CLOSE_INVALID_DATA


def test_max_size_is_enforced_on_the_header_before_buffering(loop: asyncio.AbstractEventLoop) -> None:
    o = Opened(loop, max_msg_size=1000)
    o.feed(server_frame(wsproto.OP_TEXT, b"a" * 1000))
    assert o.messages == [b"a" * 1000]  # exactly the limit is fine
    # the header of a 1 TiB frame alone is enough to refuse it; nothing is buffered for it
    o.feed(bytes((0x81, 127)) + struct.pack("!Q", 1 << 40))
    assert o.info is not None and o.info.code == wsproto.CLOSE_MESSAGE_TOO_BIG
    assert isinstance(o.info.error, ProtocolError)
    assert o.sent()[-1] == (wsproto.OP_CLOSE, close_payload(1009)[:2] + o.sent()[-1][1][2:])
    assert len(o.proto._buf) == 0


def test_max_size_counts_every_fragment(loop: asyncio.AbstractEventLoop) -> None:
    o = Opened(loop, max_msg_size=1000)
    o.feed(server_frame(wsproto.OP_TEXT, b"a" * 600, fin=False) + server_frame(wsproto.OP_CONTINUATION, b"b" * 600))
    assert o.messages == []
    assert o.info is not None and o.info.code == wsproto.CLOSE_MESSAGE_TOO_BIG


def test_connection_lost_mid_frame(loop: asyncio.AbstractEventLoop) -> None:
    o = Opened(loop)
    whole = server_frame(wsproto.OP_TEXT, b"complete")
    o.feed(whole + server_frame(wsproto.OP_TEXT, b"z" * 1000)[:500])
    o.proto.connection_lost(None)
    assert o.messages == [b"complete"]
    info = o.info
    assert info is not None and info.code == wsproto.CLOSE_ABNORMAL and "mid-frame" in info.reason
    assert isinstance(info.error, ConnectionResetError)


def test_callback_errors_fail_the_connection_with_1011(loop: asyncio.AbstractEventLoop) -> None:
    o = Opened(loop)
    seen: list[bytes] = []

    def callback(data: bytes) -> None:
        seen.append(data)
        raise ValueError("bug")

    o.proto._on_message = callback
    o.feed(server_frame(wsproto.OP_TEXT, b"1") + server_frame(wsproto.OP_TEXT, b"2"))
    assert seen == [b"1"]
    assert o.info is not None and o.info.code == wsproto.CLOSE_INTERNAL_ERROR
    assert isinstance(o.info.error, ValueError)


def test_stop_ends_delivery_but_not_the_control_frames(loop: asyncio.AbstractEventLoop) -> None:
    o = Opened(loop)
    o.feed(server_frame(wsproto.OP_TEXT, b"1"))
    o.proto.stop()
    o.feed(server_frame(wsproto.OP_TEXT, b"2") + server_frame(wsproto.OP_PING, b"p"))
    assert o.messages == [b"1"]
    assert o.sent() == [(wsproto.OP_PONG, b"p")]


def test_url_targets() -> None:
    assert wsproto._target("wss://stream.bybit.com/v5/public/linear") == (
        True, "stream.bybit.com", 443, "stream.bybit.com", "/v5/public/linear")
    assert wsproto._target("ws://127.0.0.1:8080/a?b=1") == (False, "127.0.0.1", 8080, "127.0.0.1:8080", "/a?b=1")
    assert wsproto._target("ws://[::1]:9/") == (False, "::1", 9, "[::1]:9", "/")
    with pytest.raises(ValueError):
        wsproto._target("http://example.com/")


# ---- over loopback ----------------------------------------------------------------------------


async def aiohttp_server(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                         ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def test_against_aiohttp_server_echo_ping_large_and_close() -> None:
    seen: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        seen["extensions"] = request.headers.get("Sec-WebSocket-Extensions")
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        await ws.ping(b"srv-ping")
        msg = await ws.receive()
        seen["pong"] = (msg.type, msg.data)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                if msg.data == "large":
                    await ws.send_bytes(b"\x01" * 70_000)  # 64-bit length
                    await ws.send_str("m" * 60_000)  # 16-bit length
                    await ws.send_bytes(os.urandom(16) * 65_536)  # 1 MiB
                else:
                    await ws.send_str("echo:" + msg.data)
        seen["close_code"] = ws.close_code
        return ws

    async def main() -> None:
        runner, port = await aiohttp_server(handler)
        try:
            got: list[bytes] = []
            ws = await wsproto.connect(f"ws://127.0.0.1:{port}/ws")
            ws.start(got.append)
            ws.send_text("hello")
            ws.send_text("large")
            await ws.drain()
            deadline = asyncio.get_running_loop().time() + 10
            while len(got) < 4 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            assert got[0] == b"echo:hello"
            assert got[1] == b"\x01" * 70_000 and got[2] == b"m" * 60_000 and len(got[3]) == 1 << 20
            assert seen["pong"] == (WSMsgType.PONG, b"srv-ping")
            assert seen["extensions"] is None
            info = await ws.close(code=1000, reason="done")
            assert info.code == 1000 and not info.by_peer and info.error is None
            await asyncio.sleep(0.05)
            assert seen["close_code"] == 1000
        finally:
            await runner.cleanup()

    run(main())


def test_server_close_code_reaches_the_owner() -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("bye soon")
        await ws.close(code=4000, message=b"maintenance")
        return ws

    async def main() -> None:
        runner, port = await aiohttp_server(handler)
        try:
            got: list[bytes] = []
            ws = await wsproto.connect(f"ws://127.0.0.1:{port}/ws")
            ws.start(got.append)
            info = await asyncio.wait_for(ws.wait_closed(), 5)
            assert got == [b"bye soon"]
            assert info == CloseInfo(4000, "maintenance", by_peer=True)
        finally:
            await runner.cleanup()

    run(main())


def test_handshake_refused_by_a_404_and_by_a_bad_accept() -> None:
    async def handle_bad_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    async def main() -> None:
        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            return ws

        runner, port = await aiohttp_server(handler)
        try:
            with pytest.raises(HandshakeError, match="404"):
                await wsproto.connect(f"ws://127.0.0.1:{port}/nothing-here")
        finally:
            await runner.cleanup()
        server = await asyncio.start_server(handle_bad_accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(HandshakeError, match="Sec-WebSocket-Accept"):
                await wsproto.connect(f"ws://127.0.0.1:{port}/ws")
        finally:
            server.close()

    run(main())


async def raw_server(script: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> tuple[asyncio.Server, int]:
    """A server that completes the handshake by hand, then runs ``script`` (any bytes it likes)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                   if line.lower().startswith("sec-websocket-key:"))
        writer.write(response_101(key))
        await script(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_many_frames_in_one_tcp_write_and_a_lost_connection_mid_frame() -> None:
    frames = [b'{"topic":"orderbook.50.S%d","u":%d}' % (i % 10, i) for i in range(1000)]

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        writer.write(b"".join(server_frame(wsproto.OP_TEXT, f) for f in frames)
                     + server_frame(wsproto.OP_TEXT, b"q" * 5000)[:2000])
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.transport.abort()  # TCP gone in the middle of the last frame

    async def main() -> None:
        server, port = await raw_server(script)
        try:
            reads = 0
            got: list[bytes] = []
            ws = await wsproto.connect(f"ws://127.0.0.1:{port}/ws")
            original = ws.data_received

            def counting(data: bytes) -> None:
                nonlocal reads
                reads += 1
                original(data)

            ws.data_received = counting  # type: ignore[method-assign]
            ws.start(got.append)
            info = await asyncio.wait_for(ws.wait_closed(), 5)
            assert got == frames
            assert reads < len(frames) / 10  # whole bursts per read, not a read per frame
            assert info.code == wsproto.CLOSE_ABNORMAL and "mid-frame" in info.reason
            assert info.error is not None
        finally:
            server.close()

    run(main())


def test_client_close_against_a_silent_peer_is_bounded() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)  # never answers the close frame

    async def main() -> None:
        server, port = await raw_server(script)
        try:
            ws = await wsproto.connect(f"ws://127.0.0.1:{port}/ws")
            ws.start(lambda data: None)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            info = await ws.close(timeout=0.3)
            assert loop.time() - t0 < 2.0
            assert info.code == wsproto.CLOSE_ABNORMAL and isinstance(info.error, TimeoutError)
            assert not ws.open
            assert ws.transport is not None and ws.transport.is_closing()
        finally:
            server.close()

    run(main())


def test_connect_timeout_closes_the_socket() -> None:
    eof = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the upgrade request, never answered
        await reader.read()  # returns at EOF: the client gave up and closed
        eof.set()

    async def main() -> None:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await wsproto.connect(f"ws://127.0.0.1:{port}/ws")
            await asyncio.wait_for(eof.wait(), 2)
        finally:
            server.close()

    run(main())


# ---- TLS ----------------------------------------------------------------------------------------


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_wss_with_certificate_verification(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("over tls")
        async for msg in ws:
            await ws.send_str("echo:" + msg.data)
        return ws

    async def main() -> None:
        runner, port = await aiohttp_server(handler, server_ctx)
        try:
            trusting = ssl.create_default_context(cafile=str(cert))
            got: list[bytes] = []
            ws = await wsproto.connect(f"wss://localhost:{port}/ws", ssl=trusting)
            ws.start(got.append)
            ws.send_text("x")
            deadline = asyncio.get_running_loop().time() + 5
            while len(got) < 2 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            assert got == [b"over tls", b"echo:x"]
            await ws.close()
            # the default context (system CAs) must refuse the self-signed certificate
            with pytest.raises(ssl.SSLCertVerificationError):
                await wsproto.connect(f"wss://localhost:{port}/ws")
        finally:
            await runner.cleanup()

    run(main())


# ---- the feed on both transports ------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["native", "aiohttp"])
def test_feed_on_each_transport(
    transport: Transport, scripted_server: Any, book_msg: Callable[..., bytes], until: Callable[..., Awaitable[None]]
) -> None:
    from pysrc.book import BookEngine
    from pysrc.feed import PublicFeed

    async def main() -> None:
        server = scripted_server()
        await server.start()
        engine = BookEngine("bybit")
        feed = PublicFeed(server.url, engine, symbols=["AAAUSDT", "BBBUSDT"], transport=transport,
                          ping_interval=0.2, tick=0.05)
        try:
            await feed.start()
            await until(lambda: all(s == "active" for s in feed.subscriptions().values()), 5, "acks")
            await server.push("orderbook.50.AAAUSDT", book_msg("AAAUSDT", "snapshot", 1, [["1", "1"]], [["2", "1"]]))
            await server.push("orderbook.50.AAAUSDT", book_msg("AAAUSDT", "delta", 2, [["1", "3"]], []))
            await until(lambda: feed.is_usable("AAAUSDT") and engine.update_id("AAAUSDT") == 2, 5, "book")
            await until(lambda: feed.connections[0].metrics.pongs >= 1, 5, "a pong")
            m = feed.connections[0].metrics
            assert m.messages >= 3 and m.bytes > 0
            await server.drop_all()
            await until(lambda: feed.connections[0].metrics.connects >= 2, 5, "reconnect")
            assert "closed by peer" in (feed.connections[0].metrics.last_disconnect_reason or "")
        finally:
            await feed.close()
            await server.stop()

    run(main())


def test_unknown_transport_is_refused() -> None:
    from pysrc.book import BookEngine
    from pysrc.feed import PublicFeed

    with pytest.raises(ValueError, match="transport"):
        PublicFeed("ws://127.0.0.1:1/", BookEngine("bybit"), symbols=["A"], transport="curl")  # type: ignore[arg-type]
