"""The FastAPI application: every route of issue 6 over a :class:`~pysrc.api.backend.Backend`.

``create_app(backend, auth, cors_origins=..., rate_limit_per_minute=..., metrics=...)`` builds
the app; the runtime serves it with uvicorn (``access_log=False``: the request middleware logs
each request itself, with its trace id). OpenAPI is at ``/openapi.json``, the interactive docs at
``/docs``; ``docs/api.md`` is the narrative reference.

The routes are thin on purpose: check the input (pydantic models, path and query constraints),
call one backend method inside the request's trace, audit it when it changes anything, and
render the result with :func:`pysrc.api.shapes.dumps` (exact decimal strings, never floats; the
FastAPI encoder would turn a ``Decimal`` into a float). Everything else (the envelope, trace
ids, rate limit, metrics, request log) is done once, around them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from pysrc.api.audit import audited, write_audit
from pysrc.api.auth import AuthError, AuthStore
from pysrc.api.backend import Backend, NewOrder, OrderChanges, OrderFilters
from pysrc.api.errors import (
    ERROR_RESPONSES,
    ApiError,
    ErrorEnvelope,
    envelope,
    install_error_handlers,
)
from pysrc.api.middleware import USER_SCOPE_KEY, ApiMetrics, RequestMiddleware
from pysrc.api.models import (
    STRATEGY_PATTERN,
    SYMBOL_PATTERN,
    ChangePasswordRequest,
    LoginRequest,
    ModifyOrderRequest,
    PlaceOrderRequest,
    PriceRequest,
    ReasonRequest,
    TokenResponse,
    VerifyResponse,
)
from pysrc.api.ratelimit import TokenBuckets
from pysrc.api.shapes import dumps
from pysrc.api.ws import Hub
from pysrc.obs.log import get_logger
from pysrc.obs.metrics import CONTENT_TYPE, Registry

API_VERSION = "1"
CANDLE_INTERVALS = ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M")
ORDER_STATES = (
    "NEW",
    "PENDING_SUBMIT",
    "SUBMITTED",
    "ACKNOWLEDGED",
    "PARTIALLY_FILLED",
    "FILLED",
    "PENDING_CANCEL",
    "CANCELLED",
    "REJECTED",
    "FAILED",
)

log = get_logger("pysrc.api")

Symbol = Annotated[str, Path(pattern=SYMBOL_PATTERN, description="e.g. BTCUSDT", examples=["BTCUSDT"])]
StrategyName = Annotated[str, Path(pattern=STRATEGY_PATTERN, examples=["orderbook_scalper"])]
OrderId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="the exchange order id or the client order id")
]
Values = Annotated[dict[str, Any], Body(description="the keys to change (others keep their value)")]


def json(data: Any, status: int = 200) -> Response:
    """A JSON response rendered by :func:`pysrc.api.shapes.dumps`."""
    return Response(dumps(data), status_code=status, media_type="application/json")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated user of a request (from the token's claims)."""

    username: str
    issued_at: int
    expires_at: int


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <access_token>` from /api/auth/login")
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def current_user(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The request's user from its bearer token; 401 (never saying more) otherwise."""
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise ApiError(401, "missing bearer token", headers=_UNAUTHORIZED)
    auth: AuthStore = request.app.state.auth
    try:
        claims = auth.verify(creds.credentials)
    except AuthError:
        raise ApiError(401, "invalid or expired token", headers=_UNAUTHORIZED) from None
    request.scope[USER_SCOPE_KEY] = claims["sub"]
    return Principal(str(claims["sub"]), int(claims["iat"]), int(claims["exp"]))


User = Annotated[Principal, Depends(current_user)]


def create_app(
    backend: Backend,
    auth: AuthStore,
    *,
    cors_origins: Sequence[str] = (),
    rate_limit_per_minute: int = 1200,
    metrics: Registry | None = None,
    rate_limit_burst: int | None = None,
    ws_queue_size: int = 1000,
    ws_max_connections: int = 100,
    title: str = "Bybit bot API",
) -> FastAPI:
    """Build the API over ``backend``.

    ``metrics`` is the registry the API records its own metrics in (request counts, response
    time histogram per route, rate-limit refusals, WebSocket connections); a fresh one when None.
    ``GET /metrics`` renders it followed by :meth:`Backend.metrics_text`. ``cors_origins`` empty
    = no CORS headers (same-origin clients and scripts only). The rate limit is per client
    address, ``rate_limit_per_minute`` with bursts of ``rate_limit_burst`` (default: ten
    seconds' worth, see :func:`pysrc.api.ratelimit.default_burst`).
    """
    registry = metrics if metrics is not None else Registry()
    api_metrics = ApiMetrics(registry)
    limiter = TokenBuckets(rate_limit_per_minute, rate_limit_burst)
    hub = Hub(backend, auth, limiter, api_metrics, queue_size=ws_queue_size, max_connections=ws_max_connections)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        hub.start()
        try:
            yield
        finally:
            await hub.close()

    app = FastAPI(
        title=title,
        version=API_VERSION,
        description="REST and WebSocket API of the Bybit trading bot. Narrative reference: docs/api.md.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.backend = backend
    app.state.auth = auth
    app.state.hub = hub
    app.state.limiter = limiter
    app.state.api_metrics = api_metrics
    app.state.registry = registry
    install_error_handlers(app)
    app.add_middleware(RequestMiddleware, limiter=limiter, metrics=api_metrics)
    if cors_origins:
        # Outside the rate limiter, so a browser can read a 429 too. Tokens travel in a header,
        # not cookies: no credentials mode.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Trace-Id"],
            expose_headers=["X-Trace-Id", "Retry-After"],
            max_age=600,
        )

    async def act(user: Principal, action: str, params: Mapping[str, Any], call: Any) -> Response:
        return json(await audited(backend, user.username, action, params, call))

    # ---- health and metrics (no auth) ---------------------------------------------------------

    @app.get("/health", tags=["health"], summary="Component health (no auth)")
    async def health() -> Response:
        """``{"status": "ok"|"degraded"|"down", "components": {...}}``: feed, books, database,
        Redis, exchange (with breaker states). 503 when down, with the error envelope added."""
        try:
            body = dict(await backend.health())
        except Exception:
            log.exception("health_failed")
            body = {"status": "down", "components": {}}
        if body.get("status") == "down":
            body.update(envelope("unavailable", "the bot is down; see components"))
            return json(body, 503)
        return json(body)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics (no auth)")
    async def prometheus() -> Response:
        text = registry.render()
        try:
            text += await backend.metrics_text()
        except Exception as exc:
            log.exception("metrics_text_failed")
            text += f"# backend metrics unavailable: {type(exc).__name__}\n"
        return Response(text, media_type=CONTENT_TYPE)

    # ---- auth -------------------------------------------------------------------------------

    auth_router = APIRouter(prefix="/api/auth", tags=["auth"], responses=ERROR_RESPONSES)

    @auth_router.post("/login", response_model=TokenResponse, summary="Log in; returns a bearer token")
    async def login(body: LoginRequest) -> Response:
        """Wrong username or password: 401 ``invalid username or password`` (never which)."""
        try:
            # scrypt is ~50 ms of CPU on purpose: off the event loop.
            token = await asyncio.to_thread(auth.login, body.username, body.password)
        except AuthError:
            log.warning("api_login_failed", username=body.username)
            raise ApiError(401, "invalid username or password", code="invalid_credentials") from None
        return json({"access_token": token, "token_type": "bearer", "expires_in": int(auth.token_ttl_s)})

    @auth_router.post(
        "/change-password",
        response_model=TokenResponse,
        summary="Change the password; every older token stops working",
    )
    async def change_password(body: ChangePasswordRequest, user: User) -> Response:
        """Returns a fresh token (the one used for this call is invalid afterwards)."""
        try:
            await asyncio.to_thread(auth.change_password, user.username, body.old_password, body.new_password)
        except AuthError:
            await write_audit(backend, user.username, "auth.change_password", {}, ok=False, error="invalid credentials")
            raise ApiError(401, "invalid username or password", code="invalid_credentials") from None
        except ValueError as exc:
            raise ApiError(422, f"new_password: {exc}", field="new_password") from None
        await write_audit(backend, user.username, "auth.change_password", {}, ok=True)
        token = auth.issue(auth.users[user.username])
        return json({"access_token": token, "token_type": "bearer", "expires_in": int(auth.token_ttl_s)})

    @auth_router.get("/verify", response_model=VerifyResponse, summary="Check a token")
    async def verify(user: User) -> Response:
        return json(
            {"valid": True, "username": user.username, "issued_at": user.issued_at, "expires_at": user.expires_at}
        )

    app.include_router(auth_router)

    # Every other /api route requires a token (the dependency also documents the scheme).
    api = APIRouter(prefix="/api", dependencies=[Depends(current_user)], responses=ERROR_RESPONSES)

    # ---- bot --------------------------------------------------------------------------------

    @api.get("/bot/status", tags=["bot"], summary="Bot state, mode, counters")
    async def bot_status() -> Response:
        return json(await backend.status())

    @api.post("/bot/start", tags=["bot"], summary="Allow new entries (409 while the kill switch is engaged)")
    async def bot_start(user: User) -> Response:
        return await act(user, "bot.start", {}, backend.start_trading)

    @api.post("/bot/stop", tags=["bot"], summary="Stop new entries; open positions stay managed")
    async def bot_stop(user: User) -> Response:
        return await act(user, "bot.stop", {}, backend.stop_trading)

    @api.get("/bot/config", tags=["bot"], summary="Effective configuration, secrets redacted")
    async def bot_config() -> Response:
        return json(await backend.get_config())

    # ---- trading ----------------------------------------------------------------------------

    @api.get("/trading/orders", tags=["trading"], summary="List orders, newest first")
    async def list_orders(
        symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN)] = None,
        side: Literal["Buy", "Sell"] | None = None,
        status: Annotated[Literal[ORDER_STATES] | None, Query(description="an order state")] = None,  # type: ignore[valid-type]
        active: Annotated[bool | None, Query(description="true: not terminal; false: terminal only")] = None,
        strategy: Annotated[str | None, Query(pattern=STRATEGY_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        filters = OrderFilters(symbol=symbol, side=side, status=status, active=active, strategy=strategy, limit=limit)
        return json(await backend.list_orders(filters))

    @api.post(
        "/trading/orders",
        tags=["trading"],
        summary="Place an order (idempotent on client_order_id)",
        responses={409: {"model": ErrorEnvelope, "description": "kill switch, trading stopped, risk"}},
    )
    async def place_order(body: PlaceOrderRequest, user: User) -> Response:
        """Returns the order (``order_id``, ``client_order_id``, ``status``...). The same
        ``client_order_id`` with the same parameters returns the same order, never a second
        one; with different parameters it is a 409 ``idempotency_mismatch``."""
        req = NewOrder(
            symbol=body.symbol,
            side=body.side,
            order_type=body.order_type,
            qty=body.qty,
            price=body.price,
            client_order_id=body.client_order_id,
        )
        return await act(user, "order.place", req.params(), lambda: backend.place_order(req))

    @api.get("/trading/orders/{order_id}", tags=["trading"], summary="One order with its history")
    async def get_order(order_id: OrderId) -> Response:
        return json(await backend.order(order_id))

    @api.delete("/trading/orders/{order_id}", tags=["trading"], summary="Cancel an order")
    async def cancel_order(order_id: OrderId, user: User) -> Response:
        return await act(user, "order.cancel", {"order_id": order_id}, lambda: backend.cancel_order(order_id))

    @api.patch("/trading/orders/{order_id}", tags=["trading"], summary="Amend qty and/or price of a live limit order")
    async def modify_order(order_id: OrderId, body: ModifyOrderRequest, user: User) -> Response:
        changes = OrderChanges(qty=body.qty, price=body.price)
        params = {"order_id": order_id, **changes.params()}
        return await act(user, "order.modify", params, lambda: backend.modify_order(order_id, changes))

    @api.get("/trading/signals", tags=["trading"], summary="Latest signals with their risk decision")
    async def signals(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN)] = None,
    ) -> Response:
        return json(await backend.signals(limit, symbol))

    @api.get("/trading/balance", tags=["trading"], summary="Wallet balance and PnL")
    async def balance() -> Response:
        return json(await backend.balance())

    @api.get("/trading/risk-status", tags=["trading"], summary="Risk status, including kill_switch")
    async def risk_status() -> Response:
        return json(await backend.risk_status())

    @api.get("/trading/execution-stats", tags=["trading"], summary="Execution statistics")
    async def execution_stats() -> Response:
        return json(await backend.execution_stats())

    @api.post(
        "/trading/kill-switch/engage",
        tags=["trading"],
        summary="Cancel all orders, close all positions, stop trading until released",
    )
    async def kill_engage(user: User, body: ReasonRequest | None = None) -> Response:
        reason = (body.reason if body else "") or f"engaged by {user.username} via the API"
        return await act(
            user, "kill_switch.engage", {"reason": reason}, lambda: backend.engage_kill_switch(user.username, reason)
        )

    @api.post("/trading/kill-switch/release", tags=["trading"], summary="Release the kill switch (trading stays stopped)")
    async def kill_release(user: User, body: ReasonRequest | None = None) -> Response:
        reason = (body.reason if body else "") or f"released by {user.username} via the API"
        return await act(
            user, "kill_switch.release", {"reason": reason}, lambda: backend.release_kill_switch(user.username, reason)
        )

    # ---- positions --------------------------------------------------------------------------

    @api.get("/positions", tags=["positions"], summary="Open positions")
    async def positions() -> Response:
        return json(await backend.positions())

    @api.get("/positions/{symbol}", tags=["positions"], summary="The open position of a symbol")
    async def position(symbol: Symbol) -> Response:
        return json(await backend.position(symbol))

    @api.put("/positions/{symbol}/tp", tags=["positions"], summary="Set the take-profit")
    async def update_tp(symbol: Symbol, body: PriceRequest, user: User) -> Response:
        params = {"symbol": symbol, "price": str(body.price)}
        return await act(user, "position.take_profit", params, lambda: backend.update_tp(symbol, body.price))

    @api.put("/positions/{symbol}/sl", tags=["positions"], summary="Set the stop-loss")
    async def update_sl(symbol: Symbol, body: PriceRequest, user: User) -> Response:
        params = {"symbol": symbol, "price": str(body.price)}
        return await act(user, "position.stop_loss", params, lambda: backend.update_sl(symbol, body.price))

    @api.post("/positions/{symbol}/close", tags=["positions"], summary="Close at market")
    async def close_position(symbol: Symbol, user: User) -> Response:
        return await act(user, "position.close", {"symbol": symbol}, lambda: backend.close_position(symbol))

    # ---- market -----------------------------------------------------------------------------

    @api.get("/market/symbols", tags=["market"], summary="Subscribed symbols and their trading rules")
    async def symbols() -> Response:
        return json(await backend.symbols())

    @api.get("/market/ticker/{symbol}", tags=["market"], summary="Ticker")
    async def ticker(symbol: Symbol) -> Response:
        return json(await backend.ticker(symbol))

    @api.get("/market/candles/{symbol}", tags=["market"], summary="Candles, oldest first")
    async def candles(
        symbol: Symbol,
        interval: Annotated[Literal[CANDLE_INTERVALS], Query(description="Bybit interval")] = "1",  # type: ignore[valid-type]
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> Response:
        return json(await backend.candles(symbol, interval, limit))

    @api.get("/market/orderbook/{symbol}", tags=["market"], summary="Order book levels, best first")
    async def orderbook(symbol: Symbol, depth: Annotated[int, Query(ge=1, le=1000)] = 50) -> Response:
        return json(await backend.orderbook(symbol, depth))

    @api.get("/market/metrics", tags=["market"], summary="Order-book metrics of every symbol")
    async def metrics_all() -> Response:
        return json(await backend.market_metrics(None))

    @api.get("/market/metrics/{symbol}", tags=["market"], summary="Order-book metrics of one symbol")
    async def metrics_one(symbol: Symbol) -> Response:
        return json(await backend.market_metrics(symbol))

    # ---- strategies -------------------------------------------------------------------------

    @api.get("/strategies", tags=["strategies"], summary="Registered strategies")
    async def strategies() -> Response:
        return json(await backend.strategies())

    @api.get("/strategies/{name}", tags=["strategies"], summary="One strategy with its parameter schema")
    async def strategy(name: StrategyName) -> Response:
        return json(await backend.strategy(name))

    @api.put("/strategies/{name}/params", tags=["strategies"], summary="Update parameters (all or nothing)")
    async def update_strategy(name: StrategyName, values: Values, user: User) -> Response:
        _need_values(values)
        params = {"name": name, "params": values}
        return await act(user, "strategy.params", params, lambda: backend.update_strategy(name, values))

    @api.post("/strategies/{name}/enable", tags=["strategies"], summary="Enable")
    async def enable_strategy(name: StrategyName, user: User) -> Response:
        return await act(user, "strategy.enable", {"name": name}, lambda: backend.enable_strategy(name))

    @api.post("/strategies/{name}/disable", tags=["strategies"], summary="Disable")
    async def disable_strategy(name: StrategyName, user: User) -> Response:
        return await act(user, "strategy.disable", {"name": name}, lambda: backend.disable_strategy(name))

    # ---- configuration ----------------------------------------------------------------------

    @api.get("/config/sizing", tags=["config"], summary="Position sizing settings")
    async def get_sizing() -> Response:
        return json(await backend.get_sizing())

    @api.put("/config/sizing", tags=["config"], summary="Update sizing settings (validated, all or nothing)")
    async def put_sizing(values: Values, user: User) -> Response:
        _need_values(values)
        return await act(user, "config.sizing", values, lambda: backend.put_sizing(values))

    @api.get("/config/risk", tags=["config"], summary="Risk limits")
    async def get_risk() -> Response:
        return json(await backend.get_risk())

    @api.put("/config/risk", tags=["config"], summary="Update risk limits (validated, all or nothing)")
    async def put_risk(values: Values, user: User) -> Response:
        _need_values(values)
        return await act(user, "config.risk", values, lambda: backend.put_risk(values))

    app.include_router(api)

    # ---- WebSocket ----------------------------------------------------------------------------

    @app.websocket("/ws")
    async def websocket(ws: WebSocket) -> None:
        """``/ws?token=<access_token>``; protocol in :mod:`pysrc.api.ws` and docs/api.md."""
        await hub.handle(ws)

    return app


def _need_values(values: Mapping[str, Any]) -> None:
    if not values:
        raise ApiError(422, "body: nothing to change; give at least one key", field="body")


def create_app_from_config(
    config: Any, backend: Backend, auth: AuthStore, *, metrics: Registry | None = None
) -> FastAPI:
    """:func:`create_app` with ``settings.api.cors_origins`` and ``rate_limit_per_minute`` from a
    :class:`pysrc.config.Config` (the token lifetime, ``token_ttl_minutes``, belongs to the
    ``AuthStore``: ``AuthStore(data_dir, token_ttl_s=60 * minutes)``)."""
    return create_app(
        backend,
        auth,
        cors_origins=list(config["settings.api.cors_origins"]),
        rate_limit_per_minute=int(config["settings.api.rate_limit_per_minute"]),
        metrics=metrics,
    )


__all__ = ["API_VERSION", "CANDLE_INTERVALS", "Principal", "create_app", "create_app_from_config"]
