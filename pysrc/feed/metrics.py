"""Counters of the public feed, kept as plain attributes so the hot path only increments ints.

Latency is exchange time to book applied: the frame's ``ts`` (ms, Bybit's clock) against the local
wall clock right after the engine applied it. It therefore includes network time and any clock
offset between the two machines (zero for the local exchange on loopback; on a real link keep the
host NTP-synced and read the figure as "age of the data when it became usable"). Samples go into a
fixed-size ring per symbol (the most recent ``LATENCY_SAMPLES``), so recording is one store and
percentiles are computed only when metrics are read.
"""

from __future__ import annotations

import math
from typing import Any

LATENCY_SAMPLES = 2048


class LatencyReservoir:
    """The most recent ``size`` samples (ms) in a ring; percentiles on demand."""

    __slots__ = ("_buf", "_next", "_size", "count")

    def __init__(self, size: int = LATENCY_SAMPLES) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self._buf: list[float] = [0.0] * size
        self._size = size
        self._next = 0
        self.count = 0
        """Samples ever recorded."""

    def add(self, value: float) -> None:
        i = self._next
        self._buf[i] = value
        i += 1
        self._next = 0 if i == self._size else i
        self.count += 1

    def samples(self) -> list[float]:
        return self._buf[: min(self.count, self._size)]

    def percentiles(self, *qs: float) -> list[float | None]:
        """Nearest-rank percentiles (``q`` in 0..100) of the retained samples; None if empty."""
        data = sorted(self.samples())
        if not data:
            return [None for _ in qs]
        n = len(data)
        return [data[min(n - 1, max(0, math.ceil(q / 100.0 * n) - 1))] for q in qs]


class SymbolMetrics:
    """Per-symbol counters. ``messages`` counts every book/trade/ticker/kline frame routed to it."""

    __slots__ = (
        "applied",
        "checksum_failures",
        "crossed",
        "gaps",
        "klines",
        "latency",
        "messages",
        "resets",
        "resyncs",
        "resyncs_deferred",
        "stale",
        "symbol",
        "tickers",
        "trades",
        "waiting",
    )

    def __init__(self, symbol: str, samples: int = LATENCY_SAMPLES) -> None:
        self.symbol = symbol
        self.messages = 0
        self.applied = 0
        self.stale = 0
        """Deltas dropped because the book already had them (duplicates, out of order)."""
        self.waiting = 0
        """Deltas dropped while the book waited for a snapshot (after a reset or a gap)."""
        self.gaps = 0
        self.crossed = 0
        self.checksum_failures = 0
        self.resyncs = 0
        """Resyncs performed (unsubscribe + subscribe for a fresh snapshot)."""
        self.resyncs_deferred = 0
        """Resync requests held back by the rate limit."""
        self.resets = 0
        """Books reset because their connection dropped."""
        self.trades = 0
        self.tickers = 0
        self.klines = 0
        self.latency = LatencyReservoir(samples)

    def snapshot(self) -> dict[str, Any]:
        p50, p99 = self.latency.percentiles(50, 99)
        return {
            "messages": self.messages,
            "applied": self.applied,
            "stale": self.stale,
            "waiting": self.waiting,
            "gaps": self.gaps,
            "crossed": self.crossed,
            "checksum_failures": self.checksum_failures,
            "resyncs": self.resyncs,
            "resyncs_deferred": self.resyncs_deferred,
            "resets": self.resets,
            "trades": self.trades,
            "tickers": self.tickers,
            "klines": self.klines,
            "latency_ms_p50": p50,
            "latency_ms_p99": p99,
            "latency_samples": self.latency.count,
        }


class ConnectionMetrics:
    """Per-connection counters; times are the feed's monotonic clock, in seconds."""

    __slots__ = (
        "bytes",
        "connect_failures",
        "connected_at",
        "connects",
        "control_frames",
        "dead_socket",
        "disconnects",
        "last_data",
        "last_disconnect_reason",
        "last_rx",
        "messages",
        "name",
        "pings",
        "pongs",
        "rtt_ms",
        "rtt_ms_max",
        "silence",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.connects = 0
        self.disconnects = 0
        self.connect_failures = 0
        self.messages = 0
        self.bytes = 0
        self.control_frames = 0
        self.last_rx: float | None = None
        self.last_data: float | None = None
        self.connected_at: float | None = None
        self.pings = 0
        self.pongs = 0
        self.rtt_ms: float | None = None
        self.rtt_ms_max: float | None = None
        self.dead_socket = 0
        """Reconnects because neither a pong nor data came after a ping."""
        self.silence = 0
        """Reconnects because subscribed data stopped (pongs may still have come)."""
        self.last_disconnect_reason = ""

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "connects": self.connects,
            "disconnects": self.disconnects,
            "connect_failures": self.connect_failures,
            "messages": self.messages,
            "bytes": self.bytes,
            "control_frames": self.control_frames,
            "last_message_age_s": None if self.last_rx is None else now - self.last_rx,
            "last_data_age_s": None if self.last_data is None else now - self.last_data,
            "uptime_s": None if self.connected_at is None else now - self.connected_at,
            "pings": self.pings,
            "pongs": self.pongs,
            "rtt_ms": self.rtt_ms,
            "rtt_ms_max": self.rtt_ms_max,
            "dead_socket": self.dead_socket,
            "silence": self.silence,
            "last_disconnect_reason": self.last_disconnect_reason,
        }


__all__ = ["LATENCY_SAMPLES", "ConnectionMetrics", "LatencyReservoir", "SymbolMetrics"]
