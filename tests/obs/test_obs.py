"""Structured logs carry the trace id; the Prometheus registry renders valid exposition text."""

from __future__ import annotations

import asyncio
import io
import logging
import re

import orjson
import pytest

from pysrc.obs.log import EVENTS, configure, current_trace_id, get_logger, trace
from pysrc.obs.metrics import Registry


def test_json_logs_carry_the_trace_id_into_tasks() -> None:
    out = io.StringIO()
    configure(level="INFO", fmt="json", stream=out)
    log = get_logger("t")

    async def child() -> None:
        log.info(EVENTS.ORDER_FILLED, qty="1")

    async def main() -> None:
        with trace("sig-1"):
            log.info(EVENTS.SIGNAL_GENERATED, symbol="BTCUSDT")
            await asyncio.create_task(child())  # tasks copy the context: same trace id
        log.info(EVENTS.BOT_STOPPED)

    asyncio.run(main())
    logging.getLogger("plain").warning("from stdlib")
    rows = [orjson.loads(x) for x in out.getvalue().splitlines()]
    assert [r["event"] for r in rows] == ["signal_generated", "order_filled", "bot_stopped", "from stdlib"]
    assert rows[0]["trace_id"] == rows[1]["trace_id"] == "sig-1"
    assert "trace_id" not in rows[2] and current_trace_id() is None
    assert rows[3]["level"] == "warning"
    configure(level="INFO", fmt="console")


def test_registry_renders_exposition_text() -> None:
    r = Registry()
    c = r.counter("orders_placed_total", "Orders placed", ["symbol"])
    c.inc(symbol="BTCUSDT")
    c.inc(2, symbol='A"B')
    r.gauge("active_positions", "Open positions").set(3)
    r.gauge("pnl_total", "PnL", fn=lambda: -1.5)
    h = r.histogram("tick_seconds", "Tick processing", buckets=(0.001, 0.01))
    h.observe(0.0005)
    h.observe(0.5)
    text = r.render()
    assert 'orders_placed_total{symbol="A\\"B"} 2' in text
    assert "active_positions 3" in text and "pnl_total -1.5" in text
    assert 'tick_seconds_bucket{le="0.001"} 1' in text and 'tick_seconds_bucket{le="+Inf"} 2' in text
    assert "tick_seconds_count 2" in text
    sample = re.compile(r'^[a-z_]+(\{[^}]*\})? -?[0-9.e+Inf-]+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line), line
    with pytest.raises(ValueError):
        c.inc(-1, symbol="X")
    with pytest.raises(ValueError):
        c.inc(symbol="X", side="Buy")
    with pytest.raises(ValueError):
        r.counter("orders_placed_total", "again")
    with pytest.raises(ValueError):
        c.inc(sym="BTCUSDT")  # right count, wrong name
    with pytest.raises(ValueError):
        h.observe(0.1, symbol="X")  # an unlabelled histogram takes no labels


def test_histogram_buckets_are_upper_bounds_inclusive() -> None:
    """A value equal to a bound counts in that bucket (Prometheus ``le``); beyond the last bound
    only in +Inf; the rendered buckets are cumulative."""
    r = Registry()
    h = r.histogram("x_seconds", "x", buckets=(0.001, 0.01, 0.1))
    for v in (0.0, 0.001, 0.0010001, 0.01, 0.1, 0.2, 5.0):
        h.observe(v)
    text = r.render()
    for le, n in (("0.001", 2), ("0.01", 4), ("0.1", 5), ("+Inf", 7)):
        assert f'x_seconds_bucket{{le="{le}"}} {n}' in text, text
    lab = r.histogram("y_seconds", "y", ["route"], buckets=(1.0,))
    lab.observe(0.5, route="/a")
    lab.observe(2.0, route="/a")
    assert lab.count(route="/a") == 2 and 'y_seconds_bucket{route="/a",le="1"} 1' in r.render()
