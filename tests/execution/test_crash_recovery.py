"""Crash tests with real processes.

For each step of an order's life (after the reservation, after the PENDING_SUBMIT row, after the
request left, after the acknowledgement, during a partial fill) a child process running a real
``OrderService`` (``_crash_child.py``) is killed with SIGKILL at that step, then started again
against the same PostgreSQL schema, the same Redis prefix and the same local exchange, which runs
in a process of its own (``python -m pysrc.bot sim-exchange``) and so survives the kill. The
restarted child reconciles, then retries the same intents with the same client order ids, as a
restarted bot would.

Checked every time: the state the crash left (so the kill really happened at that step), then
after the restart every order in the state the exchange says, no order duplicated on the exchange
(counted by ``orderLinkId``, and in total for the symbol), fills stored once, the idempotency keys
completed, and the local position equal to the exchange's.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

import pysrc
from pysrc.exchange.bybit.rest import BybitRest
from pysrc.store import db
from pysrc.store.redis import IdempotencyKeys, create_redis

CHILD = Path(__file__).resolve().parent / "_crash_child.py"
SRC_ROOT = str(Path(pysrc.__file__).resolve().parent.parent)
KEY, SECRET = "sim-key", "sim-secret"
SYMBOL = "BTCUSDT"
MARK = "CRASH-CHILD "
STATUS_TO_STATE = {"New": "ACKNOWLEDGED", "PartiallyFilled": "PARTIALLY_FILLED", "Filled": "FILLED",
                   "Cancelled": "CANCELLED", "Rejected": "REJECTED"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@dataclass
class SimProcess:
    proc: subprocess.Popen[str]
    rest_url: str
    ws_private_url: str

    def admin(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(self.rest_url + path, data=orjson.dumps(body), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return orjson.loads(resp.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


def start_sim(seed: int) -> SimProcess:
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "pysrc.bot", "sim-exchange", "--port", "0", "--symbols", "3",
         "--seed", str(seed), "--api-key", KEY, "--api-secret", SECRET],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env(),
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("sim-exchange ready"):
            fields = dict(part.split("=", 1) for part in line.split()[2:])
            sim = SimProcess(proc, fields["rest"], fields["ws_private"])
            sim.admin("/sim/market", {"paused": True})  # the book moves only when we trade
            return sim
    proc.kill()
    proc.wait(timeout=15)
    raise AssertionError("the local exchange did not start")


def run_child(job: dict[str, Any]) -> tuple[int, list[dict[str, Any]], str]:
    res = subprocess.run([sys.executable, "-P", str(CHILD), orjson.dumps(job).decode()],
                         capture_output=True, text=True, timeout=120, env=_env(), check=False)
    events = [orjson.loads(line[len(MARK):]) for line in res.stdout.splitlines() if line.startswith(MARK)]
    return res.returncode, events, res.stdout[-3000:] + res.stderr[-3000:]


async def exchange_view(sim: SimProcess) -> dict[str, Any]:
    """What the exchange has: every order of the symbol (open and history), executions, position."""
    async with BybitRest(sim.rest_url, KEY, SECRET) as rest:
        orders = {o["orderId"]: o for o in await rest.order_history(SYMBOL)}
        for o in await rest.open_orders(SYMBOL):
            orders[o["orderId"]] = o
        execs = await rest.executions(SYMBOL)
        (pos,) = await rest.positions(SYMBOL)
        book = await rest.orderbook(SYMBOL, 5)
    return {"orders": list(orders.values()), "executions": execs, "position": pos, "book": book}


async def local_view(store: Any) -> dict[str, Any]:
    conn = await db.connect(store.dsn, schema=store.schema)
    try:
        orders = {r["order_link_id"]: dict(r) for r in await conn.fetch("SELECT * FROM orders")}
        history = {}
        for link, o in orders.items():
            history[link] = [r["event"] for r in await conn.fetch(
                "SELECT event FROM order_transitions WHERE order_id = $1 ORDER BY seq", o["id"])]
        execs = [dict(r) for r in await conn.fetch("SELECT * FROM executions")]
        positions = [dict(r) for r in await conn.fetch("SELECT * FROM positions WHERE closed_at IS NULL")]
        audit = [dict(r) for r in await conn.fetch("SELECT action, entity, success FROM audit_log ORDER BY id")]
    finally:
        await conn.close()
    redis = await create_redis(store.redis_url)
    try:
        keys = IdempotencyKeys(redis, prefix=store.prefix + "idem:")
        key_states = {link: (await keys.get(link)) for link in orders}
    finally:
        await redis.aclose()
    return {"orders": orders, "history": history, "executions": execs, "positions": positions, "audit": audit,
            "keys": key_states}


async def key_state(store: Any, link: str) -> Any:
    redis = await create_redis(store.redis_url)
    try:
        return await IdempotencyKeys(redis, prefix=store.prefix + "idem:").get(link)
    finally:
        await redis.aclose()


def intents_for(step: str, book: dict[str, Any]) -> list[dict[str, Any]]:
    """A: a market buy that completes before the crash (its fill must survive). B: the order the
    process dies with."""
    a = {"symbol": SYMBOL, "side": "Buy", "order_type": "Market", "qty": "0.005", "client_order_id": f"{step}_a",
         "reason": "entry", "strategy": "crash"}
    best_bid = Decimal(book["b"][0][0])
    ask_price, ask_size = Decimal(book["a"][0][0]), Decimal(book["a"][0][1])
    b: dict[str, Any] = {"symbol": SYMBOL, "side": "Buy", "client_order_id": f"{step}_b", "reason": "entry",
                         "strategy": "crash"}
    if step == "acknowledged":
        b.update(order_type="Limit", qty="0.003", price=str(best_bid - Decimal(100)))  # rests
    elif step == "partial_fill":
        assert ask_size > Decimal("0.005"), "the seeded book changed: A must leave part of the best ask"
        left = ask_size - Decimal("0.005")  # A took 0.005 of it
        b.update(order_type="Limit", qty=str(left + Decimal("0.015")), price=str(ask_price))
    else:
        b.update(order_type="Market", qty="0.010")
    return [a, b]


STEPS = ["reserved", "pending_submit", "sent", "acknowledged", "partial_fill"]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_then_restart(store: Any, step: str) -> None:
    sim = start_sim(seed=11)
    try:
        _run_scenario(store, sim, step)
    finally:
        sim.stop()


def _run_scenario(store: Any, sim: SimProcess, step: str) -> None:
    before = asyncio.run(exchange_view(sim))
    assert before["orders"] == []
    intents = intents_for(step, before["book"])
    a_link, b_link = intents[0]["client_order_id"], intents[1]["client_order_id"]
    job = {"rest_url": sim.rest_url, "ws_private_url": sim.ws_private_url, "api_key": KEY, "api_secret": SECRET,
           "database_url": store.dsn, "redis_url": store.redis_url, "schema": store.schema,
           "prefix": store.prefix, "mode": "demo", "intents": intents}

    # ---- 1. the crash -------------------------------------------------------------------------
    code, events, out = run_child({**job, "crash_at": step, "crash_link": b_link})
    assert code == -signal.SIGKILL, out
    assert events[-1]["event"] == "crashing" and events[-1]["step"] == step, events
    ex = asyncio.run(exchange_view(sim))
    local = asyncio.run(local_view(store))
    on_exchange = {o["orderLinkId"]: o for o in ex["orders"]}
    assert local["orders"][a_link]["state"] == "FILLED"  # completed before the crash
    b_row = local["orders"].get(b_link)
    if step == "reserved":
        assert b_row is None and b_link not in on_exchange  # nothing durable, nothing sent
        key = asyncio.run(key_state(store, b_link))
        assert key is not None and key.status == "pending"
    elif step == "pending_submit":
        assert b_row is not None and b_row["state"] == "PENDING_SUBMIT" and b_link not in on_exchange
    elif step == "sent":
        assert b_row is not None and on_exchange[b_link]["orderStatus"] == "Filled"
        assert "confirm_submit" not in local["history"][b_link]  # the answer was never recorded
        assert not any(a["action"] == "order.place" and a["entity"] == f"order:{b_link}" for a in local["audit"])
    elif step == "acknowledged":
        assert b_row is not None and b_row["state"] in ("SUBMITTED", "ACKNOWLEDGED")
        assert any(a["action"] == "order.place" and a["entity"] == f"order:{b_link}" for a in local["audit"])
        assert local["keys"][b_link] is not None and local["keys"][b_link].status == "pending"
    else:  # partial_fill: killed while recording the fill, inside its transaction
        assert b_row is not None and b_row["state"] in ("PENDING_SUBMIT", "SUBMITTED")
        assert on_exchange[b_link]["orderStatus"] == "PartiallyFilled"
        assert not [e for e in local["executions"] if e["order_link_id"] == b_link]

    # ---- 2. the restart: reconcile, then retry the same intents ---------------------------------
    code, events, out = run_child(job)
    assert code == 0, out
    started = events[0]
    assert started["event"] == "started"
    placed = [e["view"] for e in events if e["event"] == "placed"]
    assert [p["order_link_id"] for p in placed] == [a_link, b_link]
    assert placed[0]["duplicate"] is True  # A was never sent again
    if step != "reserved":
        assert placed[1]["duplicate"] is True  # B's outcome was recovered, not re-created

    # ---- 3. the end state ------------------------------------------------------------------------
    ex = asyncio.run(exchange_view(sim))
    local = asyncio.run(local_view(store))
    links = [o["orderLinkId"] for o in ex["orders"]]
    expected_on_exchange = [a_link] if step == "pending_submit" else [a_link, b_link]
    assert sorted(links) == sorted(expected_on_exchange), links  # nothing duplicated, nothing extra
    for link, row in local["orders"].items():
        if link in links:
            o = next(x for x in ex["orders"] if x["orderLinkId"] == link)
            assert row["state"] == STATUS_TO_STATE[o["orderStatus"]], (link, row["state"], o["orderStatus"])
            assert row["filled_qty"] == Decimal(o["cumExecQty"])
            assert row["exchange_order_id"] == o["orderId"]
        else:
            assert row["state"] == "FAILED" and link == b_link and step == "pending_submit"
    expected_b = {"reserved": "FILLED", "pending_submit": "FAILED", "sent": "FILLED", "acknowledged": "ACKNOWLEDGED",
                  "partial_fill": "PARTIALLY_FILLED"}[step]
    assert local["orders"][b_link]["state"] == expected_b
    # fills stored once each, the same ones the exchange has
    assert sorted(e["exec_id"] for e in local["executions"]) == sorted(e["execId"] for e in ex["executions"])
    # positions match the exchange
    pos = ex["position"]
    (mine,) = local["positions"]
    assert (mine["side"], mine["size"]) == (pos["side"], Decimal(pos["size"]))
    # every key completed: a later retry is answered from Redis at once
    for link in (a_link, b_link):
        key = local["keys"][link]
        assert key is not None and key.finished, (link, key)
    if step == "pending_submit":
        assert any(a["action"] == "reconcile.mark_failed" for a in local["audit"])
