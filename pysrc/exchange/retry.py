"""Retry policy: exponential backoff with full jitter, and the decision of *whether* to retry.

Only what is provably safe is retried automatically (bybit-v5.md section 5):

* reads (GET) on transport errors, timeouts, HTTP 5xx/429, 10000/10016 and friends;
* any request after 10006 (rate limit; waits for the window reset) and 10002 (re-measures the
  clock and re-signs): both prove the request was rejected before it did anything;
* any request after a "try later" code (110079, 10429, ...) that proves non-execution.

A write whose outcome is unknown (transport error, timeout, 5xx, 10000, 10016, lost ack) is never
resent by this policy: the decision is ``RECONCILE`` and the caller looks the order up by
``orderLinkId`` first (see ``BybitRest.place_order``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum

from pysrc.exchange.breaker import BreakerOpenError
from pysrc.exchange.errors import ExchangeError, RetryClass


class RetryAction(str, Enum):
    RAISE = "raise"
    BACKOFF = "backoff"
    WAIT_RATE_LIMIT = "wait_rate_limit"
    RESYNC_CLOCK = "resync_clock"
    RECONCILE = "reconcile"


@dataclass(frozen=True)
class RetryDecision:
    action: RetryAction
    delay: float = 0.0
    reason: str = ""


@dataclass
class RetryPolicy:
    max_attempts: int = 4
    """Total attempts per call, the first included."""
    base_delay: float = 0.1
    max_delay: float = 5.0
    max_clock_resyncs: int = 2
    """10002 answers re-measured and re-signed at most this many times per call."""
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in ``[0, min(max_delay, base_delay * 2**attempt)]`` (attempt 0 is
        the first retry). Spreads retries of many clients instead of synchronising them."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, attempt)))
        return self.rng.uniform(0.0, ceiling)

    def decide(
        self, error: BaseException, *, idempotent: bool, attempt: int, clock_resyncs: int = 0
    ) -> RetryDecision:
        """What to do after ``error`` on attempt number ``attempt`` (0-based) of one call."""
        retry = error.retry if isinstance(error, ExchangeError) else RetryClass.UNKNOWN_OUTCOME
        name = type(error).__name__
        if not isinstance(error, ExchangeError):
            # Not one of ours (a bug or an unexpected library error): never guess.
            return RetryDecision(RetryAction.RAISE, reason=f"unexpected {name}")
        if isinstance(error, BreakerOpenError):
            # Nothing was sent; hammering an open breaker defeats its purpose.
            return RetryDecision(RetryAction.RAISE, reason="breaker open")
        last = attempt + 1 >= self.max_attempts
        if retry is RetryClass.RESYNC_CLOCK:
            if clock_resyncs >= self.max_clock_resyncs or last:
                return RetryDecision(RetryAction.RAISE, reason="clock still rejected after resync")
            return RetryDecision(RetryAction.RESYNC_CLOCK, reason="10002: re-measure clock and re-sign")
        if retry is RetryClass.UNKNOWN_OUTCOME and not idempotent:
            return RetryDecision(RetryAction.RECONCILE, reason=f"{name}: write outcome unknown")
        if last:
            return RetryDecision(RetryAction.RAISE, reason="attempts exhausted")
        if retry is RetryClass.RATE_LIMITED and _is_uid_rate_limit(error):
            # the delay is only a fallback for endpoints without a local bucket to hold
            return RetryDecision(
                RetryAction.WAIT_RATE_LIMIT, self.backoff(attempt), reason="10006: wait for the window reset"
            )
        if retry is RetryClass.BACKOFF or (retry is RetryClass.UNKNOWN_OUTCOME and idempotent):
            return RetryDecision(RetryAction.BACKOFF, self.backoff(attempt), reason=f"{name}: transient")
        return RetryDecision(RetryAction.RAISE, reason=f"{name}: {retry.value}")


def _is_uid_rate_limit(error: BaseException) -> bool:
    """10006/10018 answers (per-UID quota) wait for the reset; an IP ban (403) or a local limiter
    timeout is not retried here."""
    return getattr(error, "ret_code", None) in (10006, 10018)


__all__ = ["RetryAction", "RetryDecision", "RetryPolicy"]
