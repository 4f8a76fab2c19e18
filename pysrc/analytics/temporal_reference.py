"""From-scratch oracle of the configured temporal features (``BookEngine(temporal=[...])``).

The core keeps each window incrementally (a deque and running power sums); this module recomputes
every value from the whole history with plain filters and exact rational arithmetic, following the
grammar in ``docs/features.md`` ("Configured temporal features"), so the tests can show the
incremental value equals a from-scratch computation after any sequence of updates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

_WINDOW = re.compile(r"^(\d{1,9})(u|ms|s|m)$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000}


@dataclass(frozen=True, slots=True)
class Spec:
    source: str
    stat: str
    updates: int | None  # window of N updates ...
    millis: int | None  # ... or of T milliseconds

    @property
    def name(self) -> str:
        if self.updates is not None:
            label = f"{self.updates}u"
        else:
            assert self.millis is not None
            t = self.millis
            label = f"{t // 60_000}m" if t % 60_000 == 0 else f"{t // 1_000}s" if t % 1_000 == 0 else f"{t}ms"
        return f"{self.source}_{self.stat}_{label}"


def parse(text: str) -> Spec:
    source, stat, window = text.split(":")
    m = _WINDOW.match(window)
    if m is None or stat not in {"mean", "std", "skew", "roc", "accel"}:
        raise ValueError(text)
    n, unit = int(m.group(1)), m.group(2)
    if unit == "u":
        return Spec(source, stat, n, None)
    return Spec(source, stat, None, n * _UNIT_MS[unit])


def _moments(xs: list[float]) -> tuple[float | None, float | None, float | None]:
    """Mean, population std (n >= 2) and population skewness (n >= 3, var > 0), exactly."""
    if not xs:
        return None, None, None
    fx = [Fraction(x) for x in xs]
    n = len(fx)
    mean = sum(fx) / n
    var = sum((x - mean) ** 2 for x in fx) / n
    std = math.sqrt(var) if n >= 2 else None
    skew = None
    if n >= 3 and var > 0:
        m3 = sum((x - mean) ** 3 for x in fx) / n
        skew = float(m3) / float(var) ** 1.5
    return float(mean), std, skew


def compute(spec: Spec, history: Sequence[tuple[int, float | None]]) -> list[float | None]:
    """The feature after each update of ``history`` (``(ts, source value or None)`` per update)."""
    nows: list[int] = []
    for ts, _ in history:
        nows.append(ts if not nows else max(ts, nows[-1]))
    xs = [x for _, x in history]

    def then_index(n: int) -> int | None:
        if spec.updates is not None:
            k = n - spec.updates
            return k if k >= 0 else None
        assert spec.millis is not None
        older = [k for k in range(n) if nows[k] <= nows[n] - spec.millis]
        return older[-1] if older else None

    def roc(n: int) -> float | None:
        k = then_index(n)
        if k is None or xs[n] is None or xs[k] is None:
            return None
        return xs[n] - xs[k]  # type: ignore[operator]

    out: list[float | None] = []
    for n in range(len(history)):
        if spec.stat == "roc":
            out.append(roc(n))
            continue
        if spec.stat == "accel":
            k = then_index(n)
            a, b = roc(n), (roc(k) if k is not None else None)
            out.append(None if a is None or b is None else a - b)
            continue
        if spec.updates is not None:
            window = range(max(0, n - spec.updates + 1), n + 1)
        else:
            assert spec.millis is not None
            window = range(0, n + 1)
            window = [k for k in window if nows[k] > nows[n] - spec.millis]  # type: ignore[assignment]
        present = [xs[k] for k in window if xs[k] is not None]
        mean, std, skew = _moments(present)  # type: ignore[arg-type]
        out.append({"mean": mean, "std": std, "skew": skew}[spec.stat])
    return out


__all__ = ["Spec", "compute", "parse"]
