"""Real components for the execution tests: the store tests' embedded PostgreSQL and Redis (one
schema and one key prefix per test), the local Bybit exchange on loopback, and the Bybit venue
between them. Nothing here replaces the thing under test.

The store fixtures are the ones of ``tests/store/conftest.py``, loaded from that file (so both
directories share one way of starting servers; with ``DATABASE_URL`` / ``REDIS_URL`` set, external
servers are used the same way). A test body is an ``async def`` run by :func:`run_world` on its
own event loop (pytest-asyncio is not used).
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pysrc.exchange.bybit.ratelimit import RestRateLimiter
from pysrc.exchange.bybit.rest import BybitRest
from pysrc.exchange.retry import RetryPolicy
from pysrc.execution.service import OrderService
from pysrc.execution.venue import BybitVenue
from pysrc.store import PoolConfig, open_store
from pysrc.store.bundle import Store

_STORE_CONFTEST = Path(__file__).resolve().parents[1] / "store" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_execution_shared_store_fixtures", _STORE_CONFTEST)
assert _spec is not None and _spec.loader is not None
_store_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _store_fixtures  # dataclasses look their module up there
_spec.loader.exec_module(_store_fixtures)

store_servers = _store_fixtures.store_servers  # session: embedded (or external) servers
store = _store_fixtures.store  # per test: a migrated schema and a Redis key prefix
StoreFixture = _store_fixtures.Store

SIM_KEY = "sim-key"
SIM_SECRET = "sim-secret"
SYMBOL = "BTCUSDT"
MODE = "demo"
FAST_LIMITS = {"/v5/order/create": 200, "/v5/order/cancel": 200, "/v5/order/amend": 200,
               "/v5/order/cancel-all": 200, "/v5/order/realtime": 500, "/v5/order/history": 500,
               "/v5/execution/list": 500, "/v5/position/list": 500, "/v5/account/wallet-balance": 500}


def fast_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.1, rng=random.Random(7))


async def wait_until(cond: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll an async condition; generous bound, never a timing assertion."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await cond():
        if loop.time() > end:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.01)


@dataclass
class World:
    """One test's exchange, store and services (closed at the end)."""

    sim: Any
    store: Store
    db: Any
    services: list[OrderService] = field(default_factory=list)
    rests: list[BybitRest] = field(default_factory=list)

    def venue(self, *, rest_timeout: float = 10.0) -> BybitVenue:
        rest = BybitRest(self.sim.rest_url, SIM_KEY, SIM_SECRET, retry=fast_retry(),
                         limiter=RestRateLimiter(ban_seconds=0.5), timeout=rest_timeout)
        return BybitVenue(rest, self.sim.ws_private_url, SIM_KEY, SIM_SECRET)

    async def service(self, *, start: bool = True, rest_timeout: float = 10.0, **kwargs: Any) -> OrderService:
        kwargs.setdefault("reconcile_interval", None)  # tests run reconciliation explicitly
        kwargs.setdefault("mode", MODE)
        svc = OrderService(self.store, self.venue(rest_timeout=rest_timeout), **kwargs)
        self.services.append(svc)
        if start:
            await svc.start()
        return svc

    async def rest(self) -> BybitRest:
        rest = BybitRest(self.sim.rest_url, SIM_KEY, SIM_SECRET, retry=fast_retry(),
                         limiter=RestRateLimiter(ban_seconds=0.5))
        await rest.start()
        self.rests.append(rest)
        return rest

    def exchange_orders(self, link_id: str) -> list[Any]:
        """Every order the exchange holds under this orderLinkId (the duplicate check)."""
        return [o for o in self.sim.account.orders.values() if o.link_id == link_id]

    def exchange_position(self, symbol: str = SYMBOL) -> tuple[str, Decimal]:
        """(side, size) the exchange reports for the symbol ('' and 0 when flat)."""
        p = self.sim.account.positions.get(symbol)
        if p is None or not p.size:
            return "", Decimal(0)
        d = p.to_dict()
        return str(d["side"]), Decimal(str(d["size"]))

    def book(self, symbol: str = SYMBOL, depth: int = 5) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        bids, asks = self.sim.book(symbol, depth)
        return ([(Decimal(p), Decimal(s)) for p, s in bids], [(Decimal(p), Decimal(s)) for p, s in asks])

    async def close_services(self) -> None:
        for svc in self.services:
            await svc.close()
        self.services.clear()

    async def aclose(self) -> None:
        try:
            await self.close_services()
        finally:
            for rest in self.rests:
                await rest.close()


def _dump_tasks_later() -> asyncio.Task[None] | None:
    """Debug aid: with EXEC_TEST_DUMP=<seconds>, print every task's stack after that long."""
    import os

    after = os.environ.get("EXEC_TEST_DUMP")
    if not after:
        return None

    async def dump() -> None:
        await asyncio.sleep(float(after))
        for t in asyncio.all_tasks():
            t.print_stack(file=sys.stderr)

    return asyncio.ensure_future(dump())


def run_world(db: Any, body: Callable[[World], Awaitable[None]], *, sim_kwargs: dict[str, Any] | None = None) -> None:
    """Run ``body`` with a fresh local exchange (market paused: the book moves only when a test
    trades) and the test's store."""
    from pysrc.sim import SimExchange

    async def main() -> None:
        kw = {"symbols": 5, "seed": 1, "market_running": False, "uid_limits": FAST_LIMITS, **(sim_kwargs or {})}
        sim = SimExchange(api_key=SIM_KEY, api_secret=SIM_SECRET, **kw)
        await sim.start(host="127.0.0.1", port=0)
        try:
            st = await open_store(database_url=db.dsn, redis_url=db.redis_url,
                                  pool=PoolConfig(schema=db.schema, min_size=1, max_size=8), redis_prefix=db.prefix)
            world = World(sim, st, db)
            dump = _dump_tasks_later()
            try:
                await body(world)
            finally:
                if dump is not None:
                    dump.cancel()
                try:
                    await world.aclose()
                finally:
                    await st.aclose()
        finally:
            await sim.stop()

    asyncio.run(main())


async def audit_actions(st: Store, entity: str | None = None) -> list[Any]:
    """Audit entries (oldest first), optionally of one entity."""
    rows = await st.audit.recent(entity=entity, limit=1000)
    return list(reversed(rows))
