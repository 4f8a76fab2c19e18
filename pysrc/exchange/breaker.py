"""Circuit breakers per endpoint group (mission section 8).

A breaker opens after ``failure_threshold`` failures within ``window`` seconds, rejects every call
for ``open_seconds``, then goes half-open and lets exactly one probe through: the probe's success
closes it, its failure opens it again for another ``open_seconds``. While the probe is in flight
other calls are rejected. Time comes from an injectable monotonic clock so tests can drive the
state machine without sleeping.

What counts as a failure is the caller's decision (see :mod:`pysrc.exchange.bybit.rest`): transport
errors, timeouts, HTTP 5xx/429 and server-side retCodes do; business rejections (insufficient
balance, bad price) do not, because they prove the service is up.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

from pysrc.exchange.errors import ExchangeError, RetryClass


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpenError(ExchangeError):
    """The call was not sent: the breaker for its group is open (or half-open with a probe in
    flight). Nothing reached the exchange, so the caller may retry after ``retry_after`` s."""

    retry = RetryClass.BACKOFF

    def __init__(self, name: str, state: BreakerState, retry_after: float) -> None:
        self.name = name
        self.state = state
        self.retry_after = retry_after
        super().__init__(f"circuit breaker {name!r} is {state.value}; retry in {retry_after:.1f} s")


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        window: float = 30.0,
        open_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or window <= 0 or open_seconds <= 0:
            raise ValueError("failure_threshold >= 1, window > 0 and open_seconds > 0 required")
        self.name = name
        self.failure_threshold = failure_threshold
        self.window = window
        self.open_seconds = open_seconds
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._probe_in_flight = False
        # counters (monotonic over the breaker's life)
        self.successes = 0
        self.failures = 0
        self.rejected = 0
        self.times_opened = 0
        self.last_failure: str | None = None
        self.last_change = clock()

    # ---- state ---------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        """Current state; an open breaker whose time is up reads as half-open."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.open_seconds:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def retry_after(self) -> float:
        if self.state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self.open_seconds - self._clock())
        return 0.0

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            self.last_change = self._clock()

    def _prune(self, now: float) -> None:
        while self._failures and now - self._failures[0] > self.window:
            self._failures.popleft()

    # ---- call protocol -------------------------------------------------------------------
    def acquire(self) -> None:
        """Call before sending. Raises :class:`BreakerOpenError` if the call must not go out;
        otherwise the caller must later call exactly one of ``record_success``,
        ``record_failure`` or ``release``."""
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return
        self.rejected += 1
        raise BreakerOpenError(self.name, state, self.retry_after() if state is BreakerState.OPEN else 0.0)

    def record_success(self) -> None:
        self.successes += 1
        if self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
            self._failures.clear()
            self._set(BreakerState.CLOSED)

    def record_failure(self, reason: str = "") -> None:
        now = self._clock()
        self.failures += 1
        self.last_failure = reason or None
        if self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
            self._open(now)
            return
        if self._state is BreakerState.OPEN:
            return  # a call that started before the breaker opened
        self._failures.append(now)
        self._prune(now)
        if len(self._failures) >= self.failure_threshold:
            self._open(now)

    def release(self) -> None:
        """The call ended without a verdict (cancelled, or refused locally before sending)."""
        if self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._failures.clear()
        self.times_opened += 1
        self._set(BreakerState.OPEN)

    def reset(self) -> None:
        """Force closed (operator action)."""
        self._failures.clear()
        self._probe_in_flight = False
        self._set(BreakerState.CLOSED)

    def snapshot(self) -> dict[str, Any]:
        state = self.state
        self._prune(self._clock())
        return {
            "state": state.value,
            "recent_failures": len(self._failures),
            "failures": self.failures,
            "successes": self.successes,
            "rejected": self.rejected,
            "times_opened": self.times_opened,
            "retry_after": round(self.retry_after(), 3),
            "last_failure": self.last_failure,
        }


class BreakerBoard:
    """One breaker per endpoint group, created on first use with shared settings."""

    def __init__(
        self,
        groups: Iterable[str] = (),
        *,
        failure_threshold: int = 5,
        window: float = 30.0,
        open_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = {"failure_threshold": failure_threshold, "window": window, "open_seconds": open_seconds}
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        for g in groups:
            self.get(g)

    def get(self, group: str) -> CircuitBreaker:
        b = self._breakers.get(group)
        if b is None:
            b = self._breakers[group] = CircuitBreaker(
                group,
                failure_threshold=int(self._settings["failure_threshold"]),
                window=float(self._settings["window"]),
                open_seconds=float(self._settings["open_seconds"]),
                clock=self._clock,
            )
        return b

    def __getitem__(self, group: str) -> CircuitBreaker:
        return self.get(group)

    def states(self) -> dict[str, str]:
        return {g: b.state.value for g, b in self._breakers.items()}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {g: b.snapshot() for g, b in self._breakers.items()}


__all__ = ["BreakerBoard", "BreakerOpenError", "BreakerState", "CircuitBreaker"]
