"""Exponential backoff with jitter for reconnects (and the resync rate limit).

Delay of attempt ``n`` (0-based) is ``min(cap, base * factor**n)`` scaled by a random factor in
``[1 - jitter, 1]``. Jitter spreads the reconnects of many connections that dropped together
(a Bybit restart drops all of them at once; Bybit also limits an IP to 500 connections per five
minutes), and the cap keeps a long outage from turning into hour-long sleeps. The random source
is injectable so the schedule can be tested exactly.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    base: float = 0.5
    """Delay of the first retry, in seconds (before jitter)."""
    cap: float = 30.0
    """Largest delay, in seconds (before jitter)."""
    factor: float = 2.0
    jitter: float = 0.5
    """Fraction of the delay that is randomised: 0 = none, 1 = "full jitter" (0 .. delay)."""
    random: Callable[[], float] = field(default=_random.random, repr=False)
    """Uniform [0, 1) source; injectable for tests."""
    attempts: int = 0
    """Consecutive failures so far (reset by :meth:`reset`)."""

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < self.base:
            raise ValueError("need 0 <= base <= cap")
        if self.factor < 1:
            raise ValueError("factor must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    def peek(self, attempt: int | None = None) -> float:
        """The un-jittered delay of ``attempt`` (default: the next one)."""
        n = self.attempts if attempt is None else attempt
        try:
            delay = self.base * self.factor**n
        except OverflowError:  # a very long outage: the cap has long been reached
            return self.cap
        return min(delay, self.cap)

    def next_delay(self) -> float:
        """The delay before the next attempt; counts the attempt."""
        delay = self.peek()
        self.attempts += 1
        return delay * (1.0 - self.jitter * self.random())

    def reset(self) -> None:
        self.attempts = 0


__all__ = ["Backoff"]
