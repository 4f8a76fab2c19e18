"""The order state machine (mission section 6), the ``Order`` entity, and the reducer that turns
Bybit's order and execution pushes into events.

The table
---------
The nine state-changing events are the mission's, with the sources it gives. Where the mission
leaves a source open, or where Bybit's real behaviour needs a row the mission does not list, the
row says so (``origin``) and why; ``docs/state-machines.md`` prints the table from
:data:`ORDER_TABLE` itself.

* ``confirm_cancel`` is legal from ``PENDING_CANCEL`` (we asked) **and** from ``ACKNOWLEDGED`` /
  ``PARTIALLY_FILLED``: the exchange cancels orders nobody asked it to cancel (the unfilled rest
  of an IOC/FOK or market order, a PostOnly that would take, ``CancelByReduceOnly``,
  ``CancelAllBeforeLiq``, ``CancelByAdmin``, ``CancelByDCP``, a click on the web page). It is not
  legal before the acknowledgement: a cancel push proves the exchange had the order, so the reducer
  records ``acknowledge`` first and the history never skips that fact.
* ``partial_fill`` and ``fill`` are also legal from ``PENDING_CANCEL`` (extension): a cancel and a
  fill can cross on the exchange (Bybit documents the race, ``docs/bybit-v5.md`` 2.2), and the fill
  wins. A partial fill keeps the order in ``PENDING_CANCEL`` (the cancel is still in flight).
* ``amend`` and ``record_execution`` (extensions) never change the state. They record what changed
  without a state change (new quantity or price; an execution's fee and id once the quantity was
  already known from an order push) in the same history, so that replaying the history rebuilds
  every field. ``record_execution`` is the one event a terminal state accepts: fees arrive with
  executions, which may come after the order push that finished the order.

Terminal states (``FILLED``, ``CANCELLED``, ``REJECTED``, ``FAILED``) are never left.

Fill accounting
---------------
Two sources report fills. Order pushes carry cumulative ``cumExecQty``/``cumExecValue``;
executions carry single fills (deduplicated by ``execId``). ``filled_qty`` is the larger of the
two cumulative quantities and never decreases; ``filled_value`` is the exact ``sum(price x qty)``
of the fills counted by whichever source reported that quantity, and ``avg_fill_price`` is
``filled_value / filled_qty``. ``fees`` are summed from executions only (``cumExecFee`` is
deprecated for linear and spot). Invariant: ``0 <= exec_qty <= filled_qty <= qty``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from pysrc.decimals import to_decimal
from pysrc.domain.fsm import (
    DomainError,
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
from pysrc.domain.ids import check_order_link_id
from pysrc.domain.values import (
    ZERO,
    Execution,
    OrderType,
    OrderUpdate,
    Side,
    TimeInForce,
    add,
    div,
    mul,
)


class OrderState(str, Enum):
    NEW = "NEW"
    """Created locally; nothing reserved or sent."""
    PENDING_SUBMIT = "PENDING_SUBMIT"
    """Id reserved and the row written; the request is leaving or in flight."""
    SUBMITTED = "SUBMITTED"
    """The REST call answered retCode 0: accepted, but Bybit places orders asynchronously."""
    ACKNOWLEDGED = "ACKNOWLEDGED"
    """The exchange shows the order (``New``, or a conditional ``Untriggered``) with no fill."""
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    """We asked the exchange to cancel; the answer is the order stream's, not the REST reply."""
    CANCELLED = "CANCELLED"
    """Cancelled by anyone, possibly after partial fills (``filled_qty`` says)."""
    REJECTED = "REJECTED"
    """Definitely not placed (a business reject from REST, or a ``Rejected`` push)."""
    FAILED = "FAILED"
    """Given up locally: lost before submission, or an error nothing can repair."""


class OrderEvent(str, Enum):
    SUBMIT = "submit"
    CONFIRM_SUBMIT = "confirm_submit"
    ACKNOWLEDGE = "acknowledge"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    REQUEST_CANCEL = "request_cancel"
    CONFIRM_CANCEL = "confirm_cancel"
    REJECT = "reject"
    FAIL = "fail"
    AMEND = "amend"
    RECORD_EXECUTION = "record_execution"


_S = OrderState
_E = OrderEvent

TERMINAL_STATES: frozenset[OrderState] = frozenset({_S.FILLED, _S.CANCELLED, _S.REJECTED, _S.FAILED})
NON_TERMINAL_STATES: frozenset[OrderState] = frozenset(OrderState) - TERMINAL_STATES
LIVE_STATES: frozenset[OrderState] = frozenset(
    {_S.ACKNOWLEDGED, _S.PARTIALLY_FILLED, _S.PENDING_CANCEL}
)
"""Known to the exchange and still able to trade."""
UNCONFIRMED_STATES: frozenset[OrderState] = frozenset({_S.PENDING_SUBMIT, _S.SUBMITTED})
"""Sent (or about to be) but not yet seen on the exchange."""

# fmt: off
ORDER_RULES: tuple[Rule[OrderState, OrderEvent], ...] = (
    Rule(_E.SUBMIT, frozenset({_S.NEW}), _S.PENDING_SUBMIT,
         "id reserved and the row written before the request leaves"),
    Rule(_E.CONFIRM_SUBMIT, frozenset({_S.PENDING_SUBMIT}), _S.SUBMITTED,
         "REST answered retCode 0 (accepted, not yet placed); source decided: only PENDING_SUBMIT, "
         "a late REST answer after the push is a no-op (on_submit_accepted)", "decided"),
    Rule(_E.ACKNOWLEDGE, frozenset({_S.PENDING_SUBMIT, _S.SUBMITTED}), _S.ACKNOWLEDGED,
         "the order stream shows the order; it may beat the REST answer"),
    Rule(_E.PARTIAL_FILL, frozenset({_S.ACKNOWLEDGED, _S.PARTIALLY_FILLED}), _S.PARTIALLY_FILLED,
         "cumulative filled quantity grew and is still below qty"),
    Rule(_E.PARTIAL_FILL, frozenset({_S.PENDING_CANCEL}), None,
         "a fill that crossed our cancel: recorded, the cancel is still in flight", "extension"),
    Rule(_E.FILL, frozenset({_S.ACKNOWLEDGED, _S.PARTIALLY_FILLED}), _S.FILLED,
         "cumulative filled quantity reached qty"),
    Rule(_E.FILL, frozenset({_S.PENDING_CANCEL}), _S.FILLED,
         "the fill wins a cancel/fill race (Bybit: two Filled pushes)", "extension"),
    Rule(_E.REQUEST_CANCEL, frozenset({_S.ACKNOWLEDGED, _S.PARTIALLY_FILLED}), _S.PENDING_CANCEL,
         "cancel request about to leave"),
    Rule(_E.CONFIRM_CANCEL, frozenset({_S.PENDING_CANCEL, _S.ACKNOWLEDGED, _S.PARTIALLY_FILLED}),
         _S.CANCELLED,
         "sources decided: also without our request (IOC/FOK rest, PostOnly, reduce-only, "
         "liquidation, admin, DCP, manual); a cancel before the ack is recorded as acknowledge first",
         "decided"),
    Rule(_E.REJECT, frozenset({_S.PENDING_SUBMIT, _S.SUBMITTED}), _S.REJECTED,
         "business reject from REST or a Rejected push: never placed"),
    Rule(_E.FAIL, NON_TERMINAL_STATES, _S.FAILED,
         "given up: lost before submission, or unrepairable; any non-terminal state"),
    Rule(_E.AMEND, LIVE_STATES, None,
         "the exchange shows a new qty or price (amend); recorded, no state change", "extension"),
    Rule(_E.RECORD_EXECUTION,
         frozenset({_S.PARTIALLY_FILLED, _S.PENDING_CANCEL, _S.FILLED, _S.CANCELLED}), None,
         "an execution whose quantity an order push already counted: its id and fee are recorded",
         "extension"),
)
# fmt: on

ORDER_TABLE: TransitionTable[OrderState, OrderEvent] = TransitionTable(
    "order", OrderState, OrderEvent, ORDER_RULES, TERMINAL_STATES
)

OrderTransition = Transition[OrderState, OrderEvent]

EXCHANGE_STATUS: dict[str, OrderState] = {
    "New": _S.ACKNOWLEDGED,
    "PartiallyFilled": _S.PARTIALLY_FILLED,
    "Untriggered": _S.ACKNOWLEDGED,
    "Triggered": _S.ACKNOWLEDGED,
    "Filled": _S.FILLED,
    "Cancelled": _S.CANCELLED,
    "PartiallyFilledCanceled": _S.CANCELLED,
    "Deactivated": _S.CANCELLED,
    "Rejected": _S.REJECTED,
}
"""Bybit ``orderStatus`` -> the state it implies (``docs/bybit-v5.md`` 2.2).

``Untriggered`` (a conditional order waiting for its trigger) and ``Triggered`` (transient, about
to become ``New``) are orders the exchange holds: ``ACKNOWLEDGED``. ``PartiallyFilledCanceled``
(spot) and ``Deactivated`` (spot TP/SL, conditional or OCO cancelled before triggering) are
cancellations. For the live statuses the quantities decide between ``ACKNOWLEDGED``,
``PARTIALLY_FILLED`` and ``FILLED`` (``cumExecQty`` is the truth, not the status word)."""

EXCHANGE_STATUS_NOTES: dict[str, str] = {
    "New": "on the book, nothing filled",
    "PartiallyFilled": "on the book, some filled (cumExecQty decides)",
    "Untriggered": "conditional order accepted, waiting for its trigger",
    "Triggered": "transient: the trigger fired, the order becomes New",
    "Filled": "completely filled (a second Filled after a cancel/fill race is a no-op)",
    "Cancelled": "cancelled, possibly after partial fills (derivatives)",
    "PartiallyFilledCanceled": "spot: cancelled after partial fills",
    "Deactivated": "spot TP/SL, conditional or OCO order cancelled before triggering",
    "Rejected": "refused by the exchange, never on the book",
}

TRADE_EXEC_TYPE = "Trade"


class UnknownExchangeStatus(DomainError):
    """An ``orderStatus`` word the mapping does not know (a new Bybit status): nothing applied."""


# Metadata keys with a meaning to the entity; any other key is context kept as it is (source,
# exchange status, trace id, ...).
K_ORDER_ID = "order_id"
K_EXCHANGE_TIME = "exchange_time"
K_FILLED_QTY = "filled_qty"
K_FILLED_VALUE = "filled_value"
K_EXEC_ID = "exec_id"
K_EXEC_QTY = "exec_qty"
K_EXEC_PRICE = "exec_price"
K_EXEC_FEE = "exec_fee"
K_QTY = "qty"
K_PRICE = "price"
K_REASON = "reason"


@dataclass(slots=True)
class Order:
    """An order and its recorded history. Change it only through :meth:`apply` (or the reducer),
    which validates against :data:`ORDER_TABLE` and the fill invariants and records a
    :class:`~pysrc.domain.fsm.Transition`; ``version`` counts the transitions (optimistic locking)."""

    order_link_id: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    strategy: str = ""
    created_at: datetime = field(default_factory=utc_now)
    state: OrderState = OrderState.NEW
    exchange_order_id: str = ""
    filled_qty: Decimal = ZERO
    filled_value: Decimal = ZERO
    """Exact sum(price x qty) of the fills counted in ``filled_qty``."""
    exec_qty: Decimal = ZERO
    """Sum of the quantities of the executions seen (deduplicated by ``exec_ids``)."""
    exec_value: Decimal = ZERO
    fees: Decimal = ZERO
    """Sum of the executions' fees (positive = paid)."""
    exec_ids: frozenset[str] = frozenset()
    exchange_updated_at: int = field(default=0, compare=False)
    """Watermark: the latest exchange time (ms) of any push seen, applied or not. An amendment is
    taken only from a push at least this recent, so a stale push cannot undo a newer one. It is
    not state: a push that changes nothing still raises it without a transition, so replay (which
    sees only the transitions' ``exchange_time``) may rebuild a lower value; equality ignores it."""
    reason: str = ""
    """Why it was rejected, failed or cancelled."""
    version: int = 0
    history: list[OrderTransition] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_order_link_id(self.order_link_id)
        self.side = Side(self.side)
        self.order_type = OrderType(self.order_type)
        self.time_in_force = TimeInForce(self.time_in_force)
        self.state = OrderState(self.state)
        for name in ("qty", "filled_qty", "filled_value", "exec_qty", "exec_value", "fees"):
            if not isinstance(getattr(self, name), Decimal):
                raise TypeError(f"Order.{name} must be a Decimal (money is exact)")
        if self.qty <= 0:
            raise ValueError(f"order {self.order_link_id}: qty must be positive")
        if self.price is not None:
            if not isinstance(self.price, Decimal):
                raise TypeError("Order.price must be a Decimal or None")
            if self.price <= 0:
                raise ValueError(f"order {self.order_link_id}: price must be positive")
        elif self.order_type is OrderType.LIMIT:
            raise ValueError(f"order {self.order_link_id}: a limit order needs a price")
        self.exec_ids = frozenset(self.exec_ids)

    # ---- reading -------------------------------------------------------------------------------

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def leaves_qty(self) -> Decimal:
        """Quantity still to fill (0 once terminal)."""
        return ZERO if self.is_terminal else self.qty - self.filled_qty

    @property
    def avg_fill_price(self) -> Decimal | None:
        return div(self.filled_value, self.filled_qty) if self.filled_qty else None

    def copy(self) -> Order:
        """An independent copy (the history list is copied; its records are immutable)."""
        return copy_entity(self)

    # ---- changing ------------------------------------------------------------------------------

    def apply(
        self,
        event: OrderEvent,
        at: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> OrderTransition:
        """Validate ``event`` against the table and the invariants, change the order, record and
        return the transition. Raises :class:`InvalidTransition` (nothing changed) otherwise.

        ``metadata`` carries the event's data as exact strings (see the ``K_*`` keys: cumulative
        ``filled_qty``/``filled_value`` for fills, ``exec_*`` for an execution, ``qty``/``price``
        for an amendment, ``order_id``, ``reason``, ``exchange_time``) plus any context to keep.
        """
        target = ORDER_TABLE.target(self.state, event, self.order_link_id)
        meta = metadata if type(metadata) is Metadata else Metadata(metadata or {})
        changes = self._effect(event, meta)
        transition = Transition(self.version + 1, self.state, target, event, at or utc_now(), meta)
        for name, value in changes.items():
            setattr(self, name, value)
        self.state = target
        self.version = transition.version
        self.history.append(transition)
        return transition

    def _refuse(self, event: OrderEvent, reason: str) -> InvalidTransition:
        return InvalidTransition("order", self.order_link_id, self.state, event, reason)

    def _dec(self, event: OrderEvent, meta: Metadata, key: str) -> Decimal:
        if key not in meta:
            raise self._refuse(event, f"metadata {key!r} is required")
        try:
            return to_decimal(meta[key], key)
        except (TypeError, ValueError) as exc:
            raise self._refuse(event, str(exc)) from None

    def _effect(self, event: OrderEvent, meta: Metadata) -> dict[str, Any]:
        """The field changes ``event`` makes, computed without touching the order (so a refusal
        leaves it exactly as it was)."""
        ch: dict[str, Any] = {}
        if K_EXCHANGE_TIME in meta:
            try:
                t = int(meta[K_EXCHANGE_TIME])
            except ValueError:
                raise self._refuse(event, "exchange_time is not an integer") from None
            if t > self.exchange_updated_at:
                ch["exchange_updated_at"] = t
        oid = meta.get(K_ORDER_ID, "")
        if oid:
            if self.exchange_order_id and oid != self.exchange_order_id:
                raise self._refuse(event, f"exchange order id {oid} != {self.exchange_order_id}")
            ch["exchange_order_id"] = oid
        if K_REASON in meta:
            ch["reason"] = meta[K_REASON]

        if event is _E.PARTIAL_FILL or event is _E.FILL:
            filled = self._dec(event, meta, K_FILLED_QTY)
            value = self._dec(event, meta, K_FILLED_VALUE)
            qty = self.qty
            if event is _E.FILL and K_QTY in meta:
                # An amendment down to what is already filled completes the order in one step, so
                # no live state ever holds filled == qty.
                qty = self._dec(event, meta, K_QTY)
                if qty != filled:
                    raise self._refuse(event, f"a fill by amendment needs qty == filled, got {qty}")
                ch["qty"] = qty
            if filled > qty:
                raise self._refuse(event, f"over-fill: filled {filled} > qty {qty}")
            if event is _E.FILL:
                if filled != qty:
                    raise self._refuse(event, f"fill needs filled == qty, got {filled} of {qty}")
                if filled < self.filled_qty:
                    raise self._refuse(event, "filled quantity would go backwards")
            elif not self.filled_qty < filled < self.qty:
                raise self._refuse(
                    event, f"partial fill needs {self.filled_qty} < filled < {self.qty}, got {filled}"
                )
            if value < 0 or (filled > 0 and value == 0):
                raise self._refuse(event, f"filled value {value} impossible for {filled}")
            ch["filled_qty"], ch["filled_value"] = filled, value
            if K_EXEC_ID in meta:
                self._execution_effect(event, meta, ch)
            if ch.get("exec_qty", self.exec_qty) > filled:
                raise self._refuse(event, "executions would exceed the filled quantity")
        elif event is _E.RECORD_EXECUTION:
            self._execution_effect(event, meta, ch)
            if ch["exec_qty"] > self.filled_qty:
                raise self._refuse(event, "execution beyond the filled quantity must be a fill event")
        elif event is _E.AMEND:
            if K_QTY not in meta and K_PRICE not in meta:
                raise self._refuse(event, "an amendment needs qty or price")
            if K_QTY in meta:
                qty = self._dec(event, meta, K_QTY)
                if qty <= 0 or qty <= self.filled_qty:
                    # Down to the filled quantity is a fill (``fill`` with ``qty``), not an amend.
                    raise self._refuse(event, f"amended qty {qty} not above filled {self.filled_qty}")
                ch["qty"] = qty
            if K_PRICE in meta:
                price = self._dec(event, meta, K_PRICE)
                if price <= 0:
                    raise self._refuse(event, f"amended price {price} not positive")
                ch["price"] = price
        return ch

    def _execution_effect(self, event: OrderEvent, meta: Metadata, ch: dict[str, Any]) -> None:
        exec_id = meta.get(K_EXEC_ID, "")
        if not exec_id:
            raise self._refuse(event, "metadata 'exec_id' is required")
        if exec_id in self.exec_ids:
            raise self._refuse(event, f"execution {exec_id} already recorded")
        qty = self._dec(event, meta, K_EXEC_QTY)
        price = self._dec(event, meta, K_EXEC_PRICE)
        fee = self._dec(event, meta, K_EXEC_FEE)
        if qty <= 0 or price <= 0:
            raise self._refuse(event, f"execution {exec_id}: qty and price must be positive")
        ch["exec_ids"] = self.exec_ids | {exec_id}
        ch["exec_qty"] = add(self.exec_qty, qty)
        ch["exec_value"] = add(self.exec_value, mul(price, qty))
        ch["fees"] = add(self.fees, fee)

    # ---- named events (thin wrappers over apply, for readable callers) -------------------------

    def submit(self, at: datetime | None = None, **context: str) -> OrderTransition:
        return self.apply(_E.SUBMIT, at, context)

    def confirm_submit(self, order_id: str = "", at: datetime | None = None) -> OrderTransition:
        return self.apply(_E.CONFIRM_SUBMIT, at, {K_ORDER_ID: order_id} if order_id else None)

    def acknowledge(self, order_id: str = "", at: datetime | None = None) -> OrderTransition:
        return self.apply(_E.ACKNOWLEDGE, at, {K_ORDER_ID: order_id} if order_id else None)

    def request_cancel(self, at: datetime | None = None, **context: str) -> OrderTransition:
        return self.apply(_E.REQUEST_CANCEL, at, context)

    def confirm_cancel(self, reason: str = "", at: datetime | None = None) -> OrderTransition:
        return self.apply(_E.CONFIRM_CANCEL, at, {K_REASON: reason})

    def reject(self, reason: str, at: datetime | None = None) -> OrderTransition:
        return self.apply(_E.REJECT, at, {K_REASON: reason})

    def fail(self, reason: str, at: datetime | None = None) -> OrderTransition:
        return self.apply(_E.FAIL, at, {K_REASON: reason})

    # ---- history -------------------------------------------------------------------------------

    @classmethod
    def replay(cls, initial: Order, transitions: Iterable[OrderTransition]) -> Order:
        """Rebuild an order from its initial snapshot and recorded transitions.

        Each record is re-applied through :meth:`apply` (same validation), so a history that the
        current table would refuse, or that is out of order, raises :class:`ReplayError` instead of
        producing a state the code could never have reached.
        """
        order = initial.copy()
        return replay_onto(order, transitions, f"order {order.order_link_id}")


# ---- the reducer: exchange pushes -> events -----------------------------------------------------


def _check_identity(order: Order, link_id: str, order_id: str, symbol: str) -> None:
    if link_id and link_id != order.order_link_id:
        raise ForeignUpdate(f"push for orderLinkId {link_id!r} given to order {order.order_link_id!r}")
    if order_id and order.exchange_order_id and order_id != order.exchange_order_id:
        raise ForeignUpdate(
            f"push for orderId {order_id!r} given to order {order.order_link_id!r} "
            f"(orderId {order.exchange_order_id!r})"
        )
    if symbol and symbol != order.symbol:
        raise ForeignUpdate(
            f"push for {symbol} given to order {order.order_link_id!r} on {order.symbol}"
        )


class _Atomic:
    """Restores every field of the order if a multi-event reduction fails half-way, so a push is
    applied completely or not at all (events already recorded by this push are withdrawn)."""

    __slots__ = ("_history_len", "_order", "_saved")

    def __init__(self, order: Order) -> None:
        self._order = order
        self._saved = {f.name: getattr(order, f.name) for f in fields(Order) if f.name != "history"}
        self._history_len = len(order.history)

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            for name, value in self._saved.items():
                setattr(self._order, name, value)
            del self._order.history[self._history_len :]


def _amend_meta(order: Order, qty: Decimal | None, price: Decimal | None) -> dict[str, str]:
    """Metadata of an amendment the exchange shows, or ``{}`` when nothing changed."""
    meta: dict[str, str] = {}
    if qty is not None and qty != order.qty:
        meta[K_QTY] = str(qty)
    if order.order_type is OrderType.LIMIT and price is not None and price > 0 and price != order.price:
        # A market order's price is Bybit's internal slippage limit, not an amendment.
        meta[K_PRICE] = str(price)
    return meta


def _amend(
    order: Order,
    qty: Decimal | None,
    price: Decimal | None,
    context: Mapping[str, str],
    at: datetime | None,
    out: list[OrderTransition],
) -> None:
    """Record an amendment the exchange shows. One that brings qty down to what is already filled
    completes the order: it is recorded as ``fill`` carrying the new ``qty``, so no live state ever
    has nothing left."""
    amend = _amend_meta(order, qty, price)
    if not amend:
        return
    completes = K_QTY in amend and Decimal(amend[K_QTY]) == order.filled_qty
    if completes:
        new_qty = amend.pop(K_QTY)
    if amend:
        out.append(order.apply(_E.AMEND, at, {**context, **amend}))
    if completes:
        full = {
            **context,
            K_QTY: new_qty,
            K_FILLED_QTY: str(order.filled_qty),
            K_FILLED_VALUE: str(order.filled_value),
        }
        out.append(order.apply(_E.FILL, at, full))


def on_exchange_update(
    order: Order, push: OrderUpdate | Execution, at: datetime | None = None
) -> list[OrderTransition]:
    """Apply one exchange push to ``order``; return the transitions it caused (``[]`` when it
    changes nothing: a duplicate, a stale push, a non-trade execution).

    Disorder it tolerates (``docs/state-machines.md`` lists them with examples):

    * duplicates: a second ``Filled`` (Bybit's cancel/fill race), a repeated ``execId``;
    * a fill or a cancel before the acknowledgement (or before the REST answer): ``acknowledge``
      is recorded first;
    * cumulative fields arriving out of order: quantities only move forward (``cumExecQty`` and
      the deduplicated execution sum; the larger wins);
    * ``PENDING_CANCEL`` then ``Filled``: the fill wins;
    * amendments (new qty/price) taken from any push at least as recent as the last one applied,
      including an execution's ``orderQty``/``orderPrice``.

    What it refuses (:class:`InvalidTransition`, nothing changed): a push that contradicts a
    terminal state (more fills after ``CANCELLED``, ``Filled`` after ``REJECTED``, any sign of
    life after ``FAILED``), fills beyond the quantity, a ``Rejected`` after the acknowledgement.
    Those need reconciliation, not a guess. :class:`ForeignUpdate` if the push is for another
    order, :class:`UnknownExchangeStatus` for a status word not in :data:`EXCHANGE_STATUS`.
    """
    with _Atomic(order):
        if isinstance(push, Execution):
            out = _on_execution(order, push, at)
            seen = push.exec_time
        else:
            out = _on_order_update(order, push, at)
            seen = push.updated_time
    order.exchange_updated_at = max(order.exchange_updated_at, seen)
    return out


def _on_order_update(order: Order, u: OrderUpdate, at: datetime | None) -> list[OrderTransition]:
    _check_identity(order, u.order_link_id, u.order_id, u.symbol)
    implied = EXCHANGE_STATUS.get(u.status)
    if implied is None:
        raise UnknownExchangeStatus(f"order {order.order_link_id}: orderStatus {u.status!r}")
    out: list[OrderTransition] = []
    context = {"source": "order", "exchange_status": u.status, K_EXCHANGE_TIME: str(u.updated_time)}
    if u.reject_reason:
        context["reject_reason"] = u.reject_reason
    if u.cancel_type:
        context["cancel_type"] = u.cancel_type
    state = order.state

    if state is _S.NEW:
        raise order._refuse(_E.ACKNOWLEDGE, f"a {u.status} push for an order never submitted")
    if state in TERMINAL_STATES:
        _check_terminal_consistent(order, implied, u.cum_exec_qty, u.status)
        return out  # a duplicate or a stale push: nothing new

    if implied is _S.REJECTED:
        # Legal only before the acknowledgement; the table refuses it afterwards.
        out.append(order.apply(_E.REJECT, at, {**context, K_REASON: u.reject_reason or "Rejected"}))
        return out

    if order.state in UNCONFIRMED_STATES:
        ack = dict(context)
        if u.order_id:
            ack[K_ORDER_ID] = u.order_id
        out.append(order.apply(_E.ACKNOWLEDGE, at, ack))

    if u.updated_time >= order.exchange_updated_at:
        _amend(order, u.qty, u.price, context, at, out)

    if u.cum_exec_qty > order.filled_qty:
        if u.cum_exec_value is None:
            raise order._refuse(
                _E.PARTIAL_FILL, "push has cumExecQty but neither cumExecValue nor avgPrice"
            )
        event = _E.FILL if u.cum_exec_qty == order.qty else _E.PARTIAL_FILL
        out.append(
            order.apply(
                event,
                at,
                {**context, K_FILLED_QTY: str(u.cum_exec_qty), K_FILLED_VALUE: str(u.cum_exec_value)},
            )
        )

    if implied is _S.FILLED and order.state is not _S.FILLED:
        raise order._refuse(
            _E.FILL, f"Filled push with cumExecQty {u.cum_exec_qty} below qty {order.qty}"
        )
    if implied is _S.CANCELLED and order.state is not _S.FILLED:
        reason = u.cancel_type or u.reject_reason or u.status
        out.append(order.apply(_E.CONFIRM_CANCEL, at, {**context, K_REASON: reason}))
    return out


def _check_terminal_consistent(
    order: Order, implied: OrderState, cum_qty: Decimal, status: str
) -> None:
    """A push for a finished order is harmless if it says nothing new; refuse it otherwise."""
    state = order.state
    if cum_qty > order.filled_qty:
        raise order._refuse(
            _E.FILL, f"{status} push reports {cum_qty} filled after {state.value} at {order.filled_qty}"
        )
    if state is _S.FAILED:
        raise order._refuse(_E.ACKNOWLEDGE, f"{status} push for an order given up as FAILED: reconcile")
    if implied in TERMINAL_STATES:
        if implied is not state:
            raise order._refuse(_E.FILL, f"{status} push contradicts {state.value}")
    elif state is _S.REJECTED:
        raise order._refuse(_E.ACKNOWLEDGE, f"{status} push for an order recorded as REJECTED")
    # FILLED/CANCELLED + an older live status: stale, ignore.


def _on_execution(order: Order, e: Execution, at: datetime | None) -> list[OrderTransition]:
    _check_identity(order, e.order_link_id, e.order_id, e.symbol)
    out: list[OrderTransition] = []
    if e.exec_type != TRADE_EXEC_TYPE or e.exec_id in order.exec_ids:
        return out  # funding/settlement rows are not fills of this order; a repeat is a no-op
    if e.side is not order.side:
        raise ForeignUpdate(
            f"{e.side.value} execution for {order.side.value} order {order.order_link_id}"
        )
    context = {"source": "execution", K_EXCHANGE_TIME: str(e.exec_time)}
    if order.state is _S.NEW:
        raise order._refuse(_E.ACKNOWLEDGE, "an execution for an order never submitted")
    if order.state in UNCONFIRMED_STATES:
        ack = dict(context)
        if e.order_id:
            ack[K_ORDER_ID] = e.order_id
        out.append(order.apply(_E.ACKNOWLEDGE, at, ack))
    if order.is_live and e.exec_time >= order.exchange_updated_at:
        _amend(order, e.order_qty, e.order_price, context, at, out)

    exec_meta = {
        **context,
        K_EXEC_ID: e.exec_id,
        K_EXEC_QTY: str(e.qty),
        K_EXEC_PRICE: str(e.price),
        K_EXEC_FEE: str(e.fee),
    }
    new_exec_qty = add(order.exec_qty, e.qty)
    if new_exec_qty > order.qty:
        raise order._refuse(_E.FILL, f"over-fill: executions sum to {new_exec_qty} > qty {order.qty}")
    if new_exec_qty > order.filled_qty:
        event = _E.FILL if new_exec_qty == order.qty else _E.PARTIAL_FILL
        exec_meta[K_FILLED_QTY] = str(new_exec_qty)
        exec_meta[K_FILLED_VALUE] = str(add(order.exec_value, e.value))
        out.append(order.apply(event, at, exec_meta))
    else:
        out.append(order.apply(_E.RECORD_EXECUTION, at, exec_meta))
    return out


# ---- REST answers (they race the pushes too) ---------------------------------------------------


def on_submit_accepted(
    order: Order, order_id: str = "", at: datetime | None = None
) -> list[OrderTransition]:
    """The create call answered retCode 0. ``confirm_submit`` if the order is still
    ``PENDING_SUBMIT``; a no-op when a push already moved it on (the answer lost the race), after
    checking the exchange order id agrees."""
    if order.state is _S.PENDING_SUBMIT:
        return [order.confirm_submit(order_id, at)]
    if order.state is _S.NEW:
        raise order._refuse(_E.CONFIRM_SUBMIT, "the order was never submitted")
    if order_id and order.exchange_order_id and order_id != order.exchange_order_id:
        raise ForeignUpdate(
            f"REST orderId {order_id} != {order.exchange_order_id} for {order.order_link_id}"
        )
    if order.state is _S.REJECTED or order.state is _S.FAILED:
        raise order._refuse(
            _E.CONFIRM_SUBMIT, f"exchange accepted an order recorded as {order.state.value}"
        )
    return []


def on_submit_rejected(order: Order, reason: str, at: datetime | None = None) -> list[OrderTransition]:
    """The create call answered a definite business reject. ``reject`` unless already rejected
    (a ``Rejected`` push won the race); anything else is a contradiction and raises."""
    if order.state is _S.REJECTED:
        return []
    return [order.reject(reason, at)]


__all__ = [
    "EXCHANGE_STATUS",
    "EXCHANGE_STATUS_NOTES",
    "LIVE_STATES",
    "NON_TERMINAL_STATES",
    "ORDER_RULES",
    "ORDER_TABLE",
    "TERMINAL_STATES",
    "UNCONFIRMED_STATES",
    "ForeignUpdate",
    "Order",
    "OrderEvent",
    "OrderState",
    "OrderTransition",
    "UnknownExchangeStatus",
    "on_exchange_update",
    "on_submit_accepted",
    "on_submit_rejected",
]
