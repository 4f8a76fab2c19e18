"""Bybit v5 public topic names, the argument limits, and how symbols are spread over connections.

Supported topics (linear, ``docs/v5/websocket/public/*``):

* ``orderbook.{1,50,200,1000}.{symbol}``
* ``publicTrade.{symbol}``
* ``tickers.{symbol}``
* ``kline.{interval}.{symbol}`` with interval ``1 3 5 15 30 60 120 240 360 720 D W M``

Limits (bybit-v5.md 1.3): the JSON ``args`` array of a public connection may not exceed 21,000
characters. Bybit does not say whether that counts per request or per connection, so both are
respected: a connection's topics, encoded as one array, stay under the limit, and so does every
request. Spot also caps a request at 10 args; linear has no cap, but small requests keep the
damage of one bad topic small, so requests carry at most ``max_args_per_request`` topics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson

ORDERBOOK_DEPTHS: frozenset[int] = frozenset({1, 50, 200, 1000})
KLINE_INTERVALS: tuple[str, ...] = (
    "1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M",
)  # fmt: skip
TOPIC_KINDS: tuple[str, ...] = ("orderbook", "publicTrade", "tickers", "kline")

MAX_ARGS_CHARS = 21_000
"""Bybit: the JSON ``args`` array of a public connection may not exceed 21,000 characters."""
DEFAULT_MAX_ARGS_PER_REQUEST = 10


def args_chars(topics: Sequence[str]) -> int:
    """Length of ``topics`` encoded as the JSON ``args`` array, as the limit counts it."""
    return len(orjson.dumps(list(topics)))


def orderbook_topic(symbol: str, depth: int) -> str:
    if depth not in ORDERBOOK_DEPTHS:
        raise ValueError(f"orderbook depth {depth} not one of {sorted(ORDERBOOK_DEPTHS)}")
    return f"orderbook.{depth}.{symbol}"


@dataclass(frozen=True, slots=True)
class TopicSet:
    """Which topics each symbol gets: the topic kinds, the book depth and kline intervals."""

    kinds: tuple[str, ...] = ("orderbook", "publicTrade")
    depth: int = 50
    kline_intervals: tuple[str, ...] = ("1",)

    def __post_init__(self) -> None:
        for kind in self.kinds:
            if kind not in TOPIC_KINDS:
                raise ValueError(f"unsupported topic kind {kind!r}; supported: {TOPIC_KINDS}")
        if len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"duplicate topic kinds in {self.kinds}")
        if self.depth not in ORDERBOOK_DEPTHS:
            raise ValueError(f"orderbook depth {self.depth} not one of {sorted(ORDERBOOK_DEPTHS)}")
        if "kline" in self.kinds:
            if not self.kline_intervals:
                raise ValueError("kline topic requested without an interval")
            for interval in self.kline_intervals:
                if interval not in KLINE_INTERVALS:
                    raise ValueError(f"kline interval {interval!r} not one of {KLINE_INTERVALS}")

    def for_symbol(self, symbol: str) -> list[str]:
        """The topics of one symbol, in subscription order (book first: it is what matters)."""
        if not symbol or "." in symbol:
            raise ValueError(f"invalid symbol {symbol!r}")
        topics: list[str] = []
        for kind in self.kinds:
            if kind == "orderbook":
                topics.append(orderbook_topic(symbol, self.depth))
            elif kind == "kline":
                topics.extend(f"kline.{interval}.{symbol}" for interval in self.kline_intervals)
            else:
                topics.append(f"{kind}.{symbol}")
        return topics

    def orderbook(self, symbol: str) -> str | None:
        return orderbook_topic(symbol, self.depth) if "orderbook" in self.kinds else None


def topic_symbol(topic: str) -> str:
    """The symbol a topic is about (its last dot-separated part)."""
    return topic.rpartition(".")[2]


def split_args(
    topics: Sequence[str],
    *,
    max_chars: int = MAX_ARGS_CHARS,
    max_args: int | None = DEFAULT_MAX_ARGS_PER_REQUEST,
) -> list[list[str]]:
    """Split topics into request ``args`` lists, in order, each within ``max_chars`` (encoded as
    a JSON array) and ``max_args`` entries. A single topic longer than the limit is an error
    (no request could carry it)."""
    if max_args is not None and max_args < 1:
        raise ValueError("max_args must be >= 1")
    batches: list[list[str]] = []
    current: list[str] = []
    size = 2  # "[]"
    for topic in topics:
        item = len(orjson.dumps(topic))
        if 2 + item > max_chars:
            raise ValueError(f"topic {topic[:40]!r}... alone exceeds the {max_chars}-char args limit")
        extra = item + (1 if current else 0)  # the comma
        if current and (size + extra > max_chars or (max_args is not None and len(current) >= max_args)):
            batches.append(current)
            current, size, extra = [], 2, item
        current.append(topic)
        size += extra
    if current:
        batches.append(current)
    return batches


def plan_connections(
    symbols: Iterable[str],
    topic_set: TopicSet,
    *,
    pairs_per_connection: int,
    max_chars: int = MAX_ARGS_CHARS,
) -> list[list[str]]:
    """Group symbols into connections, in order: at most ``pairs_per_connection`` symbols each,
    and all of a connection's topics together within ``max_chars`` as one args array (so the
    limit holds however Bybit counts it). A symbol's topics always share one connection, so a
    book resync and its trades stay on the same socket."""
    if pairs_per_connection < 1:
        raise ValueError("pairs_per_connection must be >= 1")
    groups: list[list[str]] = []
    current: list[str] = []
    size = 2
    seen: set[str] = set()
    for symbol in symbols:
        if symbol in seen:
            raise ValueError(f"symbol {symbol!r} listed twice")
        seen.add(symbol)
        topics = topic_set.for_symbol(symbol)
        cost = sum(len(orjson.dumps(t)) + 1 for t in topics)  # each with its comma
        if 2 + cost - 1 > max_chars:
            raise ValueError(f"the topics of {symbol!r} alone exceed the {max_chars}-char limit")
        if current and (len(current) >= pairs_per_connection or size + cost - 1 > max_chars):
            groups.append(current)
            current, size = [], 2
        current.append(symbol)
        size += cost
    if current:
        groups.append(current)
    return groups


__all__ = [
    "DEFAULT_MAX_ARGS_PER_REQUEST",
    "KLINE_INTERVALS",
    "MAX_ARGS_CHARS",
    "ORDERBOOK_DEPTHS",
    "TOPIC_KINDS",
    "TopicSet",
    "args_chars",
    "orderbook_topic",
    "plan_connections",
    "split_args",
    "topic_symbol",
]
