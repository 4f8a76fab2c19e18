"""Pure-Python reference order-book engine.

``ReferenceEngine`` implements ``docs/book-semantics.md`` with the same public surface, return
values and outcome codes as the native ``pysrc._native.BookEngine``. It has two jobs:

* the correctness oracle: the real-data and hypothesis model tests feed the same messages to both
  engines and require identical books, states and counters after every message;
* the "competent pure-Python book" baseline the benchmarks compare the native core against, so it
  uses what a careful Python author would use (``orjson``, ``SortedDict`` keyed by ``Decimal``) and
  never scans a whole ladder per message.

It imports nothing native, so it works without the compiled module. Errors are
:class:`ReferenceMalformed` (a ``ValueError``, like the native ``MalformedMessage``) and
:class:`ReferenceUnknownSymbol` (a ``KeyError``, like the native ``UnknownSymbol``).

The module also carries the two exchange checksums (:func:`okx_checksum`,
:func:`kraken_checksum`) so tests can build messages with correct and incorrect checksums.

Readings chosen where the semantics page is silent (the native engine makes the same ones):

* a snapshot is an empty book plus its levels in array order: a later duplicate price wins, so a
  zero size after a duplicate deletes it; any other zero size has nothing to delete (ignored);
* a message with several ``data`` entries (OKX, Kraken v2) is processed entry by entry and stops
  at the first entry whose outcome is not ``APPLIED``; a book message with no entry touches no
  book and is ``SKIPPED``;
* ``last_ts`` follows applied messages that carry a timestamp; a Bybit snapshot (WebSocket or
  REST) and a Binance REST snapshot set it to their own ``ts`` / ``E`` (None when absent);
* a book's scales (most decimals seen, used by the Kraken checksum) widen with every valid message
  routed to it, whatever its outcome, and never shrink;
* ``stats()["depth"]`` is the depth of the book's last truncation (0 = none); a Bybit REST
  snapshot carries no topic, so only the engine's ``depth`` truncates it;
* OKX ``update_id`` is the last ``seqId`` (0 = none; a snapshot without one resets it), and the
  ``prevSeqId`` chain is checked once it is non-zero;
* Binance: an update without ``pu`` (spot streams) chains on ``U == update_id + 1``; ``U > u`` is
  malformed;
* ``reset`` (as the page says) clears the levels, ``update_id`` and the Binance bridge flag and
  puts the book in ``awaiting_snapshot``; the Binance buffer, counters and ``last_ts`` stay, and a
  book that broke before the reset still counts its resync at the next snapshot;
* ``needs_resync()`` lists only books in the ``needs_resync`` state.
"""

from __future__ import annotations

import json
import re
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from itertools import islice
from typing import Any, Final, TypeAlias

import orjson
from sortedcontainers import SortedDict  # type: ignore[import-untyped]

__all__ = [
    "APPLIED",
    "BUFFERED",
    "CHECKSUM_MISMATCH",
    "CROSSED",
    "EXCHANGES",
    "GAP",
    "OUTCOME_NAMES",
    "SKIPPED",
    "STALE",
    "WAITING",
    "ReferenceEngine",
    "ReferenceMalformed",
    "ReferenceUnknownSymbol",
    "kraken_checksum",
    "okx_checksum",
]

# Outcome codes: the same values as the native module's constants.
APPLIED: Final = 0
SKIPPED: Final = 1
STALE: Final = 2
BUFFERED: Final = 3
WAITING: Final = 4
GAP: Final = 5
CROSSED: Final = 6
CHECKSUM_MISMATCH: Final = 7

OUTCOME_NAMES: Final[dict[int, str]] = {
    APPLIED: "APPLIED",
    SKIPPED: "SKIPPED",
    STALE: "STALE",
    BUFFERED: "BUFFERED",
    WAITING: "WAITING",
    GAP: "GAP",
    CROSSED: "CROSSED",
    CHECKSUM_MISMATCH: "CHECKSUM_MISMATCH",
}

EXCHANGES: Final = ("bybit", "binance", "okx", "kraken")

AWAITING: Final = "awaiting_snapshot"
LIVE: Final = "live"
NEEDS_RESYNC: Final = "needs_resync"

MAX_LEVELS_PER_SIDE: Final = 100_000
MAX_DECIMALS: Final = 18
MAX_DIGITS: Final = 18
_U64: Final = 1 << 64

OKX_CHECKSUM_LEVELS: Final = 25
KRAKEN_CHECKSUM_LEVELS: Final = 10
KRAKEN_V2_DEFAULT_DEPTH: Final = 10

BYBIT_SKIPPED_TOPICS: Final = frozenset(
    {
        "publicTrade",
        "tickers",
        "kline",
        "allLiquidation",
        "liquidation",
        "order",
        "execution",
        "position",
        "wallet",
        "greeks",
        "dcp",
    }
)
OKX_BOOK_CHANNELS: Final = frozenset(
    {"books", "books5", "bbo-tbt", "books-l2-tbt", "books50-l2-tbt"}
)

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DIGITS = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"[+-]?[0-9]+")
_TOPIC_DEPTH = re.compile(r"\+?[0-9]+")  # an unsigned integer, as Rust and Python parse one


class ReferenceMalformed(ValueError):
    """The message cannot be understood; nothing was applied (mirrors ``MalformedMessage``)."""


class ReferenceUnknownSymbol(KeyError):
    """No book exists for the requested symbol (mirrors ``UnknownSymbol``)."""


# A validated level: (price, price text for output, size text for output, size is zero).
Level: TypeAlias = tuple[Decimal, str, str, bool]


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


def _check_digits(int_part: str, frac: str) -> bool:
    """Apply the size limits of the semantics page; return True when the value is zero."""
    if len(frac) > MAX_DECIMALS:
        raise ReferenceMalformed(f"more than {MAX_DECIMALS} decimals")
    significant = (int_part + frac).lstrip("0")
    if len(significant) > MAX_DIGITS:
        raise ReferenceMalformed(f"more than {MAX_DIGITS} significant digits")
    return not significant


def _canonical(int_part: str, frac: str) -> str:
    """``format(Decimal(text), "f")`` for a plain decimal literal, without building a Decimal."""
    int_part = int_part.lstrip("0") or "0"
    return f"{int_part}.{frac}" if frac else int_part


def parse_wire_number(text: object) -> tuple[Decimal, str, bool]:
    """Validate one decimal string; return ``(value, output text, is zero)``."""
    if type(text) is not str or _NUMBER.fullmatch(text) is None:
        raise ReferenceMalformed(f"not a decimal string: {text!r}")
    if len(text) > MAX_DIGITS:  # only long texts can break the limits
        int_part, _, frac = text.partition(".")
        _check_digits(int_part, frac)
    zero = not text.strip("0.")
    # Most wire numbers have no superfluous leading zero: the text is already the output text.
    if text[0] != "0" or len(text) == 1 or text[1] == ".":
        return Decimal(text), text, zero
    int_part, _, frac = text.partition(".")
    return Decimal(text), _canonical(int_part, frac), zero


def parse_json_number(value: object) -> tuple[Decimal, str, bool]:
    """Validate a Kraken v2 JSON number (its literal kept as a ``Decimal``)."""
    if not isinstance(value, Decimal):
        raise ReferenceMalformed(f"not a JSON number: {value!r}")
    if not value.is_finite() or value.is_signed():
        raise ReferenceMalformed(f"not a non-negative finite number: {value!r}")
    # Expands exponents and keeps the literal's trailing zeros: 1e-05 -> 0.00001, 4.0 -> 4.0.
    text = format(value, "f")
    int_part, _, frac = text.partition(".")
    zero = _check_digits(int_part, frac)
    return Decimal(text), text, zero


def _decimals(text: str) -> int:
    """Number of decimals of an output string."""
    dot = text.find(".")
    return 0 if dot < 0 else len(text) - dot - 1


def _is_u64(value: object) -> bool:
    return type(value) is int and 0 <= value < _U64


def _require_u64(value: object, name: str) -> int:
    if not _is_u64(value):
        raise ReferenceMalformed(f"{name} must be an unsigned integer, got {value!r}")
    return value  # type: ignore[return-value]


def _optional_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise ReferenceMalformed(f"{name} must be an integer, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# Levels
# --------------------------------------------------------------------------------------------


def _level_list(raw: object, name: str) -> list[Any]:
    if type(raw) is not list:
        raise ReferenceMalformed(f"{name} must be an array")
    if len(raw) > MAX_LEVELS_PER_SIDE:
        raise ReferenceMalformed(f"more than {MAX_LEVELS_PER_SIDE} levels in {name}")
    return raw


def parse_array_levels(raw: object, name: str) -> list[Level]:
    """``[[price, size, ...], ...]`` with string price and size (Bybit, Binance, OKX)."""
    levels: list[Level] = []
    append = levels.append
    for entry in _level_list(raw, name):
        if type(entry) is not list or len(entry) < 2:
            raise ReferenceMalformed(f"bad level in {name}: {entry!r}")
        price, price_out, price_zero = parse_wire_number(entry[0])
        if price_zero:
            raise ReferenceMalformed(f"zero price in {name}")
        _, size_out, size_zero = parse_wire_number(entry[1])
        append((price, price_out, size_out, size_zero))
    return levels


def _parse_kraken_v1_levels(raw: object, name: str) -> tuple[list[Level], int | None]:
    """``[[price, volume, timestamp(, "r")], ...]``; returns the levels and the newest ts in ms."""
    levels: list[Level] = []
    newest: int | None = None
    for entry in _level_list(raw, name):
        if type(entry) is not list or len(entry) < 3:  # a 4th element "r" marks a republish
            raise ReferenceMalformed(f"bad level in {name}: {entry!r}")
        price, price_out, price_zero = parse_wire_number(entry[0])
        if price_zero:
            raise ReferenceMalformed(f"zero price in {name}")
        _, size_out, size_zero = parse_wire_number(entry[1])
        stamp = entry[2]
        if type(stamp) is not str or _NUMBER.fullmatch(stamp) is None:
            raise ReferenceMalformed(f"bad level timestamp in {name}: {stamp!r}")
        # Seconds with microseconds -> whole milliseconds, exact (no float rounding).
        ms = int(Decimal(stamp).scaleb(3))
        newest = ms if newest is None or ms > newest else newest
        levels.append((price, price_out, size_out, size_zero))
    return levels, newest


def _parse_kraken_v2_levels(raw: object, name: str) -> list[Level]:
    """``[{"price": number, "qty": number}, ...]``."""
    levels: list[Level] = []
    for entry in _level_list(raw, name):
        if type(entry) is not dict or "price" not in entry or "qty" not in entry:
            raise ReferenceMalformed(f"bad level in {name}: {entry!r}")
        price, price_out, price_zero = parse_json_number(entry["price"])
        if price_zero:
            raise ReferenceMalformed(f"zero price in {name}")
        _, size_out, size_zero = parse_json_number(entry["qty"])
        levels.append((price, price_out, size_out, size_zero))
    return levels


# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------

PriceSize: TypeAlias = tuple[object, object]


def _as_text(value: object) -> str:
    """Decimal text of a level value given as str, Decimal, int or float (shortest repr)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        value = repr(value)
    return format(Decimal(value), "f")  # type: ignore[arg-type]


def okx_checksum(bids: Iterable[PriceSize], asks: Iterable[PriceSize]) -> int:
    """OKX ``books`` checksum: CRC32 of ``bid1Px:bid1Sz:ask1Px:ask1Sz:...`` over the best 25
    levels per side (when one side runs out the other continues alone), as a signed 32-bit int.

    ``bids`` best (highest) first, ``asks`` best (lowest) first; values are used as given.
    """
    return _okx_crc(
        [(_as_text(p), _as_text(s)) for p, s in islice(bids, OKX_CHECKSUM_LEVELS)],
        [(_as_text(p), _as_text(s)) for p, s in islice(asks, OKX_CHECKSUM_LEVELS)],
    )


def _okx_crc(bids: Iterable[tuple[str, str]], asks: Iterable[tuple[str, str]]) -> int:
    top_bids = [f"{p}:{s}" for p, s in islice(bids, OKX_CHECKSUM_LEVELS)]
    top_asks = [f"{p}:{s}" for p, s in islice(asks, OKX_CHECKSUM_LEVELS)]
    parts: list[str] = []
    for i in range(max(len(top_bids), len(top_asks))):
        if i < len(top_bids):
            parts.append(top_bids[i])
        if i < len(top_asks):
            parts.append(top_asks[i])
    crc = zlib.crc32(":".join(parts).encode("ascii"))
    return crc - (1 << 32) if crc >= 1 << 31 else crc


@lru_cache(maxsize=1 << 16)
def _scaled_digits(text: str, decimals: int) -> str:
    """The value written with exactly ``decimals`` decimals, ``.`` removed, leading zeros gone.

    Cached: a book's prices and sizes recur from message to message, and this runs 20 times
    per checked message.
    """
    int_part, _, frac = text.partition(".")
    if len(frac) > decimals:
        raise ValueError(f"{text!r} has more than {decimals} decimals")
    return (int_part + frac.ljust(decimals, "0")).lstrip("0")


def kraken_checksum(
    asks: Iterable[PriceSize],
    bids: Iterable[PriceSize],
    price_decimals: int,
    size_decimals: int,
) -> int:
    """Kraken book checksum (WebSocket v1 and v2): CRC32, unsigned, of the best 10 asks
    (ascending) then the best 10 bids (descending), each as price then size written with the
    given number of decimals, ``.`` removed and leading zeros stripped.
    """
    return _kraken_crc(
        [(_as_text(p), _as_text(s)) for p, s in islice(asks, KRAKEN_CHECKSUM_LEVELS)],
        [(_as_text(p), _as_text(s)) for p, s in islice(bids, KRAKEN_CHECKSUM_LEVELS)],
        price_decimals,
        size_decimals,
    )


def _kraken_crc(
    asks: Iterable[tuple[str, str]],
    bids: Iterable[tuple[str, str]],
    price_decimals: int,
    size_decimals: int,
) -> int:
    parts = [
        _scaled_digits(p, price_decimals) + _scaled_digits(s, size_decimals)
        for side in (asks, bids)
        for p, s in islice(side, KRAKEN_CHECKSUM_LEVELS)
    ]
    return zlib.crc32("".join(parts).encode("ascii"))


# --------------------------------------------------------------------------------------------
# Books
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    """One fully validated book update, ready to apply."""

    symbol: str
    snapshot: bool
    bids: list[Level]
    asks: list[Level]
    depth: int = 0  # effective depth for truncation (0 = none)
    update_id: int | None = None  # Bybit u, Binance u / lastUpdateId, OKX seqId
    first_id: int | None = None  # Binance U
    prev_id: int | None = None  # Binance pu, OKX prevSeqId
    checksum: int | None = None
    ts: int | None = None


@dataclass(slots=True)
class _Book:
    """One symbol's ladders, sync state and counters.

    Bids are keyed by the negated price so that both ladders iterate best-first and both
    truncate with ``popitem()`` (which removes the last, i.e. worst, key).
    """

    symbol: str
    bids: SortedDict = field(default_factory=SortedDict)
    asks: SortedDict = field(default_factory=SortedDict)
    state: str = AWAITING
    update_id: int = 0
    last_ts: int | None = None
    depth: int = 0  # the depth of the last truncation (0 = none)
    bridged: bool = False  # Binance: the first update after the snapshot was applied
    resync_pending: bool = False  # broke since its last snapshot: the next one is a resync
    buffer: deque[_Entry] | None = None  # Binance: updates kept while not live
    price_scale: int = 0  # most price decimals seen on this book (Kraken checksum)
    size_scale: int = 0  # most size decimals seen on this book
    messages: int = 0
    gaps: int = 0
    resyncs: int = 0
    stale: int = 0
    crossed: int = 0
    checksums_checked: int = 0
    checksum_failures: int = 0

    def break_(self) -> None:
        """GAP, CROSSED or CHECKSUM_MISMATCH: unusable until a fresh snapshot."""
        self.state = NEEDS_RESYNC
        self.resync_pending = True

    def see(self, entry: _Entry) -> None:
        """Widen the book's scales to the decimals of every level routed to it, whatever the
        outcome (the native core rescales when a message arrives, before its sync rules)."""
        price_scale, size_scale = self.price_scale, self.size_scale
        for levels in (entry.bids, entry.asks):
            for _, price_out, size_out, _ in levels:
                price_scale = max(price_scale, _decimals(price_out))
                size_scale = max(size_scale, _decimals(size_out))
        self.price_scale, self.size_scale = price_scale, size_scale

    def replace(self, bids: list[Level], asks: list[Level]) -> None:
        """Snapshot: an empty book, then the levels in order, so a later duplicate price wins
        and a zero size (nothing to delete in an empty book) is ignored."""
        self.bids = SortedDict(_ordered({}, bids, negate=True))
        self.asks = SortedDict(_ordered({}, asks, negate=False))

    def update(self, bids: list[Level], asks: list[Level]) -> None:
        """Delta: absolute sizes, zero deletes, deleting an absent level is a no-op."""
        _ordered(self.bids, bids, negate=True)
        _ordered(self.asks, asks, negate=False)

    def truncate(self, depth: int) -> None:
        self.depth = depth
        if depth:
            for side in (self.bids, self.asks):
                while len(side) > depth:
                    side.popitem()

    def is_crossed(self) -> bool:
        if not self.bids or not self.asks:
            return False
        return bool(-self.bids.peekitem(0)[0] >= self.asks.peekitem(0)[0])

    def clear(self) -> None:
        self.bids = SortedDict()
        self.asks = SortedDict()


def _ordered(side: Any, levels: list[Level], *, negate: bool) -> Any:
    """Apply levels in array order to a mapping (a ``SortedDict`` or a plain dict)."""
    for price, price_out, size_out, zero in levels:
        key = -price if negate else price
        if zero:
            side.pop(key, None)
        else:
            side[key] = (price_out, size_out)
    return side


class _JsonInt(Decimal):
    """An integer literal of Kraken v2 JSON (kept apart from ``4.0``, and ``-0`` keeps its sign)."""


def _loads(message: bytes | str) -> Any:
    if not isinstance(message, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"message must be bytes or str, not {type(message).__name__}")
    try:
        return orjson.loads(message)
    except orjson.JSONDecodeError as exc:
        raise ReferenceMalformed(f"invalid JSON: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise ReferenceMalformed(f"{name} is not a number")


def _loads_exact(message: bytes | str) -> Any:
    """JSON with every number kept as its literal ``Decimal`` (Kraken v2 prices and sizes)."""
    if not isinstance(message, str):
        try:
            message = bytes(message).decode("utf-8")
        except UnicodeDecodeError:
            raise ReferenceMalformed("message is not UTF-8") from None
    try:
        return json.loads(
            message, parse_float=Decimal, parse_int=_JsonInt, parse_constant=_reject_constant
        )
    except ReferenceMalformed:
        raise
    except (ValueError, RecursionError) as exc:
        raise ReferenceMalformed(f"invalid JSON: {exc}") from None


_ISO_UTC = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(?:Z|\+00:00)"
)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (no calendar validation, like the
    exchange-facing parsers: only the field ranges are checked)."""
    if month <= 2:
        year -= 1  # the computation counts years from March
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _iso_ms(text: object) -> int:
    """``2023-07-30T15:29:58.343415Z`` (UTC: ``Z`` or ``+00:00``) -> epoch milliseconds."""
    match = _ISO_UTC.fullmatch(text) if type(text) is str else None
    if match is None:
        raise ReferenceMalformed(f"not an ISO 8601 UTC timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        raise ReferenceMalformed(f"timestamp out of range: {text!r}")
    ms = int((match[7] or "").ljust(3, "0")[:3])
    days = _days_from_civil(year, month, day)
    return ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + ms


# --------------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------------

_TOTAL_KEYS: Final = (
    "messages",
    "applied",
    "skipped",
    "stale",
    "buffered",
    "waiting",
    "gaps",
    "crossed",
    "checksum_failures",
    "checksums_checked",
    "errors",
    # Public trades consumed by analytics; this book-only reference never consumes any.
    "trades",
)
# The totals that count call outcomes; stale/gaps/crossed/checksum counters are counted where the
# event happens, so a Binance replay counts its stale updates "as usual".
_OUTCOME_TOTAL: Final[dict[int, str]] = {
    APPLIED: "applied",
    SKIPPED: "skipped",
    BUFFERED: "buffered",
    WAITING: "waiting",
}
_UNSET: Final = object()

Result: TypeAlias = tuple[int, "str | None"]


class ReferenceEngine:
    """All L2 books of one exchange feed, keyed by symbol (pure Python, see module docstring)."""

    def __init__(self, exchange: str, depth: int = 0, buffer_limit: int = 10000) -> None:
        name = exchange.lower() if isinstance(exchange, str) else exchange
        if name not in EXCHANGES:
            raise ValueError(f"unknown exchange {exchange!r}; expected one of {EXCHANGES}")
        if depth < 0:
            raise ValueError("depth must be >= 0")
        if buffer_limit < 1:
            raise ValueError("buffer_limit must be at least 1")
        self._exchange: str = name
        self._depth = depth
        self._buffer_limit = buffer_limit
        self._books: dict[str, _Book] = {}
        self._totals: dict[str, int] = dict.fromkeys(_TOTAL_KEYS, 0)
        # Only the Kraken checksum reads the book's scales; other feeds skip the bookkeeping.
        self._track_scales = name == "kraken"
        self._apply: Callable[[bytes | str], Result] = getattr(self, f"_apply_{name}")

    # ---- public surface -------------------------------------------------------------------

    @property
    def exchange(self) -> str:
        return self._exchange

    @property
    def depth(self) -> int:
        return self._depth

    def apply(self, message: bytes | str) -> tuple[int, str | None]:
        """Apply one raw WebSocket message; returns ``(outcome, symbol)``."""
        try:
            outcome, symbol = self._apply(message)
        except ReferenceMalformed:
            self._totals["errors"] += 1
            raise
        self._count(outcome)
        return outcome, symbol

    def apply_snapshot(self, symbol: str, message: bytes | str) -> tuple[int, str | None]:
        """Apply a REST depth snapshot (Binance ``/fapi/v1/depth``, Bybit
        ``/v5/market/orderbook``)."""
        try:
            if type(symbol) is not str or not symbol:
                raise ReferenceMalformed("symbol must be a non-empty string")
            if self._exchange == "binance":
                outcome = self._binance_snapshot(symbol, message)
            elif self._exchange == "bybit":
                outcome = self._bybit_rest_snapshot(symbol, message)
            else:
                raise ReferenceMalformed(f"{self._exchange} has no REST snapshot")
        except ReferenceMalformed:
            self._totals["errors"] += 1
            raise
        self._count(outcome)
        return outcome, symbol

    def symbols(self) -> list[str]:
        return list(self._books)

    def has_book(self, symbol: str) -> bool:
        return symbol in self._books

    def state(self, symbol: str) -> str:
        return self._book(symbol).state

    def is_live(self, symbol: str) -> bool:
        return self._book(symbol).state == LIVE

    def needs_resync(self) -> list[str]:
        return [s for s, b in self._books.items() if b.state == NEEDS_RESYNC]

    def reset(self, symbol: str) -> None:
        book = self._book(symbol)
        book.clear()
        book.state = AWAITING
        book.update_id = 0
        book.bridged = False
        # The Binance buffer stays: its updates carry the exchange's ids, so the sync rules
        # drop the stale ones and let the rest bridge the next snapshot.

    def top_of_book(self, symbol: str) -> tuple[float, float, float, float] | None:
        book = self._book(symbol)
        if not book.bids or not book.asks:
            return None
        bid, bid_size = book.bids.peekitem(0)[1]
        ask, ask_size = book.asks.peekitem(0)[1]
        return float(bid), float(bid_size), float(ask), float(ask_size)

    def best_bid(self, symbol: str) -> tuple[str, str] | None:
        book = self._book(symbol)
        return book.bids.peekitem(0)[1] if book.bids else None

    def best_ask(self, symbol: str) -> tuple[str, str] | None:
        book = self._book(symbol)
        return book.asks.peekitem(0)[1] if book.asks else None

    def levels(
        self, symbol: str, n: int = 20
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        book = self._book(symbol)
        if n < 0:
            raise OverflowError("n must be >= 0")
        if n == 0:
            return list(book.bids.values()), list(book.asks.values())
        return book.bids.values()[:n], book.asks.values()[:n]

    def update_id(self, symbol: str) -> int:
        return self._book(symbol).update_id

    def last_ts(self, symbol: str) -> int | None:
        return self._book(symbol).last_ts

    def stats(self, symbol: str) -> dict[str, int | str]:
        b = self._book(symbol)
        return {
            "messages": b.messages,
            "update_id": b.update_id,
            "gaps": b.gaps,
            "resyncs": b.resyncs,
            "stale": b.stale,
            "crossed": b.crossed,
            "checksums_checked": b.checksums_checked,
            "checksum_failures": b.checksum_failures,
            "bid_levels": len(b.bids),
            "ask_levels": len(b.asks),
            "depth": b.depth,
            "state": b.state,
        }

    def totals(self) -> dict[str, int]:
        return dict(self._totals)

    def __repr__(self) -> str:
        return f"ReferenceEngine({self._exchange!r}, depth={self._depth}, books={len(self._books)})"

    # ---- shared machinery -----------------------------------------------------------------

    def _book(self, symbol: str) -> _Book:
        try:
            return self._books[symbol]
        except KeyError:
            raise ReferenceUnknownSymbol(symbol) from None

    def _count(self, outcome: int) -> None:
        totals = self._totals
        totals["messages"] += 1
        name = _OUTCOME_TOTAL.get(outcome)
        if name is not None:
            totals[name] += 1

    def _route(self, entry: _Entry, *, count: bool = True) -> _Book:
        """The book a validated entry goes to (created on first sight)."""
        book = self._books.get(entry.symbol)
        if book is None:
            book = self._books[entry.symbol] = _Book(entry.symbol)
        if count:
            book.messages += 1
        if self._track_scales:
            book.see(entry)
        return book

    def _effective_depth(self, feed_depth: int) -> int:
        return self._depth or feed_depth

    def _start_snapshot(self, book: _Book, entry: _Entry) -> None:
        if book.resync_pending:  # the first snapshot since the book broke, reset or not
            book.resync_pending = False
            book.resyncs += 1
        book.replace(entry.bids, entry.asks)
        book.state = LIVE

    def _gap(self, book: _Book) -> int:
        book.gaps += 1
        self._totals["gaps"] += 1
        book.break_()
        return GAP

    def _stale(self, book: _Book) -> int:
        book.stale += 1
        self._totals["stale"] += 1
        return STALE

    def _finish(self, book: _Book, depth: int, ts: object = _UNSET) -> int:
        """After levels were applied: truncate, stamp, crossed guard."""
        book.truncate(depth)
        if ts is not _UNSET:
            book.last_ts = ts  # type: ignore[assignment]
        return self._crossed_guard(book)

    def _crossed_guard(self, book: _Book) -> int:
        if book.is_crossed():
            book.crossed += 1
            self._totals["crossed"] += 1
            book.break_()
            return CROSSED
        return APPLIED

    def _verify(self, book: _Book, expected: int, actual: int) -> bool:
        book.checksums_checked += 1
        self._totals["checksums_checked"] += 1
        if expected == actual:
            return True
        book.checksum_failures += 1
        self._totals["checksum_failures"] += 1
        book.break_()
        return False

    # ---- Bybit ----------------------------------------------------------------------------

    def _apply_bybit(self, message: bytes | str) -> Result:
        entry = self._bybit_entry(_loads(message))
        if entry is None:
            return SKIPPED, None
        book = self._route(entry)
        if entry.snapshot:
            return self._bybit_snapshot(book, entry), entry.symbol
        return self._bybit_delta(book, entry), entry.symbol

    def _bybit_snapshot(self, book: _Book, entry: _Entry) -> int:
        self._start_snapshot(book, entry)
        book.update_id = entry.update_id  # type: ignore[assignment]
        # The snapshot's envelope time, or none: an older stamp would describe another book.
        return self._finish(book, entry.depth, entry.ts)

    def _bybit_delta(self, book: _Book, entry: _Entry) -> int:
        u: int = entry.update_id  # type: ignore[assignment]
        if book.state != LIVE:
            return WAITING
        if u <= book.update_id:
            return self._stale(book)
        if u != book.update_id + 1:
            return self._gap(book)
        book.update(entry.bids, entry.asks)
        book.update_id = u
        return self._finish(book, entry.depth, entry.ts)

    def _bybit_entry(self, obj: Any) -> _Entry | None:
        if type(obj) is not dict:
            raise ReferenceMalformed("Bybit message is not an object")
        topic = obj.get("topic")
        if topic is None:  # JSON null counts as absent, as for every optional field
            if obj.get("op") is not None or obj.get("success") is not None:
                return None  # pong, subscribe ack, auth
            raise ReferenceMalformed("Bybit message has neither topic nor op")
        if type(topic) is not str:
            raise ReferenceMalformed("Bybit topic is not a string")
        head, _, rest = topic.partition(".")
        if head in BYBIT_SKIPPED_TOPICS:
            return None
        if head != "orderbook":
            raise ReferenceMalformed(f"unknown Bybit topic {topic!r}")
        depth_text, dot, symbol = rest.partition(".")
        if not dot or not symbol or _TOPIC_DEPTH.fullmatch(depth_text) is None:
            return None  # orderbook.rpi.X, orderbook.full.X
        kind = obj.get("type")
        if kind not in ("snapshot", "delta"):
            raise ReferenceMalformed(f"Bybit type must be snapshot or delta, got {kind!r}")
        data = obj.get("data")
        if type(data) is not dict:
            raise ReferenceMalformed("Bybit data is not an object")
        if data.get("s") is not None and data["s"] != symbol:
            raise ReferenceMalformed(f"data.s {data['s']!r} does not match topic {topic!r}")
        return _Entry(
            symbol=symbol,
            snapshot=kind == "snapshot",
            update_id=_require_u64(data.get("u"), "data.u"),
            bids=parse_array_levels(data.get("b", []), "b"),
            asks=parse_array_levels(data.get("a", []), "a"),
            depth=self._effective_depth(int(depth_text)),
            ts=_optional_int(obj.get("ts"), "ts"),
        )

    def _bybit_rest_snapshot(self, symbol: str, message: bytes | str) -> int:
        obj = _loads(message)
        if type(obj) is not dict:
            raise ReferenceMalformed("Bybit REST snapshot is not an object")
        if obj.get("retCode", 0) != 0:
            raise ReferenceMalformed(f"Bybit REST error retCode={obj.get('retCode')!r}")
        if "result" in obj:
            obj = obj["result"]
            if type(obj) is not dict:
                raise ReferenceMalformed("Bybit REST result is not an object")
        if obj.get("s") is not None and obj["s"] != symbol:
            raise ReferenceMalformed(f"snapshot symbol {obj['s']!r} is not {symbol!r}")
        entry = _Entry(
            symbol=symbol,
            snapshot=True,
            update_id=_require_u64(obj.get("u"), "u"),
            bids=parse_array_levels(obj.get("b"), "b"),
            asks=parse_array_levels(obj.get("a"), "a"),
            # No topic here: only the engine's depth applies until the next delta.
            depth=self._depth,
            ts=_optional_int(obj.get("ts"), "ts"),
        )
        return self._bybit_snapshot(self._route(entry), entry)

    # ---- Binance --------------------------------------------------------------------------

    def _apply_binance(self, message: bytes | str) -> Result:
        entry = self._binance_entry(_loads(message))
        if entry is None:
            return SKIPPED, None
        book = self._route(entry)
        if book.state != LIVE:
            self._buffer(book, entry)
            return BUFFERED, entry.symbol
        return self._binance_live(book, entry), entry.symbol

    def _binance_entry(self, obj: Any) -> _Entry | None:
        if type(obj) is not dict:
            raise ReferenceMalformed("Binance message is not an object")
        if "stream" in obj:
            obj = obj.get("data")
            if type(obj) is not dict:
                raise ReferenceMalformed("Binance stream message without a data object")
        if "e" in obj:
            if obj["e"] != "depthUpdate":
                return None  # bookTicker, aggTrade, kline, ...
        elif "lastUpdateId" in obj:
            raise ReferenceMalformed("a REST snapshot has no symbol: use apply_snapshot")
        elif "result" in obj or "id" in obj:
            return None  # subscription reply
        else:
            raise ReferenceMalformed("not a Binance event")
        symbol = obj.get("s")
        if type(symbol) is not str or not symbol:
            raise ReferenceMalformed("depthUpdate without symbol")
        first = _require_u64(obj.get("U"), "U")
        last = _require_u64(obj.get("u"), "u")
        if first > last:
            raise ReferenceMalformed("depthUpdate with U > u")
        prev = obj.get("pu")
        return _Entry(
            symbol=symbol,
            snapshot=False,
            first_id=first,
            update_id=last,
            prev_id=None if prev is None else _require_u64(prev, "pu"),
            bids=parse_array_levels(obj.get("b", []), "b"),
            asks=parse_array_levels(obj.get("a", []), "a"),
            depth=self._depth,
            ts=_optional_int(obj.get("E"), "E"),
        )

    def _buffer(self, book: _Book, entry: _Entry) -> None:
        if book.buffer is None:
            book.buffer = deque(maxlen=self._buffer_limit)
        book.buffer.append(entry)  # a full deque drops its oldest entry

    def _binance_live(self, book: _Book, entry: _Entry) -> int:
        """The live sync rules for one update ``(U, u, pu)``."""
        u: int = entry.update_id  # type: ignore[assignment]
        if u < book.update_id:
            return self._stale(book)
        if not book.bridged:
            if not entry.first_id <= book.update_id <= u:  # type: ignore[operator]
                return self._binance_gap(book, entry)
        else:
            if u <= book.update_id:
                return self._stale(book)
            # USD-M futures chain on pu; a stream without pu (spot) chains on U == last u + 1.
            if entry.prev_id is None:
                chained = entry.first_id == book.update_id + 1
            else:
                chained = entry.prev_id == book.update_id
            if not chained:
                return self._binance_gap(book, entry)
        book.update(entry.bids, entry.asks)
        book.update_id = u
        book.bridged = True
        if entry.ts is not None:
            return self._finish(book, entry.depth, entry.ts)
        return self._finish(book, entry.depth)

    def _binance_gap(self, book: _Book, entry: _Entry) -> int:
        # The update that revealed the gap may bridge the next snapshot: keep it.
        self._buffer(book, entry)
        return self._gap(book)

    def _binance_snapshot(self, symbol: str, message: bytes | str) -> int:
        obj = _loads(message)
        if type(obj) is not dict:
            raise ReferenceMalformed("Binance REST snapshot is not an object")
        entry = _Entry(
            symbol=symbol,
            snapshot=True,
            update_id=_require_u64(obj.get("lastUpdateId"), "lastUpdateId"),
            bids=parse_array_levels(obj.get("bids"), "bids"),
            asks=parse_array_levels(obj.get("asks"), "asks"),
            depth=self._depth,
            ts=_optional_int(obj.get("E"), "E"),
        )
        book = self._route(entry)
        self._start_snapshot(book, entry)
        book.update_id = entry.update_id  # type: ignore[assignment]
        book.bridged = False
        result = self._finish(book, entry.depth, entry.ts)
        return self._replay(book, result)

    def _replay(self, book: _Book, result: int) -> int:
        """Run the buffered updates through the live rules, in order, as if they arrived now:
        once the book breaks, the rest go back into the buffer for the next snapshot."""
        if not book.buffer:
            return result
        pending = list(book.buffer)
        book.buffer.clear()
        for entry in pending:
            if book.state != LIVE:
                self._buffer(book, entry)
                continue
            outcome = self._binance_live(book, entry)
            if outcome in (GAP, CROSSED) and result == APPLIED:
                result = outcome
        return result

    # ---- OKX ------------------------------------------------------------------------------

    def _apply_okx(self, message: bytes | str) -> Result:
        if isinstance(message, (bytes, str)) and message.strip() in ("pong", b"pong"):
            return SKIPPED, None
        entries = self._okx_entries(_loads(message))
        if not entries:
            return SKIPPED, None  # not a book message, or a book message with no entry
        book = self._route(entries[0])
        outcome = APPLIED
        for entry in entries:
            outcome = self._okx_entry(book, entry)
            if outcome != APPLIED:
                break
        return outcome, book.symbol

    def _okx_entry(self, book: _Book, entry: _Entry) -> int:
        seq = None if entry.update_id is None else max(entry.update_id, 0)
        if entry.snapshot:
            self._start_snapshot(book, entry)
            book.update_id = seq or 0
        else:
            if book.state != LIVE:
                return WAITING
            prev = entry.prev_id
            # The chain is checked once the book has a seqId (update_id 0 means none).
            if (
                prev is not None
                and prev != -1
                and book.update_id
                and max(prev, 0) != book.update_id
            ):
                return self._gap(book)
            book.update(entry.bids, entry.asks)
            if seq is not None:
                book.update_id = seq
        if entry.ts is not None:
            book.last_ts = entry.ts
        book.truncate(entry.depth)
        if entry.checksum:  # absent, or 0 since OKX's 2026 deprecation: nothing to verify
            actual = _okx_crc(book.bids.values(), book.asks.values())
            if not self._verify(book, entry.checksum, actual):
                return CHECKSUM_MISMATCH
        return self._crossed_guard(book)

    def _okx_entries(self, obj: Any) -> list[_Entry] | None:
        if type(obj) is not dict:
            raise ReferenceMalformed("OKX message is not an object")
        if "event" in obj:
            return None  # subscribe, error, login
        arg = obj.get("arg")
        if type(arg) is not dict:
            raise ReferenceMalformed("OKX message without arg")
        channel = arg.get("channel")
        if type(channel) is not str:
            raise ReferenceMalformed("OKX arg.channel is not a string")
        if channel not in OKX_BOOK_CHANNELS:
            return None  # trades, tickers, ...
        symbol = arg.get("instId")
        if type(symbol) is not str:
            raise ReferenceMalformed("OKX arg.instId missing")
        action = obj.get("action", "snapshot")
        if action not in ("snapshot", "update"):
            raise ReferenceMalformed(f"OKX action must be snapshot or update, got {action!r}")
        data = obj.get("data")
        if type(data) is not list:
            raise ReferenceMalformed("OKX data must be an array")
        snapshot = action == "snapshot"
        return [self._okx_parse_entry(symbol, snapshot, item) for item in data]

    def _okx_parse_entry(self, symbol: str, snapshot: bool, item: object) -> _Entry:
        if type(item) is not dict:
            raise ReferenceMalformed("OKX data entry is not an object")
        ts = item.get("ts")
        if ts is not None:
            if type(ts) is not str or _SIGNED.fullmatch(ts) is None:
                raise ReferenceMalformed(f"OKX ts is not an integer string: {ts!r}")
            ts = int(ts)
        return _Entry(
            symbol=symbol,
            snapshot=snapshot,
            bids=parse_array_levels(item.get("bids", []), "bids"),
            asks=parse_array_levels(item.get("asks", []), "asks"),
            depth=self._depth,
            update_id=_optional_int(item.get("seqId"), "seqId"),
            prev_id=_optional_int(item.get("prevSeqId"), "prevSeqId"),
            checksum=_optional_int(item.get("checksum"), "checksum"),
            ts=ts,
        )

    # ---- Kraken ---------------------------------------------------------------------------

    def _apply_kraken(self, message: bytes | str) -> Result:
        entries = self._kraken_entries(message)
        if not entries:
            return SKIPPED, None  # not a book message, or a v2 book message with no entry
        routed: dict[str, _Book] = {}  # a message counts once per book it reaches
        outcome, symbol = APPLIED, entries[0].symbol
        for entry in entries:
            symbol = entry.symbol
            book = routed.get(symbol)
            if book is None:
                book = routed[symbol] = self._route(entry)
            else:
                self._route(entry, count=False)
            outcome = self._kraken_entry(book, entry)
            if outcome != APPLIED:
                break
        return outcome, symbol

    def _kraken_entry(self, book: _Book, entry: _Entry) -> int:
        if entry.snapshot:
            self._start_snapshot(book, entry)
        elif book.state != LIVE:
            return WAITING
        else:
            book.update(entry.bids, entry.asks)
        if entry.ts is not None:
            book.last_ts = entry.ts
        book.truncate(entry.depth)
        if entry.checksum is not None:
            actual = _kraken_crc(
                book.asks.values(), book.bids.values(), book.price_scale, book.size_scale
            )
            if not self._verify(book, entry.checksum, actual):
                return CHECKSUM_MISMATCH
        return self._crossed_guard(book)

    def _kraken_entries(self, message: bytes | str) -> list[_Entry] | None:
        head = message.lstrip()[:1] if isinstance(message, (bytes, str)) else b""
        if head in ("[", b"["):
            return self._kraken_v1(_loads(message))  # v1 prices are strings: orjson suffices
        if head not in ("{", b"{"):
            raise ReferenceMalformed("Kraken message is neither a JSON array nor an object")
        obj = _loads_exact(message)
        if type(obj) is not dict:
            raise ReferenceMalformed("Kraken message is not an object")
        channel = obj.get("channel")
        if channel is None:
            if "event" in obj or "method" in obj:
                return None  # v1 heartbeat/systemStatus/subscriptionStatus/pong, v2 replies
            raise ReferenceMalformed("Kraken object without channel, event or method")
        if channel != "book":
            return None  # v2 heartbeat, status, ticker, trade, ...
        return self._kraken_v2(obj)

    def _kraken_v1(self, obj: Any) -> list[_Entry] | None:
        if type(obj) is not list:
            raise ReferenceMalformed("Kraken v1 message is not an array")
        if len(obj) < 4 or type(obj[-2]) is not str:
            raise ReferenceMalformed("Kraken v1 array is not [id, payload..., channel, pair]")
        channel, pair = obj[-2], obj[-1]
        if not channel.startswith("book"):
            return None  # trade, ticker, spread, ohlc-N
        if type(pair) is not str:
            raise ReferenceMalformed("Kraken v1 pair is not a string")
        name, dash, depth_text = channel.partition("-")
        if name != "book" or not dash or _DIGITS.fullmatch(depth_text) is None:
            raise ReferenceMalformed(f"Kraken v1 channel {channel!r} is not book-N")
        depth = self._effective_depth(int(depth_text))
        return [self._kraken_v1_entry(pair, obj[1:-2], depth)]

    @staticmethod
    def _kraken_v1_entry(pair: str, payloads: list[Any], depth: int) -> _Entry:
        """``as``/``bs`` make a snapshot, ``a``/``b`` (and ``c``) an update; payloads apply in
        order, and an update may carry only a checksum."""
        bids: list[Level] = []
        asks: list[Level] = []
        snapshot = False
        newest: int | None = None
        checksum: int | None = None
        for payload in payloads:
            if type(payload) is not dict:
                raise ReferenceMalformed("Kraken v1 book payload is not an object")
            for key, target in (("as", asks), ("bs", bids), ("a", asks), ("b", bids)):
                if key not in payload:
                    continue
                snapshot = snapshot or key in ("as", "bs")
                levels, ts = _parse_kraken_v1_levels(payload[key], key)
                target.extend(levels)
                if ts is not None and (newest is None or ts > newest):
                    newest = ts
            if "c" in payload:
                c = payload["c"]
                if type(c) is not str or _DIGITS.fullmatch(c) is None or int(c) >= 1 << 32:
                    raise ReferenceMalformed(f"Kraken v1 checksum {c!r} is not a CRC32")
                checksum = int(c)
        return _Entry(
            symbol=pair,
            snapshot=snapshot,
            bids=bids,
            asks=asks,
            depth=depth,
            checksum=checksum,
            ts=newest,
        )

    def _kraken_v2(self, obj: dict[str, Any]) -> list[_Entry]:
        kind = obj.get("type")
        if kind not in ("snapshot", "update"):
            raise ReferenceMalformed(f"Kraken v2 book type must be snapshot or update: {kind!r}")
        data = obj.get("data")
        if type(data) is not list:
            raise ReferenceMalformed("Kraken v2 data must be an array")
        depth = self._effective_depth(KRAKEN_V2_DEFAULT_DEPTH)
        return [self._kraken_v2_entry(item, kind == "snapshot", depth) for item in data]

    @staticmethod
    def _kraken_v2_entry(item: object, snapshot: bool, depth: int) -> _Entry:
        if type(item) is not dict:
            raise ReferenceMalformed("Kraken v2 data entry is not an object")
        symbol = item.get("symbol")
        if type(symbol) is not str:
            raise ReferenceMalformed("Kraken v2 entry without symbol")
        checksum = item.get("checksum")
        if checksum is not None:
            if type(checksum) is not _JsonInt or not 0 <= checksum < 1 << 32:
                raise ReferenceMalformed(f"Kraken v2 checksum {checksum!r} is not a CRC32")
            checksum = int(checksum)
        stamp = item.get("timestamp")
        return _Entry(
            symbol=symbol,
            snapshot=snapshot,
            bids=_parse_kraken_v2_levels(item.get("bids", []), "bids"),
            asks=_parse_kraken_v2_levels(item.get("asks", []), "asks"),
            depth=depth,
            checksum=checksum,
            ts=None if stamp is None else _iso_ms(stamp),
        )
