"""The order-placing process of ``test_crash_recovery.py``: a real ``OrderService`` on the test's
PostgreSQL schema and Redis prefix, against the local exchange running in another process.

``argv[1]`` is a JSON job: the URLs, the intents to place in order, and optionally ``crash_at``
(a step of :data:`pysrc.execution.service.STEPS`) and ``crash_link``: the service's step hook then
sends this process ``SIGKILL`` when that order reaches that step, so nothing runs after it (no
``finally``, no flush, no goodbye to the servers), exactly as a crash would.

Without ``crash_at`` it places every intent (a restarted bot retrying what it was doing, with the
same client order ids), waits until no order is unresolved, and prints a summary line prefixed
with ``CRASH-CHILD``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from decimal import Decimal
from typing import Any

import orjson

from pysrc.exchange.bybit.rest import BybitRest
from pysrc.execution import BybitVenue, OrderIntent, OrderService
from pysrc.store import PoolConfig, open_store

MARK = "CRASH-CHILD "


def emit(kind: str, **data: Any) -> None:
    print(MARK + orjson.dumps({"event": kind, **data}, default=str).decode(), flush=True)


async def main(job: dict[str, Any]) -> int:
    crash_at = job.get("crash_at")
    crash_link = job.get("crash_link")

    def hook(step: str, link: str) -> None:
        if step == crash_at and (crash_link is None or link == crash_link):
            emit("crashing", step=step, order_link_id=link)
            os.kill(os.getpid(), signal.SIGKILL)

    store = await open_store(database_url=job["database_url"], redis_url=job["redis_url"],
                             pool=PoolConfig(schema=job["schema"], min_size=1, max_size=4),
                             redis_prefix=job["prefix"])
    rest = BybitRest(job["rest_url"], job["api_key"], job["api_secret"])
    venue = BybitVenue(rest, job["ws_private_url"], job["api_key"], job["api_secret"])
    svc = OrderService(store, venue, mode=job["mode"], crash_hook=hook, reconcile_interval=None)
    await svc.start()
    report = svc.last_reconciliation
    emit("started", report=report.to_dict() if report is not None else None)
    views = []
    for spec in job["intents"]:
        intent = OrderIntent(**{k: (Decimal(v) if k in ("qty", "price") and v is not None else v)
                                for k, v in spec.items()})
        view = await svc.place(intent)
        views.append(view.to_dict())
        emit("placed", view=view.to_dict())
    # settle: every order resolved and the position the exchange reports
    loop = asyncio.get_running_loop()
    end = loop.time() + 30
    while True:
        rows = [await svc.get(s["client_order_id"]) for s in job["intents"]]
        if all(r is not None and r.state not in ("PENDING_SUBMIT", "SUBMITTED") for r in rows):
            break
        if loop.time() > end:
            emit("unsettled", orders=[r.to_dict() if r else None for r in rows])
            return 3
        await asyncio.sleep(0.05)
    emit("done", orders=[r.to_dict() for r in rows if r is not None],
         positions=[{"symbol": p.symbol, "side": p.side, "size": str(p.size)} for p in await svc.positions()])
    await svc.close()
    await store.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(orjson.loads(sys.argv[1]))))
