"""Server clock offset, measured against ``GET /v5/market/time``.

Bybit accepts ``server_time - recv_window <= timestamp < server_time + 1000`` (bybit-v5.md 3.2):
being late by up to ``recv_window`` is fine, being more than 1 s *ahead* is always rejected
(10002). So the signed timestamp is the local clock plus the measured offset, minus a guard of
half the measuring round trip (the measurement's own uncertainty), erring towards "late".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ClockSample:
    offset_ms: float
    """server - local, at the midpoint of the request."""
    rtt_ms: float
    measured_at_ms: int


class ServerClock:
    """Local wall clock corrected by the last measured server offset.

    ``wall_ms`` is injectable so tests can skew the "local" clock on purpose.
    """

    def __init__(self, wall_ms: Callable[[], int] | None = None, *, max_guard_ms: int = 500) -> None:
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._max_guard_ms = max_guard_ms
        self._sample: ClockSample | None = None
        self.measurements = 0

    def local_ms(self) -> int:
        return self._wall_ms()

    def record(self, local_before_ms: int, local_after_ms: int, server_ms: int) -> ClockSample:
        """Record one measurement: the server's time was taken somewhere between the two local
        readings; assume the midpoint."""
        rtt = max(0, local_after_ms - local_before_ms)
        midpoint = local_before_ms + rtt / 2
        sample = ClockSample(offset_ms=server_ms - midpoint, rtt_ms=float(rtt), measured_at_ms=local_after_ms)
        self._sample = sample
        self.measurements += 1
        return sample

    @property
    def sample(self) -> ClockSample | None:
        return self._sample

    @property
    def offset_ms(self) -> float:
        return self._sample.offset_ms if self._sample else 0.0

    def now_ms(self) -> int:
        """Best estimate of the server's current time (ms)."""
        return int(self._wall_ms() + self.offset_ms)

    def timestamp_ms(self) -> int:
        """Timestamp to sign a request with: server time minus the measurement uncertainty, so a
        small error makes us late (accepted within recv_window) rather than early (rejected)."""
        guard = min(self._sample.rtt_ms / 2, self._max_guard_ms) if self._sample else 0.0
        return int(self._wall_ms() + self.offset_ms - guard)


__all__ = ["ClockSample", "ServerClock"]
