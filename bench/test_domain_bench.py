"""Cost of the order state machine: a transition check, a checked-and-recorded transition, and the
exchange-push reducer, each against a plain baseline timed in the same run.

Run with ``pytest bench/test_domain_bench.py`` (opt-in like every benchmark); under
``--benchmark-disable`` every body runs once and its answers are still checked. The plan's floor
is "FSM check under 1 ms"; it is reported from this run, never asserted (two shared cores).

Groups (per-operation median and minimum; ratio = FSM / baseline):

1. **check**: ``ORDER_TABLE.target(state, event)`` vs a plain ``dict[(state, event)]`` lookup,
   over every legal pair of the table (both must give the same targets).
2. **check + apply**: one order's life, ``submit, confirm_submit, acknowledge, partial_fill,
   fill`` through ``Order.apply`` (table check, payload validation, exact ``Decimal`` fill
   accounting, an immutable ``Transition`` record) vs a plain object doing the same dict lookup and
   appending a tuple (no validation, no accounting). Both end ``FILLED`` with five records.
3. **reducer**: ten raw Bybit messages of one order, disordered as real streams are (a fill before
   the acknowledgement, duplicates, two ``Filled``, a late ``New``), through ``orjson.loads`` +
   ``from_bybit`` + ``on_exchange_update`` vs ``orjson.loads`` alone (the floor any Python consumer
   pays). The order must end ``FILLED`` with the exact average price and fees.

A last test prints the ratios and single-call percentiles of ``Order.apply`` and writes them to
``bench/.data/domain-summary.json``.
"""

from __future__ import annotations

import datetime as _dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from pysrc.domain.fsm import Transition
from pysrc.domain.orders import (
    ORDER_TABLE,
    Order,
    OrderEvent,
    OrderState,
    on_exchange_update,
)
from pysrc.domain.values import Execution, OrderType, OrderUpdate, Side

D = Decimal
E = OrderEvent
T0 = _dt.datetime(2025, 1, 1, tzinfo=_dt.UTC)
LINK = "0m5d4ruo0_BTCUSDT_bench_00kf12oi"
OID = "9aac161b-0000-4000-8000-000000000001"
SUMMARY = Path(__file__).resolve().parent / ".data" / "domain-summary.json"

RESULTS: dict[str, dict[str, dict[str, float]]] = {}
LABELS = {
    "check": "transition check",
    "apply": "check + apply, one order's life (5 transitions)",
    "reducer": "reducer, 10 raw Bybit messages of one order",
}


def _record(group: str, impl: str, benchmark: Any, ops: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable: nothing was timed
        return
    st = stats.stats
    row = {"median_ns": st.median / ops * 1e9, "min_ns": st.min / ops * 1e9, "rounds": float(st.rounds)}
    RESULTS.setdefault(group, {})[impl] = row
    benchmark.extra_info["per_op_median_ns"] = round(row["median_ns"], 1)
    base = RESULTS[group].get("baseline")
    if base and impl != "baseline":
        benchmark.extra_info["ratio_to_baseline_median"] = round(
            row["median_ns"] / base["median_ns"], 2
        )


# ---- 1. check ---------------------------------------------------------------------------------

PAIRS = list(ORDER_TABLE.pairs())
PLAIN: dict[tuple[OrderState, OrderEvent], OrderState] = dict(ORDER_TABLE.pairs())
EXPECTED_TARGETS = [PLAIN[p] for p in PAIRS]


def test_check_baseline(benchmark: Any) -> None:
    def run() -> list[OrderState]:
        plain = PLAIN
        return [plain[(s, e)] for s, e in PAIRS]

    assert benchmark(run) == EXPECTED_TARGETS
    _record("check", "baseline", benchmark, len(PAIRS))


def test_check_fsm(benchmark: Any) -> None:
    def run() -> list[OrderState]:
        target = ORDER_TABLE.target
        return [target(s, e) for s, e in PAIRS]

    assert benchmark(run) == EXPECTED_TARGETS
    _record("check", "fsm", benchmark, len(PAIRS))


# ---- 2. check + apply ---------------------------------------------------------------------------

LIFE: list[tuple[OrderEvent, dict[str, str]]] = [
    (E.SUBMIT, {}),
    (E.CONFIRM_SUBMIT, {"order_id": OID}),
    (E.ACKNOWLEDGE, {"order_id": OID, "exchange_time": "1"}),
    (E.PARTIAL_FILL, {"filled_qty": "0.4", "filled_value": "40.02", "exchange_time": "2"}),
    (E.FILL, {"filled_qty": "1", "filled_value": "100.08", "exchange_time": "3"}),
]


def new_order() -> Order:
    return Order(
        LINK, "BTCUSDT", Side.BUY, OrderType.LIMIT, D("1"), D("100.1"), strategy="bench", created_at=T0
    )


class PlainOrder:
    """The baseline: the same lookup and a tuple record, nothing checked or computed."""

    __slots__ = ("history", "state", "version")

    def __init__(self) -> None:
        self.state = OrderState.NEW
        self.version = 0
        self.history: list[tuple[Any, ...]] = []

    def apply(self, event: OrderEvent, at: _dt.datetime, meta: dict[str, str]) -> None:
        target = PLAIN[(self.state, event)]
        self.version += 1
        self.history.append((self.version, self.state, target, event, at, meta))
        self.state = target


def _life(order: Any) -> Any:
    for event, meta in LIFE:
        order.apply(event, T0, meta)
    return order


def test_apply_baseline(benchmark: Any) -> None:
    out = benchmark.pedantic(
        _life, setup=lambda: ((PlainOrder(),), {}), rounds=20_000, warmup_rounds=100
    )
    if out is not None:
        assert out.state is OrderState.FILLED and len(out.history) == 5
    _record("apply", "baseline", benchmark, len(LIFE))


def test_apply_fsm(benchmark: Any) -> None:
    out = benchmark.pedantic(
        _life, setup=lambda: ((new_order(),), {}), rounds=20_000, warmup_rounds=100
    )
    if out is not None:
        check_life(out)
    _record("apply", "fsm", benchmark, len(LIFE))
    check_life(_life(new_order()))


def check_life(o: Order) -> None:
    assert o.state is OrderState.FILLED and o.version == 5 and len(o.history) == 5
    assert all(isinstance(t, Transition) for t in o.history)
    assert o.filled_qty == D("1") and o.avg_fill_price == D("100.08")
    assert Order.replay(new_order(), o.history) == o


# ---- 3. reducer -----------------------------------------------------------------------------------


def _order_msg(status: str, cum: str, value: str, t: int, **extra: str) -> bytes:
    item = {
        "category": "linear", "orderId": OID, "orderLinkId": LINK, "symbol": "BTCUSDT", "side": "Buy",
        "orderType": "Limit", "price": "100.1", "qty": "1", "orderStatus": status, "avgPrice": "",
        "leavesQty": str(D(1) - D(cum)), "cumExecQty": cum, "cumExecValue": value, "cumExecFee": "",
        "cumFeeDetail": {}, "timeInForce": "GTC", "cancelType": "UNKNOWN", "rejectReason": "EC_NoError",
        "createdTime": "1", "updatedTime": str(t), "reduceOnly": False,
        **extra,
    }  # fmt: skip
    return orjson.dumps({"id": f"o{t}", "topic": "order", "creationTime": t, "data": [item]})


def _exec_msg(exec_id: str, qty: str, price: str, fee: str, t: int) -> bytes:
    item = {
        "category": "linear", "symbol": "BTCUSDT", "execId": exec_id, "execPrice": price, "execQty": qty,
        "execType": "Trade", "execValue": str(D(price) * D(qty)), "execFee": fee, "feeRate": "0.0002",
        "orderId": OID, "orderLinkId": LINK, "side": "Buy", "orderPrice": "100.1", "orderQty": "1",
        "execTime": str(t), "isMaker": True, "leavesQty": "0", "feeCurrency": "USDT", "seq": t,
    }  # fmt: skip
    return orjson.dumps({"id": f"e{t}", "topic": "execution", "creationTime": t, "data": [item]})


MESSAGES: list[bytes] = [
    _exec_msg("x1", "0.4", "100.05", "0.008004", 2),  # fill before the acknowledgement
    _order_msg("New", "0", "0", 1),  # the acknowledgement, late
    _exec_msg("x1", "0.4", "100.05", "0.008004", 2),  # duplicate execution
    _order_msg("PartiallyFilled", "0.4", "40.02", 2),
    _order_msg("PartiallyFilled", "0.4", "40.02", 2),  # duplicate push
    _order_msg("Filled", "1", "100.08", 3),  # the order push before the last execution
    _exec_msg("x2", "0.6", "100.1", "0.012012", 3),
    _order_msg(
        "Filled", "1", "100.08", 4, cancelType="CancelByUser", rejectReason="EC_OrigClOrdIDDoesNotExist"
    ),
    _order_msg("New", "0", "0", 1),  # a stale snapshot from a REST query
    _exec_msg("x2", "0.6", "100.1", "0.012012", 3),
]


def _reduce(order: Order) -> Order:
    for raw in MESSAGES:
        msg = orjson.loads(raw)
        for item in msg["data"]:
            push = (
                Execution.from_bybit(item)
                if msg["topic"] == "execution"
                else OrderUpdate.from_bybit(item)
            )
            on_exchange_update(order, push, T0)
    return order


def _parse_only(_order: Order) -> int:
    n = 0
    for raw in MESSAGES:
        n += len(orjson.loads(raw)["data"])
    return n


def _submitted() -> Order:
    o = new_order()
    o.submit(T0)
    return o


def check_reduced(o: Order) -> None:
    assert o.state is OrderState.FILLED
    assert o.filled_qty == D("1") and o.filled_value == D("100.080") and o.avg_fill_price == D("100.08")
    assert o.fees == D("0.020016") and o.exec_ids == {"x1", "x2"}
    assert [t.event for t in o.history] == [
        E.SUBMIT,
        E.ACKNOWLEDGE,
        E.PARTIAL_FILL,
        E.FILL,
        E.RECORD_EXECUTION,
    ]


def test_reducer_baseline(benchmark: Any) -> None:
    n = benchmark.pedantic(
        _parse_only, setup=lambda: ((_submitted(),), {}), rounds=5_000, warmup_rounds=50
    )
    if n is not None:
        assert n == len(MESSAGES)
    _record("reducer", "baseline", benchmark, len(MESSAGES))


def test_reducer_fsm(benchmark: Any) -> None:
    out = benchmark.pedantic(
        _reduce, setup=lambda: ((_submitted(),), {}), rounds=5_000, warmup_rounds=50
    )
    if out is not None:
        check_reduced(out)
    _record("reducer", "fsm", benchmark, len(MESSAGES))
    check_reduced(_reduce(_submitted()))


# ---- report -------------------------------------------------------------------------------------


def _percentiles(fn: Callable[[], Callable[[], object]], n: int) -> dict[str, float]:
    """Single calls bracketed by perf_counter_ns; ``fn`` prepares and returns the call to time."""
    samples = []
    for _ in range(n):
        call = fn()
        t0 = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - t0)
    samples.sort()

    def q(p: float) -> float:
        return float(samples[min(len(samples) - 1, int(p * len(samples)))])

    return {
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "p99.9": q(0.999),
        "mean": statistics.fmean(samples),
    }


def _one_apply() -> Callable[[], object]:
    o = new_order()
    o.submit(T0)
    o.acknowledge(OID, T0)
    return lambda: o.apply(E.PARTIAL_FILL, T0, {"filled_qty": "0.4", "filled_value": "40.02"})


def _fmt(ns: float) -> str:
    return f"{ns / 1e3:.2f} µs" if ns >= 1e3 else f"{ns:.0f} ns"


def test_zz_report(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    disabled = bool(request.config.getoption("benchmark_disable", False))
    pct = _percentiles(_one_apply, 200 if disabled else 20_000)
    lines = ["", "domain state-machine benchmarks: FSM vs plain baseline, same run"]
    for group, rows in RESULTS.items():
        base, fsm = rows.get("baseline"), rows.get("fsm")
        if not (base and fsm):
            continue
        ratio, ratio_min = fsm["median_ns"] / base["median_ns"], fsm["min_ns"] / base["min_ns"]
        b, f = _fmt(base["median_ns"]), _fmt(fsm["median_ns"])
        lines.append(
            f"  {LABELS[group]:<48} baseline {b:>9}/op  fsm {f:>9}/op  "
            f"ratio {ratio:.1f}x (min {ratio_min:.1f}x)"
        )
    if not RESULTS:
        lines.append("  (timing disabled: answers checked, nothing timed)")
    ok = "met" if pct["p99"] < 1e6 else "MISSED"
    p50, p90, p99, p999 = (_fmt(pct[k]) for k in ("p50", "p90", "p99", "p99.9"))
    lines.append(f"  Order.apply single calls: p50 {p50}, p90 {p90}, p99 {p99}, p99.9 {p999}")
    lines.append(
        f"  plan floor 'FSM check under 1 ms': p99 {_fmt(pct['p99'])} -> {ok} (reported, not asserted)"
    )
    with capsys.disabled():
        print("\n".join(lines))
    if RESULTS:
        SUMMARY.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            "load": list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
            "groups": RESULTS,
            "apply_single_call_ns": pct,
        }
        SUMMARY.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
