"""Per-symbol book resync with a rate limit, independent of the transport.

A Bybit book that reports ``GAP``, ``CROSSED`` or ``CHECKSUM_MISMATCH`` (or that the engine lists
in ``needs_resync()``) is rebuilt by resubscribing its orderbook topic: Bybit answers a new
subscription with a fresh snapshot, which the engine takes as a full replacement. Bybit has no
REST snapshot that can be spliced into the 1/50/200-level streams (bybit-v5.md 1.6), so this is
the only way back.

A resync is: ``engine.reset(symbol)`` (the book is unusable from now on: deltas still in flight
are dropped as ``WAITING``), then ``resubscribe(symbol)`` (the caller sends ``unsubscribe`` +
``subscribe`` on the symbol's connection). Nothing here touches a socket, so the same controller
serves the WebSocket pool, a replay, or a test that feeds frames by hand.

Rate limit: a book that breaks again and again (a bad stream, a bug) must not turn into a
subscribe storm. The first resync of a symbol runs at once; each further one within ``cooldown``
seconds of the previous waits ``min_interval * 2**(n-1)`` seconds (at most ``max_interval``) after
it. A deferred resync runs from :meth:`poll`, unless a snapshot made the book live again meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("pysrc.feed.resync")


class ResyncEngine(Protocol):
    """What the controller needs of ``BookEngine``."""

    def reset(self, symbol: str) -> None: ...
    def has_book(self, symbol: str) -> bool: ...
    def is_live(self, symbol: str) -> bool: ...


@dataclass(slots=True)
class _SymbolResync:
    streak: int = 0
    last: float | None = None
    performed: int = 0
    deferred: int = 0
    last_reason: str = ""


class ResyncController:
    def __init__(
        self,
        engine: ResyncEngine,
        resubscribe: Callable[[str], object],
        *,
        on_reset: Callable[[str], None] | None = None,
        min_interval: float = 1.0,
        max_interval: float = 30.0,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``resubscribe(symbol)`` sends unsubscribe + subscribe for the symbol's book topic;
        ``on_reset(symbol)`` runs right after ``engine.reset`` (metrics, consumer notification)."""
        if min_interval < 0 or max_interval < min_interval:
            raise ValueError("need 0 <= min_interval <= max_interval")
        self._engine = engine
        self._resubscribe = resubscribe
        self._on_reset = on_reset
        self._min = min_interval
        self._max = max_interval
        self._cooldown = cooldown
        self._clock = clock
        self._state: dict[str, _SymbolResync] = {}
        self._pending: dict[str, float] = {}

    def _delay(self, streak: int) -> float:
        if streak == 0:
            return 0.0
        try:
            return min(self._max, self._min * 2.0 ** (streak - 1))
        except OverflowError:
            return self._max

    def request(self, symbol: str, reason: str = "") -> bool:
        """Ask for a resync of ``symbol``. Returns True if it was performed now, False if it is
        deferred by the rate limit (or already pending)."""
        now = self._clock()
        st = self._state.get(symbol)
        if st is None:
            st = self._state[symbol] = _SymbolResync()
        st.last_reason = reason
        if symbol in self._pending:
            return False
        if st.last is not None and now - st.last >= self._cooldown:
            st.streak = 0
        allowed = now if st.last is None else st.last + self._delay(st.streak)
        if now >= allowed:
            self._perform(symbol, st, now, reason)
            return True
        self._pending[symbol] = allowed
        st.deferred += 1
        log.warning("resync of %s deferred %.2fs by the rate limit (%s)", symbol, allowed - now, reason)
        return False

    def _perform(self, symbol: str, st: _SymbolResync, now: float, reason: str) -> None:
        st.streak += 1
        st.last = now
        st.performed += 1
        log.warning("resync %s #%d: %s", symbol, st.performed, reason or "requested")
        self._engine.reset(symbol)
        if self._on_reset is not None:
            self._on_reset(symbol)
        self._resubscribe(symbol)

    def poll(self) -> list[str]:
        """Run the deferred resyncs that are due; returns the symbols resynced."""
        if not self._pending:
            return []
        now = self._clock()
        done: list[str] = []
        for symbol, at in list(self._pending.items()):
            if at > now:
                continue
            del self._pending[symbol]
            engine = self._engine
            if engine.has_book(symbol) and engine.is_live(symbol):
                continue  # a fresh snapshot arrived meanwhile: nothing to repair
            st = self._state[symbol]
            self._perform(symbol, st, now, st.last_reason)
            done.append(symbol)
        return done

    def forget(self, symbol: str) -> None:
        """Drop a deferred resync (e.g. the connection is gone and will resubscribe anyway)."""
        self._pending.pop(symbol, None)

    def pending(self) -> dict[str, float]:
        """Deferred resyncs: symbol -> clock time when it may run."""
        return dict(self._pending)

    def performed(self, symbol: str) -> int:
        st = self._state.get(symbol)
        return 0 if st is None else st.performed

    def deferred(self, symbol: str) -> int:
        st = self._state.get(symbol)
        return 0 if st is None else st.deferred


__all__ = ["ResyncController", "ResyncEngine"]
