"""Baseline: Bybit books on the ``order-book`` C extension, the way cryptofeed keeps them.

``order-book`` (PyPI ``order-book``, ``from order_book import OrderBook``, by bmoscon) is the
sorted-dict book that cryptofeed uses for every exchange: a C hash map per side whose sorted key
tuple is rebuilt lazily on the first read after a write. A Python user who wants "a fast book
without writing Rust" picks it. This adapter does what cryptofeed's Bybit handler does with it
(``orjson.loads`` the frame, ``Decimal`` every price and size, set or delete each level) and adds
the Bybit ``u`` rules of ``docs/book-semantics.md`` (snapshot replaces the book, ``u <= last`` is
stale, ``u != last + 1`` is a gap and the book waits for a snapshot) so that its final books and
counters are comparable with the native engine's.

Deliberate differences, all in the baseline's favour (so a ratio against it is conservative):

* no input validation beyond what ``orjson`` and ``Decimal`` raise on their own;
* no crossed-book guard after each message (that would force a sort of the key tuple on every
  message; the "apply + top-of-book" benchmark measures exactly that cost separately);
* levels beyond the topic depth are hidden by ``max_depth`` rather than deleted after each
  message. Bybit deletes levels that leave the window itself (and the synthetic streams do too),
  so the visible book is the same; the benchmarks compare final books to make sure.

Also a command-line replay with the output of ``python -m pysrc.bot book-replay`` (one JSON object
per book on stdout, a summary on stderr), used by ``bench/replay_compare.py``::

    python -P bench/cext_replay.py FILE --exchange bybit --top 0

It deliberately imports nothing from ``pysrc`` so the process costs what a user's would.
"""

from __future__ import annotations

import sys
from decimal import Decimal

import orjson
from _replay_cli import replay_main
from order_book import OrderBook

# Same names and meaning as the native outcome codes; the values are local to this module.
APPLIED, SKIPPED, STALE, WAITING, GAP = "APPLIED", "SKIPPED", "STALE", "WAITING", "GAP"

_LIVE, _AWAITING, _NEEDS_RESYNC = "live", "awaiting_snapshot", "needs_resync"

# Topic prefixes the engines skip (docs/book-semantics.md, Bybit section); kept local so this
# baseline imports nothing from pysrc.
_SKIPPED_TOPICS = frozenset(
    ("publicTrade", "tickers", "kline", "allLiquidation", "liquidation", "order", "execution",
     "position", "wallet", "greeks", "dcp")
)


class _Book:
    __slots__ = ("ob", "depth", "state", "update_id", "messages", "gaps", "resyncs", "stale")

    def __init__(self, depth: int) -> None:
        self.ob = OrderBook(max_depth=depth) if depth else OrderBook()
        self.depth = depth
        self.state = _AWAITING
        self.update_id = 0
        self.messages = 0
        self.gaps = 0
        self.resyncs = 0
        self.stale = 0


class CExtBybitBooks:
    """All Bybit books of one feed on ``order_book.OrderBook``; a subset of the BookEngine API."""

    exchange = "bybit"

    def __init__(self, depth: int = 0) -> None:
        self._depth = depth
        self._books: dict[str, _Book] = {}

    def apply(self, message: bytes | str) -> tuple[str, str | None]:
        msg = orjson.loads(message)
        topic = msg.get("topic")
        if topic is None:
            if "op" in msg or "success" in msg:
                return SKIPPED, None
            raise ValueError("not a Bybit message")
        parts = topic.split(".")
        if parts[0] != "orderbook":
            if parts[0] in _SKIPPED_TOPICS:
                return SKIPPED, None
            raise ValueError(f"unknown topic {topic!r}")
        if len(parts) != 3 or not parts[1].isdigit():
            return SKIPPED, None  # orderbook.rpi.X, orderbook.full.X
        symbol = parts[2]
        data = msg["data"]
        u = data["u"]
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = _Book(self._depth or int(parts[1]))
        book.messages += 1
        kind = msg["type"]
        if kind == "snapshot":
            if book.state == _NEEDS_RESYNC:
                book.resyncs += 1
            # cryptofeed replaces the whole OrderBook on a snapshot.
            ob = OrderBook(max_depth=book.depth) if book.depth else OrderBook()
            bids = ob.bids
            asks = ob.asks
            for p, s in data["b"]:
                size = Decimal(s)
                if size:
                    bids[Decimal(p)] = size
            for p, s in data["a"]:
                size = Decimal(s)
                if size:
                    asks[Decimal(p)] = size
            book.ob = ob
            book.update_id = u
            book.state = _LIVE
            return APPLIED, symbol
        if kind != "delta":
            raise ValueError(f"unknown type {kind!r}")
        if book.state != _LIVE:
            return WAITING, symbol
        if u <= book.update_id:
            book.stale += 1
            return STALE, symbol
        if u != book.update_id + 1:
            book.gaps += 1
            book.state = _NEEDS_RESYNC
            return GAP, symbol
        ob = book.ob
        for side, levels in ((ob.bids, data["b"]), (ob.asks, data["a"])):
            for p, s in levels:
                price = Decimal(p)
                size = Decimal(s)
                if size:
                    side[price] = size
                elif price in side:  # deleting an absent level is a no-op (pybit crashes here)
                    del side[price]
        book.update_id = u
        return APPLIED, symbol

    # -- reads ----------------------------------------------------------------------------------

    def symbols(self) -> list[str]:
        return list(self._books)

    def top_of_book(self, symbol: str) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
        """Best bid and ask as ``Decimal`` (no float conversion: cheaper than the native API)."""
        ob = self._books[symbol].ob
        if not len(ob.bids) or not len(ob.asks):
            return None
        bp, bs = ob.bids.index(0)
        ap, as_ = ob.asks.index(0)
        return bp, bs, ap, as_

    def levels(
        self, symbol: str, n: int = 20
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        ob = self._books[symbol].ob
        out = []
        for side in (ob.bids, ob.asks):
            items = side.to_list()  # respects max_depth, best first
            if n:
                items = items[:n]
            out.append([(format(p, "f"), format(s, "f")) for p, s in items])
        return out[0], out[1]

    def update_id(self, symbol: str) -> int:
        return self._books[symbol].update_id

    def stats(self, symbol: str) -> dict[str, int | str]:
        b = self._books[symbol]
        return {
            "messages": b.messages,
            "update_id": b.update_id,
            "gaps": b.gaps,
            "resyncs": b.resyncs,
            "stale": b.stale,
            "checksums_checked": 0,
            "checksum_failures": 0,
            "state": b.state,
        }


# -- command line (same output as `python -m pysrc.bot book-replay`) -----------------------------


def main(argv: list[str] | None = None) -> int:
    return replay_main(CExtBybitBooks(), argv, "cext_replay")


if __name__ == "__main__":
    sys.exit(main())
