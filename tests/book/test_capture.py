"""The cryptofeed capture reader on the real recordings (OKX.ws.1.0, KRAKEN.ws.50.0,
BINANCE_FUTURES.ws.1.0, BINANCE_FUTURES.http.0.0 from ../shared/realdata) and on small lines."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from pysrc.book.capture import (
    CaptureEvent,
    CaptureFormatError,
    binance_snapshot_symbol,
    merge_by_time,
    parse_capture_line,
    read_capture,
)

BINANCE_SNAPSHOT_SYMBOLS = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]


def kinds(events: list[CaptureEvent]) -> Counter[str]:
    return Counter(event.kind for event in events)


def test_okx_capture(realdata: Path) -> None:
    """OKX.ws.1.0: one connect, three subscribe messages sent, 410 received frames."""
    events = list(read_capture(realdata / "OKX.ws.1.0"))
    assert kinds(events) == {"connect": 1, "sent": 3, "recv": 410}
    first = events[0]
    assert first == CaptureEvent(
        1652459224.5300605, "connect", "wss://ws.okx.com:8443/ws/v5/public", ""
    )
    sent = [e for e in events if e.kind == "sent"]
    assert all(e.url == "wss://ws.okx.com:8443/ws/v5/public" for e in sent)
    assert orjson.loads(sent[0].payload)["op"] == "subscribe"
    received = [e for e in events if e.kind == "recv"]
    assert all(e.url is None for e in received)
    bodies = [orjson.loads(e.payload) for e in received]  # every payload is exact JSON text
    books = [b for b in bodies if b.get("arg", {}).get("channel") == "books" and "data" in b]
    assert len(books) == 290
    assert Counter(b["action"] for b in books) == {"snapshot": 3, "update": 287}


def test_kraken_capture_skips_trailing_empty_lines(realdata: Path) -> None:
    """KRAKEN.ws.50.0: 4,325 lines, the last two empty."""
    path = realdata / "KRAKEN.ws.50.0"
    assert path.read_text().endswith("\n\n")
    events = list(read_capture(path))
    assert kinds(events) == {"connect": 1, "sent": 1, "recv": 4321}
    assert events[0].url == "wss://ws.kraken.com"
    assert events[-1].payload.endswith('"book-1000","WAVES/EUR"]')
    snapshots = [e for e in events if e.kind == "recv" and '"as":' in e.payload]
    assert len(snapshots) == 10


def test_binance_ws_capture(realdata: Path) -> None:
    """BINANCE_FUTURES.ws.1.0: one connect (a combined-stream URL) then 1,535 frames, 764 of
    them depth updates."""
    events = list(read_capture(realdata / "BINANCE_FUTURES.ws.1.0"))
    assert kinds(events) == {"connect": 1, "recv": 1535}
    assert events[0].url is not None and events[0].url.startswith(
        "wss://fstream.binance.com/stream?"
    )
    depth = [e for e in events[1:] if orjson.loads(e.payload)["data"]["e"] == "depthUpdate"]
    assert len(depth) == 764


def test_binance_http_capture(realdata: Path) -> None:
    """BINANCE_FUTURES.http.0.0: four REST depth snapshots, one per symbol."""
    events = list(read_capture(realdata / "BINANCE_FUTURES.http.0.0"))
    assert kinds(events) == {"http": 4}
    assert [binance_snapshot_symbol(e.url or "") for e in events] == BINANCE_SNAPSHOT_SYMBOLS
    for event in events:
        body = orjson.loads(event.payload)
        assert set(body) == {"lastUpdateId", "E", "T", "bids", "asks"}
        assert event.url is not None and event.url.startswith(
            "https://fapi.binance.com/fapi/v1/depth?"
        )


def test_timestamps_are_ordered_in_every_capture(realdata: Path) -> None:
    for name in (
        "OKX.ws.1.0",
        "KRAKEN.ws.50.0",
        "BINANCE_FUTURES.ws.1.0",
        "BINANCE_FUTURES.http.0.0",
    ):
        stamps = [e.ts for e in read_capture(realdata / name)]
        assert stamps == sorted(stamps), name


def test_merge_binance_streams_by_time(realdata: Path) -> None:
    """BINANCE_FUTURES.ws.1.0 + BINANCE_FUTURES.http.0.0: each snapshot lands between the
    frames received around it."""
    ws = list(read_capture(realdata / "BINANCE_FUTURES.ws.1.0"))
    http = list(read_capture(realdata / "BINANCE_FUTURES.http.0.0"))
    merged = merge_by_time(ws, http)
    assert len(merged) == len(ws) + len(http)
    assert [e.ts for e in merged] == sorted(e.ts for e in merged)
    assert [e for e in merged if e.kind == "http"] == http
    first_snapshot = next(i for i, e in enumerate(merged) if e.kind == "http")
    assert merged[first_snapshot - 1].ts <= http[0].ts <= merged[first_snapshot + 1].ts


def test_merge_is_stable_on_equal_timestamps() -> None:
    a = [CaptureEvent(1.0, "recv", None, "a1"), CaptureEvent(2.0, "recv", None, "a2")]
    b = [CaptureEvent(1.0, "http", "u", "b1"), CaptureEvent(0.5, "http", "u", "b0")]
    assert [e.payload for e in merge_by_time(a, b)] == ["b0", "a1", "b1", "a2"]
    assert [e.payload for e in merge_by_time(b, a)] == ["b0", "b1", "a1", "a2"]
    assert merge_by_time() == []
    assert merge_by_time(iter(a)) == a  # any iterable, consumed once


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "wss://x.com/ws <-> 1652459224.5300605",
            CaptureEvent(1652459224.5300605, "connect", "wss://x.com/ws", ""),
        ),
        (
            'wss://x.com/ws <- 12.5: {"op":"ping"}',
            CaptureEvent(12.5, "sent", "wss://x.com/ws", '{"op":"ping"}'),
        ),
        ('12.5: {"a": "b: c"}', CaptureEvent(12.5, "recv", None, '{"a": "b: c"}')),
        ("7: pong", CaptureEvent(7.0, "recv", None, "pong")),
        (
            'https://h/fapi/v1/depth?symbol=X&limit=5 -> 3.25: {"lastUpdateId":1}',
            CaptureEvent(
                3.25, "http", "https://h/fapi/v1/depth?symbol=X&limit=5", '{"lastUpdateId":1}'
            ),
        ),
    ],
)
def test_parse_each_line_kind(line: str, expected: CaptureEvent) -> None:
    assert parse_capture_line(line) == expected


@pytest.mark.parametrize("line", ["", "   ", "\t"])
def test_empty_lines_are_none(line: str) -> None:
    assert parse_capture_line(line) is None


@pytest.mark.parametrize(
    "line", ["hello", "wss://x <=> 1.0", "wss://x <- 1.0 {}", "1.0 {}", "abc: {}", "wss://x <->"]
)
def test_bad_lines_raise(line: str) -> None:
    with pytest.raises(CaptureFormatError):
        parse_capture_line(line)


def test_read_capture_reports_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.ws.0.0"
    path.write_text("wss://x <-> 1.0\nnot a capture line\n")
    events = read_capture(path)
    assert next(events).kind == "connect"
    with pytest.raises(CaptureFormatError, match=r"bad\.ws\.0\.0:2"):
        next(events)


def test_read_capture_handles_crlf_and_keeps_payload_text(tmp_path: Path) -> None:
    path = tmp_path / "crlf.ws.0.0"
    path.write_bytes(b'wss://x <-> 1.0\r\n2.0: {"s":"a\\r b"}\r\n\r\n')
    events = list(read_capture(str(path)))
    assert events == [
        CaptureEvent(1.0, "connect", "wss://x", ""),
        CaptureEvent(2.0, "recv", None, '{"s":"a\\r b"}'),
    ]


def test_capture_event_is_frozen() -> None:
    event = CaptureEvent(1.0, "recv", None, "x")
    with pytest.raises(AttributeError):
        event.ts = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "symbol"),
    [
        ("https://fapi.binance.com/fapi/v1/depth?symbol=SUSHIUSDT&limit=1000", "SUSHIUSDT"),
        ("https://fapi.binance.com/fapi/v1/depth?limit=1000&symbol=BTCUSDT", "BTCUSDT"),
        ("https://api.binance.com/api/v3/depth?symbol=ETHBTC", "ETHBTC"),
        ("https://dapi.binance.com/dapi/v1/depth/?symbol=BTCUSD_PERP", "BTCUSD_PERP"),
        ("https://fapi.binance.com/fapi/v1/depth?limit=1000", None),
        ("https://fapi.binance.com/fapi/v1/depth?symbol=", None),
        ("https://fapi.binance.com/fapi/v1/ticker?symbol=BTCUSDT", None),
        ("wss://fstream.binance.com/stream?streams=btcusdt@depth", None),
    ],
)
def test_binance_snapshot_symbol(url: str, symbol: str | None) -> None:
    assert binance_snapshot_symbol(url) == symbol
