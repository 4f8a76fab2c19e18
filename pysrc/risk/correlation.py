"""Symbol groups and a rolling return-correlation tracker, for the correlated-position limit.

Two positions are *correlated* for the risk limit when their symbols are in the same group
(majors: BTC, ETH; defi: UNI, AAVE, COMP; layer1: SOL, AVAX, NEAR by default) **or** the tracker's
Pearson correlation of their returns is above the threshold (0.7). Groups cover the pairs we know
move together before there is enough data; the tracker catches the ones nobody listed.

The tracker is fed aligned steps (:meth:`CorrelationTracker.observe`: one return per symbol per
step, e.g. 1-minute returns of every watched symbol) or prices (:meth:`observe_prices`, which takes
log returns against each symbol's previous price). A correlation needs ``min_samples`` steps in
which both symbols have a return, over the last ``window`` steps of each.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping

DEFAULT_GROUPS: Mapping[str, tuple[str, ...]] = {
    "majors": ("BTC", "ETH"),
    "defi": ("UNI", "AAVE", "COMP"),
    "layer1": ("SOL", "AVAX", "NEAR"),
}

_QUOTES = ("USDT", "USDC", "BUSD", "PERP", "USD")


def base_asset(symbol: str) -> str:
    """``BTCUSDT`` -> ``BTC``; ``ETH-PERP`` -> ``ETH``; unknown shapes are returned upper-cased."""
    s = symbol.upper().replace("-", "").replace("_", "").replace("/", "")
    for quote in _QUOTES:
        if s.endswith(quote) and len(s) > len(quote):
            return s[: -len(quote)]
    return s


class SymbolGroups:
    def __init__(self, groups: Mapping[str, Iterable[str]] = DEFAULT_GROUPS) -> None:
        self._of: dict[str, str] = {}
        for group, assets in groups.items():
            for asset in assets:
                a = asset.upper()
                if a in self._of and self._of[a] != group:
                    raise ValueError(f"{a} is in two groups: {self._of[a]} and {group}")
                self._of[a] = group
        self.groups = {g: tuple(a.upper() for a in assets) for g, assets in groups.items()}

    def group_of(self, symbol: str) -> str | None:
        return self._of.get(base_asset(symbol))

    def same_group(self, a: str, b: str) -> bool:
        ga = self.group_of(a)
        return ga is not None and ga == self.group_of(b)


class CorrelationTracker:
    def __init__(self, window: int = 100, min_samples: int = 20) -> None:
        if window < 3:
            raise ValueError("window: must be >= 3")
        if not 3 <= min_samples <= window:
            raise ValueError("min_samples: must be in [3, window]")
        self.window = window
        self.min_samples = min_samples
        self._step = 0
        self._returns: dict[str, deque[tuple[int, float]]] = {}
        self._last_price: dict[str, float] = {}

    def observe(self, returns: Mapping[str, float]) -> None:
        """One aligned step: the return of each symbol over the same interval."""
        self._step += 1
        for symbol, r in returns.items():
            r = float(r)
            if not math.isfinite(r):
                continue
            self._returns.setdefault(symbol, deque(maxlen=self.window)).append((self._step, r))

    def observe_prices(self, prices: Mapping[str, float]) -> None:
        """One aligned step of prices; log returns against each symbol's previous price."""
        rets: dict[str, float] = {}
        for symbol, p in prices.items():
            p = float(p)
            if not (p > 0 and math.isfinite(p)):
                continue
            prev = self._last_price.get(symbol)
            if prev is not None:
                rets[symbol] = math.log(p / prev)
            self._last_price[symbol] = p
        self.observe(rets)

    def correlation(self, a: str, b: str) -> float | None:
        """Pearson correlation of the common steps, None with too few or zero variance."""
        if a == b:
            return 1.0
        ra, rb = self._returns.get(a), self._returns.get(b)
        if not ra or not rb:
            return None
        by_step = dict(ra)
        pairs = [(by_step[s], y) for s, y in rb if s in by_step]
        n = len(pairs)
        if n < self.min_samples:
            return None
        mx = sum(x for x, _ in pairs) / n
        my = sum(y for _, y in pairs) / n
        sxx = sum((x - mx) ** 2 for x, _ in pairs)
        syy = sum((y - my) ** 2 for _, y in pairs)
        if sxx <= 0.0 or syy <= 0.0:
            return None
        sxy = sum((x - mx) * (y - my) for x, y in pairs)
        return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


__all__ = ["DEFAULT_GROUPS", "CorrelationTracker", "SymbolGroups", "base_asset"]
