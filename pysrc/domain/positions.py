"""The position state machine, the ``Position`` entity, and the reducer from executions.

A ``Position`` is one round trip on one symbol and position index: from the entry order being
placed to the moment it is flat again. That is the unit the trades table records (entry and exit
reasons, realised PnL), so a position that goes flat and re-opens is a *new* ``Position``.

States (the mission's OPEN, CLOSING, CLOSED, plus what a real lifecycle needs):

* ``PENDING_OPEN``: the entry order is out, nothing filled (protection may already be set);
* ``OPEN``: size > 0;
* ``CLOSING``: a close was requested (signal, stop, take profit, kill switch); size > 0 until the
  closing fills arrive. ``abort_close`` returns to ``OPEN`` if the close order is rejected or
  cancelled; an entry fill that arrives meanwhile still increases the position;
* ``CLOSED``: flat after a close (our order, a stop, ADL, delivery);
* ``LIQUIDATED``: flat because the exchange liquidated it (``BustTrade`` executions); kept apart
  from ``CLOSED`` because risk and reports treat a liquidation as a failure, not an exit;
* ``CANCELLED``: the entry never filled (order cancelled or rejected): no round trip happened.

A **flip** (one execution taking a long of 1 to a short of 2 in one-way mode) is a ``close`` of
this position for its whole size plus a new ``Position`` opened with the rest; the fee is split
pro rata and both records carry the other's id.

Accounting (exact, average-cost): ``entry_value`` is the cost of the open size (sum of entry
``price x qty`` less the cost released by reductions) and ``entry_price = entry_value / size``. A
partial reduce releases ``entry_value x q / size`` (the one rounding: to a 1e-12 grid, see
``values.pro_rata``); a full close releases the rest exactly, so over a round trip
``realised_pnl`` equals the exact difference of exit and entry values. ``realised_pnl`` is price
PnL gross of ``fees`` and ``funding`` (both positive = paid); ``net_pnl`` subtracts them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from pysrc.decimals import to_decimal
from pysrc.domain.fsm import (
    ForeignUpdate,
    InvalidTransition,
    Metadata,
    Rule,
    Transition,
    TransitionTable,
    copy_entity,
    replay_onto,
    utc_now,
)
from pysrc.domain.values import (
    ZERO,
    Execution,
    Side,
    add,
    dec_str,
    div,
    mul,
    pro_rata,
    sub,
)


class PositionState(str, Enum):
    PENDING_OPEN = "PENDING_OPEN"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"
    LIQUIDATED = "LIQUIDATED"
    CANCELLED = "CANCELLED"


class PositionEvent(str, Enum):
    OPEN = "open"
    INCREASE = "increase"
    REDUCE = "reduce"
    REQUEST_CLOSE = "request_close"
    ABORT_CLOSE = "abort_close"
    CLOSE = "close"
    LIQUIDATE = "liquidate"
    CANCEL = "cancel"
    FUNDING = "funding"
    SET_PROTECTION = "set_protection"


_S = PositionState
_E = PositionEvent

TERMINAL_STATES: frozenset[PositionState] = frozenset({_S.CLOSED, _S.LIQUIDATED, _S.CANCELLED})
HOLDING_STATES: frozenset[PositionState] = frozenset({_S.OPEN, _S.CLOSING})
"""States with size > 0."""

# fmt: off
POSITION_RULES: tuple[Rule[PositionState, PositionEvent], ...] = (
    Rule(_E.OPEN, frozenset({_S.PENDING_OPEN}), _S.OPEN, "first entry fill", "lifecycle"),
    Rule(_E.INCREASE, HOLDING_STATES, None,
         "a fill on the position's side; also while closing (an entry order still resting)",
         "lifecycle"),
    Rule(_E.REDUCE, HOLDING_STATES, None,
         "an opposite fill smaller than the size (partial close at a target, partial stop)",
         "lifecycle"),
    Rule(_E.REQUEST_CLOSE, frozenset({_S.OPEN}), _S.CLOSING,
         "close order placed (signal, stop, take profit, kill switch); reason recorded"),
    Rule(_E.ABORT_CLOSE, frozenset({_S.CLOSING}), _S.OPEN,
         "the close order was rejected or cancelled with size left", "lifecycle"),
    Rule(_E.CLOSE, HOLDING_STATES, _S.CLOSED,
         "an opposite fill equal to the size (a flip closes for the size, then opens a new position)"),
    Rule(_E.LIQUIDATE, HOLDING_STATES, _S.LIQUIDATED,
         "the exchange's BustTrade took the rest", "lifecycle"),
    Rule(_E.CANCEL, frozenset({_S.PENDING_OPEN}), _S.CANCELLED, "the entry never filled", "lifecycle"),
    Rule(_E.FUNDING, frozenset({_S.OPEN, _S.CLOSING, _S.CLOSED, _S.LIQUIDATED}), None,
         "a funding payment; may arrive after the close it preceded", "lifecycle"),
    Rule(_E.SET_PROTECTION, frozenset({_S.PENDING_OPEN, _S.OPEN, _S.CLOSING}), None,
         "stop loss, take profit or trailing state changed", "lifecycle"),
)
# fmt: on
"""``mission``: the OPEN -> CLOSING -> CLOSED path the mission names; ``lifecycle``: what a real
lifecycle needs beyond it (the mission leaves that to the implementation)."""

POSITION_TABLE: TransitionTable[PositionState, PositionEvent] = TransitionTable(
    "position", PositionState, PositionEvent, POSITION_RULES, TERMINAL_STATES
)

PositionTransition = Transition[PositionState, PositionEvent]

TRADE_LIKE_EXEC_TYPES = frozenset({"Trade", "AdlTrade", "BustTrade", "Delivery", "BlockTrade"})
"""Executions that change a position's size. ``Funding`` changes only ``funding``; other types
(``Settle``, ``MovePosition``, ...) are ignored by this reducer and left to reconciliation."""
FUNDING_EXEC_TYPE = "Funding"
LIQUIDATION_EXEC_TYPE = "BustTrade"

K_EXEC_ID = "exec_id"
K_QTY = "qty"
K_PRICE = "price"
K_FEE = "fee"
K_SIDE = "side"
K_EXEC_TYPE = "exec_type"
K_AMOUNT = "amount"
K_REASON = "reason"
K_FLIPPED_TO = "flipped_to"
K_FLIPPED_FROM = "flipped_from"
K_STOP_LOSS = "stop_loss"
K_TAKE_PROFIT = "take_profit"
K_TRAIL_STOP_ACTIVE = "trail_stop_active"
K_TRAIL_TP_ACTIVE = "trail_tp_active"
K_TRAIL_BEST = "trail_best_price"
K_TRAIL_STOP = "trail_stop_price"
K_TRAIL_TP = "trail_tp_price"
K_TRAIL_STEPS = "trail_steps"

_FILL_EVENTS = frozenset({_E.OPEN, _E.INCREASE, _E.REDUCE, _E.CLOSE, _E.LIQUIDATE})


@dataclass(frozen=True, slots=True)
class TrailingState:
    """Where the trailing take-profit and stop-loss stand (the position manager moves them:
    activation at +1.0% / +2.0%, steps and distances from mission section 6; this only records)."""

    stop_active: bool = False
    take_profit_active: bool = False
    best_price: Decimal | None = None
    """Most favourable price since activation."""
    stop_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    steps: int = 0
    """Trailing take-profit steps taken (the acceleration factor applies per step)."""


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""Marks a protection field as unchanged in :meth:`Position.set_protection`."""


def _bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"expected 'true' or 'false', got {text!r}")
    return text == "true"


@dataclass(slots=True)
class Position:
    """One round trip on ``symbol``/``position_idx``. Change it only through :meth:`apply` or
    :func:`on_execution`; ``version`` counts the recorded transitions."""

    position_id: str
    symbol: str
    side: Side
    strategy: str = ""
    position_idx: int = 0
    created_at: datetime = field(default_factory=utc_now)
    state: PositionState = PositionState.PENDING_OPEN
    size: Decimal = ZERO
    entry_value: Decimal = ZERO
    realised_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing: TrailingState = TrailingState()
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str = ""
    exec_ids: frozenset[str] = frozenset()
    version: int = 0
    history: list[PositionTransition] = field(default_factory=list)
    mark_price: Decimal | None = field(default=None, compare=False)
    """Latest mark price: market data, not lifecycle, so it is neither recorded nor compared (a
    replayed position gets it from the next tick)."""

    def __post_init__(self) -> None:
        self.side = Side(self.side)
        self.state = PositionState(self.state)
        for name in ("size", "entry_value", "realised_pnl", "fees", "funding"):
            if not isinstance(getattr(self, name), Decimal):
                raise TypeError(f"Position.{name} must be a Decimal (money is exact)")
        if self.size < 0 or self.entry_value < 0:
            raise ValueError(f"position {self.position_id}: size and entry value are never negative")
        if (self.size > 0) != (self.state in HOLDING_STATES):
            raise ValueError(
                f"position {self.position_id}: size {self.size} in state {self.state.value}"
            )
        self.exec_ids = frozenset(self.exec_ids)

    # ---- reading -------------------------------------------------------------------------------

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def entry_price(self) -> Decimal | None:
        return div(self.entry_value, self.size) if self.size else None

    @property
    def unrealised_pnl(self) -> Decimal:
        """Price PnL of the open size at ``mark_price`` (0 without a mark or when flat)."""
        if self.mark_price is None or not self.size:
            return ZERO
        return mul(Decimal(self.side.sign), sub(mul(self.mark_price, self.size), self.entry_value))

    @property
    def net_pnl(self) -> Decimal:
        """Realised price PnL less fees and funding paid."""
        return sub(sub(self.realised_pnl, self.fees), self.funding)

    def mark(self, price: Decimal) -> None:
        """Record the latest mark price (not a transition; see ``mark_price``)."""
        self.mark_price = to_decimal(price, "mark price")

    def copy(self) -> Position:
        """An independent copy (the history list is copied; its records are immutable)."""
        return copy_entity(self)

    # ---- changing ------------------------------------------------------------------------------

    def apply(
        self,
        event: PositionEvent,
        at: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> PositionTransition:
        """Validate and apply ``event``; record and return the transition, or raise
        :class:`InvalidTransition` with nothing changed.

        Fill events (``open``/``increase``/``reduce``/``close``/``liquidate``) need ``side``,
        ``qty``, ``price`` and ``fee`` (``exec_id`` to deduplicate); ``funding`` needs ``amount``;
        ``set_protection`` takes any of the ``stop_loss``/``take_profit``/``trail_*`` keys
        (``""`` clears a price); ``reason`` is kept for closes and cancels.
        """
        target = POSITION_TABLE.target(self.state, event, self.position_id)
        meta = metadata if type(metadata) is Metadata else Metadata(metadata or {})
        when = at or utc_now()
        changes = self._effect(event, target, meta, when)
        transition = Transition(self.version + 1, self.state, target, event, when, meta)
        for name, value in changes.items():
            setattr(self, name, value)
        self.state = target
        self.version = transition.version
        self.history.append(transition)
        return transition

    def _refuse(self, event: PositionEvent, reason: str) -> InvalidTransition:
        return InvalidTransition("position", self.position_id, self.state, event, reason)

    def _dec(
        self, event: PositionEvent, meta: Metadata, key: str, *, optional: bool = False
    ) -> Decimal | None:
        if key not in meta or (optional and meta[key] == ""):
            if optional:
                return None
            raise self._refuse(event, f"metadata {key!r} is required")
        try:
            return to_decimal(meta[key], key)
        except (TypeError, ValueError) as exc:
            raise self._refuse(event, str(exc)) from None

    def _req(self, event: PositionEvent, meta: Metadata, key: str) -> Decimal:
        value = self._dec(event, meta, key)
        assert value is not None  # _dec raises for a missing required key
        return value

    def _effect(
        self, event: PositionEvent, target: PositionState, meta: Metadata, at: datetime
    ) -> dict[str, Any]:
        ch: dict[str, Any] = {}
        exec_id = meta.get(K_EXEC_ID, "")
        if exec_id:
            if exec_id in self.exec_ids:
                raise self._refuse(event, f"execution {exec_id} already recorded")
            ch["exec_ids"] = self.exec_ids | {exec_id}

        if event in _FILL_EVENTS:
            self._fill_effect(event, meta, at, ch)
        elif event is _E.FUNDING:
            ch["funding"] = add(self.funding, self._req(event, meta, K_AMOUNT))
        elif event is _E.SET_PROTECTION:
            self._protection_effect(event, meta, ch)
        elif event is _E.REQUEST_CLOSE:
            ch["close_reason"] = meta.get(K_REASON, "")
        elif event is _E.ABORT_CLOSE:
            ch["close_reason"] = ""
        elif event is _E.CANCEL:
            ch["close_reason"] = meta.get(K_REASON, "")
            ch["closed_at"] = at
        return ch

    def _fill_effect(
        self, event: PositionEvent, meta: Metadata, at: datetime, ch: dict[str, Any]
    ) -> None:
        try:
            side = Side(meta.get(K_SIDE, ""))
        except ValueError:
            raise self._refuse(event, "metadata 'side' must be Buy or Sell") from None
        qty, price, fee = (self._req(event, meta, k) for k in (K_QTY, K_PRICE, K_FEE))
        if qty <= 0 or price <= 0:
            raise self._refuse(event, "fill qty and price must be positive")
        ch["fees"] = add(self.fees, fee)
        value = mul(price, qty)
        if event is _E.OPEN or event is _E.INCREASE:
            if side is not self.side:
                raise self._refuse(
                    event, f"a {side.value} fill cannot {event.value} a {self.side.value} position"
                )
            ch["size"] = add(self.size, qty)
            ch["entry_value"] = add(self.entry_value, value)
            if event is _E.OPEN:
                ch["opened_at"] = at
            return
        if side is self.side:
            raise self._refuse(
                event, f"a {side.value} fill cannot {event.value} a {side.value} position"
            )
        if event is _E.REDUCE:
            if not qty < self.size:
                raise self._refuse(event, f"reduce by {qty} needs less than the size {self.size}")
            released = pro_rata(self.entry_value, qty, self.size)
        else:  # close / liquidate
            if qty != self.size:
                raise self._refuse(event, f"{event.value} needs the whole size {self.size}, got {qty}")
            released = self.entry_value  # the rest, exactly: no rounding survives a round trip
            ch["closed_at"] = at
            reason = meta.get(K_REASON) or self.close_reason or meta.get(K_EXEC_TYPE, "")
            ch["close_reason"] = "liquidation" if event is _E.LIQUIDATE else reason
        gain = sub(value, released) if self.side is Side.BUY else sub(released, value)
        ch["realised_pnl"] = add(self.realised_pnl, gain)
        ch["entry_value"] = sub(self.entry_value, released)
        ch["size"] = sub(self.size, qty)

    def _protection_effect(self, event: PositionEvent, meta: Metadata, ch: dict[str, Any]) -> None:
        def price(key: str, current: Decimal | None) -> Decimal | None:
            if key not in meta:
                return current
            value = self._dec(event, meta, key, optional=True)
            if value is not None and value <= 0:
                raise self._refuse(event, f"{key} must be positive")
            return value

        def flag(key: str, current: bool) -> bool:
            return _bool(meta[key]) if key in meta else current

        t = self.trailing
        ch_sl, ch_tp = price(K_STOP_LOSS, self.stop_loss), price(K_TAKE_PROFIT, self.take_profit)
        try:
            trailing = TrailingState(
                stop_active=flag(K_TRAIL_STOP_ACTIVE, t.stop_active),
                take_profit_active=flag(K_TRAIL_TP_ACTIVE, t.take_profit_active),
                best_price=price(K_TRAIL_BEST, t.best_price),
                stop_price=price(K_TRAIL_STOP, t.stop_price),
                take_profit_price=price(K_TRAIL_TP, t.take_profit_price),
                steps=int(meta[K_TRAIL_STEPS]) if K_TRAIL_STEPS in meta else t.steps,
            )
        except ValueError as exc:
            raise self._refuse(event, str(exc)) from None
        if ch_sl != self.stop_loss:
            ch["stop_loss"] = ch_sl
        if ch_tp != self.take_profit:
            ch["take_profit"] = ch_tp
        if trailing != t:
            ch["trailing"] = trailing

    # ---- named events --------------------------------------------------------------------------

    def request_close(self, reason: str, at: datetime | None = None) -> PositionTransition:
        return self.apply(_E.REQUEST_CLOSE, at, {K_REASON: reason})

    def abort_close(self, reason: str = "", at: datetime | None = None) -> PositionTransition:
        return self.apply(_E.ABORT_CLOSE, at, {K_REASON: reason} if reason else None)

    def cancel(self, reason: str, at: datetime | None = None) -> PositionTransition:
        return self.apply(_E.CANCEL, at, {K_REASON: reason})

    def set_protection(
        self,
        *,
        stop_loss: Decimal | None | _Keep = KEEP,
        take_profit: Decimal | None | _Keep = KEEP,
        trailing: TrailingState | _Keep = KEEP,
        at: datetime | None = None,
        **context: str,
    ) -> PositionTransition:
        """Record new protection; ``KEEP`` leaves a field as it is, ``None`` clears a price."""
        meta: dict[str, str] = dict(context)
        if not isinstance(stop_loss, _Keep):
            meta[K_STOP_LOSS] = dec_str(stop_loss)
        if not isinstance(take_profit, _Keep):
            meta[K_TAKE_PROFIT] = dec_str(take_profit)
        if isinstance(trailing, TrailingState):
            meta.update(
                {
                    K_TRAIL_STOP_ACTIVE: "true" if trailing.stop_active else "false",
                    K_TRAIL_TP_ACTIVE: "true" if trailing.take_profit_active else "false",
                    K_TRAIL_BEST: dec_str(trailing.best_price),
                    K_TRAIL_STOP: dec_str(trailing.stop_price),
                    K_TRAIL_TP: dec_str(trailing.take_profit_price),
                    K_TRAIL_STEPS: str(trailing.steps),
                }
            )
        return self.apply(_E.SET_PROTECTION, at, meta)

    # ---- history -------------------------------------------------------------------------------

    @classmethod
    def replay(cls, initial: Position, transitions: Iterable[PositionTransition]) -> Position:
        """Rebuild a position from its initial snapshot and recorded transitions (same validation
        as when they were applied; :class:`ReplayError` if the history does not fit)."""
        pos = initial.copy()
        return replay_onto(pos, transitions, f"position {pos.position_id}")


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    """What one execution did: the transitions of the position it was given and, after a flip,
    the new position opened with the rest (its own history holds its ``open``)."""

    transitions: tuple[PositionTransition, ...] = ()
    opened: Position | None = None


def _new_position_id() -> str:
    return uuid.uuid4().hex


def on_execution(
    position: Position,
    execution: Execution,
    at: datetime | None = None,
    new_position_id: Callable[[], str] = _new_position_id,
) -> PositionUpdate:
    """Apply one execution to ``position``.

    Same side: ``open`` (from ``PENDING_OPEN``) or ``increase``. Opposite side: ``reduce`` when
    smaller than the size, ``close`` (``liquidate`` for a ``BustTrade``) when equal, and a flip when
    larger: ``close`` for the size plus a new position opened with the rest. A repeated ``execId``
    and execution types that do not move a position are no-ops; ``Funding`` records a payment. A
    fill for a finished position raises :class:`InvalidTransition`: the caller routes it to the
    symbol's next position (a new ``PENDING_OPEN`` one).
    """
    e = execution
    if e.symbol != position.symbol:
        raise ForeignUpdate(
            f"{e.symbol} execution given to position {position.position_id} on {position.symbol}"
        )
    if e.exec_id in position.exec_ids:
        return PositionUpdate()
    base = {K_EXEC_ID: e.exec_id, K_EXEC_TYPE: e.exec_type, "exchange_time": str(e.exec_time)}
    if e.order_link_id:
        base["order_link_id"] = e.order_link_id
    if e.exec_type == FUNDING_EXEC_TYPE:
        # Bybit's funding execution: execFee is the payment (positive = paid by us).
        return PositionUpdate((position.apply(_E.FUNDING, at, {**base, K_AMOUNT: str(e.fee)}),))
    if e.exec_type not in TRADE_LIKE_EXEC_TYPES:
        return PositionUpdate()

    fill = {**base, K_SIDE: e.side.value, K_PRICE: str(e.price)}
    if position.is_terminal:
        raise position._refuse(_E.INCREASE, "a fill for a finished position belongs to the next one")
    close_event = _E.LIQUIDATE if e.exec_type == LIQUIDATION_EXEC_TYPE else _E.CLOSE
    if position.state is _S.PENDING_OPEN:
        event = _E.OPEN
    elif e.side is position.side:
        event = _E.INCREASE
    elif e.qty < position.size:
        event = _E.REDUCE
    elif e.qty == position.size:
        event = close_event
    else:
        return _flip(position, e, fill, close_event, at, new_position_id)
    meta = {**fill, K_QTY: str(e.qty), K_FEE: str(e.fee)}
    return PositionUpdate((position.apply(event, at, meta),))


def _flip(
    position: Position,
    e: Execution,
    fill: dict[str, str],
    close_event: PositionEvent,
    at: datetime | None,
    new_position_id: Callable[[], str],
) -> PositionUpdate:
    size = position.size
    rest = sub(e.qty, size)
    close_fee = pro_rata(e.fee, size, e.qty)
    open_fee = sub(e.fee, close_fee)  # the two parts add up to the execution's fee exactly
    new_id = new_position_id()
    opened = Position(
        position_id=new_id,
        symbol=position.symbol,
        side=e.side,
        strategy=position.strategy,
        position_idx=position.position_idx,
        created_at=at or utc_now(),
    )
    # Validate the opening before closing, so a refusal leaves both untouched.
    probe = opened.copy()
    open_meta = {**fill, K_QTY: str(rest), K_FEE: str(open_fee), K_FLIPPED_FROM: position.position_id}
    probe.apply(_E.OPEN, at, open_meta)
    closed = position.apply(
        close_event, at, {**fill, K_QTY: str(size), K_FEE: str(close_fee), K_FLIPPED_TO: new_id}
    )
    opened.apply(_E.OPEN, closed.at, open_meta)
    return PositionUpdate((closed,), opened)


__all__ = [
    "HOLDING_STATES",
    "KEEP",
    "POSITION_RULES",
    "POSITION_TABLE",
    "TERMINAL_STATES",
    "Position",
    "PositionEvent",
    "PositionState",
    "PositionTransition",
    "PositionUpdate",
    "TrailingState",
    "on_execution",
]
