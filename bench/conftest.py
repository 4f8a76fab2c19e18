"""Shared set-up of the opt-in latency benchmarks (``pytest bench``; the default ``pytest`` only
collects ``tests/``).

Every benchmark runs the native engine and, in the same session, three baselines a Python user
would otherwise pick (see ``docs/performance.md`` for why these):

* ``reference``: the pure-Python ``ReferenceEngine`` (orjson + sortedcontainers, ``Decimal``),
* ``cext``: the ``order-book`` C extension driven the way cryptofeed drives it (``cext_replay.py``),
* ``orjson``: nothing but ``orjson.loads`` of the same messages, the floor of any Python-side book.

Ratios are computed from measurements taken in one run, which is what a shared two-core machine
allows (absolute times move with the neighbours; ratios much less). Nothing here asserts a time:
the benchmarks report, and they assert that every book they timed equals the reference book.

At the end of the session a summary (per-operation times, ratios against the native engine,
single-call percentiles, the issue's targets) is printed and written as JSON to
``bench/.data/latency-summary.json`` (``--book-summary-json`` to change the path).

The feature-vector benchmarks (``test_features_bench.py``) use the same stream with public trades
interleaved; their baseline is the bare native engine, so they keep their own results
(:class:`FeatureResults`), summary section and ``bench/.data/features-summary.json``
(``--features-summary-json``). Each summary is printed and written only when its suite ran.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

BENCH_DIR = Path(__file__).resolve().parent
# The baseline adapters live beside this file (bench/ holds no `pysrc`, so the installed package
# is still the one imported); importlib import mode does not put test folders on sys.path.
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

REALDATA = BENCH_DIR.parent.parent / "shared" / "realdata"
OB500_FILE = REALDATA / "2024-12-01_XRPUSDT_ob500.data"

# Order matters: the native engine runs first in every group so each baseline can report its
# ratio in its own ``extra_info``.
IMPLS = ("native", "reference", "cext", "orjson")
LABELS = {
    "native": "native BookEngine (Rust core)",
    "reference": "pure Python ReferenceEngine (orjson + sortedcontainers)",
    "cext": "order-book C extension, cryptofeed style",
    "orjson": "orjson.loads of the same message only",
    "timer": "timer: perf_counter_ns pair around an empty call",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("book benchmarks")
    group.addoption(
        "--book-deltas",
        type=int,
        default=20_000,
        help="deltas applied per round of the apply benchmarks and per percentile run",
    )
    group.addoption(
        "--book-summary-json",
        default=str(BENCH_DIR / ".data" / "latency-summary.json"),
        help="where the session summary is written ('' to skip)",
    )
    group.addoption(
        "--features-summary-json",
        default=str(BENCH_DIR / ".data" / "features-summary.json"),
        help="where the feature-vector benchmarks' summary is written ('' to skip)",
    )


# ---- engines ----------------------------------------------------------------------------------


def _native_factory() -> Callable[[], Any] | None:
    try:
        from pysrc.book import BookEngine
    except ImportError:
        return None
    return lambda: BookEngine("bybit")


def _reference_factory() -> Callable[[], Any] | None:
    try:
        from pysrc.book.reference import ReferenceEngine
    except ImportError:
        return None
    return lambda: ReferenceEngine("bybit")


def _cext_factory() -> Callable[[], Any] | None:
    try:
        from cext_replay import CExtBybitBooks
    except ImportError:  # order-book not installed
        return None
    return CExtBybitBooks


FACTORIES: dict[str, Callable[[], Any] | None] = {
    "native": _native_factory(),
    "reference": _reference_factory(),
    "cext": _cext_factory(),
}


@pytest.fixture(scope="session")
def engine_factory() -> Callable[[str], Callable[[], Any]]:
    """``engine_factory(impl)`` -> a zero-argument constructor, or the test is skipped."""

    def get(impl: str) -> Callable[[], Any]:
        factory = FACTORIES.get(impl)
        if factory is None:
            why = {
                "native": "the compiled core pysrc._native is not importable (pip install .)",
                "reference": "pysrc.book.reference is not importable",
                "cext": "the order-book package is not installed (pip install order-book)",
            }.get(impl, impl)
            pytest.skip(why)
        return factory

    return get


@pytest.fixture(scope="session")
def reference_factory() -> Callable[[], Any]:
    factory = FACTORIES["reference"]
    if factory is None:
        pytest.fail("the reference engine is needed to check every benchmark's result")
    return factory


# ---- data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchStream:
    """A realistic multi-symbol Bybit ``orderbook.200`` stream split for benchmarking.

    ``warm`` ends with the last symbol's snapshot (every book is live after it); ``deltas`` are the
    messages that are timed (all deltas, typically 1-10 levels each).
    """

    warm: tuple[bytes, ...]
    deltas: tuple[bytes, ...]
    symbols: tuple[str, ...]
    snapshot_200: bytes  # the BTCUSDT snapshot of the stream
    typical_delta: bytes  # a delta with the median number of levels


@pytest.fixture(scope="session")
def stream(request: pytest.FixtureRequest) -> BenchStream:
    from pysrc.book.synthetic import bybit_stream

    n = int(request.config.getoption("--book-deltas"))
    symbols = 20
    seen: set[str] = set()
    warm: list[bytes] = []
    deltas: list[bytes] = []
    snapshot_200 = b""
    for msg in bybit_stream(symbols=symbols, messages=n + 5_000, depth=200, seed=7):
        if len(seen) < symbols:
            warm.append(msg)
            head = orjson.loads(msg)
            if head["type"] == "snapshot":
                seen.add(head["data"]["s"])
                if head["data"]["s"] == "BTCUSDT":
                    snapshot_200 = msg
            continue
        deltas.append(msg)
        if len(deltas) == n:
            break
    sizes = sorted(
        (len(orjson.loads(m)["data"]["b"]) + len(orjson.loads(m)["data"]["a"]), i)
        for i, m in enumerate(deltas[:2001])
    )
    typical = deltas[sizes[len(sizes) // 2][1]]
    return BenchStream(tuple(warm), tuple(deltas), tuple(sorted(seen)), snapshot_200, typical)


@pytest.fixture(scope="session")
def expected_books(stream: BenchStream, reference_factory: Callable[[], Any]) -> dict[str, Any]:
    """What every engine must hold after ``warm + deltas``: the reference engine's books."""
    ref = reference_factory()
    for m in stream.warm + stream.deltas:
        ref.apply(m)
    return {s: book_state(ref, s) for s in ref.symbols()}


@pytest.fixture(scope="session")
def ob500_snapshot() -> bytes:
    """The real 500-level XRPUSDT snapshot (first line of Bybit's ob500 dump; LGPL-3.0 test data
    from nautilus_trader, see ../shared/realdata/SOURCES.md)."""
    if not OB500_FILE.is_file():
        pytest.skip(f"real ob500 dump not found at {OB500_FILE}")
    with OB500_FILE.open("rb") as fh:
        return fh.readline().rstrip(b"\n")


def book_state(engine: Any, symbol: str) -> dict[str, Any]:
    """The comparable state of one book: all levels as strings, and the update id."""
    bids, asks = engine.levels(symbol, 0)
    return {
        "bids": [tuple(x) for x in bids],
        "asks": [tuple(x) for x in asks],
        "update_id": engine.update_id(symbol),
    }


# ---- results and the session summary -----------------------------------------------------------


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


class _Recorder:
    """Per-operation medians and minima of timed benchmarks, with the ratio to a baseline
    implementation put in each benchmark's extra_info."""

    BASELINE = ""
    RATIO_KEY = ""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, dict[str, float]]] = {}
        self.group_notes: dict[str, str] = {}
        self.notes: list[str] = []
        self.load_start = _loadavg()

    def record(self, group: str, impl: str, benchmark: Any, per_round_ops: int = 1) -> None:
        """Store the benchmark's per-operation median/min and put the ratio to the baseline in
        its extra_info."""
        meta = getattr(benchmark, "stats", None)
        if meta is None:  # --benchmark-disable: nothing was timed
            return
        st = meta.stats
        row = {
            "median_ns": st.median / per_round_ops * 1e9,
            "min_ns": st.min / per_round_ops * 1e9,
            "rounds": float(st.rounds),
        }
        self.groups.setdefault(group, {})[impl] = row
        benchmark.extra_info["per_op_median_ns"] = round(row["median_ns"], 1)
        benchmark.extra_info["per_op_min_ns"] = round(row["min_ns"], 1)
        base = self.groups[group].get(self.BASELINE)
        if base and impl != self.BASELINE:
            benchmark.extra_info[f"{self.RATIO_KEY}_median"] = round(row["median_ns"] / base["median_ns"], 2)
            benchmark.extra_info[f"{self.RATIO_KEY}_min"] = round(row["min_ns"] / base["min_ns"], 2)


class Results(_Recorder):
    """Per-operation medians by group and implementation, plus single-call percentiles."""

    BASELINE = "native"
    RATIO_KEY = "native_speedup"

    # Group names (the test module reads them from here: with importlib import mode it cannot
    # import this conftest as a module without getting a second copy of RESULTS).
    APPLY = "apply one delta"
    APPLY_TOB = "apply one delta, then read top-of-book"
    TOB = "top-of-book read (bid, bid size, ask, ask size)"
    BEST_STR = "best bid + best ask as exact strings"
    SNAP200 = "snapshot load, 200 levels per side (synthetic BTCUSDT)"
    SNAP500 = "snapshot load, 500 levels per side (real XRPUSDT ob500)"
    PCT_APPLY = "apply one delta"
    PCT_TOB = "top-of-book read"

    def __init__(self) -> None:
        super().__init__()
        self.percentiles: dict[str, dict[str, dict[str, float]]] = {}


RESULTS = Results()


@pytest.fixture(scope="session")
def results() -> Results:
    return RESULTS


def _fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def _group_tables(
    r: _Recorder,
    order: Sequence[str],
    labels: dict[str, str],
    first: tuple[str, int],
    ratio_col: tuple[str, int],
    digits: int,
) -> list[str]:
    """One table per group: median and minimum per operation, and both as ratios to the
    recorder's baseline (of minima too: the least disturbed rounds are steadier than medians when
    a neighbour loads the shared machine)."""
    (head, width), (rhead, rwidth) = first, ratio_col
    lines: list[str] = []
    for group, rows in r.groups.items():
        lines.append("")
        note = r.group_notes.get(group, "")
        lines.append(f"{group}{'  (' + note + ')' if note else ''}")
        base = rows.get(r.BASELINE)
        lines.append(f"  {head:<{width}} {'median/op':>11} {'min/op':>11} {rhead:>{rwidth}} {'(min)':>8}")
        for impl in order:
            row = rows.get(impl)
            if row is None:
                continue
            ratio = f"{row['median_ns'] / base['median_ns']:.{digits}f}x" if base else "-"
            ratio_min = f"{row['min_ns'] / base['min_ns']:.{digits}f}x" if base else "-"
            lines.append(
                f"  {labels[impl]:<{width}} {_fmt_ns(row['median_ns']):>11} "
                f"{_fmt_ns(row['min_ns']):>11} {ratio:>{rwidth}} {ratio_min:>8}"
            )
    return lines


def _summary_lines() -> list[str]:
    r = RESULTS
    lines: list[str] = []
    lines.extend(_group_tables(r, IMPLS, LABELS, ("implementation", 58), ("vs native", 10), 1))
    for name, per_impl in r.percentiles.items():
        lines.append("")
        lines.append(f"{name}: single calls timed with perf_counter_ns (best of the repeats)")
        lines.append(
            f"  {'implementation':<58} {'p50':>9} {'p90':>9} {'p99':>9} {'p99.9':>9} {'p99 vs native':>14}"
        )
        native = per_impl.get("native")
        for impl, pc in per_impl.items():
            label = LABELS.get(impl, impl)
            ratio = (
                f"{pc['p99'] / native['p99']:.1f}x"
                if native and impl not in ("native", "timer")
                else "-"
            )
            lines.append(
                f"  {label:<58} {_fmt_ns(pc['p50']):>9} {_fmt_ns(pc['p90']):>9} "
                f"{_fmt_ns(pc['p99']):>9} {_fmt_ns(pc['p99.9']):>9} {ratio:>14}"
            )
    lines.extend(["", *_target_lines(), *r.notes])
    return lines


def _target_lines() -> list[str]:
    """The issue's per-call targets, judged on this run's numbers (reported, never asserted)."""
    r = RESULTS
    out: list[str] = []
    pct = r.percentiles.get(r.PCT_APPLY, {}).get("native")
    if pct:
        ok = "met" if pct["p99"] < 5000 else "MISSED"
        out.append(
            f"target: apply p99 < 5 µs from Python -> native p99 {_fmt_ns(pct['p99'])} ({ok})"
        )
    tob = r.groups.get(r.TOB, {}).get("native")
    if tob:
        ok = "met" if tob["median_ns"] < 300 else "MISSED"
        out.append(
            f"target: top-of-book read < 300 ns -> native median {_fmt_ns(tob['median_ns'])} per call "
            f"incl. the Python call ({ok})"
        )
    apply = r.groups.get(r.APPLY, {})
    if "native" in apply and "orjson" in apply:
        ratio = apply["native"]["median_ns"] / apply["orjson"]["median_ns"]
        word = "faster" if ratio < 1 else "slower"
        out.append(
            f"apply vs parse: native apply takes {ratio:.2f}x the time of orjson.loads on the same "
            f"deltas ({word} than parsing alone)"
        )
    return out


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables: the ratios are the result
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    # Each suite writes its own summary only when it ran, so running one suite never overwrites
    # the other's JSON with an empty one.
    if RESULTS.groups or RESULTS.percentiles:
        _book_terminal_summary(terminalreporter, config)
    if FEATURE_RESULTS.groups or FEATURE_RESULTS.percentiles:
        _feature_terminal_summary(terminalreporter, config)


def _book_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    tr = terminalreporter
    tr.write_sep("=", "order-book benchmarks: ratios measured in this run")
    for line in _summary_lines():
        tr.write_line(line)
    load_end = _loadavg()
    tr.write_line(
        f"load average at start {RESULTS.load_start}, at end {load_end} (2 cores: >1 is noisy)"
    )
    path = config.getoption("--book-summary-json")
    if path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "load_start": RESULTS.load_start,
            "load_end": load_end,
            "groups": RESULTS.groups,
            "percentiles": RESULTS.percentiles,
            "notes": RESULTS.notes,
        }
        out.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
        tr.write_line(f"summary written to {out}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# ---- the feature-vector benchmarks (bench/test_features_bench.py) -----------------------------


class FeatureResults(_Recorder):
    """Per-message medians of the feature-vector variants, ratios against the bare engine, and
    single-call percentiles. Kept apart from :class:`Results` because its baseline is the bare
    native engine, not the book baselines above."""

    # Group names (read by the test module, as for Results).
    MIXED = "apply one message: book deltas with public trades interleaved"
    DELTAS = "apply one book delta, no trades in the stream"
    REAL = "apply one book delta of the real XRPUSDT orderbook.500 recording"
    PCT = "single apply calls"
    ORDER = ("bare", "features", "features_temporal10", "features_read", "numpy")
    LABELS: ClassVar[dict[str, str]] = {
        "bare": '(a) BookEngine("bybit").apply, bare book',
        "features": '(b) BookEngine("bybit", features=True).apply',
        "features_temporal10": "(b') (b) with 10 configured temporal features",
        "features_read": "(c) (b) + FeatureReader.read(sym, copy=False) per book msg",
        "numpy": "(d) (a) + numpy recompute from levels(sym, 50) per book msg",
    }

    BASELINE = "bare"
    RATIO_KEY = "vs_bare"

    def __init__(self) -> None:
        super().__init__()
        self.percentiles: dict[str, dict[str, float]] = {}

    def ratio(self, group: str, num: str, den: str, key: str = "median_ns") -> float | None:
        rows = self.groups.get(group, {})
        if num not in rows or den not in rows:
            return None
        return rows[num][key] / rows[den][key]


FEATURE_RESULTS = FeatureResults()


@pytest.fixture(scope="session")
def feature_results() -> FeatureResults:
    return FEATURE_RESULTS


def _feature_summary_lines() -> list[str]:
    r = FEATURE_RESULTS
    lines: list[str] = []
    lines.extend(_group_tables(r, r.ORDER, r.LABELS, ("variant", 62), ("vs (a)", 8), 2))
    if r.percentiles:
        lines.append("")
        lines.append(f"{r.PCT}: each bracketed by perf_counter_ns (best of the repeats)")
        lines.append(f"  {'calls':<62} {'p50':>9} {'p90':>9} {'p99':>9} {'p99.9':>9}")
        for label, pc in r.percentiles.items():
            lines.append(
                f"  {label:<62} {_fmt_ns(pc['p50']):>9} {_fmt_ns(pc['p90']):>9} "
                f"{_fmt_ns(pc['p99']):>9} {_fmt_ns(pc['p99.9']):>9}"
            )
    lines.extend(["", *_feature_target_lines(), *r.notes])
    return lines


def _feature_target_lines() -> list[str]:
    """The issue's targets for the feature vector, judged on this run (reported, never asserted)."""
    r = FEATURE_RESULTS
    out: list[str] = []

    def both(group: str, num: str, den: str) -> tuple[float, float] | None:
        med, low = r.ratio(group, num, den), r.ratio(group, num, den, "min_ns")
        return None if med is None or low is None else (med, low)

    named = [
        ("(b)/(a)", r.MIXED, "features", "bare"),
        ("(b')/(b)", r.MIXED, "features_temporal10", "features"),
        ("(c)/(a)", r.MIXED, "features_read", "bare"),
        ("(d)/(a)", r.MIXED, "numpy", "bare"),
        ("(d)/(b)", r.MIXED, "numpy", "features"),
        ("(b)/(a) on book deltas alone", r.DELTAS, "features", "bare"),
        ("(b)/(a) on the real XRPUSDT ob500 deltas", r.REAL, "features", "bare"),
    ]
    parts = []
    for label, group, num, den in named:
        got = both(group, num, den)
        if got:
            parts.append(f"{label} {got[0]:.2f}x (min {got[1]:.2f}x)")
    if parts:
        out.append("ratios of medians: " + "; ".join(parts))
    # "about 3x": the whole vector for one update, kept current and read, against a bare update.
    for label, group, num in (
        ("kept current and read, (c)/(a)", r.MIXED, "features_read"),
        ("kept current, book deltas alone, (b)/(a)", r.DELTAS, "features"),
        ("kept current, real XRPUSDT ob500 deltas, (b)/(a)", r.REAL, "features"),
    ):
        got = both(group, num, "bare")
        if got:
            ok = "met" if got[0] <= 3.0 else ("about met" if got[0] <= 3.5 else "MISSED")
            out.append(
                f"target: whole feature vector per update <= about 3x a bare book update -> "
                f"{label} = {got[0]:.2f}x ({ok})"
            )
    got = both(r.MIXED, "numpy", "features")
    if got:
        ok = "met" if got[0] >= 3.0 else "MISSED"
        out.append(
            f"target: well under the numpy recomputation -> numpy (d) takes {got[0]:.1f}x the "
            f"time of (b) ({ok})"
        )
    return out


def _feature_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    tr = terminalreporter
    r = FEATURE_RESULTS
    tr.write_sep("=", "feature-vector benchmarks: ratios measured in this run")
    for line in _feature_summary_lines():
        tr.write_line(line)
    load_end = _loadavg()
    tr.write_line(f"load average at start {r.load_start}, at end {load_end} (2 cores: >1 is noisy)")
    path = config.getoption("--features-summary-json")
    if path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "load_start": r.load_start,
            "load_end": load_end,
            "groups": r.groups,
            "group_notes": r.group_notes,
            "percentiles": r.percentiles,
            "targets": _feature_target_lines(),
            "notes": r.notes,
        }
        out.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
        tr.write_line(f"summary written to {out}")
