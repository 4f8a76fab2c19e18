"""The kill switch, acted on: halt (persisted), cancel every active order, close every position
with reduce-only market orders, raise a critical alert; every step audited. The decision itself
(daily loss over ``max_daily_loss``) is the risk layer's (:mod:`pysrc.risk.killswitch`); this module
executes it, and :class:`DailyLossMonitor` feeds the decision from the account's equity.

The halt lives in ``bot_state`` (PostgreSQL), so a restarted bot comes back halted and
``OrderService.place`` keeps refusing new non-reduce-only orders until a person calls
:meth:`KillSwitchExecutor.release` (the repository refuses the actor ``bot``, and audits the
refusal). Engaging is idempotent: engaging a halted bot keeps the first halt's who/why/when and
runs the cancel/close sweep again (which is how a failed close is retried).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pysrc.domain.values import Side, optional_decimal
from pysrc.obs.log import EVENTS, current_trace_id, new_trace_id, trace
from pysrc.risk.killswitch import KillSwitch, KillSwitchDecision
from pysrc.risk.portfolio import PortfolioState
from pysrc.store.repositories import BotState

from .events import KillSwitchAlert

if TYPE_CHECKING:
    from .service import OrderService

ACTOR_RISK = "bot:risk"
KILL_SWITCH_STRATEGY = "kill-switch"


@dataclass(slots=True)
class KillSwitchReport:
    actor: str
    reason: str
    engaged_at: datetime
    already_halted: bool = False
    cancelled: list[str] = field(default_factory=list)
    """``order_link_id`` of every local open order a cancel was sent for."""
    swept: list[dict[str, Any]] = field(default_factory=list)
    """What the venue's cancel-all sweep cancelled (orders unknown locally included)."""
    closed: dict[str, str] = field(default_factory=dict)
    """symbol -> state of the reduce-only market order that closes it."""
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every order cancelled and every close order sent without error."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor, "reason": self.reason, "engaged_at": self.engaged_at.isoformat(),
            "already_halted": self.already_halted, "cancelled": list(self.cancelled), "swept": list(self.swept),
            "closed": dict(self.closed), "errors": list(self.errors),
        }


class KillSwitchExecutor:
    """Acts on the kill switch for one :class:`~pysrc.execution.service.OrderService`.

    ``alert`` (optional) receives the critical :class:`KillSwitchAlert` directly (an e-mail or
    chat sender); the alert is also logged at CRITICAL and published to the service's subscribers.
    """

    def __init__(
        self,
        service: OrderService,
        *,
        alert: Callable[[KillSwitchAlert], Awaitable[None]] | None = None,
    ) -> None:
        self.service = service
        self.alert = alert
        self.last_report: KillSwitchReport | None = None
        self._lock = asyncio.Lock()

    async def is_halted(self) -> bool:
        svc = self.service
        svc.halted = await svc.store.bot_state.is_halted(svc.bot_state_name)
        return svc.halted

    async def state(self) -> BotState:
        return await self.service.store.bot_state.get(self.service.bot_state_name)

    async def engage(
        self,
        actor: str,
        reason: str,
        *,
        trace_id: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> KillSwitchReport:
        """Halt trading (persisted), alert, cancel every active order, close every position.
        Failures of single steps are collected in the report (and audited); the halt itself
        never depends on them."""
        svc = self.service
        async with self._lock:
            tid = trace_id or current_trace_id() or new_trace_id()
            with trace(tid):
                before = await svc.store.bot_state.get(svc.bot_state_name)
                state = await svc.store.bot_state.halt(actor, reason, name=svc.bot_state_name, trace_id=tid,
                                                      context=dict(context or {}))
                svc.halted = True
                report = KillSwitchReport(actor, reason, state.halted_at or datetime.now(UTC),
                                          already_halted=before.halted)
                await self._alert("engaged", actor, reason, {"already_halted": before.halted, **dict(context or {})})
                await self._cancel_orders(report, tid)
                await self._close_positions(report, tid)
                await svc.store.audit.record(
                    actor, "kill_switch.engage", reason, dict(context or {}), None, report.to_dict(),
                    report.complete, "; ".join(report.errors) or None, tid, dict(context or {}),
                    entity=f"bot_state:{svc.bot_state_name}",
                )
                self.last_report = report
                return report

    async def _cancel_orders(self, report: KillSwitchReport, tid: str) -> None:
        svc = self.service
        why = f"kill switch: {report.reason}"
        for row in await svc.store.orders.list_open(mode=svc.mode):
            if row.reduce_only and row.strategy == KILL_SWITCH_STRATEGY:
                continue  # our own closing orders from an earlier sweep
            try:
                await svc.cancel(row.order_link_id, actor=report.actor, reason=why, trace_id=tid)
                report.cancelled.append(row.order_link_id)
            except Exception as exc:  # noqa: BLE001 - collected, audited, retried by the next engage
                report.errors.append(f"cancel {row.order_link_id}: {type(exc).__name__}: {exc}")
        try:
            swept = await svc.venue.cancel_all(None)
            report.swept = [dict(x) for x in swept]
            await svc.store.audit.record(report.actor, "kill_switch.cancel_all", why, {"symbol": None},
                                         None, {"cancelled": report.swept}, True, None, tid, {},
                                         entity=f"bot_state:{svc.bot_state_name}")
        except Exception as exc:  # noqa: BLE001
            report.errors.append(f"cancel_all: {type(exc).__name__}: {exc}")
            await svc.store.audit.record(report.actor, "kill_switch.cancel_all", why, {"symbol": None},
                                         None, None, False, f"{type(exc).__name__}: {exc}", tid, {},
                                         entity=f"bot_state:{svc.bot_state_name}")

    async def _close_positions(self, report: KillSwitchReport, tid: str) -> None:
        svc = self.service
        try:
            rows = await svc.venue.positions()
        except Exception as exc:  # noqa: BLE001
            report.errors.append(f"positions: {type(exc).__name__}: {exc}")
            return
        for p in rows:
            size = optional_decimal(p.get("size")) or Decimal(0)
            if size <= 0:
                continue
            symbol = str(p.get("symbol"))
            try:
                view = await svc.close_position(symbol, reason="kill_switch", actor=report.actor,
                                                strategy=KILL_SWITCH_STRATEGY, trace_id=tid)
                state = view.state if view is not None else "flat"
                report.closed[symbol] = state
                ok = view is None or view.state not in ("REJECTED", "FAILED")
                if view is not None and not ok:
                    report.errors.append(f"close {symbol}: order {view.order_link_id} {view.state}: {view.error}")
                await svc.store.audit.record(
                    report.actor, "kill_switch.close_position", "kill_switch",
                    {"symbol": symbol, "side": p.get("side"), "size": str(size),
                     "close_side": Side(str(p.get("side"))).opposite.value},
                    dict(p), None if view is None else view.to_dict(), ok,
                    None if ok else f"close order {state}", tid, {}, entity=f"position:{symbol}",
                )
            except Exception as exc:  # noqa: BLE001
                report.errors.append(f"close {symbol}: {type(exc).__name__}: {exc}")
                await svc.store.audit.record(
                    report.actor, "kill_switch.close_position", "kill_switch", {"symbol": symbol, "size": str(size)},
                    dict(p), None, False, f"{type(exc).__name__}: {exc}", tid, {}, entity=f"position:{symbol}",
                )

    async def release(self, actor: str, reason: str = "released by operator") -> BotState:
        """Re-enable trading. Only a person may (``actor`` ``bot`` / ``bot:...`` raises
        :class:`PermissionError`, audited)."""
        svc = self.service
        state = await svc.store.bot_state.resume(actor, reason, name=svc.bot_state_name)
        svc.halted = state.halted
        await self._alert("released", actor, reason, {})
        return state

    async def apply_decision(self, decision: KillSwitchDecision, *, actor: str = ACTOR_RISK) -> KillSwitchReport | None:
        """Act on the risk layer's decision: engage when it says halt with actions pending (the
        first time, and again until the sweep completed)."""
        if not decision.halt or not decision.actions:
            return None
        ctx = {"day_pnl": str(decision.day_pnl), "loss_fraction": str(decision.loss_fraction),
               "max_daily_loss": str(decision.limit), "actions": list(decision.actions)}
        return await self.engage(actor, decision.reason or "kill switch", context=ctx)

    async def _alert(self, action: str, actor: str, reason: str, detail: dict[str, Any]) -> None:
        svc = self.service
        event = KillSwitchAlert(occurred_at=svc.clock(), action=action, actor=actor, reason=reason, detail=detail)
        if action == "engaged":
            svc.log.critical(EVENTS.KILL_SWITCH_ENGAGED, actor=actor, reason=reason, detail=detail)
        else:
            svc.log.warning(EVENTS.KILL_SWITCH_RELEASED, actor=actor, reason=reason)
        svc.log.critical(EVENTS.ALERT, kind=f"kill_switch_{action}", actor=actor, reason=reason)
        await svc.events.publish(event)
        if self.alert is not None:
            try:
                await self.alert(event)
            except Exception:
                svc.log.exception("alert_failed", kind=f"kill_switch_{action}")


def _utc_day() -> str:
    return datetime.now(UTC).date().isoformat()


class DailyLossMonitor:
    """Evaluates the daily-loss rule and engages the kill switch when it trips.

    By default the portfolio state comes from the account's wallet (a REST snapshot per check):
    the day's PnL is ``equity - equity at the day's first check`` (realised plus unrealised). Pass ``state_provider`` to use the risk manager's own
    :class:`PortfolioState` instead.
    """

    def __init__(
        self,
        executor: KillSwitchExecutor,
        max_daily_loss: Decimal,
        *,
        kill_switch: KillSwitch | None = None,
        state_provider: Callable[[], Awaitable[PortfolioState]] | None = None,
        day: Callable[[], str] = _utc_day,
    ) -> None:
        if not isinstance(max_daily_loss, Decimal) or not 0 < max_daily_loss < 1:
            raise ValueError("max_daily_loss is a Decimal fraction of the day's starting equity, e.g. Decimal('0.05')")
        self.executor = executor
        self.max_daily_loss = max_daily_loss
        self.kill_switch = kill_switch or KillSwitch()
        self.state_provider = state_provider
        self.day = day
        self._day: str | None = None
        self._start: tuple[Decimal, Decimal, Decimal] | None = None  # equity, wallet balance, UPL
        self.last_decision: KillSwitchDecision | None = None

    async def check(self) -> KillSwitchDecision:
        state = await (self.state_provider() if self.state_provider is not None else self._wallet_state())
        decision = self.kill_switch.evaluate(state, self.max_daily_loss)
        self.last_decision = decision
        if decision.halt and decision.actions:
            report = await self.executor.apply_decision(decision)
            if report is not None and report.complete:
                self.kill_switch.acknowledge_halt()
        return decision

    async def run(self, interval: float = 1.0) -> None:
        """Check every ``interval`` seconds until cancelled (the caller owns the task)."""
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.executor.service.log.exception("daily_loss_check_failed")
            await asyncio.sleep(interval)

    async def _wallet_state(self) -> PortfolioState:
        svc = self.executor.service
        # A REST snapshot every time: Bybit pushes ``wallet`` on account events only, never when
        # the unrealised PnL moves (docs/bybit-v5.md 2.2).
        w = await svc.venue.wallet()
        equity = optional_decimal(w.get("totalEquity")) or Decimal(0)
        balance = optional_decimal(w.get("totalWalletBalance")) or equity
        upl = optional_decimal(w.get("totalPerpUPL")) or Decimal(0)
        today = self.day()
        if self._day != today or self._start is None:
            self._day, self._start = today, (equity, balance, upl)
        start_equity, start_balance, start_upl = self._start
        return PortfolioState(
            balance=equity, day=today, day_start_equity=start_equity,
            realized_pnl_today=balance - start_balance, unrealized_pnl=upl, unrealized_pnl_day_start=start_upl,
        )


__all__ = ["ACTOR_RISK", "DailyLossMonitor", "KillSwitchExecutor", "KillSwitchReport"]
