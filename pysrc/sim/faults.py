"""Fault injection for the local exchange, driven from tests (in-process) or ``POST /sim/faults``.

Every fault that actually fires is counted in :attr:`Faults.counts` (served by ``/sim/stats``
under ``faults``), so a test can assert both the client's recovery and that the fault happened.

Kinds
-----
Streams (``stream`` is ``"public"`` or ``"private"``):

* ``drop``: abort every connection of the stream now, or after ``after_messages`` more messages
  have been sent on that stream (counted over all its connections);
* ``stall``: for ``seconds``, send nothing on the stream's current connections, not even pongs;
  the sockets stay open.

Order books (``symbol``, optional ``depth``; without a depth every subscribed depth of the symbol):

* ``gap``: the next delta skips one ``u``;
* ``duplicate``: the next delta is sent twice;
* ``out_of_order``: the next delta is held back and sent after the one that follows it;
* ``snapshot``: the next push is a fresh snapshot (``u`` continues);
* ``restart``: the next push is a snapshot with ``u == 1``; deltas continue from 2.

REST (``path`` is a prefix such as ``/v5/order`` or ``/v5/``; the next ``count`` requests):

* ``delay`` (``seconds``), then answer normally;
* ``timeout``: never answer (held until ``seconds``, default one hour, or until the server stops);
* ``10006``, ``10002``, ``10004``: answer with that retCode (rate limit / timestamp / signature);
* ``403``: the IP ban page (HTTP 403 "access too frequent");
* ``502``, ``503``: a gateway error page;
* ``lose_ack``: execute the request (the order is created, amended or cancelled and its pushes go
  out) but close the connection without any HTTP response.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BOOK_KINDS = ("gap", "duplicate", "out_of_order", "snapshot", "restart")
REST_KINDS = ("delay", "timeout", "10006", "10002", "10004", "403", "502", "503", "lose_ack")
STREAMS = ("public", "private")
_REST_ALIASES = {
    "rate_limit": "10006", "timestamp": "10002", "signature": "10004", "ip_ban": "403",
    "http_502": "502", "http_503": "503", "5xx": "502",
}


@dataclass
class RestFault:
    path: str
    kind: str
    remaining: int
    seconds: float


class Faults:
    """Pending faults and the count of those that fired."""

    def __init__(self) -> None:
        self.counts: defaultdict[str, int] = defaultdict(int)
        self._drop_after: dict[str, int | None] = {"public": None, "private": None}
        self._book: dict[tuple[str, int], deque[str]] = {}
        self._rest: list[RestFault] = []
        # set by the exchange: act on live connections, and list the subscribed depths of a symbol
        self._drop_now: Callable[[str], int] | None = None
        self._stall_now: Callable[[str, float], int] | None = None
        self._depths_of: Callable[[str], list[int]] | None = None
        self.book_pending = False
        self.drop_armed = False

    # ---- streams ---------------------------------------------------------------------------
    def drop(self, stream: str = "public", after_messages: int = 0) -> None:
        """Abort every ``stream`` connection now, or after ``after_messages`` more messages."""
        _check_stream(stream)
        if after_messages <= 0:
            if self._drop_now is not None:
                self._drop_now(stream)
            self.counts[f"drop.{stream}"] += 1
        else:
            self._drop_after[stream] = after_messages
            self.drop_armed = True

    def drop_public(self, after_messages: int = 0) -> None:
        self.drop("public", after_messages)

    def drop_private(self, after_messages: int = 0) -> None:
        self.drop("private", after_messages)

    def stall(self, stream: str = "public", seconds: float = 5.0) -> None:
        """Send nothing (no data, no pongs) on the stream's current connections for ``seconds``."""
        _check_stream(stream)
        if self._stall_now is not None:
            self._stall_now(stream, seconds)
        self.counts[f"stall.{stream}"] += 1

    def on_sent(self, stream: str, messages: int) -> None:
        """Publishers report messages sent while a delayed drop is armed."""
        left = self._drop_after.get(stream)
        if left is None:
            return
        left -= messages
        if left > 0:
            self._drop_after[stream] = left
            return
        self._drop_after[stream] = None
        self.drop_armed = any(v is not None for v in self._drop_after.values())
        if self._drop_now is not None:
            self._drop_now(stream)
        self.counts[f"drop.{stream}"] += 1

    # ---- order books -------------------------------------------------------------------------
    def book(self, symbol: str, kind: str, depth: int | None = None) -> None:
        """Queue a book fault for the next push of ``orderbook.{depth}.{symbol}``."""
        if kind not in BOOK_KINDS:
            raise ValueError(f"unknown book fault {kind!r}; one of {BOOK_KINDS}")
        if depth is not None:
            depths = [depth]
        else:
            depths = self._depths_of(symbol) if self._depths_of is not None else []
            if not depths:
                depths = [50]
        for d in depths:
            self._book.setdefault((symbol, d), deque()).append(kind)
        self.book_pending = True

    def inject_gap(self, symbol: str, depth: int | None = None) -> None:
        self.book(symbol, "gap", depth)

    def duplicate_delta(self, symbol: str, depth: int | None = None) -> None:
        self.book(symbol, "duplicate", depth)

    def out_of_order_delta(self, symbol: str, depth: int | None = None) -> None:
        self.book(symbol, "out_of_order", depth)

    def fresh_snapshot(self, symbol: str, depth: int | None = None) -> None:
        self.book(symbol, "snapshot", depth)

    def restart(self, symbol: str, depth: int | None = None) -> None:
        self.book(symbol, "restart", depth)

    def take_book(self, symbol: str, depth: int) -> str | None:
        """The next pending book fault of a topic, if any (called by the publisher)."""
        q = self._book.get((symbol, depth))
        if not q:
            return None
        kind = q.popleft()
        if not q:
            del self._book[(symbol, depth)]
            self.book_pending = bool(self._book)
        self.counts[f"book.{kind}"] += 1
        return kind

    def requeue_book(self, symbol: str, depth: int, kind: str) -> None:
        """Put back a fault taken by a push that had no delta to act on (it did not fire)."""
        self._book.setdefault((symbol, depth), deque()).appendleft(kind)
        self.book_pending = True
        self.counts[f"book.{kind}"] -= 1

    # ---- REST ----------------------------------------------------------------------------------
    def rest(self, path: str, kind: str, count: int = 1, seconds: float = 0.0) -> None:
        """Apply ``kind`` to the next ``count`` REST requests whose path starts with ``path``."""
        kind = _REST_ALIASES.get(kind, kind)
        if kind not in REST_KINDS:
            raise ValueError(f"unknown REST fault {kind!r}; one of {REST_KINDS}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if kind == "timeout" and seconds <= 0:
            seconds = 3600.0
        self._rest.append(RestFault(path, kind, count, seconds))

    def take_rest(self, path: str) -> RestFault | None:
        """Consume one use of the first pending fault matching ``path`` (called per request)."""
        for f in self._rest:
            if path.startswith(f.path):
                f.remaining -= 1
                if f.remaining <= 0:
                    self._rest.remove(f)
                self.counts[f"rest.{f.kind}"] += 1
                return f
        return None

    @property
    def rest_pending(self) -> bool:
        return bool(self._rest)

    # ---- misc -----------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every pending fault (counts are kept)."""
        self._drop_after = {"public": None, "private": None}
        self.drop_armed = False
        self._book.clear()
        self.book_pending = False
        self._rest.clear()

    def pending(self) -> dict[str, Any]:
        return {
            "drop_after": dict(self._drop_after),
            "book": {f"{s}:{d}": list(q) for (s, d), q in self._book.items()},
            "rest": [vars(f).copy() for f in self._rest],
        }

    def apply(self, spec: dict[str, Any]) -> None:
        """Apply a JSON fault description (``POST /sim/faults``)::

            {"kind": "drop", "stream": "public", "after_messages": 0}
            {"kind": "stall", "stream": "private", "seconds": 5}
            {"kind": "gap", "symbol": "BTCUSDT", "depth": 50}      # any book kind
            {"kind": "timeout", "path": "/v5/order/create", "count": 1, "seconds": 30}
            {"kind": "clear"}
        """
        kind = str(spec.get("kind", ""))
        if kind == "clear":
            self.clear()
        elif kind == "drop":
            self.drop(str(spec.get("stream", "public")), int(spec.get("after_messages", 0)))
        elif kind == "stall":
            self.stall(str(spec.get("stream", "public")), float(spec.get("seconds", 5.0)))
        elif kind in BOOK_KINDS:
            depth = spec.get("depth")
            self.book(str(spec["symbol"]), kind, None if depth is None else int(depth))
        elif _REST_ALIASES.get(kind, kind) in REST_KINDS:
            self.rest(str(spec.get("path", "/v5/")), kind, int(spec.get("count", 1)),
                      float(spec.get("seconds", 0.0)))
        else:
            raise ValueError(f"unknown fault kind {kind!r}")


def _check_stream(stream: str) -> None:
    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {STREAMS}, not {stream!r}")
