"""Typed Python surface of the native order-book engine.

The engine lives in Rust (``pysrc._native.BookEngine``); this module adds an ``IntEnum`` for the
apply outcomes and re-exports the exceptions so callers catch specific errors. The native names
are resolved lazily, so the pure-Python modules of this package (``reference``, ``capture``,
``synthetic``) import without the compiled core.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pysrc._native import BookEngine, MalformedMessage, NativeError, UnknownSymbol

EXCHANGES: tuple[str, ...] = ("bybit", "binance", "okx", "kraken")

_NATIVE_NAMES = frozenset({"BookEngine", "MalformedMessage", "NativeError", "UnknownSymbol"})


def __getattr__(name: str) -> Any:
    if name in _NATIVE_NAMES:
        from pysrc._core import native

        value = getattr(native, name)
        globals()[name] = value  # resolve once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ApplyOutcome(enum.IntEnum):
    """What happened to one message. The values are the native outcome codes (part of the
    contract in ``_native.pyi``; a test checks that they agree)."""

    APPLIED = 0
    SKIPPED = 1
    STALE = 2
    BUFFERED = 3
    WAITING = 4
    GAP = 5
    CROSSED = 6
    CHECKSUM_MISMATCH = 7
    TRADES = 8

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
