"""Cost of idempotent, persisted, audited placement against the bare venue call, in one run.

Run with ``pytest bench/test_execution_bench.py`` (opt-in, like every benchmark; embedded
PostgreSQL and Redis under a temporary directory, or ``DATABASE_URL`` / ``REDIS_URL``). Two local
exchanges run in this process, one per side, so neither side's pushes land on the other's event
loop:

* **place**: ``OrderService.place`` (Redis ``SET NX``; one PostgreSQL transaction with the
  idempotency record, the PENDING_SUBMIT row, its transition and the audit entry; the create; one
  transaction with the outcome's transition and audit entry; the keys completed; meanwhile the
  order's pushes go through the reducer and are stored) against a bare ``BybitVenue.place`` of the
  same order (signed REST create, nothing recorded). The order is an IOC limit far from the market,
  which the exchange accepts and cancels at once, so the book and the account do not drift.
* **retry of a placed order** (same client id): ``OrderService.place`` answering from the recorded
  result (Redis finds the key done; the row and the request hash are checked) against a bare
  ``BybitVenue.find_order`` (asking the exchange, what a client without local state must do).

Each round awaits ``BATCH`` calls; times are per call. Answers are checked (states, duplicates,
one order per client id on the exchange), so ``pytest bench --benchmark-disable`` is a quick
correctness run. The summary is printed and written to ``bench/.data/execution-summary.json``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import itertools
import os
import platform
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from pysrc.exchange.bybit.orders import CreateStatus
from pysrc.exchange.bybit.ratelimit import RestRateLimiter
from pysrc.exchange.bybit.rest import BybitRest
from pysrc.execution import BybitVenue, OrderIntent, OrderRequest, OrderService
from pysrc.sim import SimExchange
from pysrc.store import PoolConfig, db, open_store
from pysrc.store.migrate import migrate
from pysrc.store.servers import start_servers

BATCH = 20
ROUNDS = 6
SYMBOL = "BTCUSDT"
KEY, SECRET = "sim-key", "sim-secret"
SUMMARY_JSON = Path(__file__).resolve().parent / ".data" / "execution-summary.json"
HIGH = {p: 100_000 for p in ("/v5/order/create", "/v5/order/cancel", "/v5/order/amend", "/v5/order/cancel-all",
                             "/v5/order/realtime", "/v5/order/history", "/v5/execution/list",
                             "/v5/position/list", "/v5/account/wallet-balance")}
_ids = itertools.count(1)


def _link(tag: str) -> str:
    return f"bx{os.getpid()}{tag}{next(_ids)}"


async def _noop(topic: str, item: Any) -> None:
    return None


class Env:
    """One event loop; the store on a schema of its own; two local exchanges (service, bare)."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.schema = f"xbench_{os.getpid()}"
        self.prefix = f"xbench:{os.getpid()}:"
        self.servers = self.run(start_servers(tmp))
        self.run(migrate(self.servers.database_url, schema=self.schema))
        self.store = self.run(open_store(database_url=self.servers.database_url, redis_url=self.servers.redis_url,
                                         pool=PoolConfig(schema=self.schema, min_size=2, max_size=4),
                                         redis_prefix=self.prefix))
        self.sims = [SimExchange(symbols=3, seed=3, api_key=KEY, api_secret=SECRET, market_running=False,
                                 uid_limits=HIGH, ip_limit=1_000_000) for _ in range(2)]
        for sim in self.sims:
            self.run(sim.start("127.0.0.1", 0))
        self.service = OrderService(self.store, self._venue(self.sims[0]), mode="demo", reconcile_interval=None)
        self.run(self.service.start())
        self.bare = self._venue(self.sims[1])
        self.run(self.bare.start(_noop))
        bids, _ = self.sims[0].book(SYMBOL, 1)
        self.far_price = (Decimal(bids[0][0]) - Decimal(500)).quantize(Decimal("0.1"))

    @staticmethod
    def _venue(sim: SimExchange) -> BybitVenue:
        rest = BybitRest(sim.rest_url, KEY, SECRET, limiter=RestRateLimiter(ip_limit=1_000_000))
        return BybitVenue(rest, sim.ws_private_url, KEY, SECRET)

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def intent(self, link: str) -> OrderIntent:
        return OrderIntent(symbol=SYMBOL, side="Buy", order_type="Limit", qty=Decimal("0.001"), price=self.far_price,
                           time_in_force="IOC", client_order_id=link, strategy="bench", reason="bench")

    def request(self, link: str) -> OrderRequest:
        return OrderRequest(symbol=SYMBOL, side="Buy", order_type="Limit", qty=Decimal("0.001"), order_link_id=link,
                            price=self.far_price, time_in_force="IOC")

    def close(self) -> None:
        async def cleanup() -> None:
            await self.service.close()
            await self.bare.close()
            for sim in self.sims:
                await sim.stop()
            redis = self.store.redis
            keys = [k async for k in redis.scan_iter(match=self.prefix + "*", count=1000)]
            for i in range(0, len(keys), 1000):
                await redis.delete(*keys[i:i + 1000])
            await self.store.aclose()
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
    e = Env(tmp_path_factory.mktemp("execution-bench"))
    yield e
    e.close()


# ---- results ----------------------------------------------------------------------------------

LABELS = {"baseline": "bare venue call (baseline)", "service": "OrderService"}
G_PLACE = "place one order (recorded, audited, idempotent) vs bare venue.place"
G_RETRY = "retry of a placed order (same client id) vs asking the exchange (find_order)"
GROUPS: dict[str, dict[str, dict[str, float]]] = {}


def _record(group: str, impl: str, benchmark: Any) -> None:
    meta = getattr(benchmark, "stats", None)
    if meta is None:  # --benchmark-disable
        return
    st = meta.stats
    row = {"median_us": st.median / BATCH * 1e6, "min_us": st.min / BATCH * 1e6}
    GROUPS.setdefault(group, {})[impl] = row
    benchmark.extra_info["per_call_median_us"] = round(row["median_us"], 1)
    base = GROUPS[group].get("baseline")
    if impl != "baseline" and base:
        benchmark.extra_info["vs_baseline"] = round(row["median_us"] / base["median_us"], 2)


class _SummaryPlugin:
    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not GROUPS:
            return
        tr = terminalreporter
        tr.write_sep("=", "execution benchmarks: ratios measured in this run")
        for group, rows in GROUPS.items():
            tr.write_line("")
            tr.write_line(group)
            base = rows.get("baseline")
            for impl, row in rows.items():
                ratio = f"{row['median_us'] / base['median_us']:.2f}x" if base else "-"
                tr.write_line(f"  {LABELS[impl]:<34} {row['median_us']:>9.1f} µs/call  "
                              f"(min {row['min_us']:.1f} µs)  {ratio:>7}")
        SUMMARY_JSON.parent.mkdir(parents=True, exist_ok=True)
        SUMMARY_JSON.write_bytes(orjson.dumps({
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "python": sys.version.split()[0],
            "machine": platform.machine(), "cpus": os.cpu_count(), "load": list(os.getloadavg()), "groups": GROUPS,
        }, option=orjson.OPT_INDENT_2))
        tr.write_line(f"summary written to {SUMMARY_JSON}")


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> None:
    pm = request.config.pluginmanager
    if not pm.has_plugin("execution-bench-summary"):
        pm.register(_SummaryPlugin(), "execution-bench-summary")


def _bench(benchmark: Any, env: Env, make_batch: Callable[[], Awaitable[Any]]) -> list[Any]:
    out: list[Any] = []

    def round_() -> None:
        out.append(env.run(make_batch()))

    benchmark.pedantic(round_, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    return out


async def _all_cancelled(env: Env, links: list[str]) -> bool:
    rows = await env.store.pool.fetch("SELECT state FROM orders WHERE order_link_id = ANY($1)", links)
    return len(rows) == len(links) and all(r["state"] == "CANCELLED" for r in rows)


# ---- placement --------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["baseline", "service"])
def test_place(benchmark: Any, env: Env, impl: str) -> None:
    links: list[str] = []

    async def batch() -> list[Any]:
        out = []
        for _ in range(BATCH):
            link = _link("p")
            links.append(link)
            if impl == "baseline":
                out.append((await env.bare.place(env.request(link))).status)
            else:
                out.append(await env.service.place(env.intent(link)))
        return out

    rounds = _bench(benchmark, env, batch)
    got = [x for r in rounds for x in r]
    if impl == "baseline":
        assert got and all(s is CreateStatus.ACCEPTED for s in got)
        assert all(len([o for o in env.sims[1].account.orders.values() if o.link_id == x]) == 1 for x in links)
    else:
        assert got and all(not v.duplicate and v.state in ("SUBMITTED", "ACKNOWLEDGED", "CANCELLED") for v in got)

        async def settled() -> None:
            for _ in range(500):  # bounded: the IOC cancels arrive as pushes
                if await _all_cancelled(env, links):
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("service orders did not all reach CANCELLED")

        env.run(settled())
        by_link: dict[str, int] = {}
        for o in env.sims[0].account.orders.values():
            by_link[o.link_id] = by_link.get(o.link_id, 0) + 1
        assert all(by_link.get(x) == 1 for x in links)
        audits = env.run(env.store.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'order.place' AND entity = ANY($1)",
            [f"order:{x}" for x in links]))
        assert audits == len(links)
    _record(G_PLACE, impl, benchmark)


@pytest.mark.parametrize("impl", ["baseline", "service"])
def test_retry_of_a_placed_order(benchmark: Any, env: Env, impl: str) -> None:
    link = _link("r")
    if impl == "baseline":
        res = env.run(env.bare.place(env.request(link)))
        oid = res.order_id
    else:
        oid = env.run(env.service.place(env.intent(link))).exchange_order_id

    async def batch() -> list[Any]:
        if impl == "baseline":
            return [await env.bare.find_order(SYMBOL, link) for _ in range(BATCH)]
        return [await env.service.place(env.intent(link)) for _ in range(BATCH)]

    rounds = _bench(benchmark, env, batch)
    got = [x for r in rounds for x in r]
    if impl == "baseline":
        assert all(r is not None and r["orderId"] == oid for r in got)
    else:
        assert all(v.duplicate and v.exchange_order_id == oid for v in got)
        assert len([o for o in env.sims[0].account.orders.values() if o.link_id == link]) == 1
    _record(G_RETRY, impl, benchmark)
