"""Typed Python surface of the native order-book engine.

The engine lives in Rust (``pysrc._native.BookEngine``); this module adds an ``IntEnum`` for the
apply outcomes and re-exports the exceptions so callers catch specific errors.
"""

from __future__ import annotations

import enum

from pysrc._core import native

BookEngine = native.BookEngine
NativeError = native.NativeError
MalformedMessage = native.MalformedMessage
UnknownSymbol = native.UnknownSymbol

EXCHANGES: tuple[str, ...] = ("bybit", "binance", "okx", "kraken")


class ApplyOutcome(enum.IntEnum):
    """What happened to one message (mirrors the native outcome codes)."""

    APPLIED = native.APPLIED
    SKIPPED = native.SKIPPED
    STALE = native.STALE
    BUFFERED = native.BUFFERED
    WAITING = native.WAITING
    GAP = native.GAP
    CROSSED = native.CROSSED
    CHECKSUM_MISMATCH = native.CHECKSUM_MISMATCH

    @property
    def breaks_book(self) -> bool:
        """True when the book now needs a resync (a fresh snapshot) before it can be used."""
        return self in (ApplyOutcome.GAP, ApplyOutcome.CROSSED, ApplyOutcome.CHECKSUM_MISMATCH)


__all__ = [
    "EXCHANGES",
    "ApplyOutcome",
    "BookEngine",
    "MalformedMessage",
    "NativeError",
    "UnknownSymbol",
]
