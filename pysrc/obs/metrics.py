"""A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
exposition format (version 0.0.4) for ``GET /metrics``.

Written here rather than pulled in as a dependency because the bot needs only these three
types, no global default registry, and no background threads; values are plain floats updated
on the event loop.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence

LabelValues = tuple[str, ...]


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if math.isnan(v):
        return "NaN"
    f = float(v)
    return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(labels)

    def _key(self, labels: dict[str, str]) -> LabelValues:
        # Called on every observation (twice per book update in the bot): no sets for the
        # common unlabelled case.
        if not labels and not self.label_names:
            return ()
        if len(labels) != len(self.label_names) or not all(n in labels for n in self.label_names):
            raise ValueError(f"{self.name}: labels {sorted(labels)} != {sorted(self.label_names)}")
        return tuple(str(labels[n]) for n in self.label_names)

    def samples(self) -> Iterable[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}", *self.samples()]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        self.values: dict[LabelValues, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        k = self._key(labels)
        self.values[k] = self.values.get(k, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(self._key(labels), 0.0)

    def samples(self) -> Iterable[str]:
        if not self.values and not self.label_names:
            yield f"{self.name} 0"
        for k, v in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.label_names, k)} {_num(v)}"


class Gauge(_Metric):
    kind = "gauge"

    def __init__(
        self, name: str, help: str, labels: Sequence[str] = (), fn: Callable[[], float] | None = None
    ) -> None:
        super().__init__(name, help, labels)
        self.values: dict[LabelValues, float] = {}
        self.fn = fn  # read at render time (for values owned elsewhere)

    def set(self, value: float, **labels: str) -> None:
        self.values[self._key(labels)] = float(value)

    def get(self, **labels: str) -> float:
        return self.values.get(self._key(labels), 0.0)

    def samples(self) -> Iterable[str]:
        if self.fn is not None:
            yield f"{self.name} {_num(self.fn())}"
            return
        if not self.values and not self.label_names:
            yield f"{self.name} 0"
        for k, v in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.label_names, k)} {_num(v)}"


DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self, name: str, help: str, labels: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> None:
        super().__init__(name, help, labels)
        self.buckets = tuple(sorted(buckets))
        self.counts: dict[LabelValues, list[int]] = {}
        self.sums: dict[LabelValues, float] = {}

    def observe(self, value: float, **labels: str) -> None:
        k = self._key(labels)
        counts = self.counts.get(k)
        if counts is None:
            counts = self.counts[k] = [0] * (len(self.buckets) + 1)
        # the first bucket with value <= bound; past the last one is the +Inf slot
        counts[bisect_left(self.buckets, value)] += 1
        self.sums[k] = self.sums.get(k, 0.0) + value

    def count(self, **labels: str) -> int:
        return sum(self.counts.get(self._key(labels), []))

    def samples(self) -> Iterable[str]:
        for k, counts in sorted(self.counts.items()):
            acc = 0
            for b, c in zip((*self.buckets, math.inf), counts, strict=True):
                acc += c
                le = 'le="' + _num(b) + '"'
                yield f"{self.name}_bucket{_labels(self.label_names, k, le)} {acc}"
            yield f"{self.name}_sum{_labels(self.label_names, k)} {_num(self.sums[k])}"
            yield f"{self.name}_count{_labels(self.label_names, k)} {acc}"


class Registry:
    """Named metrics rendered together; names are unique."""

    def __init__(self) -> None:
        self.metrics: dict[str, _Metric] = {}

    def _add(self, m: _Metric) -> _Metric:
        if m.name in self.metrics:
            raise ValueError(f"metric {m.name} registered twice")
        self.metrics[m.name] = m
        return m

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        m = self._add(Counter(name, help, labels))
        assert isinstance(m, Counter)
        return m

    def gauge(
        self, name: str, help: str, labels: Sequence[str] = (), fn: Callable[[], float] | None = None
    ) -> Gauge:
        m = self._add(Gauge(name, help, labels, fn))
        assert isinstance(m, Gauge)
        return m

    def histogram(
        self, name: str, help: str, labels: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> Histogram:
        m = self._add(Histogram(name, help, labels, buckets))
        assert isinstance(m, Histogram)
        return m

    def render(self) -> str:
        lines: list[str] = []
        for m in self.metrics.values():
            lines.extend(m.render())
        return "\n".join(lines) + "\n"


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

__all__ = ["CONTENT_TYPE", "Counter", "Gauge", "Histogram", "Registry"]
