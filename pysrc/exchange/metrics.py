"""Per-endpoint call metrics: counts, errors by kind, latency percentiles over a bounded window.

The latency window is a ring of the most recent ``reservoir`` samples (bounded memory, and recent
behaviour is what an operator wants to see); p50/p99 are computed on demand in ``snapshot()``.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (``q`` in [0, 100])."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


class EndpointMetrics:
    def __init__(self, reservoir: int = 1024) -> None:
        self.calls = 0
        self.ok = 0
        self.errors: Counter[str] = Counter()
        self._latency_ms: deque[float] = deque(maxlen=reservoir)
        self.max_ms = 0.0
        self.last_error: str | None = None

    def observe(self, latency_s: float, error: str | None = None) -> None:
        ms = latency_s * 1000.0
        self.calls += 1
        self._latency_ms.append(ms)
        self.max_ms = max(self.max_ms, ms)
        if error is None:
            self.ok += 1
        else:
            self.errors[error] += 1
            self.last_error = error

    def refused(self, kind: str) -> None:
        """A call that never left the process (breaker open, IP ban, limiter timeout)."""
        self.errors[kind] += 1
        self.last_error = kind

    def snapshot(self) -> dict[str, Any]:
        lat = sorted(self._latency_ms)
        return {
            "calls": self.calls,
            "ok": self.ok,
            "errors": dict(self.errors),
            "error_total": sum(self.errors.values()),
            "p50_ms": round(percentile(lat, 50), 3),
            "p99_ms": round(percentile(lat, 99), 3),
            "max_ms": round(self.max_ms, 3),
            "samples": len(lat),
            "last_error": self.last_error,
        }


class Metrics:
    """Metrics of one client, keyed by ``"METHOD /path"``."""

    def __init__(self, reservoir: int = 1024) -> None:
        self._reservoir = reservoir
        self.endpoints: dict[str, EndpointMetrics] = {}
        self.counters: Counter[str] = Counter()
        """Client-wide events: retries, clock_resyncs, rate_limit_waits, reconciliations, ..."""

    def endpoint(self, key: str) -> EndpointMetrics:
        m = self.endpoints.get(key)
        if m is None:
            m = self.endpoints[key] = EndpointMetrics(self._reservoir)
        return m

    def incr(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def snapshot(self) -> dict[str, Any]:
        return {
            "endpoints": {k: m.snapshot() for k, m in sorted(self.endpoints.items())},
            "counters": dict(self.counters),
        }


__all__ = ["EndpointMetrics", "Metrics", "percentile"]
