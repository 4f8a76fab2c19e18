"""The market scanner: the explosion detector and symbol prioritisation under load.

**Explosion** (mission section 5: price move >= 3 % and volume >= 3 x average). For each symbol the
scanner keeps a short price/volume tape. At every update it compares:

* the price move over the last ``window_s``: ``(price_now - price_ref) / price_ref``, where
  ``price_ref`` is the last sample at or before ``now - window_s`` (the oldest sample while the
  tape is shorter than the window);
* the volume traded since that reference sample against the average volume per ``window_s`` over
  the ``baseline_s`` that precede it: ``volume_multiple = window_volume / (baseline_volume *
  window_s / baseline_span)``. With less than ``min_baseline_s`` of baseline history, or none
  traded in it, the multiple is unknown and no explosion is reported (an average of nothing is
  not an average).

An explosion fires when ``|move| >= min_price_move`` and ``volume_multiple >= min_volume_multiple``,
at most once per ``cooldown_s`` per symbol. Samples are kept at ``sample_interval_s`` resolution
(later updates inside an interval overwrite the last sample) and the baseline at
``baseline_sample_s``, so memory per symbol is bounded whatever the message rate.

**Prioritisation.** When more symbols have pending updates than the loop can process this round
(the caller's ``budget``), :meth:`MarketScanner.prioritize` returns the ones to process first:
symbols skipped ``max_skip_rounds`` rounds in a row (no symbol starves), then symbols inside an
explosion's cooldown, then by activity score ``|move| / min_price_move + volume_multiple /
min_volume_multiple`` (an exploding symbol scores >= 2), then by name for determinism.

Time comes from the injected ``clock`` (seconds) unless an update carries its own ``ts``;
volume may be in any unit as long as it is the same for a symbol (the multiple is a ratio).
Prices and volumes are scores here, never sent anywhere: floats are fine.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any


class ScannerConfigError(ValueError):
    """A scanner setting that was refused; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")


@dataclass(frozen=True, slots=True)
class ScannerConfig:
    window_s: float = 60.0
    baseline_s: float = 1800.0
    min_baseline_s: float = 300.0
    min_price_move: float = 0.03
    min_volume_multiple: float = 3.0
    cooldown_s: float = 60.0
    sample_interval_s: float = 0.1
    baseline_sample_s: float = 1.0
    scan_interval_s: float = 0.1  # how often the bot should call ranking()/prioritize (mission: 100 ms)
    max_skip_rounds: int = 10

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ScannerConfigError(f.name, f"expected a finite number, got {v!r}")
            if v <= 0:
                raise ScannerConfigError(f.name, f"must be > 0, got {v!r}")
        if self.min_baseline_s > self.baseline_s:
            raise ScannerConfigError("min_baseline_s", "must be <= baseline_s")
        if self.sample_interval_s > self.window_s:
            raise ScannerConfigError("sample_interval_s", "must be <= window_s")
        if self.min_price_move >= 1:
            raise ScannerConfigError("min_price_move", "is a fraction (0.03 = 3 %), must be < 1")
        if not isinstance(self.max_skip_rounds, int):
            raise ScannerConfigError("max_skip_rounds", "expected an integer")

    def with_updates(self, changes: Mapping[str, Any]) -> ScannerConfig:
        known = {f.name for f in fields(self)}
        for key in changes:
            if key not in known:
                raise ScannerConfigError(str(key), f"unknown setting (known: {sorted(known)})")
        return replace(self, **dict(changes))


@dataclass(frozen=True, slots=True)
class Explosion:
    symbol: str
    ts: float
    direction: str  # "up" | "down"
    price_change: float  # fraction, signed
    volume_multiple: float
    price: float
    window_s: float


@dataclass(frozen=True, slots=True)
class Activity:
    """What the scanner knows of one symbol now."""

    symbol: str
    price_change: float
    volume_multiple: float | None
    score: float
    exploding: bool


@dataclass(slots=True)
class _Tape:
    fine: deque[tuple[float, float, float]] = field(default_factory=deque)  # (ts, price, cumulative volume)
    coarse: deque[tuple[float, float]] = field(default_factory=deque)  # (ts, cumulative volume)
    cum: float = 0.0
    price: float = 0.0
    last_ts: float = -math.inf
    last_explosion: float | None = None
    skipped: int = 0


class MarketScanner:
    def __init__(self, config: ScannerConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or ScannerConfig()
        self._clock = clock
        self._tapes: dict[str, _Tape] = {}

    # ---- feeding ---------------------------------------------------------------------------------

    def update(
        self, symbol: str, price: float | Decimal, volume: float | Decimal = 0.0, ts: float | None = None
    ) -> Explosion | None:
        """A price (trade or mid) and the volume traded since the previous update of ``symbol``.
        Returns the explosion this update completes, if any."""
        c = self.config
        price = float(price)
        volume = float(volume)
        if not (price > 0 and math.isfinite(price)):
            raise ValueError(f"{symbol}: price must be positive and finite, got {price!r}")
        if not (volume >= 0 and math.isfinite(volume)):
            raise ValueError(f"{symbol}: volume must be >= 0 and finite, got {volume!r}")
        tape = self._tapes.setdefault(symbol, _Tape())
        now = self._clock() if ts is None else float(ts)
        now = max(now, tape.last_ts)  # time never runs backwards per symbol
        tape.last_ts = now
        tape.cum += volume
        tape.price = price
        if tape.fine and now - tape.fine[-1][0] < c.sample_interval_s:
            tape.fine[-1] = (tape.fine[-1][0], price, tape.cum)
        else:
            tape.fine.append((now, price, tape.cum))
        if tape.coarse and now - tape.coarse[-1][0] < c.baseline_sample_s:
            tape.coarse[-1] = (tape.coarse[-1][0], tape.cum)
        else:
            tape.coarse.append((now, tape.cum))
        move, multiple = self._metrics(tape, now)
        if (
            multiple is not None
            and abs(move) >= c.min_price_move
            and multiple >= c.min_volume_multiple
            and (tape.last_explosion is None or now - tape.last_explosion >= c.cooldown_s)
        ):
            tape.last_explosion = now
            return Explosion(symbol, now, "up" if move > 0 else "down", move, multiple, price, c.window_s)
        return None

    def forget(self, symbol: str) -> None:
        self._tapes.pop(symbol, None)

    # ---- reading ---------------------------------------------------------------------------------

    def activity(self, symbol: str, now: float | None = None) -> Activity:
        tape = self._tapes.get(symbol)
        if tape is None or not tape.fine:
            return Activity(symbol, 0.0, None, 0.0, False)
        now = max(self._clock() if now is None else now, tape.last_ts)
        move, multiple = self._metrics(tape, now)
        c = self.config
        score = abs(move) / c.min_price_move + (multiple or 0.0) / c.min_volume_multiple
        exploding = tape.last_explosion is not None and now - tape.last_explosion < c.cooldown_s
        return Activity(symbol, move, multiple, score, exploding)

    def ranking(self, symbols: Iterable[str] | None = None, now: float | None = None) -> list[Activity]:
        """Symbols by priority: exploding first, then by score, then by name."""
        now = self._clock() if now is None else now
        names = list(self._tapes) if symbols is None else list(dict.fromkeys(symbols))
        acts = [self.activity(s, now) for s in names]
        acts.sort(key=lambda a: (not a.exploding, -a.score, a.symbol))
        return acts

    def prioritize(self, pending: Iterable[str], budget: int, now: float | None = None) -> tuple[list[str], list[str]]:
        """Split ``pending`` into (process now, defer) with at most ``budget`` processed.

        Under budget every pending symbol is processed (in priority order). Over budget, symbols
        deferred ``max_skip_rounds`` times in a row go first, then the ranking order."""
        if budget < 0:
            raise ValueError("budget: must be >= 0")
        now = self._clock() if now is None else now
        acts = {a.symbol: a for a in self.ranking(pending, now)}
        limit = self.config.max_skip_rounds

        def skipped(s: str) -> int:
            tape = self._tapes.get(s)
            return 0 if tape is None else tape.skipped

        order = sorted(
            acts.values(),
            key=lambda a: (skipped(a.symbol) < limit, not a.exploding, -a.score, a.symbol),
        )
        chosen = [a.symbol for a in order[:budget]]
        deferred = [a.symbol for a in order[budget:]]
        for s in chosen:
            tape = self._tapes.get(s)
            if tape is not None:
                tape.skipped = 0
        for s in deferred:
            tape = self._tapes.setdefault(s, _Tape())  # unknown symbols still count their skips
            tape.skipped += 1
        return chosen, deferred

    # ---- internals -------------------------------------------------------------------------------

    def _metrics(self, tape: _Tape, now: float) -> tuple[float, float | None]:
        c = self.config
        fine, coarse = tape.fine, tape.coarse
        # Keep exactly one sample at or before the window start: it is the reference.
        while len(fine) >= 2 and fine[1][0] <= now - c.window_s:
            fine.popleft()
        while len(coarse) >= 2 and coarse[1][0] <= now - c.window_s - c.baseline_s:
            coarse.popleft()
        ref_ts, ref_price, ref_cum = fine[0]
        move = (tape.price - ref_price) / ref_price
        window_volume = tape.cum - ref_cum
        base_ts, base_cum = coarse[0]
        span = ref_ts - base_ts
        baseline_volume = ref_cum - base_cum
        if span < c.min_baseline_s or baseline_volume <= 0:
            return move, None
        average = baseline_volume * c.window_s / span
        return move, window_volume / average


__all__ = ["Activity", "Explosion", "MarketScanner", "ScannerConfig", "ScannerConfigError"]
