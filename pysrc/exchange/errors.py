"""Exchange-neutral error base and retry classes (the Bybit specifics live in ``bybit/``)."""

from __future__ import annotations

from enum import Enum


class RetryClass(str, Enum):
    """How a caller may react to a failed exchange call."""

    OK = "ok"
    """Success."""
    NOOP_SUCCESS = "noop_success"
    """Nothing changed because it was already so (leverage/TP-SL/mode not modified): success."""
    FATAL = "fatal"
    """The request is wrong or not allowed; resending it unchanged fails again."""
    BACKOFF = "backoff"
    """Transient and definitely not executed: resend after an exponential backoff."""
    RATE_LIMITED = "rate_limited"
    """Definitely not executed: resend once the rate-limit window resets."""
    RESYNC_CLOCK = "resync_clock"
    """Timestamp outside recv_window: definitely not executed; re-measure the clock, re-sign, resend."""
    UNKNOWN_OUTCOME = "unknown_outcome"
    """Server-side timeout/restart or a lost response: a write may or may not have happened.
    Reads may be retried; writes must be reconciled (look the order up) before any resend."""
    DUPLICATE = "duplicate"
    """The ``orderLinkId`` already exists: the earlier attempt landed; query it, never resend."""
    ORDER_GONE = "order_gone"
    """The order does not exist or is already closed (terminal for amend/cancel)."""


class ExchangeError(Exception):
    """Base class of everything the exchange client raises on purpose. ``retry`` says whether
    (and how) resending is safe."""

    retry: RetryClass = RetryClass.FATAL


__all__ = ["ExchangeError", "RetryClass"]
