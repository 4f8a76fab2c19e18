"""Reconciliation: the local orders and positions against the venue's, at start-up (before any
new order) and every 10 s.

Rules (``docs/execution.md`` explains each):

* **Local open orders** are looked up on the venue by ``orderLinkId`` (the open-order list first,
  then the realtime/history lookup for orders no longer open). Found: the order's missed
  executions are applied first (``/v5/execution/list``, deduplicated by ``execId``), then its
  record, through the same reducer as the pushes. Not found: an order still in ``PENDING_SUBMIT``
  was lost before submission and is marked ``FAILED``; any other state is reported (the exchange
  forgets cancelled orders after 24 h and clears its closed-order cache on restarts, so absence is
  not proof of anything there).
* **Orders being placed** by this process are left alone, and in periodic runs so is a
  ``PENDING_SUBMIT`` row younger than ``pending_grace`` (its request may still be in flight).
* **Unknown exchange orders** (open on the venue, unknown here, or pushed for an id this database
  does not know) are reported, and adopted when ``adopt_unknown`` is set.
* **Positions**: the local active position per symbol against the venue's size and side. On a
  mismatch the symbol's executions since the position (or the oldest recent order) began are
  applied (missed fills); what still differs is reported. A venue position with no local history
  is reported, and adopted when ``adopt_unknown`` is set.

Every repair goes through the service (so it is persisted with its history and audited); each run
leaves a :class:`ReconciliationReport` (``last_report``, also published and logged).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pysrc.domain.ids import is_valid_order_link_id
from pysrc.domain.orders import Order, OrderState
from pysrc.domain.positions import Position, PositionEvent
from pysrc.domain.values import OrderUpdate, Side, optional_decimal
from pysrc.obs.log import EVENTS, current_trace_id, new_trace_id, trace
from pysrc.store.db import transaction
from pysrc.store.repositories import NewOrder, OrderRow

from .events import ReconciliationCompleted
from .records import K_INITIAL_PRICE, K_INITIAL_QTY

if TYPE_CHECKING:
    from .service import OrderService

ACTOR = "bot:reconciler"


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """Something the local state and the venue disagreed on. ``kind``: ``order_lost_before_submission``,
    ``order_state``, ``order_unknown_to_exchange``, ``unknown_exchange_order``, ``missed_fills``,
    ``position_size``, ``unknown_position``, ``position_missing_on_exchange``."""

    kind: str
    entity: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RepairAction:
    """What was done about it. ``kind``: ``marked_failed``, ``order_synced``, ``fills_applied``,
    ``order_adopted``, ``position_adopted``."""

    kind: str
    entity: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ReconciliationReport:
    trigger: str
    started_at: datetime
    finished_at: datetime | None = None
    orders_checked: int = 0
    positions_checked: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)
    actions: list[RepairAction] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duration_ms: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.discrepancies and not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_ms": round(self.duration_ms, 2),
            "orders_checked": self.orders_checked,
            "positions_checked": self.positions_checked,
            "discrepancies": [{"kind": d.kind, "entity": d.entity, "detail": d.detail} for d in self.discrepancies],
            "actions": [{"kind": a.kind, "entity": a.entity, "detail": a.detail} for a in self.actions],
            "errors": list(self.errors),
        }


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _size(item: Mapping[str, Any]) -> Decimal:
    return optional_decimal(item.get("size")) or Decimal(0)


class Reconciler:
    """Runs the rules above for one :class:`~pysrc.execution.service.OrderService`. One run at a
    time; ``history`` keeps the last reports."""

    def __init__(
        self,
        service: OrderService,
        *,
        adopt_unknown: bool = False,
        lookback: timedelta = timedelta(hours=24),
        execution_margin: timedelta = timedelta(seconds=60),
        history: int = 20,
    ) -> None:
        self.service = service
        self.adopt_unknown = adopt_unknown
        self.lookback = lookback
        self.execution_margin = execution_margin
        self.last_report: ReconciliationReport | None = None
        self.history: deque[ReconciliationReport] = deque(maxlen=history)
        self.runs = 0
        self._lock = asyncio.Lock()

    async def run(self, trigger: str = "manual", *, grace: float | None = None) -> ReconciliationReport:
        """One reconciliation pass. ``grace``: leave ``PENDING_SUBMIT`` rows younger than this
        alone (default: the service's ``pending_grace``; 0 at start-up, when nothing of ours can be
        in flight)."""
        svc = self.service
        async with self._lock:
            t0 = time.perf_counter()
            report = ReconciliationReport(trigger, svc.clock())
            wait = svc.pending_grace if grace is None else grace
            with trace(current_trace_id() or new_trace_id()) as tid:
                try:
                    open_on_venue = await svc.venue.open_orders()
                    await self._orders(report, open_on_venue, wait)
                    await self._unknown_orders(report, open_on_venue)
                    await self._positions(report)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    report.errors.append(f"{type(exc).__name__}: {exc}")
                    svc.log.exception("reconciliation_error", trigger=trigger)
                report.finished_at = svc.clock()
                report.duration_ms = (time.perf_counter() - t0) * 1000
                self.runs += 1
                self.last_report = report
                self.history.append(report)
                await self._publish(report, tid)
            return report

    # ---- orders ---------------------------------------------------------------------------------

    async def _orders(self, report: ReconciliationReport, open_on_venue: list[dict[str, Any]], grace: float) -> None:
        svc = self.service
        by_link = {str(o.get("orderLinkId")): o for o in open_on_venue if o.get("orderLinkId")}
        by_id = {str(o.get("orderId")): o for o in open_on_venue if o.get("orderId")}
        now = svc.clock()
        for row in await svc.store.orders.list_open(mode=svc.mode):
            link = row.order_link_id
            if svc.in_flight(link):
                continue
            if row.state == OrderState.PENDING_SUBMIT.value and grace > 0 \
                    and (now - row.updated_at).total_seconds() < grace:
                continue
            report.orders_checked += 1
            record = by_link.get(link) or (by_id.get(row.exchange_order_id) if row.exchange_order_id else None)
            if record is None:
                record = await svc.venue.find_order(row.symbol, link)
            if record is None:
                await self._absent(report, row)
                continue
            await self._sync_order(report, row, record)

    async def _absent(self, report: ReconciliationReport, row: OrderRow) -> None:
        svc = self.service
        entity = f"order:{row.order_link_id}"
        if row.state == OrderState.PENDING_SUBMIT.value:
            report.discrepancies.append(Discrepancy("order_lost_before_submission", entity, {"symbol": row.symbol}))
            reason = "lost before submission: not on the exchange (reconciliation)"
            view = await svc.fail_order(row.order_link_id, reason, actor=ACTOR, action="reconcile.mark_failed")
            await svc.settle_idempotency(row.order_link_id)
            report.actions.append(RepairAction("marked_failed", entity, {"state": view.state}))
        else:
            report.discrepancies.append(
                Discrepancy("order_unknown_to_exchange", entity, {"state": row.state, "symbol": row.symbol})
            )

    async def _sync_order(self, report: ReconciliationReport, row: OrderRow, record: Mapping[str, Any]) -> None:
        svc = self.service
        entity = f"order:{row.order_link_id}"
        cum = optional_decimal(record.get("cumExecQty")) or Decimal(0)
        applied = 0
        if cum > row.filled_qty or record.get("orderStatus") in ("Filled", "Cancelled", "PartiallyFilled"):
            applied = await self._order_executions(row, record)
        await svc.apply_order_record(record, source="reconcile")
        after = await svc.store.orders.get(row.id)
        assert after is not None
        if applied:
            report.actions.append(RepairAction("fills_applied", entity, {"executions": applied}))
        if after.state != row.state or after.filled_qty != row.filled_qty:
            report.discrepancies.append(Discrepancy(
                "order_state", entity,
                {"local": row.state, "exchange": str(record.get("orderStatus")), "filled_before": str(row.filled_qty),
                 "filled_after": str(after.filled_qty)},
            ))
            report.actions.append(RepairAction("order_synced", entity, {"from": row.state, "to": after.state}))
            await svc.store.audit.record(
                ACTOR, "reconcile.order_synced", "local order behind the exchange",
                {"order_link_id": row.order_link_id, "exchange_status": record.get("orderStatus"),
                 "executions_applied": applied},
                row, after, True, None, current_trace_id(), {}, entity=entity,
            )
        if row.state == OrderState.PENDING_SUBMIT.value and after.state != row.state:
            await svc.settle_idempotency(row.order_link_id)

    async def _order_executions(self, row: OrderRow, record: Mapping[str, Any]) -> int:
        """Apply the order's executions the venue has and we may have missed; returns how many
        were new."""
        svc = self.service
        since = _ms(row.created_at - self.execution_margin)
        oid = str(record.get("orderId") or row.exchange_order_id or "")
        items = [
            x for x in await svc.venue.executions(row.symbol, start_time=since)
            if (oid and x.get("orderId") == oid) or x.get("orderLinkId") == row.order_link_id
        ]
        return await self._apply_executions(items)

    async def _apply_executions(self, items: Sequence[Mapping[str, Any]]) -> int:
        new = 0
        for item in sorted(items, key=lambda x: (int(x.get("execTime") or 0), str(x.get("execId")))):
            if await self.service.apply_execution(item, source="reconcile"):
                new += 1
        return new

    # ---- unknown exchange orders ------------------------------------------------------------------

    async def _unknown_orders(self, report: ReconciliationReport, open_on_venue: list[dict[str, Any]]) -> None:
        svc = self.service
        seen: dict[str, Mapping[str, Any]] = {}
        for listed in open_on_venue:
            seen[str(listed.get("orderId"))] = listed
        for pushed_id, pushed in list(svc.unknown_orders.items()):
            seen.setdefault(pushed_id, pushed)
        svc.unknown_orders.clear()
        for oid, rec in seen.items():
            link = str(rec.get("orderLinkId") or "")
            known = (link and await svc.store.orders.get_by_link_id(link)) or \
                (oid and await svc.store.orders.get_by_exchange_id(svc.mode, oid))
            if known:
                continue
            if svc.in_flight(link):
                continue
            entity = f"exchange_order:{oid}"
            status = str(rec.get("orderStatus"))
            report.discrepancies.append(Discrepancy(
                "unknown_exchange_order", entity,
                {"order_link_id": link, "symbol": rec.get("symbol"), "status": status, "side": rec.get("side"),
                 "qty": rec.get("qty"), "price": rec.get("price")},
            ))
            if self.adopt_unknown and status in ("New", "PartiallyFilled", "Untriggered"):
                adopted = await self.adopt_order(rec)
                report.actions.append(RepairAction("order_adopted", entity, {"order_link_id": adopted}))

    async def adopt_order(self, record: Mapping[str, Any]) -> str:
        """Take an exchange order we did not place under management: a row written as if it had
        been submitted here (``submit``, metadata ``adopted``), then the exchange's record applied.
        Returns the local ``order_link_id`` (the exchange's, or ``adopt-<orderId>`` when it has
        none usable)."""
        svc = self.service
        oid = str(record.get("orderId") or "")
        link = str(record.get("orderLinkId") or "")
        if not link or not is_valid_order_link_id(link):
            link = ("adopt-" + oid.replace("-", ""))[:36]
        u = OrderUpdate.from_bybit(record)
        order_type = str(record.get("orderType") or "Limit")
        price = u.price if order_type == "Limit" else None
        qty = u.qty or Decimal(0)
        order = Order(
            order_link_id=link, symbol=u.symbol, side=Side(str(record.get("side"))), order_type=order_type,  # type: ignore[arg-type]
            qty=qty, price=price, time_in_force=str(record.get("timeInForce") or "GTC"),  # type: ignore[arg-type]
            reduce_only=bool(record.get("reduceOnly", False)), strategy="adopted", created_at=svc.clock(),
        )
        t0 = order.submit(svc.clock(), **{K_INITIAL_QTY: str(qty), K_INITIAL_PRICE: "" if price is None else str(price),
                                          "adopted": "true", "exchange_order_id": oid, "source": "reconcile"})
        async with transaction(svc.store.pool) as conn:
            row = await svc.store.orders.insert(
                NewOrder(
                    order_link_id=link, mode=svc.mode, symbol=u.symbol, side=order.side.value, order_type=order_type,
                    qty=qty, price=price, reduce_only=order.reduce_only, time_in_force=order.time_in_force.value,
                    state=OrderState.PENDING_SUBMIT.value, category=svc.category, strategy="adopted",
                    signal={"reason": "adopted", "signal_type": None, "signal": None, "strategy": "adopted",
                            "actor": ACTOR},
                ),
                event=t0.event.value, metadata=t0.metadata.as_dict(), conn=conn,
            )
            await svc.store.audit.record(
                ACTOR, "reconcile.adopt_order", "unknown exchange order adopted", dict(record), None, row, True, None,
                current_trace_id(), {}, entity=f"order:{link}", conn=conn,
            )
        await svc.apply_order_record(record, source="adopt")
        return link

    # ---- positions ------------------------------------------------------------------------------

    async def _positions(self, report: ReconciliationReport) -> None:
        svc = self.service
        venue_rows = await svc.venue.positions()
        for p in venue_rows:
            svc._note_exchange_position(p)
        venue_by_symbol = {str(p.get("symbol")): p for p in venue_rows if _size(p) > 0}
        local = {r.symbol: r for r in await svc.store.positions.list_open(mode=svc.mode)}
        for symbol in sorted(set(venue_by_symbol) | set(local)):
            report.positions_checked += 1
            ex = venue_by_symbol.get(symbol)
            row = local.get(symbol)
            if _matches(row, ex):
                continue
            # Missed fills? Apply the symbol's executions since its local history began.
            since = await self._history_start(symbol, row)
            if since is not None:
                items = await svc.venue.executions(symbol, start_time=_ms(since - self.execution_margin))
                applied = await self._apply_executions(items)
                if applied:
                    report.discrepancies.append(Discrepancy("missed_fills", f"position:{symbol}", {"executions": applied}))
                    report.actions.append(RepairAction("fills_applied", f"position:{symbol}", {"executions": applied}))
                row = await svc.store.positions.get_active(svc.mode, symbol)
                if _matches(row, ex):
                    continue
            detail = {
                "local_side": row.side if row else None, "local_size": str(row.size) if row else "0",
                "exchange_side": ex.get("side") if ex else None, "exchange_size": str(_size(ex)) if ex else "0",
            }
            if row is None and ex is not None and since is None:
                report.discrepancies.append(Discrepancy("unknown_position", f"position:{symbol}", detail))
                if self.adopt_unknown:
                    pid = await self.adopt_position(ex)
                    report.actions.append(RepairAction("position_adopted", f"position:{symbol}", {"position_id": pid}))
            elif ex is None:
                report.discrepancies.append(Discrepancy("position_missing_on_exchange", f"position:{symbol}", detail))
            else:
                report.discrepancies.append(Discrepancy("position_size", f"position:{symbol}", detail))

    async def _history_start(self, symbol: str, row: Any) -> datetime | None:
        """When the symbol's local history that could explain its position began: the active
        position's opening, else the oldest order on the symbol within ``lookback``."""
        svc = self.service
        if row is not None:
            return row.opened_at  # type: ignore[no-any-return]
        horizon = svc.clock() - self.lookback
        recent = [r for r in await svc.store.orders.list_recent(symbol=symbol, limit=200)
                  if r.mode == svc.mode and r.created_at >= horizon]
        if not recent:
            return None
        return min(r.created_at for r in recent)

    async def adopt_position(self, ex: Mapping[str, Any]) -> int:
        """Record a venue position we have no history for, opened at the venue's average price
        (a synthetic ``open`` with exec id ``adopt-...``; no execution row is written)."""
        svc = self.service
        symbol = str(ex["symbol"])
        side = Side(str(ex["side"]))
        price = optional_decimal(ex.get("avgPrice") or ex.get("entryPrice"))
        if price is None or price <= 0:
            raise ValueError(f"cannot adopt {symbol}: no entry price")
        pos = Position(position_id="adopt", symbol=symbol, side=side, strategy="adopted", created_at=svc.clock())
        t = pos.apply(PositionEvent.OPEN, svc.clock(), {
            "exec_id": f"adopt-{symbol}-{_ms(svc.clock())}", "side": side.value, "qty": str(_size(ex)),
            "price": str(price), "fee": "0", "exec_type": "Adopt", "source": "reconcile",
        })
        async with svc._lock(symbol):
            async with transaction(svc.store.pool) as conn:
                row = await svc._insert_position(pos, [t], {"reason": "adopted"}, conn)
                await svc.store.audit.record(
                    ACTOR, "reconcile.adopt_position", "unknown exchange position adopted", dict(ex), None, row,
                    True, None, current_trace_id(), {}, entity=f"position:{row.id}", conn=conn,
                )
            svc._positions.pop(symbol, None)
        return row.id

    # ---- report ---------------------------------------------------------------------------------

    async def _publish(self, report: ReconciliationReport, trace_id: str) -> None:
        svc = self.service
        for d in report.discrepancies:
            svc.log.warning(EVENTS.RECONCILIATION_DISCREPANCY, kind=d.kind, entity=d.entity, detail=d.detail)
        svc.log.info(EVENTS.RECONCILIATION_DONE, trigger=report.trigger, orders=report.orders_checked,
                     positions=report.positions_checked, discrepancies=len(report.discrepancies),
                     actions=len(report.actions), errors=len(report.errors), ms=round(report.duration_ms, 1))
        if report.trigger == "startup" or report.discrepancies or report.actions or report.errors:
            try:
                await svc.store.audit.record(
                    ACTOR, "reconcile.run", report.trigger,
                    {"discrepancies": len(report.discrepancies), "actions": len(report.actions)},
                    None, report.to_dict(), not report.errors, "; ".join(report.errors) or None, trace_id, {},
                    entity="reconciliation",
                )
            except Exception:
                svc.log.exception("reconciliation_audit_failed")
        await svc.events.publish(ReconciliationCompleted(
            occurred_at=report.finished_at or svc.clock(), trigger=report.trigger,
            discrepancies=len(report.discrepancies), actions=len(report.actions), errors=len(report.errors),
            report=report.to_dict(),
        ))


def _matches(row: Any, ex: Mapping[str, Any] | None) -> bool:
    ex_size = _size(ex) if ex is not None else Decimal(0)
    local_size = row.size if row is not None else Decimal(0)
    if ex_size == 0 and local_size == 0:
        return True
    return ex is not None and row is not None and ex_size == local_size and str(ex.get("side")) == row.side


__all__ = ["Discrepancy", "Reconciler", "ReconciliationReport", "RepairAction"]
