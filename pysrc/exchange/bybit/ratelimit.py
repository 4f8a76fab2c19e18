"""Bybit REST quota on the native token buckets: per-UID per-endpoint buckets, the IP bucket,
re-sync from the ``X-Bapi-Limit-*`` headers, and the IP-ban gate.

Sizing (why the buckets are smaller than the published limits): Bybit counts requests in a
*rolling window* (1 s per UID per endpoint, 5 s per IP). A token bucket of capacity ``C`` refilled
at ``r``/s lets through at most ``C + r*W`` requests in any window of ``W`` seconds, so each bucket
is sized to ``C + r*W = limit * headroom``. For linear order create (10/s, headroom 0.9) that is a
burst of 1 and 8 per second: never more than 9 in any second, whatever the timing jitter does.
The IP bucket (600 / 5 s, headroom 0.85) is 102 burst + 81.6/s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pysrc.exchange.bybit.endpoints import Endpoint
from pysrc.exchange.bybit.errors import IpBannedError, RateLimitWaitError
from pysrc.exchange.limits import RateLimits

log = logging.getLogger(__name__)

IP_BUCKET = "ip:rest"
DEFAULT_BAN_SECONDS = 600.0
"""Bybit: after a 403 IP-limit breach, stop all REST for at least 10 minutes."""


@dataclass(frozen=True)
class BucketSpec:
    limit: float
    """What the exchange allows per window."""
    window: float
    capacity: float
    refill_per_second: float


def size_bucket(limit: float, window: float, headroom: float, burst_fraction: float) -> BucketSpec:
    """Capacity/refill such that ``capacity + refill * window <= limit * headroom``."""
    budget = limit * headroom
    capacity = max(1.0, math.floor(budget * burst_fraction))
    refill_budget = budget - capacity
    if refill_budget <= 0:  # tiny limits (1/s): keep one token and refill at half the budget
        refill_budget = budget * 0.5
    return BucketSpec(limit, window, capacity, refill_budget / window)


class RestRateLimiter:
    def __init__(
        self,
        limits: RateLimits | None = None,
        *,
        ip_limit: float = 600,
        ip_window: float = 5.0,
        ip_headroom: float = 0.85,
        ip_burst_fraction: float = 0.2,
        uid_headroom: float = 0.9,
        uid_burst_fraction: float = 0.2,
        ban_seconds: float = DEFAULT_BAN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or RateLimits()
        self.uid_headroom = uid_headroom
        self.uid_burst_fraction = uid_burst_fraction
        self.ban_seconds = ban_seconds
        self._clock = clock
        self._specs: dict[str, BucketSpec] = {}
        self._blocked_until: dict[str, float] = {}
        self._banned_until = 0.0
        self.bans = 0
        self.header_syncs = 0
        self.waits = 0
        ip = size_bucket(ip_limit, ip_window, ip_headroom, ip_burst_fraction)
        self._install(IP_BUCKET, ip)

    # ---- buckets --------------------------------------------------------------------------
    def _install(self, name: str, spec: BucketSpec) -> None:
        self.limits.add(name, spec.capacity, spec.refill_per_second)
        self._specs[name] = spec

    def _uid_spec(self, limit: float) -> BucketSpec:
        return size_bucket(limit, 1.0, self.uid_headroom, self.uid_burst_fraction)

    def bucket_for(self, endpoint: Endpoint, category: str | None) -> str | None:
        """The endpoint's UID bucket, created from the published limit on first use."""
        name = endpoint.bucket(category)
        if name is not None and name not in self._specs:
            limit = endpoint.uid_limit(category)
            if limit is None:
                return None
            self._install(name, self._uid_spec(limit))
        return name

    def spec(self, name: str) -> BucketSpec:
        return self._specs[name]

    # ---- ban gate --------------------------------------------------------------------------
    def banned_for(self) -> float:
        return max(0.0, self._banned_until - self._clock())

    def check_ban(self, path: str, method: str = "") -> None:
        left = self.banned_for()
        if left > 0:
            raise IpBannedError(path, left, method=method)

    def ban(self, seconds: float | None = None) -> float:
        """Stop all REST for ``seconds`` (default ``ban_seconds``). Returns the ban length."""
        length = self.ban_seconds if seconds is None else seconds
        self._banned_until = max(self._banned_until, self._clock() + length)
        self.bans += 1
        log.error("HTTP 403 from Bybit: all REST calls stopped for %.0f s", length)
        return length

    # ---- acquire ---------------------------------------------------------------------------
    async def acquire(
        self, endpoint: Endpoint, category: str | None, *, timeout: float | None = 30.0
    ) -> None:
        """Wait (on the loop) for the endpoint's UID quota and the IP quota. Raises
        :class:`IpBannedError` at once during a ban, :class:`RateLimitWaitError` if the quota
        cannot be had within ``timeout``."""
        self.check_ban(endpoint.path, endpoint.method)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        bucket = self.bucket_for(endpoint, category)
        try:
            if bucket is not None:
                blocked = self._blocked_until.get(bucket, 0.0) - self._clock()
                if blocked > 0:
                    if deadline is not None and loop.time() + blocked > deadline:
                        raise TimeoutError
                    self.waits += 1
                    await asyncio.sleep(blocked)
                await self.limits.acquire(bucket, timeout=_left(loop, deadline))
            await self.limits.acquire(IP_BUCKET, timeout=_left(loop, deadline))
        except TimeoutError:
            raise RateLimitWaitError(
                f"{endpoint.method} {endpoint.path}: no rate-limit quota within {timeout} s"
            ) from None
        self.check_ban(endpoint.path, endpoint.method)  # a ban may have started while we waited

    # ---- feedback from the exchange --------------------------------------------------------
    def on_headers(
        self, endpoint: Endpoint, category: str | None, headers: Mapping[str, str], server_now_ms: int
    ) -> None:
        """Re-sync the endpoint's bucket from ``X-Bapi-Limit``/``-Status``/``-Reset-Timestamp``."""
        bucket = self.bucket_for(endpoint, category)
        if bucket is None:
            return
        limit = _int_header(headers, "X-Bapi-Limit")
        remaining = _int_header(headers, "X-Bapi-Limit-Status")
        reset_ms = _int_header(headers, "X-Bapi-Limit-Reset-Timestamp")
        if limit is not None and limit > 0 and limit != self._specs[bucket].limit:
            # VIP/PRO accounts have higher limits; the header is the truth.
            log.info("rate limit of %s is %s/s (was %s)", bucket, limit, self._specs[bucket].limit)
            self._install(bucket, self._uid_spec(limit))
        if remaining is None:
            return
        self.header_syncs += 1
        if remaining < self.limits.available(bucket):
            self.limits.sync_remaining(bucket, remaining)
        if remaining <= 0 and reset_ms is not None:
            self.block_until_reset(bucket, reset_ms, server_now_ms)

    def on_rate_limited(
        self, endpoint: Endpoint, category: str | None, headers: Mapping[str, str], server_now_ms: int
    ) -> None:
        """A 10006 answer: empty the bucket and hold it until the exchange's reset time."""
        bucket = self.bucket_for(endpoint, category)
        if bucket is None:
            return
        self.limits.sync_remaining(bucket, 0)
        reset_ms = _int_header(headers, "X-Bapi-Limit-Reset-Timestamp")
        self.block_until_reset(bucket, reset_ms if reset_ms is not None else server_now_ms + 1000, server_now_ms)

    def block_until_reset(self, bucket: str, reset_ms: int, server_now_ms: int) -> None:
        wait = min(max(0.0, (reset_ms - server_now_ms) / 1000.0), 60.0)
        if wait > 0:
            until = self._clock() + wait
            self._blocked_until[bucket] = max(self._blocked_until.get(bucket, 0.0), until)

    def blocked_for(self, bucket: str) -> float:
        return max(0.0, self._blocked_until.get(bucket, 0.0) - self._clock())

    def snapshot(self) -> dict[str, Any]:
        return {
            "banned_for": round(self.banned_for(), 3),
            "bans": self.bans,
            "header_syncs": self.header_syncs,
            "waits_for_reset": self.waits,
            "buckets": {
                name: {
                    "limit": spec.limit,
                    "window": spec.window,
                    "capacity": spec.capacity,
                    "refill_per_second": spec.refill_per_second,
                    "available": round(self.limits.available(name), 3),
                    "blocked_for": round(self.blocked_for(name), 3),
                }
                for name, spec in sorted(self._specs.items())
            },
        }


def _left(loop: asyncio.AbstractEventLoop, deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - loop.time())


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(float(raw))
    except ValueError:
        return None


__all__ = ["DEFAULT_BAN_SECONDS", "IP_BUCKET", "BucketSpec", "RestRateLimiter", "size_bucket"]
