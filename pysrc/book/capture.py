"""Reader for cryptofeed's raw text capture format (the recordings under ``shared/realdata``).

One event per line:

* ``<url> <-> <ts>``              a connect;
* ``<url> <- <ts>: <payload>``    a message we sent;
* ``<ts>: <payload>``             a message we received;
* ``<url> -> <ts>: <payload>``    a REST response (the ``.http`` files).

``ts`` is local epoch seconds. Empty lines (the Kraken file ends with two) are skipped. The payload
is returned as the exact text after ``": "``, so it can be fed to an engine byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "CaptureEvent",
    "CaptureFormatError",
    "EventKind",
    "binance_snapshot_symbol",
    "merge_by_time",
    "parse_capture_line",
    "read_capture",
]

EventKind = Literal["connect", "sent", "recv", "http"]

# A received line starts with the timestamp; every other kind starts with the URL.
_RECV = re.compile(r"(?P<ts>[0-9]+(?:\.[0-9]+)?): (?P<payload>.*)", re.DOTALL)
_WITH_URL = re.compile(
    r"(?P<url>\S+) (?:"
    r"<-> (?P<connect_ts>[0-9]+(?:\.[0-9]+)?)"
    r"|(?P<arrow><-|->) (?P<ts>[0-9]+(?:\.[0-9]+)?): (?P<payload>.*)"
    r")",
    re.DOTALL,
)


class CaptureFormatError(ValueError):
    """A line of a capture file is not in the cryptofeed raw format."""


@dataclass(frozen=True, slots=True)
class CaptureEvent:
    """One line of a capture: when, what kind, on which URL (None for received), and the text."""

    ts: float
    kind: EventKind
    url: str | None
    payload: str


def parse_capture_line(line: str) -> CaptureEvent | None:
    """Parse one line (without its newline); None for an empty line."""
    if not line.strip():
        return None
    match = _RECV.fullmatch(line)
    if match is not None:
        return CaptureEvent(float(match["ts"]), "recv", None, match["payload"])
    match = _WITH_URL.fullmatch(line)
    if match is None:
        raise CaptureFormatError(f"not a capture line: {line[:120]!r}")
    if match["connect_ts"] is not None:
        return CaptureEvent(float(match["connect_ts"]), "connect", match["url"], "")
    kind: EventKind = "sent" if match["arrow"] == "<-" else "http"
    return CaptureEvent(float(match["ts"]), kind, match["url"], match["payload"])


def read_capture(path: str | Path) -> Iterator[CaptureEvent]:
    """Yield the events of one capture file in file order (streamed, not loaded at once)."""
    path = Path(path)
    # newline="\n": only "\n" ends a line (a stray "\r" does not split one); "\r\n" endings
    # are handled by the rstrip below.
    with path.open("r", encoding="utf-8", newline="\n") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                event = parse_capture_line(line.rstrip("\r\n"))
            except CaptureFormatError as exc:
                raise CaptureFormatError(f"{path}:{number}: {exc}") from None
            if event is not None:
                yield event


def merge_by_time(*streams: Iterable[CaptureEvent]) -> list[CaptureEvent]:
    """All events of several captures ordered by ``ts``; ties keep argument order, then file
    order (the sort is stable), so a REST snapshot and a message with the same ``ts`` stay in
    the order the streams were given."""
    return sorted(chain.from_iterable(streams), key=lambda event: event.ts)


def binance_snapshot_symbol(url: str) -> str | None:
    """The ``symbol=`` of a REST depth URL (``.../fapi/v1/depth?symbol=BTCUSDT&limit=1000``),
    or None when the URL is not a depth request or names no symbol."""
    parts = urlsplit(url)
    if parts.path.rstrip("/").rsplit("/", 1)[-1] != "depth":
        return None
    values = parse_qs(parts.query).get("symbol")
    return values[0] if values and values[0] else None
