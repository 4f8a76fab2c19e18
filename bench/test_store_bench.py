"""Cost of the store's calls against the bare driver call they wrap, on real servers, in one run.

Run with ``pytest bench/test_store_bench.py`` (opt-in, like every benchmark). Embedded PostgreSQL
and Redis are started under a temporary directory, or ``DATABASE_URL`` / ``REDIS_URL`` are used.
Each group times the store's call and a plain baseline doing the same work with the bare client,
interleaved in the same session, and reports the ratio (nothing here asserts a time):

* idempotency reservation: ``IdempotencyKeys.reserve`` (SET NX EX with a JSON pending marker) vs a
  bare ``SET key 1 NX EX 86400``; and the duplicate check (a reserved key: SET NX fails, GET the
  marker) vs a bare ``GET``;
* repository write: ``OrderRepository.insert`` (row returned as a dataclass; with and without the
  first transition row) vs ``pool.execute`` of the same INSERT;
* FSM transition with persistence: ``OrderRepository.transition`` (optimistic UPDATE + history
  row in one statement) vs a bare ``UPDATE ... WHERE id = $1 AND version = $2``;
* repository read: ``OrderRepository.get`` vs ``pool.fetchrow`` of the same SELECT;
* audit append: ``AuditLog.record`` vs a bare INSERT.

Every group runs ``BATCH`` awaited calls per round on one event loop and reports per call. A last
test times single calls (p50/p90/p99) against the plan's floors: idempotency check < 5 ms,
repository call < 10 ms. Each benchmark checks its answers (rows written, keys reserved, states
reached), so ``pytest bench --benchmark-disable`` is a quick correctness run.

The summary is printed at the end and written to ``bench/.data/store-summary.json``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import itertools
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from pysrc.store import db
from pysrc.store.audit import AuditLog
from pysrc.store.migrate import migrate
from pysrc.store.redis import IdempotencyKeys, create_redis
from pysrc.store.repositories import NewOrder, OrderRepository
from pysrc.store.servers import start_servers

BATCH = 200
ROUNDS = 15
PERCENTILE_CALLS = 500
SUMMARY_JSON = Path(__file__).resolve().parent / ".data" / "store-summary.json"

_ids = itertools.count(1)


def _link() -> str:
    return f"b{os.getpid()}_{next(_ids)}"


class Env:
    """One event loop, one migrated schema, a pool and a Redis client for the whole module."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.schema = f"bench_{os.getpid()}"
        self.prefix = f"bench:{os.getpid()}:"
        self.servers = self.run(start_servers(tmp, postgres_settings=None))
        self.run(migrate(self.servers.database_url, schema=self.schema))
        self.pool = self.run(db.create_pool(self.servers.database_url, schema=self.schema, min_size=2, max_size=2))
        self.redis = self.run(create_redis(self.servers.redis_url))

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        async def cleanup() -> None:
            keys = [k async for k in self.redis.scan_iter(match=self.prefix + "*", count=1000)]
            for i in range(0, len(keys), 1000):
                await self.redis.delete(*keys[i:i + 1000])
            await self.redis.aclose()
            await self.pool.close()
            conn = await db.connect(self.servers.database_url)
            try:
                await conn.execute(f"DROP SCHEMA IF EXISTS {db.quote_ident(self.schema)} CASCADE")
            finally:
                await conn.close()

        try:
            self.run(cleanup())
            self.run(self.servers.aclose())
        finally:
            self.loop.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    e = Env(tmp_path_factory.mktemp("store-bench"))
    yield e
    e.close()


# ---- results ----------------------------------------------------------------------------------


class StoreResults:
    def __init__(self) -> None:
        self.groups: dict[str, dict[str, dict[str, float]]] = {}
        self.percentiles: dict[str, dict[str, float]] = {}

    def record(self, group: str, impl: str, benchmark: Any, per_round: int) -> None:
        meta = getattr(benchmark, "stats", None)
        if meta is None:  # --benchmark-disable
            return
        st = meta.stats
        row = {"median_us": st.median / per_round * 1e6, "min_us": st.min / per_round * 1e6}
        self.groups.setdefault(group, {})[impl] = row
        benchmark.extra_info["per_call_median_us"] = round(row["median_us"], 2)
        base = self.groups[group].get("baseline")
        if impl != "baseline" and base:
            benchmark.extra_info["vs_baseline"] = round(row["median_us"] / base["median_us"], 2)

    def lines(self) -> list[str]:
        out: list[str] = []
        for group, rows in self.groups.items():
            out.append("")
            out.append(group)
            base = rows.get("baseline")
            out.append(f"  {'call':<44} {'median/call':>12} {'min/call':>10} {'vs bare':>8}")
            for impl, row in rows.items():
                ratio = f"{row['median_us'] / base['median_us']:.2f}x" if base else "-"
                out.append(f"  {LABELS.get(impl, impl):<44} {row['median_us']:>9.1f} µs {row['min_us']:>7.1f} µs {ratio:>8}")
        if self.percentiles:
            out.append("")
            out.append("single calls (perf_counter_ns around each await)")
            out.append(f"  {'call':<44} {'p50':>9} {'p90':>9} {'p99':>9}  floor")
            for name, pc in self.percentiles.items():
                floor = FLOORS[name]
                ok = "met" if pc["p99"] < floor * 1000 else "MISSED"
                out.append(f"  {name:<44} {pc['p50']:>6.0f} µs {pc['p90']:>6.0f} µs {pc['p99']:>6.0f} µs  "
                           f"< {floor} ms at p99: {ok}")
        return out


LABELS = {
    "baseline": "bare client call (baseline)",
    "store": "store call",
    "store_with_transition": "store call, with the first transition row",
}
FLOORS = {
    "idempotency reserve (new key)": 5,
    "idempotency check (reserved key)": 5,
    "OrderRepository.insert": 10,
    "OrderRepository.get": 10,
    "OrderRepository.transition": 10,
}
RESULTS = StoreResults()


class _SummaryPlugin:
    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not RESULTS.groups and not RESULTS.percentiles:
            return
        tr = terminalreporter
        tr.write_sep("=", "store benchmarks: ratios measured in this run")
        for line in RESULTS.lines():
            tr.write_line(line)
        SUMMARY_JSON.parent.mkdir(parents=True, exist_ok=True)
        SUMMARY_JSON.write_bytes(orjson.dumps({
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load": list(os.getloadavg()),
            "groups": RESULTS.groups,
            "percentiles": RESULTS.percentiles,
        }, option=orjson.OPT_INDENT_2))
        tr.write_line(f"summary written to {SUMMARY_JSON}")


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> None:
    pm = request.config.pluginmanager
    if not pm.has_plugin("store-bench-summary"):
        pm.register(_SummaryPlugin(), "store-bench-summary")


def _bench(benchmark: Any, env: Env, make_batch: Callable[[], Awaitable[Any]]) -> Any:
    """Time BATCH awaited calls per round; returns the last round's result."""
    out: list[Any] = []

    def round_() -> None:
        out.append(env.run(make_batch()))

    benchmark.pedantic(round_, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    return out[-1]


def _order(link: str) -> NewOrder:
    return NewOrder(link, "paper", "BTCUSDT", "Buy", "Limit", Decimal("0.010"), Decimal("65000.5"),
                    strategy="bench", signal={"type": "breakout"})


BARE_INSERT = (
    "INSERT INTO orders (order_link_id, mode, symbol, side, order_type, qty, price, reduce_only, "
    "time_in_force, state, category, take_profit, stop_loss, strategy, signal, position_id, "
    "exchange_order_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
)


def _bare_args(o: NewOrder) -> tuple[Any, ...]:
    return (o.order_link_id, o.mode, o.symbol, o.side, o.order_type, o.qty, o.price, o.reduce_only,
            o.time_in_force, o.state, o.category, o.take_profit, o.stop_loss, o.strategy, o.signal,
            o.position_id, o.exchange_order_id)


# ---- idempotency ------------------------------------------------------------------------------

G_RESERVE = "idempotency reservation of a new key"
G_CHECK = "idempotency check of a reserved key (duplicate request)"


@pytest.mark.parametrize("impl", ["baseline", "store"])
def test_reserve_new_key(benchmark: Any, env: Env, impl: str) -> None:
    keys = IdempotencyKeys(env.redis, prefix=env.prefix + "idem:")

    async def batch() -> list[bool]:
        if impl == "baseline":
            return [bool(await env.redis.set(f"{env.prefix}bare:{_link()}", b"1", nx=True, ex=86400))
                    for _ in range(BATCH)]
        return [(await keys.reserve(_link())).acquired for _ in range(BATCH)]

    got = _bench(benchmark, env, batch)
    assert got == [True] * BATCH
    RESULTS.record(G_RESERVE, impl, benchmark, BATCH)


@pytest.mark.parametrize("impl", ["baseline", "store"])
def test_check_reserved_key(benchmark: Any, env: Env, impl: str) -> None:
    keys = IdempotencyKeys(env.redis, prefix=env.prefix + "idem:")
    key = "dup-" + _link()
    assert env.run(keys.reserve(key)).acquired

    async def batch() -> list[Any]:
        if impl == "baseline":
            return [await env.redis.get(env.prefix + "idem:" + key) for _ in range(BATCH)]
        return [(await keys.reserve(key)).acquired for _ in range(BATCH)]

    got = _bench(benchmark, env, batch)
    assert got == ([False] * BATCH if impl == "store" else got) and all(x is not None for x in got)
    RESULTS.record(G_CHECK, impl, benchmark, BATCH)


# ---- repository write / read / transition --------------------------------------------------------

G_WRITE = "repository write: insert one order"
G_READ = "repository read: one order by id"
G_TRANSITION = "FSM transition with persistence (optimistic update + history)"
G_AUDIT = "audit append"


@pytest.mark.parametrize("impl", ["baseline", "store", "store_with_transition"])
def test_order_insert(benchmark: Any, env: Env, impl: str) -> None:
    orders = OrderRepository(env.pool)
    links: list[str] = []

    async def batch() -> int:
        n = 0
        for _ in range(BATCH):
            o = _order(_link())
            links.append(o.order_link_id)
            if impl == "baseline":
                await env.pool.execute(BARE_INSERT, *_bare_args(o))
            elif impl == "store":
                row = await orders.insert(o, event=None)
                n += row.version == 1
            else:
                row = await orders.insert(o)
                n += row.version == 1
        return n

    got = _bench(benchmark, env, batch)
    assert got == (0 if impl == "baseline" else BATCH)
    count = env.run(env.pool.fetchval("SELECT count(*) FROM orders WHERE order_link_id = ANY($1)", links))
    assert count == len(links)
    if impl == "store_with_transition":
        n_tr = env.run(env.pool.fetchval(
            "SELECT count(*) FROM order_transitions t JOIN orders o ON o.id = t.order_id "
            "WHERE o.order_link_id = ANY($1)", links))
        assert n_tr == len(links)
    RESULTS.record(G_WRITE, impl, benchmark, BATCH)


@pytest.mark.parametrize("impl", ["baseline", "store"])
def test_order_read(benchmark: Any, env: Env, impl: str) -> None:
    orders = OrderRepository(env.pool)
    row = env.run(orders.insert(_order(_link())))
    bare_sql = orders._sql_get  # the same SELECT

    async def batch() -> list[Any]:
        if impl == "baseline":
            return [(await env.pool.fetchrow(bare_sql, row.id))["order_link_id"] for _ in range(BATCH)]
        return [(await orders.get(row.id)).order_link_id for _ in range(BATCH)]

    got = _bench(benchmark, env, batch)
    assert got == [row.order_link_id] * BATCH
    RESULTS.record(G_READ, impl, benchmark, BATCH)


@pytest.mark.parametrize("impl", ["baseline", "store"])
def test_order_transition(benchmark: Any, env: Env, impl: str) -> None:
    orders = OrderRepository(env.pool)
    start = env.run(orders.insert(_order(_link())))
    start = env.run(orders.transition(start, "ACKNOWLEDGED", "acknowledge"))[0]
    state = {"row": start, "version": start.version}
    flip = {"ACKNOWLEDGED": "PARTIALLY_FILLED", "PARTIALLY_FILLED": "ACKNOWLEDGED"}
    bare = "UPDATE orders SET state = $3, updated_at = now(), version = version + 1 WHERE id = $1 AND version = $2"

    async def batch() -> int:
        for _ in range(BATCH):
            if impl == "baseline":
                cur = state["row"]
                status = await env.pool.execute(bare, cur.id, state["version"], "PARTIALLY_FILLED")
                assert status == "UPDATE 1"
                state["version"] += 1
            else:
                cur = state["row"]
                state["row"], _ = await orders.transition(cur, flip[cur.state], "partial_fill")
        return BATCH

    _bench(benchmark, env, batch)
    final = env.run(orders.get(start.id))
    if impl == "store":
        hist = env.run(orders.transitions(start.id))
        assert final.version == state["row"].version == len(hist)  # one history row per version
        assert [t.seq for t in hist] == list(range(1, len(hist) + 1))
    else:
        assert final.version == state["version"]
    RESULTS.record(G_TRANSITION, impl, benchmark, BATCH)


@pytest.mark.parametrize("impl", ["baseline", "store"])
def test_audit_append(benchmark: Any, env: Env, impl: str) -> None:
    audit = AuditLog(env.pool)
    bare = ("INSERT INTO audit_log (actor, action, reason, params, success, trace_id, context) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)")
    params = {"symbol": "BTCUSDT", "qty": Decimal("0.01")}
    context = {"signal": {"type": "breakout"}, "market": {"bid": Decimal(65000)}}
    before = env.run(env.pool.fetchval("SELECT count(*) FROM audit_log"))

    async def batch() -> None:
        for _ in range(BATCH):
            if impl == "baseline":
                await env.pool.execute(bare, "bot", "order.place", "bench", params, True, "t", context)
            else:
                await audit.record("bot", "order.place", "bench", params, trace_id="t", context=context)

    _bench(benchmark, env, batch)
    after = env.run(env.pool.fetchval("SELECT count(*) FROM audit_log"))
    assert after - before in (BATCH, BATCH * (ROUNDS + 1))  # one round when disabled
    RESULTS.record(G_AUDIT, impl, benchmark, BATCH)


# ---- single-call percentiles against the plan's floors ------------------------------------------


def _pct(samples: list[int]) -> dict[str, float]:
    s = sorted(samples)

    def q(p: float) -> float:
        return s[min(len(s) - 1, int(p * len(s)))] / 1000.0

    return {"p50": q(0.50), "p90": q(0.90), "p99": q(0.99)}


def test_single_call_percentiles(env: Env, request: pytest.FixtureRequest) -> None:
    disabled = request.config.getoption("benchmark_disable", False)
    n = 20 if disabled else PERCENTILE_CALLS
    keys = IdempotencyKeys(env.redis, prefix=env.prefix + "idem:")
    orders = OrderRepository(env.pool)

    async def measure() -> dict[str, list[int]]:
        out: dict[str, list[int]] = {k: [] for k in FLOORS}
        dup = "pct-dup-" + _link()
        await keys.reserve(dup)
        row = await orders.insert(_order(_link()))
        row, _ = await orders.transition(row, "ACKNOWLEDGED", "acknowledge")
        flip = {"ACKNOWLEDGED": "PARTIALLY_FILLED", "PARTIALLY_FILLED": "ACKNOWLEDGED"}
        for _ in range(n):
            t = time.perf_counter_ns()
            r = await keys.reserve(_link())
            out["idempotency reserve (new key)"].append(time.perf_counter_ns() - t)
            assert r.acquired
            t = time.perf_counter_ns()
            r = await keys.reserve(dup)
            out["idempotency check (reserved key)"].append(time.perf_counter_ns() - t)
            assert not r.acquired
            t = time.perf_counter_ns()
            new = await orders.insert(_order(_link()))
            out["OrderRepository.insert"].append(time.perf_counter_ns() - t)
            t = time.perf_counter_ns()
            got = await orders.get(new.id)
            out["OrderRepository.get"].append(time.perf_counter_ns() - t)
            assert got == new
            t = time.perf_counter_ns()
            row, _ = await orders.transition(row, flip[row.state], "partial_fill")
            out["OrderRepository.transition"].append(time.perf_counter_ns() - t)
        return out

    samples = env.run(measure())
    assert all(len(v) == n for v in samples.values())
    if not disabled:
        for name, v in samples.items():
            RESULTS.percentiles[name] = _pct(v)
