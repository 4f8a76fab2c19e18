"""Per-client token buckets for the API's own request rate limit.

Why not the native ``RateLimiter`` the exchange client uses: that one holds a fixed set of named
buckets for the life of the process and cannot drop one. The API needs one bucket per client
address, created on first sight and forgotten when idle, or a scan from many addresses would grow
memory without bound. A bucket here is two floats in an LRU dict, and a check is a dict hit and a
few float operations (well under a microsecond next to a request's tens of microseconds).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


def default_burst(per_minute: int) -> int:
    """Bucket capacity for a per-minute rate: ten seconds' worth, at least 10, at most the rate
    itself (so a small limit is never exceeded within its first minute by more than itself)."""
    return max(1, min(per_minute, max(10, per_minute // 6)))


class TokenBuckets:
    """``per_minute`` requests per minute per key, bursts up to ``burst``.

    ``check(key)`` takes one token and returns 0.0, or returns the seconds until a token will be
    there (the ``Retry-After``) and takes nothing. At most ``max_keys`` buckets are kept; the least
    recently used is forgotten first (it comes back full, which only ever errs on the lenient side).
    """

    def __init__(
        self,
        per_minute: int,
        burst: int | None = None,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else default_burst(per_minute))
        if self.capacity < 1:
            raise ValueError("burst must be >= 1")
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def check(self, key: str, cost: float = 1.0) -> float:
        now = self._clock()
        b = self._buckets.get(key)
        if b is None:
            b = [self.capacity, now]
            self._buckets[key] = b
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            b[0] = min(self.capacity, b[0] + (now - b[1]) * self.rate)
            b[1] = now
        if b[0] >= cost:
            b[0] -= cost
            return 0.0
        return (cost - b[0]) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


__all__ = ["TokenBuckets", "default_burst"]
