"""The seam between the API and the bot: what every route needs, and nothing else.

The API layer (:mod:`pysrc.api.app`) talks to the running bot only through :class:`Backend`.
``BotRuntime`` implements it; the API tests run the same routes against a small in-memory
implementation (``tests/api/harness.py``). Keeping the seam this narrow is what lets the routes be
written, tested and documented before the runtime exists, and lets the runtime change its
insides without touching a route.

Rules every implementation follows
----------------------------------
* **Plain JSON-able values out.** Every method returns dicts/lists of ``str``, ``int``, ``float``,
  ``bool``, ``None`` (``Decimal`` is tolerated and rendered as its exact string). **Money and
  quantities are decimal strings** (``"0.001"``, ``"65000.5"``), never floats: a price that went
  through binary floating point is no longer the exchange's price. Floats are for scores, rates
  and latencies only. Times are Unix milliseconds (``*_ts``) or ISO-8601 UTC strings (``*_at``).
* **Decimals in.** Prices and quantities arrive as ``Decimal`` (the API has parsed and checked
  them: finite and positive). Symbols arrive upper-case and already match ``[A-Z0-9]{2,30}``.
* **Errors are the four exceptions below** (plus nothing else on purpose). The API maps them to
  404 / 409 / 422 / 503 in its error envelope; ``message`` is shown to the user, so it must not
  leak secrets. Any other exception is a bug and becomes a 500 whose message says nothing.
* **Trace id.** Every call runs inside :func:`pysrc.obs.log.trace` with the request's trace id,
  so ``current_trace_id()`` (and every structlog line) carries it; pass it on to what the call
  starts (orders, audit rows) so one request can be followed end to end.
* **Event loop.** Methods are called on the API's event loop (the runtime's loop: one process,
  one loop); they must not block it (no sync database or network I/O).
* **Audit.** The API calls :meth:`Backend.audit` after every mutating route with the
  authenticated user. The backend does not need to audit those calls again; it still audits
  what the bot does by itself (``actor="bot"``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

Json = dict[str, Any]

CHANNELS: tuple[str, ...] = ("market_data", "position_update", "signal", "alert")
"""Event channels of the WebSocket hub (``type`` of every event the backend publishes)."""

Channel = Literal["market_data", "position_update", "signal", "alert"]

EventCallback = Callable[[Mapping[str, Any]], None]
"""Called once per event with ``{"type": <channel>, "ts": <ms>, "symbol": <str | None>,
"data": {...}}``. Synchronous and cheap (it only enqueues); call it on the event loop (a call
from another thread is handed to the loop, slower)."""


# ---- errors ------------------------------------------------------------------------------------


class BackendError(Exception):
    """Base of the errors a backend may raise; ``code`` becomes the envelope's ``error.code``."""

    status: int = 500
    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class NotFound(BackendError):
    """The named thing does not exist (404): ``NotFound("order 123")``, ``NotFound("symbol
    XYZUSDT")``, ``NotFound("position BTCUSDT")`` (no open position), ``NotFound("strategy x")``."""

    status = 404
    code = "not_found"

    def __init__(self, what: str, message: str | None = None) -> None:
        super().__init__(message or f"{what} not found")
        self.what = what


class Conflict(BackendError):
    """The request is well formed but the bot's state refuses it now (409). Codes in use:
    ``kill_switch_engaged``, ``trading_stopped``, ``risk_rejected`` (message = the risk reason),
    ``idempotency_mismatch`` (a client order id reused with other parameters), ``order_final``
    (cancel/modify of a filled, rejected or failed order), ``order_pending`` (not acknowledged by
    the exchange yet; retry), ``position_closing``. Repeating an idempotent action (start while
    running, cancel of a cancelled order) is not a conflict: answer the current state."""

    status = 409
    code = "conflict"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code, field=field)


class Invalid(BackendError):
    """A value the API could not check alone is refused (422): ``field`` names it exactly as the
    client sent it (``"qty"``, ``"price"``, ``"max_positions"``, a strategy parameter's name).
    Raise it for ``RiskConfigError`` / ``ParameterError`` (their ``key``), a quantity off the
    instrument's step or below its minimum, a stop on the wrong side of the mark, an unknown symbol
    in a request body."""

    status = 422
    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class Unavailable(BackendError):
    """A component the answer needs is down or not ready (503): ``component`` is one of the
    :meth:`Backend.health` component names (``feed``, ``books``, ``database``, ``redis``,
    ``exchange``, ...). Example: the order book of a symbol is resyncing."""

    status = 503
    code = "unavailable"

    def __init__(self, component: str, message: str | None = None) -> None:
        super().__init__(message or f"{component} is unavailable")
        self.component = component


# ---- request values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A manual order, checked by the API: ``qty`` > 0; ``price`` > 0 and present exactly when
    ``order_type == "Limit"``; ``client_order_id`` None (the backend makes one) or 1-36 characters
    of ``[A-Za-z0-9_-]`` (Bybit's ``orderLinkId`` rule)."""

    symbol: str
    side: Literal["Buy", "Sell"]
    order_type: Literal["Limit", "Market"]
    qty: Decimal
    price: Decimal | None = None
    client_order_id: str | None = None

    def params(self) -> Json:
        """The request as JSON-able parameters (for the audit row and idempotency checks)."""
        return {
            "symbol": self.symbol,
            "side": self.side,
            "order_type": self.order_type,
            "qty": str(self.qty),
            "price": None if self.price is None else str(self.price),
            "client_order_id": self.client_order_id,
        }


@dataclass(frozen=True, slots=True)
class OrderChanges:
    """An amendment: at least one of ``qty`` / ``price`` (both > 0); None keeps the value."""

    qty: Decimal | None = None
    price: Decimal | None = None

    def params(self) -> Json:
        return {
            "qty": None if self.qty is None else str(self.qty),
            "price": None if self.price is None else str(self.price),
        }


@dataclass(frozen=True, slots=True)
class OrderFilters:
    """Filters of ``GET /api/trading/orders``; None = no filter. ``status`` is an
    :class:`pysrc.domain.OrderState` value (``"ACKNOWLEDGED"``...); ``active`` True = not in a
    terminal state, False = terminal only. Newest first, at most ``limit`` rows."""

    symbol: str | None = None
    side: Literal["Buy", "Sell"] | None = None
    status: str | None = None
    active: bool | None = None
    strategy: str | None = None
    limit: int = 100


# ---- the protocol ----------------------------------------------------------------------------


@runtime_checkable
class Backend(Protocol):
    """Everything the API needs from the running bot. Shapes below are the minimum each result
    has; a backend may add keys (the API passes them through unchanged).

    Shared shapes:

    * **order** (:func:`pysrc.api.shapes.order_view` builds it from a domain ``Order``):
      ``{"order_id": str | None, "client_order_id": str, "symbol", "side": "Buy"|"Sell",
      "order_type": "Limit"|"Market", "qty": dec, "price": dec | None, "status": OrderState value,
      "filled_qty": dec, "avg_fill_price": dec | None, "fees": dec, "reduce_only": bool,
      "strategy": str, "reason": str, "created_at": iso, "version": int}``
    * **position** (:func:`pysrc.api.shapes.position_view`): ``{"position_id", "symbol",
      "side", "status": PositionState value, "size": dec, "entry_price": dec | None,
      "mark_price": dec | None, "unrealised_pnl": dec, "realised_pnl": dec, "fees": dec,
      "stop_loss": dec | None, "take_profit": dec | None, "trailing": {...}, "strategy",
      "opened_at": iso | None, "version": int}``
    * **strategy**: a row of :meth:`pysrc.strategy.StrategyManager.status` (``name``,
      ``enabled``, ``disabled_reason``, ``cooldown_s``, ``parameters``, ``stats``).
    """

    # ---- bot ------------------------------------------------------------------------------

    async def status(self) -> Json:
        """``{"state": "starting"|"running"|"stopping"|"stopped", "trading": bool (new entries
        allowed), "mode": "paper"|"testnet"|"demo"|"live", "kill_switch": bool, "uptime_s":
        float, "symbols": int, "symbols_live": int, "open_orders": int, "open_positions": int,
        "signals": int, "version": str}``."""
        ...

    async def start_trading(self) -> Json:
        """Allow new entries (strategies trade, manual orders accepted); idempotent. Returns
        :meth:`status`. ``Conflict(code="kill_switch_engaged")`` while the kill switch is
        engaged (release it first)."""
        ...

    async def stop_trading(self) -> Json:
        """Stop new entries (strategies still analyse; open positions stay managed: stops and
        take-profits keep working); idempotent. Returns :meth:`status`."""
        ...

    async def get_config(self) -> Json:
        """The effective configuration (the four sections) with secrets redacted
        (:func:`pysrc.api.shapes.redact`)."""
        ...

    # ---- trading ----------------------------------------------------------------------------

    async def list_orders(self, filters: OrderFilters) -> list[Json]:
        """Orders matching ``filters``, newest first, at most ``filters.limit``."""
        ...

    async def place_order(self, req: NewOrder) -> Json:
        """Place a manual order; returns the **order**. Idempotent on ``client_order_id``: the
        same id with the same parameters returns the stored order (never a second one, also when
        two requests race); with other parameters ``Conflict(code="idempotency_mismatch")``.
        ``Conflict`` with ``kill_switch_engaged`` / ``trading_stopped`` / ``risk_rejected``;
        ``Invalid("symbol" | "qty" | "price", ...)`` for an unknown symbol or values off the
        instrument's rules. An exchange rejection is not an error: the order comes back with
        ``status == "REJECTED"`` and the ``reason``."""
        ...

    async def order(self, order_id: str) -> Json:
        """One **order** plus ``"history"``: its transitions oldest first, each
        :meth:`pysrc.domain.fsm.Transition.to_dict` (``version, from_state, to_state, event, at,
        metadata``);
        ``order_id`` is the exchange order id or the client order id. ``NotFound``."""
        ...

    async def cancel_order(self, order_id: str) -> Json:
        """Cancel; returns the **order** (``PENDING_CANCEL`` or ``CANCELLED``). Cancelling a
        cancelled order returns it unchanged. ``NotFound``; ``Conflict(code="order_final")`` for
        filled/rejected/failed; ``Conflict(code="order_pending")`` before acknowledgement."""
        ...

    async def modify_order(self, order_id: str, changes: OrderChanges) -> Json:
        """Amend qty and/or price of a live limit order; returns the **order**. ``NotFound``;
        ``Conflict(code="order_final")``; ``Invalid("price", ...)`` for a market order or a price
        off the tick; ``Invalid("qty", ...)`` below the filled quantity or off the step."""
        ...

    async def signals(self, limit: int, symbol: str | None = None) -> list[Json]:
        """The latest signals, newest first: :meth:`pysrc.strategy.Signal.to_dict` plus
        ``"decision": "approved"|"rejected"|"suppressed"``, ``"reason": str`` and
        ``"order_id": str | None`` (the client order id it led to)."""
        ...

    async def balance(self) -> Json:
        """``{"currency": "USDT", "equity": dec, "wallet_balance": dec, "available": dec,
        "unrealised_pnl": dec, "realised_pnl_today": dec, "day_pnl": dec}``."""
        ...

    async def risk_status(self) -> Json:
        """:meth:`pysrc.risk.RiskManager.status` of the current portfolio: **must** include
        ``"kill_switch": bool``; also ``kill_switch_reason``, ``day_pnl``, ``limits``,
        ``sizing``, ``exposure_usdt``, ``open_positions``, ``counts``."""
        ...

    async def execution_stats(self) -> Json:
        """``{"orders_placed": int, "orders_filled": int, "orders_cancelled": int,
        "orders_rejected": int, "orders_failed": int, "fill_ratio": float | None,
        "submit_latency_ms": {"p50": float | None, "p99": float | None}, "venue": str}``."""
        ...

    async def engage_kill_switch(self, actor: str, reason: str) -> Json:
        """Engage: cancel every active order, close every position at market, stop trading,
        send a critical alert; stays engaged until released. Idempotent (engaging again
        returns the current state). Returns :meth:`risk_status` plus ``"cancelled_orders":
        int`` and ``"closed_positions": int`` (what this call did)."""
        ...

    async def release_kill_switch(self, actor: str, reason: str) -> Json:
        """Release the latch (a person accepts the loss so far). Trading stays stopped until
        :meth:`start_trading`. Idempotent. Returns :meth:`risk_status`."""
        ...

    # ---- positions --------------------------------------------------------------------------

    async def positions(self) -> list[Json]:
        """Every open (``OPEN`` or ``CLOSING``) **position**."""
        ...

    async def position(self, symbol: str) -> Json:
        """The open **position** of ``symbol``; ``NotFound("position X")`` when flat."""
        ...

    async def update_tp(self, symbol: str, price: Decimal) -> Json:
        """Set the take-profit; returns the **position** plus ``"previous": dec | None``.
        ``NotFound``; ``Invalid("price", ...)`` on the wrong side of the mark or off the tick."""
        ...

    async def update_sl(self, symbol: str, price: Decimal) -> Json:
        """Set the stop-loss; as :meth:`update_tp`."""
        ...

    async def close_position(self, symbol: str) -> Json:
        """Close at market; returns ``{"position": position, "order": order}`` (the close
        order). ``NotFound``; ``Conflict(code="position_closing")`` when a close is in flight."""
        ...

    # ---- market -------------------------------------------------------------------------------

    async def symbols(self) -> list[Json]:
        """``[{"symbol", "usable": bool, "tick_size": dec, "qty_step": dec, "min_qty": dec,
        "min_notional": dec}]``, in subscription order."""
        ...

    async def ticker(self, symbol: str) -> Json:
        """``{"symbol", "ts", "bid": dec | None, "ask": dec | None, "last": dec | None, "mark":
        dec | None, "volume_24h": dec | None, "turnover_24h": dec | None, "change_24h": dec |
        None}``. ``NotFound`` (not subscribed); ``Unavailable("feed")`` before the first tick."""
        ...

    async def candles(self, symbol: str, interval: str, limit: int) -> list[Json]:
        """Oldest first: ``[{"start": ms, "open", "high", "low", "close", "volume", "turnover"}]``
        (decimal strings). ``interval`` is a Bybit interval (``1 3 5 15 30 60 120 240 360 720 D W
        M``, checked by the API); ``NotFound``; ``Unavailable("exchange")``."""
        ...

    async def orderbook(self, symbol: str, depth: int) -> Json:
        """``{"symbol", "ts", "update_id", "bids": [[price, size], ...], "asks": [...]}`` (best
        first, decimal strings). ``NotFound``; ``Unavailable("books")`` while not live."""
        ...

    async def market_metrics(self, symbol: str | None = None) -> Json:
        """Order-book metrics (imbalance, spread, walls, volumes: the native feature vector by
        name, missing values as None) and feed counters. ``symbol`` None: ``{"symbols": {symbol:
        {...}}, "totals": {...}}``; otherwise one symbol's dict. ``NotFound``."""
        ...

    # ---- strategies -------------------------------------------------------------------------

    async def strategies(self) -> list[Json]:
        """Every registered **strategy**."""
        ...

    async def strategy(self, name: str) -> Json:
        """One **strategy** plus ``"parameter_schema"``
        (:meth:`pysrc.strategy.Strategy.describe_parameters`). ``NotFound``."""
        ...

    async def update_strategy(self, name: str, params: Mapping[str, Any]) -> Json:
        """Re-parameterise all or nothing; returns the **strategy**. ``NotFound``;
        ``Invalid(<parameter name>, ...)`` from ``ParameterError``."""
        ...

    async def enable_strategy(self, name: str) -> Json:
        """Returns the **strategy**; idempotent. ``NotFound``."""
        ...

    async def disable_strategy(self, name: str) -> Json:
        """Returns the **strategy**; idempotent. ``NotFound``."""
        ...

    # ---- configuration ----------------------------------------------------------------------

    async def get_sizing(self) -> Json:
        """:meth:`pysrc.risk.SizingConfig.to_dict`."""
        ...

    async def put_sizing(self, values: Mapping[str, Any]) -> Json:
        """Validated all-or-nothing update of the given keys (others keep their value), applied
        at once and persisted; returns the new :meth:`get_sizing`. ``Invalid(key, ...)`` from
        ``RiskConfigError``."""
        ...

    async def get_risk(self) -> Json:
        """:meth:`pysrc.risk.RiskLimits.to_dict`."""
        ...

    async def put_risk(self, values: Mapping[str, Any]) -> Json:
        """As :meth:`put_sizing` for the risk limits."""
        ...

    # ---- health, metrics, audit, events -------------------------------------------------------

    async def health(self) -> Json:
        """``{"status": "ok"|"degraded"|"down", "components": {name: {"status":
        "ok"|"degraded"|"down", "detail": str, ...}}}`` with at least the components ``feed``,
        ``books``, ``database``, ``redis`` and ``exchange`` (the exchange's entry carries
        ``"breakers": {endpoint_group: "closed"|"open"|"half_open"}``). ``down`` makes
        ``GET /health`` answer 503. Must be cheap (called by probes every few seconds)."""
        ...

    async def metrics_text(self) -> str:
        """The bot's Prometheus metrics in text exposition format, **excluding** the registry
        given to :func:`pysrc.api.app.create_app` (the app renders that one itself; render a
        shared registry in one place only, or the families appear twice)."""
        ...

    async def audit(
        self,
        actor: str,
        action: str,
        params: Mapping[str, Any],
        *,
        ok: bool,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        """Append one audit row: who (``actor``: the authenticated user), what (``action``: the
        route's action name, e.g. ``order.place``, ``kill_switch.engage``), the request's
        ``params`` (never credentials), the outcome (``ok``, and ``result`` or ``error``) and
        the request's ``trace_id``. Should not raise; if it does, the API logs the failure and
        still answers with the action's result (the action has happened)."""
        ...

    def subscribe_events(self, callback: EventCallback) -> Callable[[], None]:
        """Register ``callback`` for every event (see :data:`EventCallback` for the shape; one
        of :data:`CHANNELS`); returns the function that unregisters it. ``data`` of each channel:
        ``market_data`` a ticker/top-of-book update (:meth:`ticker` shape, plus metrics if any);
        ``position_update`` a **position** (also when it closes); ``signal`` a
        :meth:`signals` row; ``alert`` ``{"level": "info"|"warning"|"critical", "event": str,
        "message": str}``."""
        ...


def missing_methods(obj: object) -> list[str]:
    """Names of :class:`Backend` members ``obj`` lacks or implements with the wrong kind (async vs
    sync): ``isinstance(obj, Backend)`` checks presence only. For the runtime's own tests."""
    problems: list[str] = []
    for name, member in inspect.getmembers(Backend):
        if name.startswith("_") or not callable(member):
            continue
        got = getattr(obj, name, None)
        if got is None or not callable(got):
            problems.append(name)
        elif inspect.iscoroutinefunction(member) != inspect.iscoroutinefunction(got):
            problems.append(f"{name} ({'async' if inspect.iscoroutinefunction(member) else 'sync'} expected)")
    return problems


__all__ = [
    "CHANNELS",
    "Backend",
    "BackendError",
    "Channel",
    "Conflict",
    "EventCallback",
    "Invalid",
    "Json",
    "NewOrder",
    "NotFound",
    "OrderChanges",
    "OrderFilters",
    "Unavailable",
    "missing_methods",
]
