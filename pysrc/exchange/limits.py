"""Rate limiting for exchange calls, on the native token buckets.

The buckets answer at once (the core never blocks); :meth:`RateLimits.acquire` awaits on the
event loop for exactly as long as the bucket says, so waiting for quota never stalls other tasks.
"""

from __future__ import annotations

import asyncio

from pysrc._core import native

RateLimiter = native.RateLimiter
UnknownBucket = native.UnknownBucket


class RateLimits:
    """Named buckets plus an awaitable ``acquire``."""

    def __init__(self) -> None:
        self._limiter = native.RateLimiter()

    def add(self, name: str, capacity: float, refill_per_second: float) -> None:
        self._limiter.add_bucket(name, capacity, refill_per_second)

    def try_acquire(self, name: str, cost: float = 1.0) -> bool:
        return self._limiter.try_acquire(name, cost)

    def available(self, name: str) -> float:
        return self._limiter.available(name)

    def sync_remaining(self, name: str, remaining: float) -> None:
        """Align a bucket with the quota the exchange reports (e.g. ``X-Bapi-Limit-Status``)."""
        self._limiter.set_available(name, remaining)

    async def acquire(self, name: str, cost: float = 1.0, timeout: float | None = None) -> None:
        """Wait until ``cost`` tokens are granted; raise ``TimeoutError`` after ``timeout`` s."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._limiter.try_acquire(name, cost):
            wait = self._limiter.time_until_available(name, cost)
            if deadline is not None and loop.time() + wait > deadline:
                raise TimeoutError(f"rate limit {name!r}: {cost} tokens not available within {timeout}s")
            await asyncio.sleep(wait)

    def buckets(self) -> list[str]:
        return self._limiter.buckets()


__all__ = ["RateLimiter", "RateLimits", "UnknownBucket"]
