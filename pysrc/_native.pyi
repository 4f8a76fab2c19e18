"""Contract of the compiled Rust core (``pysrc._native``).

This file is checked against the compiled module by ``mypy.stubtest`` in the test suite, so it
cannot drift from what the extension really exports. Python code should normally use the thin
wrappers in :mod:`pysrc.book` and :mod:`pysrc.exchange.limits` rather than this module directly.

Design rules the core follows:

* raw exchange bytes go in, one call per message; no per-level Python objects on the hot path;
* prices and sizes are fixed-point integers inside the core; they come back out either as exact
  decimal strings (``levels``, ``best_bid``, ``best_ask``) or, for analytics only, as floats
  (``top_of_book``);
* malformed input raises :class:`MalformedMessage` and leaves every book unchanged.
"""


from typing import Final, final

from typing_extensions import Buffer, Self

__all__ = [
    "APPLIED",
    "BUFFERED",
    "BookEngine",
    "CHECKSUM_MISMATCH",
    "CROSSED",
    "FEATURE_CONVENTIONS",
    "FEATURE_SCHEMA_VERSION",
    "FEATURE_TEMPORAL_DOC",
    "GAP",
    "MalformedMessage",
    "NativeError",
    "RateLimiter",
    "SKIPPED",
    "TRADES",
    "STALE",
    "UnknownBucket",
    "UnknownSymbol",
    "WAITING",
    "__version__",
    "feature_schema",
]

__version__: str

# Outcome codes returned by BookEngine.apply / apply_snapshot (first element of the tuple).
APPLIED: Final[int]
"""A snapshot or delta was applied and the book is live."""
SKIPPED: Final[int]
"""Not an order-book message (trade, ticker, pong, subscribe ack, heartbeat...)."""
STALE: Final[int]
"""A delta older than the book (Bybit ``u <= last u``, Binance ``u < lastUpdateId``) was dropped."""
BUFFERED: Final[int]
"""Binance: update buffered while the book waits for its REST snapshot."""
WAITING: Final[int]
"""A delta for a book that has no snapshot yet (or needs a resync) was dropped."""
GAP: Final[int]
"""Sequence gap detected; the book now needs a resync and is not usable until rebuilt."""
CROSSED: Final[int]
"""The message left the book crossed (best bid >= best ask); the book now needs a resync."""
CHECKSUM_MISMATCH: Final[int]
"""The exchange checksum did not match the book after applying; the book now needs a resync."""
TRADES: Final[int]
"""Public trades consumed by the analytics (engines created with ``features=True``)."""

FEATURE_SCHEMA_VERSION: Final[int]
"""Version of the feature vector layout; bumped whenever a name, position or definition changes."""
FEATURE_CONVENTIONS: Final[str]
"""The conventions the feature formulas use (Markdown bullets), rendered into docs/features.md."""
FEATURE_TEMPORAL_DOC: Final[str]
"""Grammar and semantics of configured temporal features (``BookEngine(temporal=[...])``)."""

def feature_schema() -> list[dict[str, str]]:
    """Every base feature in vector order: ``name, group, units, window, formula, missing``."""

class NativeError(Exception):
    """Base class of every error raised by the compiled core."""

class MalformedMessage(NativeError, ValueError):
    """The message could not be parsed or violates the exchange schema; nothing was applied."""

class UnknownSymbol(NativeError, KeyError):
    """No book exists for the requested symbol."""

class UnknownBucket(NativeError, KeyError):
    """No token bucket with that name."""

@final
class BookEngine:
    """All L2 books of one exchange feed, keyed by symbol.

    ``exchange`` is one of ``"bybit"``, ``"binance"``, ``"okx"``, ``"kraken"`` (Kraken WebSocket v1
    and v2 messages are both accepted). ``depth`` truncates every book to that many levels per side
    after each message; ``0`` means "as the feed says": the Bybit topic depth
    (``orderbook.200.X`` -> 200), the Kraken v1 channel depth (``book-1000`` -> 1000), 10 for Kraken
    v2, no truncation for Binance and OKX. ``buffer_limit`` bounds the per-symbol buffer of Binance
    updates kept while waiting for a REST snapshot (oldest dropped first).
    """

    def __new__(
        cls,
        exchange: str,
        depth: int = 0,
        buffer_limit: int = 10000,
        features: bool = False,
        temporal: list[str] | None = None,
    ) -> Self:
        """``temporal`` appends configured rolling features (``"imbalance_5:mean:30s"``; see
        ``FEATURE_TEMPORAL_DOC``) after the base features; it needs ``features=True``. A bad spec
        raises ValueError naming it."""
    @property
    def exchange(self) -> str: ...
    @property
    def depth(self) -> int: ...
    def apply(self, message: bytes | str) -> tuple[int, str | None]:
        """Apply one raw WebSocket message. Returns ``(outcome, symbol)``; symbol is None when skipped.

        Raises MalformedMessage for input that cannot be understood; no book is changed then.
        """
    def apply_lines(
        self, data: bytes | str, rest_symbol: str | None = None, max_errors: int = 5
    ) -> dict[str, int | list[tuple[int, str]]]:
        """Apply newline-separated messages, each exactly as ``apply`` would, in one call (for
        replaying recorded files; the GIL is released meanwhile). Blank lines count as skipped; a
        Binance REST depth line goes to ``apply_snapshot(rest_symbol)`` when one is given.
        Malformed lines are counted, never raised. Returns ``lines, applied, skipped, other``
        (stale/buffered/waiting/gap/crossed/checksum outcomes), ``errors`` and ``first_errors``
        (1-based line number within ``data``, message)."""
    def apply_snapshot(self, symbol: str, message: bytes | str) -> tuple[int, str | None]:
        """Apply a REST depth snapshot for ``symbol`` (Binance ``/fapi/v1/depth``; Bybit
        ``/v5/market/orderbook`` result or envelope)."""
    def symbols(self) -> list[str]:
        """Symbols with a book, in first-seen order."""
    def has_book(self, symbol: str) -> bool: ...
    def state(self, symbol: str) -> str:
        """``"awaiting_snapshot"``, ``"live"`` or ``"needs_resync"``."""
    def is_live(self, symbol: str) -> bool: ...
    def needs_resync(self) -> list[str]:
        """Symbols whose book must be rebuilt from a fresh snapshot before it is used."""
    def reset(self, symbol: str) -> None:
        """Forget the book's levels and wait for a fresh snapshot (call after resubscribing)."""
    def top_of_book(self, symbol: str) -> tuple[float, float, float, float] | None:
        """``(bid, bid_size, ask, ask_size)`` as floats for analytics; None while a side is empty."""
    def best_bid(self, symbol: str) -> tuple[str, str] | None:
        """Best bid ``(price, size)`` as exact decimal strings."""
    def best_ask(self, symbol: str) -> tuple[str, str] | None:
        """Best ask ``(price, size)`` as exact decimal strings."""
    def levels(self, symbol: str, n: int = 20) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Top ``n`` levels per side (``0`` = all) as ``(bids, asks)`` of exact decimal strings,
        bids best (highest) first, asks best (lowest) first."""
    def update_id(self, symbol: str) -> int:
        """Last applied update id (Bybit ``u``, Binance ``u``, OKX ``seqId``; 0 if none)."""
    def last_ts(self, symbol: str) -> int | None:
        """Exchange timestamp (ms) of the last applied message, when the feed carries one."""
    def stats(self, symbol: str) -> dict[str, int | str]:
        """Counters and state of one book: ``messages, update_id, gaps, resyncs, stale, crossed,
        checksums_checked, checksum_failures, bid_levels, ask_levels, depth, state``."""
    # ---- analytics (engines created with features=True) ----------------------------------
    @property
    def features_enabled(self) -> bool: ...
    def feature_names(self) -> list[str]:
        """This engine's vector layout: the base names, then the configured temporal ones."""
    def feature_schema(self) -> list[dict[str, str]]:
        """``feature_schema()`` plus a row for each configured temporal feature."""
    def features_into(
        self, symbol: str, values: Buffer, mask: Buffer, normalized: bool = False
    ) -> int:
        """Write the symbol's current feature vector into ``values`` (float64, length
        ``len(self.feature_names())``) and ``mask`` (uint8, same length: 1 = present, 0 = missing; a
        missing value is written as 0.0, never NaN). ``normalized=True`` writes running z-scores
        (exponentially weighted over about 1,000 updates, clipped to [-10, 10]) instead of raw
        values. Returns the number of book updates the vector has seen."""
    def set_reference_symbol(self, symbol: str | None) -> None:
        """The symbol whose mid returns ``corr_ref_100`` correlates with (e.g. ``BTCUSDT``)."""
    def set_external_mid(self, symbol: str, mid: float | None) -> None:
        """The same pair's mid on another exchange, for ``basis_ext_bps`` (None clears it)."""
    def detections(self, symbol: str) -> list[dict[str, object]]:
        """Spoofing and layering detections of the last 60 s with their evidence: ``kind``
        (``spoofing`` / ``layering``), ``side``, ``score``, ``ts`` (when it vanished), ``levels``
        (list of ``(price, size_ratio, first_seen_ts, vanished_ts)``)."""
    def totals(self) -> dict[str, int]:
        """Engine counters: ``messages, applied, skipped, stale, buffered, waiting, gaps, crossed,
        checksum_failures, checksums_checked, errors, trades``."""

@final
class RateLimiter:
    """Named token buckets on a monotonic clock (non-blocking; the caller decides how to wait).

    Tokens are kept as fixed-point integers (1e-6 token resolution) so refill never drifts.
    """

    def __new__(cls) -> Self: ...
    def add_bucket(self, name: str, capacity: float, refill_per_second: float) -> None:
        """Create (or replace) a bucket that starts full. Raises ValueError for non-positive values."""
    def try_acquire(self, name: str, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if available now; never blocks. A cost above capacity raises ValueError."""
    def time_until_available(self, name: str, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens will be available (0.0 if they are now)."""
    def available(self, name: str) -> float:
        """Tokens available now."""
    def set_available(self, name: str, tokens: float) -> None:
        """Overwrite the current token count (e.g. from the exchange's remaining-quota header),
        clamped to ``[0, capacity]``."""
    def buckets(self) -> list[str]: ...
