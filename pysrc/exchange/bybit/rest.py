"""Asyncio Bybit v5 REST client on one aiohttp session.

Every call goes through, in order:

1. the IP-ban gate (after an HTTP 403 every call fails fast with :class:`IpBannedError`);
2. the circuit breaker of the endpoint's group (market / order / position / account);
3. the native token buckets: the endpoint's per-UID bucket (per category for trade endpoints)
   and the IP bucket; waiting for quota awaits on the loop, never blocks it;
4. signing of the exact bytes sent (query string for GET, the JSON body for POST) with a
   timestamp corrected by the measured server clock offset;
5. the response: ``X-Bapi-Limit-*`` re-sync, orjson parse, typed errors;
6. the retry policy (:mod:`pysrc.exchange.retry`): reads are retried on transient failures,
   writes only when the answer proves nothing happened (10002 after a clock re-sync, 10006 after
   the window reset, "try later" codes). A write with an unknown outcome is reconciled instead:
   order create by an ``orderLinkId`` lookup, cancel by an idempotent resend, amend by comparing
   the order's current values.

Numbers that go to the exchange are ``Decimal`` or ``str``; a float raises ``TypeError``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson
from yarl import URL

from pysrc.exchange.breaker import BreakerBoard, BreakerOpenError, CircuitBreaker
from pysrc.exchange.bybit import endpoints as ep
from pysrc.exchange.bybit.clock import ClockSample, ServerClock
from pysrc.exchange.bybit.endpoints import Endpoint, EndpointGroup
from pysrc.exchange.bybit.errors import (
    BybitApiError,
    BybitHttpError,
    IpBannedError,
    OrderStateUnknown,
    RateLimitWaitError,
    TransportError,
)
from pysrc.exchange.bybit.orders import (
    AmendResult,
    AmendStatus,
    CancelResult,
    CancelStatus,
    CreateStatus,
    PlaceOrderResult,
    check_order_link_id,
    new_order_link_id,
)
from pysrc.exchange.bybit.ratelimit import RestRateLimiter
from pysrc.exchange.bybit.signing import (
    DEFAULT_RECV_WINDOW_MS,
    build_query,
    normalise_body,
    rest_headers,
)
from pysrc.exchange.errors import ExchangeError, RetryClass
from pysrc.exchange.instruments import Instrument, InstrumentCache
from pysrc.exchange.metrics import EndpointMetrics, Metrics
from pysrc.exchange.retry import RetryAction, RetryPolicy

log = logging.getLogger(__name__)

Json = dict[str, Any]
Num = Decimal | str | int

_OPEN_STATUSES = frozenset({"New", "PartiallyFilled", "Untriggered"})
_MAX_PAGES = 200


class BybitRest:
    """Bybit v5 REST over asyncio. Use as ``async with BybitRest(url, key, secret) as rest``.

    ``base_url`` is any host speaking Bybit v5 (see :mod:`pysrc.exchange.bybit.environments`, or
    ``SimExchange.rest_url``). Public market endpoints work without keys.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        api_secret: str | None = None,
        *,
        recv_window: int = DEFAULT_RECV_WINDOW_MS,
        category: str = "linear",
        timeout: float = 10.0,
        rate_limit_wait: float = 30.0,
        limiter: RestRateLimiter | None = None,
        breakers: BreakerBoard | None = None,
        retry: RetryPolicy | None = None,
        clock: ServerClock | None = None,
        metrics: Metrics | None = None,
        session: aiohttp.ClientSession | None = None,
        sync_clock_on_start: bool = True,
        clock_max_age: float = 900.0,
        lookup_attempts: int = 3,
    ) -> None:
        if (api_key is None) != (api_secret is None):
            raise ValueError("api_key and api_secret go together")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._api_secret = api_secret
        self.recv_window = recv_window
        self.category = category
        self.timeout = timeout
        self.rate_limit_wait = rate_limit_wait
        self.limiter = limiter or RestRateLimiter()
        self.breakers = breakers or BreakerBoard([g.value for g in EndpointGroup])
        self.retry = retry or RetryPolicy()
        self.clock = clock or ServerClock()
        self.metrics = metrics or Metrics()
        self._session = session
        self._owns_session = session is None
        self.sync_clock_on_start = sync_clock_on_start
        self.clock_max_age = clock_max_age
        self.lookup_attempts = lookup_attempts
        self._clock_lock = asyncio.Lock()
        self._last_clock_sync: float | None = None
        self._closed = False

    # ---- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        self._ensure_session()
        if self.sync_clock_on_start and self.api_key is not None:
            await self.sync_clock()

    async def close(self) -> None:
        self._closed = True
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("BybitRest is closed")
        if self._session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, ttl_dns_cache=300),
                headers={"Accept": "application/json", "User-Agent": "pysrc-bybit/1"},
            )
            # aiohttp silently resends a GET once when a kept-alive connection drops; that extra
            # request would bypass the rate limiter and the metrics. Our own retry policy decides.
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
            self._session = session
        return self._session

    @property
    def signed(self) -> bool:
        return self.api_key is not None

    # ---- clock ----------------------------------------------------------------------------------
    async def sync_clock(self, *, unless_since: float | None = None) -> ClockSample | None:
        """Measure the server clock offset against ``/v5/market/time`` (round-trip midpoint).

        ``unless_since`` (a ``time.monotonic()`` reading): skip if a measurement finished after it,
        so a burst of requests all answered 10002 triggers one re-measurement, not one each."""
        async with self._clock_lock:
            if unless_since is not None and self._last_clock_sync is not None and self._last_clock_sync >= unless_since:
                return self.clock.sample
            before = self.clock.local_ms()
            env = await self._request(ep.SERVER_TIME, {})
            after = self.clock.local_ms()
            server_ms = _server_ms(env)
            sample = self.clock.record(before, after, server_ms)
            self._last_clock_sync = time.monotonic()
            self.metrics.incr("clock_syncs")
            log.debug("server clock offset %.1f ms (rtt %.1f ms)", sample.offset_ms, sample.rtt_ms)
            return sample

    async def _maybe_sync_clock(self) -> None:
        stale = self._last_clock_sync is None or time.monotonic() - self._last_clock_sync > self.clock_max_age
        if stale and not self._clock_lock.locked():
            await self.sync_clock()

    # ---- the request pipeline -------------------------------------------------------------------
    async def _request(
        self,
        endpoint: Endpoint,
        params: Mapping[str, Any],
        *,
        accept_codes: frozenset[int] = frozenset(),
        idempotent: bool | None = None,
    ) -> Json:
        """Send with retries per the policy; returns the envelope (``retCode`` 0 or accepted)."""
        safe_to_resend = endpoint.idempotent if idempotent is None else idempotent
        if endpoint.signed:
            if not self.signed:
                raise PermissionError(f"{endpoint.path} needs api_key/api_secret")
            if endpoint is not ep.SERVER_TIME:
                await self._maybe_sync_clock()
        attempt = 0
        resyncs = 0
        last_error: ExchangeError | None = None
        while True:
            sent_at = time.monotonic()
            try:
                return await self._send_once(endpoint, params, accept_codes)
            except BreakerOpenError as exc:
                if last_error is not None:
                    # the breaker opened during our own retries: keep the real failure as cause
                    raise exc from last_error
                raise
            except ExchangeError as exc:
                last_error = exc
                decision = self.retry.decide(
                    exc, idempotent=safe_to_resend, attempt=attempt, clock_resyncs=resyncs
                )
                if decision.action in (RetryAction.RAISE, RetryAction.RECONCILE):
                    raise
                self.metrics.incr("retries")
                if decision.action is RetryAction.RESYNC_CLOCK:
                    resyncs += 1
                    self.metrics.incr("clock_resyncs_on_10002")
                    await self.sync_clock(unless_since=sent_at)
                elif decision.action is RetryAction.WAIT_RATE_LIMIT:
                    self.metrics.incr("rate_limit_retries")
                    if self.limiter.bucket_for(endpoint, _category(params)) is None:
                        # no local bucket to hold (unexpected 10006 on a market endpoint): wait
                        # for the reset the exchange announced, bounded
                        await asyncio.sleep(_reset_wait(exc, self.clock.now_ms(), decision.delay))
                    # otherwise the limiter holds the endpoint's bucket until the reset
                else:
                    await asyncio.sleep(decision.delay)
                attempt += 1

    async def _send_once(self, endpoint: Endpoint, params: Mapping[str, Any], accept_codes: frozenset[int]) -> Json:
        key = f"{endpoint.method} {endpoint.path}"
        stats = self.metrics.endpoint(key)
        breaker = self.breakers[endpoint.group.value]
        category = _category(params)
        try:
            self.limiter.check_ban(endpoint.path, endpoint.method)
            breaker.acquire()
        except (IpBannedError, BreakerOpenError) as exc:
            stats.refused(type(exc).__name__)
            raise
        try:
            await self.limiter.acquire(endpoint, category, timeout=self.rate_limit_wait)
        except (IpBannedError, RateLimitWaitError) as exc:
            breaker.release()
            stats.refused(type(exc).__name__)
            raise
        except BaseException:
            breaker.release()
            raise

        try:
            # signed after the quota wait, so the timestamp is fresh when the request leaves
            url, body, headers = self._build(endpoint, params)
            session = self._ensure_session()
        except BaseException:
            breaker.release()
            raise
        started = time.perf_counter()
        try:
            async with session.request(
                endpoint.method,
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                resp_headers = resp.headers
        except TimeoutError as exc:
            timeout_err = TransportError(endpoint.path, exc, method=endpoint.method, timeout=True)
            raise self._failure(breaker, stats, started, timeout_err) from exc
        except aiohttp.ClientError as exc:
            raise self._failure(breaker, stats, started, TransportError(endpoint.path, exc, method=endpoint.method)) from exc
        except BaseException:  # cancelled (or a bug): no verdict on the service, free the probe slot
            breaker.release()
            raise
        latency = time.perf_counter() - started

        if status == 403:
            length = self.limiter.ban(_retry_after(resp_headers))
            breaker.release()
            stats.observe(latency, "http_403")
            raise IpBannedError(endpoint.path, length, method=endpoint.method, body=raw)
        if status != 200:
            err: ExchangeError = BybitHttpError(status, endpoint.path, raw, method=endpoint.method)
            if status >= 500 or status == 429:
                raise self._failure(breaker, stats, started, err, f"http_{status}", latency)
            breaker.record_success()  # the service answered; the request was wrong
            stats.observe(latency, f"http_{status}")
            raise err
        try:
            env = orjson.loads(raw)
            ret_code = int(env["retCode"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            err = BybitHttpError(200, endpoint.path, raw, method=endpoint.method)
            raise self._failure(breaker, stats, started, err, "bad_body", latency)

        server_now = _int_or(env.get("time"), self.clock.now_ms())
        self.limiter.on_headers(endpoint, category, resp_headers, server_now)
        if ret_code == 0 or ret_code in accept_codes:
            breaker.record_success()
            stats.observe(latency)
            return env  # type: ignore[no-any-return]
        api_err = BybitApiError(
            ret_code,
            str(env.get("retMsg", "")),
            endpoint.path,
            method=endpoint.method,
            ret_ext_info=env.get("retExtInfo") if isinstance(env.get("retExtInfo"), dict) else None,
            headers={k: v for k, v in resp_headers.items() if k.lower().startswith("x-bapi")},
        )
        if ret_code in (10006, 10018):
            self.limiter.on_rate_limited(endpoint, category, resp_headers, server_now)
        if api_err.retry is RetryClass.UNKNOWN_OUTCOME:
            raise self._failure(breaker, stats, started, api_err, f"ret_{ret_code}", latency)
        breaker.record_success()
        stats.observe(latency, f"ret_{ret_code}")
        raise api_err

    @staticmethod
    def _failure(
        breaker: CircuitBreaker,
        stats: EndpointMetrics,
        started: float,
        err: ExchangeError,
        kind: str | None = None,
        latency: float | None = None,
    ) -> ExchangeError:
        """Record a service failure (breaker + metrics); returns ``err`` for the caller to raise."""
        breaker.record_failure(str(err)[:200])
        stats.observe(time.perf_counter() - started if latency is None else latency, kind or type(err).__name__)
        return err

    def _build(self, endpoint: Endpoint, params: Mapping[str, Any]) -> tuple[URL, bytes | None, dict[str, str]]:
        """URL, body and headers, with the signature over exactly the bytes that are sent."""
        if endpoint.method == "GET":
            query = build_query(params)
            text = f"{self.base_url}{endpoint.path}" + (f"?{query}" if query else "")
            url = URL(text, encoded=True)  # encoded=True: aiohttp must not re-quote what we signed
            body: bytes | None = None
            payload = query.encode("utf-8")
        else:
            url = URL(f"{self.base_url}{endpoint.path}", encoded=True)
            body = orjson.dumps(normalise_body(params))
            payload = body
        headers: dict[str, str] = {}
        if endpoint.signed:
            assert self.api_key is not None and self._api_secret is not None
            headers = rest_headers(
                self.api_key,
                self._api_secret,
                self.clock.timestamp_ms(),
                self.recv_window,
                payload,
                post=endpoint.method == "POST",
            )
        elif body is not None:
            headers = {"Content-Type": "application/json"}
        return url, body, headers

    def _cat(self, category: str | None) -> str:
        return category or self.category

    # ---- market (public) ---------------------------------------------------------------------
    async def server_time(self) -> int:
        """Server time in ms (and re-measures the clock offset)."""
        await self.sync_clock()
        return self.clock.now_ms()

    async def instruments(
        self, *, category: str | None = None, symbol: str | None = None, status: str | None = None, limit: int = 1000
    ) -> list[Json]:
        """All instruments of a category, following ``nextPageCursor`` to the end."""
        params: dict[str, Any] = {"category": self._cat(category), "symbol": symbol, "status": status, "limit": limit}
        return await self._paginate(ep.INSTRUMENTS, params)

    async def instrument_specs(self, *, category: str | None = None) -> list[Instrument]:
        return [Instrument.from_bybit(item) for item in await self.instruments(category=category)]

    def instrument_cache(self, *, category: str | None = None, ttl: float = 3600.0) -> InstrumentCache:
        """A TTL cache (>= 1 h by default) loading this category's instruments through this client."""

        async def load() -> list[Instrument]:
            return await self.instrument_specs(category=category)

        return InstrumentCache(load, ttl=ttl)

    async def orderbook(self, symbol: str, limit: int = 50, *, category: str | None = None) -> Json:
        """``{s, b, a, ts, u, seq, cts}`` with exact decimal strings."""
        env = await self._request(ep.ORDERBOOK, {"category": self._cat(category), "symbol": symbol, "limit": limit})
        return _result(env)

    async def klines(
        self,
        symbol: str,
        interval: str,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int | None = None,
        category: str | None = None,
    ) -> list[list[str]]:
        """``[startTime, open, high, low, close, volume, turnover]`` rows, NEWEST FIRST as Bybit
        sends them; the first row may be a still-open candle."""
        params = {"category": self._cat(category), "symbol": symbol, "interval": interval,
                  "start": start, "end": end, "limit": limit}
        env = await self._request(ep.KLINE, params)
        return list(_result(env).get("list", []))

    async def tickers(self, symbol: str | None = None, *, category: str | None = None) -> list[Json]:
        env = await self._request(ep.TICKERS, {"category": self._cat(category), "symbol": symbol})
        return list(_result(env).get("list", []))

    async def recent_trades(self, symbol: str, limit: int | None = None, *, category: str | None = None) -> list[Json]:
        env = await self._request(ep.RECENT_TRADES, {"category": self._cat(category), "symbol": symbol, "limit": limit})
        return list(_result(env).get("list", []))

    # ---- orders -----------------------------------------------------------------------------------
    async def place_order(
        self,
        symbol: str,
        side: str,
        order_type: str,
        qty: Num,
        price: Num | None = None,
        *,
        category: str | None = None,
        order_link_id: str | None = None,
        time_in_force: str | None = None,
        reduce_only: bool | None = None,
        close_on_trigger: bool | None = None,
        position_idx: int | None = None,
        take_profit: Num | None = None,
        stop_loss: Num | None = None,
        extra: Mapping[str, Any] | None = None,
        resend_if_absent: bool = False,
    ) -> PlaceOrderResult:
        """Create an order. An ``orderLinkId`` is generated when none is given, so a lost
        acknowledgement can always be resolved: the order is looked up by that id (realtime, then
        history) and the result says what the exchange has. With ``resend_if_absent`` a confirmed
        absence is followed by one resend with the SAME ``orderLinkId`` (duplicate-proof)."""
        link_id = order_link_id or new_order_link_id()
        check_order_link_id(link_id)
        cat = self._cat(category)
        body: dict[str, Any] = {
            "category": cat,
            "symbol": symbol,
            "side": side,
            "orderType": order_type,
            "qty": _num(qty, "qty"),
            "price": None if price is None else _num(price, "price"),
            "timeInForce": time_in_force,
            "orderLinkId": link_id,
            "reduceOnly": reduce_only,
            "closeOnTrigger": close_on_trigger,
            "positionIdx": position_idx,
            "takeProfit": None if take_profit is None else _num(take_profit, "takeProfit"),
            "stopLoss": None if stop_loss is None else _num(stop_loss, "stopLoss"),
        }
        if extra:
            body.update(extra)
        result = await self._create_once(cat, symbol, link_id, body)
        if result.status is CreateStatus.NOT_FOUND and resend_if_absent:
            self.metrics.incr("create_resends_same_link_id")
            again = await self._create_once(cat, symbol, link_id, body)
            again.resent = True
            if again.error is None:
                again.error = result.error
            return again
        return result

    async def _create_once(self, cat: str, symbol: str, link_id: str, body: Mapping[str, Any]) -> PlaceOrderResult:
        try:
            env = await self._request(ep.ORDER_CREATE, body)
        except ExchangeError as exc:
            if exc.retry is RetryClass.DUPLICATE:
                self.metrics.incr("create_duplicates")
                order = await self._lookup_or_unknown(cat, symbol, link_id, exc)
                return PlaceOrderResult(
                    CreateStatus.DUPLICATE, link_id, _s(order, "orderId"), order, error=exc
                )
            if exc.retry is not RetryClass.UNKNOWN_OUTCOME:
                raise
            self.metrics.incr("create_reconciliations")
            log.warning("order %s: outcome unknown (%s); looking it up", link_id, exc)
            order = await self._lookup_or_unknown(cat, symbol, link_id, exc)
            if order is None:
                return PlaceOrderResult(CreateStatus.NOT_FOUND, link_id, None, None, error=exc)
            return PlaceOrderResult(CreateStatus.RECOVERED, link_id, _s(order, "orderId"), order, error=exc)
        res = _result(env)
        return PlaceOrderResult(CreateStatus.ACCEPTED, str(res.get("orderLinkId") or link_id), _s(res, "orderId"))

    async def _lookup_or_unknown(
        self, cat: str, symbol: str, link_id: str, cause: ExchangeError
    ) -> Json | None:
        try:
            return await self.find_order(symbol, order_link_id=link_id, category=cat)
        except ExchangeError as lookup_exc:
            raise OrderStateUnknown(link_id, lookup_exc) from cause

    async def find_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        category: str | None = None,
    ) -> Json | None:
        """The exchange's record of one order: ``/v5/order/realtime`` (open + recent closed), then
        ``/v5/order/history``. None when neither knows it."""
        if order_id is None and order_link_id is None:
            raise ValueError("order_id or order_link_id required")
        params = {"category": self._cat(category), "symbol": symbol, "orderId": order_id, "orderLinkId": order_link_id}
        for endpoint in (ep.OPEN_ORDERS, ep.ORDER_HISTORY):
            env = await self._request(endpoint, params)
            for item in _result(env).get("list", []):
                if (order_id and item.get("orderId") == order_id) or (
                    order_link_id and item.get("orderLinkId") == order_link_id
                ):
                    return dict(item)
        return None

    async def amend_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        qty: Num | None = None,
        price: Num | None = None,
        category: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> AmendResult:
        """Amend price/qty (absolute values). If the ack is lost, the order is looked up: values
        already applied -> CONFIRMED; order closed -> ORDER_CLOSED; otherwise the same absolute
        amend is resent once (idempotent) -> RESENT."""
        if order_id is None and order_link_id is None:
            raise ValueError("order_id or order_link_id required")
        cat = self._cat(category)
        body: dict[str, Any] = {
            "category": cat,
            "symbol": symbol,
            "orderId": order_id,
            "orderLinkId": order_link_id,
            "qty": None if qty is None else _num(qty, "qty"),
            "price": None if price is None else _num(price, "price"),
        }
        if extra:
            body.update(extra)
        try:
            env = await self._request(ep.ORDER_AMEND, body)
            res = _result(env)
            return AmendResult(AmendStatus.ACCEPTED, _s(res, "orderId") or order_id, _s(res, "orderLinkId") or order_link_id)
        except ExchangeError as exc:
            if exc.retry is not RetryClass.UNKNOWN_OUTCOME:
                raise
            first_error = exc
        self.metrics.incr("amend_reconciliations")
        try:
            order = await self.find_order(symbol, order_id=order_id, order_link_id=order_link_id, category=cat)
        except ExchangeError as lookup_exc:
            raise OrderStateUnknown(order_link_id or order_id or "?", lookup_exc) from first_error
        oid, olid = _s(order, "orderId") or order_id, _s(order, "orderLinkId") or order_link_id
        if order is None or order.get("orderStatus") not in _OPEN_STATUSES:
            return AmendResult(AmendStatus.ORDER_CLOSED, oid, olid, order, first_error)
        if _same(order.get("price"), body["price"]) and _same(order.get("qty"), body["qty"]):
            return AmendResult(AmendStatus.CONFIRMED, oid, olid, order, first_error)
        env = await self._request(ep.ORDER_AMEND, body)
        res = _result(env)
        return AmendResult(AmendStatus.RESENT, _s(res, "orderId") or oid, _s(res, "orderLinkId") or olid, order, first_error)

    async def cancel_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        category: str | None = None,
    ) -> CancelResult:
        """Cancel one order. A lost ack is resolved by resending the cancel (idempotent in effect);
        a resend answered with 110001/110008/110010 means nothing is left to cancel -> ALREADY_GONE.
        A *first* answer of 110001 raises :class:`BybitApiError` as usual (the caller asked to cancel
        an order the exchange does not know)."""
        if order_id is None and order_link_id is None:
            raise ValueError("order_id or order_link_id required")
        body = {"category": self._cat(category), "symbol": symbol, "orderId": order_id, "orderLinkId": order_link_id}
        first_error: ExchangeError | None = None
        attempts = 0
        while True:
            attempts += 1
            try:
                env = await self._request(ep.ORDER_CANCEL, body)
            except ExchangeError as exc:
                if first_error is not None and exc.retry is RetryClass.ORDER_GONE:
                    return CancelResult(CancelStatus.ALREADY_GONE, order_id, order_link_id, exc, attempts)
                if exc.retry is not RetryClass.UNKNOWN_OUTCOME or attempts >= self.retry.max_attempts:
                    raise
                first_error = first_error or exc
                self.metrics.incr("cancel_resends")
                await asyncio.sleep(self.retry.backoff(attempts - 1))
                continue
            res = _result(env)
            status = CancelStatus.CANCELLED if first_error is None else CancelStatus.RESENT
            return CancelResult(
                status, _s(res, "orderId") or order_id, _s(res, "orderLinkId") or order_link_id, first_error, attempts
            )

    async def cancel_all(
        self,
        *,
        symbol: str | None = None,
        settle_coin: str | None = None,
        base_coin: str | None = None,
        category: str | None = None,
    ) -> list[Json]:
        """Cancel all matching orders (linear needs symbol, baseCoin or settleCoin). Idempotent,
        so a lost ack is retried like a read. Returns ``[{orderId, orderLinkId}]`` of the last
        acknowledged attempt."""
        body = {"category": self._cat(category), "symbol": symbol, "settleCoin": settle_coin, "baseCoin": base_coin}
        env = await self._request(ep.ORDER_CANCEL_ALL, body, idempotent=True)
        return list(_result(env).get("list", []))

    async def open_orders(
        self,
        symbol: str | None = None,
        *,
        settle_coin: str | None = None,
        order_id: str | None = None,
        order_link_id: str | None = None,
        open_only: int | None = None,
        limit: int = 50,
        category: str | None = None,
    ) -> list[Json]:
        """``/v5/order/realtime``, all pages. Linear needs symbol, baseCoin or settleCoin; with none
        given, ``settleCoin=USDT`` is used."""
        if symbol is None and settle_coin is None and order_id is None and order_link_id is None:
            settle_coin = "USDT"
        params = {"category": self._cat(category), "symbol": symbol, "settleCoin": settle_coin,
                  "orderId": order_id, "orderLinkId": order_link_id, "openOnly": open_only, "limit": limit}
        return await self._paginate(ep.OPEN_ORDERS, params)

    async def order_history(
        self,
        symbol: str | None = None,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        order_status: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = 50,
        max_pages: int = 20,
        category: str | None = None,
    ) -> list[Json]:
        params = {"category": self._cat(category), "symbol": symbol, "orderId": order_id, "orderLinkId": order_link_id,
                  "orderStatus": order_status, "startTime": start_time, "endTime": end_time, "limit": limit}
        return await self._paginate(ep.ORDER_HISTORY, params, max_pages=max_pages)

    async def executions(
        self,
        symbol: str | None = None,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        exec_type: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = 100,
        max_pages: int = 20,
        category: str | None = None,
    ) -> list[Json]:
        """Fills, newest first. Includes ``execType=Funding`` rows: filter ``Trade`` for fills."""
        params = {"category": self._cat(category), "symbol": symbol, "orderId": order_id, "orderLinkId": order_link_id,
                  "execType": exec_type, "startTime": start_time, "endTime": end_time, "limit": limit}
        return await self._paginate(ep.EXECUTIONS, params, max_pages=max_pages)

    # ---- positions and account --------------------------------------------------------------------
    async def positions(
        self, symbol: str | None = None, *, settle_coin: str | None = None, category: str | None = None
    ) -> list[Json]:
        """``/v5/position/list`` (REST calls the entry price ``avgPrice``; the WS stream ``entryPrice``)."""
        if symbol is None and settle_coin is None:
            settle_coin = "USDT"
        params = {"category": self._cat(category), "symbol": symbol, "settleCoin": settle_coin, "limit": 200}
        return await self._paginate(ep.POSITIONS, params)

    async def set_leverage(
        self, symbol: str, buy_leverage: Num, sell_leverage: Num | None = None, *, category: str | None = None
    ) -> bool:
        """Set leverage. Returns True if changed, False if it already was so (110043). Absolute, so
        a lost ack is simply resent."""
        body = {"category": self._cat(category), "symbol": symbol, "buyLeverage": _num(buy_leverage, "buyLeverage"),
                "sellLeverage": _num(sell_leverage if sell_leverage is not None else buy_leverage, "sellLeverage")}
        env = await self._request(ep.SET_LEVERAGE, body, accept_codes=frozenset({110043}), idempotent=True)
        return int(env["retCode"]) == 0

    async def trading_stop(
        self,
        symbol: str,
        *,
        take_profit: Num | None = None,
        stop_loss: Num | None = None,
        trailing_stop: Num | None = None,
        tpsl_mode: str = "Full",
        position_idx: int = 0,
        tp_trigger_by: str | None = None,
        sl_trigger_by: str | None = None,
        extra: Mapping[str, Any] | None = None,
        category: str | None = None,
    ) -> bool:
        """Set TP/SL/trailing stop on a position (``"0"`` cancels one). Returns False if nothing
        changed (34040). Absolute values, so a lost ack is resent."""
        body: dict[str, Any] = {
            "category": self._cat(category),
            "symbol": symbol,
            "tpslMode": tpsl_mode,
            "positionIdx": position_idx,
            "takeProfit": None if take_profit is None else _num(take_profit, "takeProfit"),
            "stopLoss": None if stop_loss is None else _num(stop_loss, "stopLoss"),
            "trailingStop": None if trailing_stop is None else _num(trailing_stop, "trailingStop"),
            "tpTriggerBy": tp_trigger_by,
            "slTriggerBy": sl_trigger_by,
        }
        if extra:
            body.update(extra)
        env = await self._request(ep.TRADING_STOP, body, accept_codes=frozenset({34040}), idempotent=True)
        return int(env["retCode"]) == 0

    async def wallet_balance(self, account_type: str = "UNIFIED", coin: str | None = None) -> Json:
        """``result.list[0]`` of ``/v5/account/wallet-balance`` (``{}`` if the account has none)."""
        env = await self._request(ep.WALLET_BALANCE, {"accountType": account_type, "coin": coin})
        rows = _result(env).get("list", [])
        return dict(rows[0]) if rows else {}

    # ---- helpers ---------------------------------------------------------------------------------
    async def _paginate(self, endpoint: Endpoint, params: Mapping[str, Any], *, max_pages: int = _MAX_PAGES) -> list[Json]:
        out: list[Json] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(max_pages):
            page_params = dict(params)
            if cursor:
                page_params["cursor"] = cursor
            env = await self._request(endpoint, page_params)
            res = _result(env)
            out.extend(res.get("list", []))
            cursor = res.get("nextPageCursor") or None
            if not cursor or cursor in seen:
                break
            seen.add(cursor)
        return out

    def snapshot(self) -> dict[str, Any]:
        """Metrics, breaker states, limiter and clock, for the API/health endpoints."""
        sample = self.clock.sample
        return {
            **self.metrics.snapshot(),
            "breakers": self.breakers.snapshot(),
            "limiter": self.limiter.snapshot(),
            "clock": {
                "offset_ms": None if sample is None else round(sample.offset_ms, 3),
                "rtt_ms": None if sample is None else sample.rtt_ms,
                "measurements": self.clock.measurements,
            },
        }


def _result(env: Mapping[str, Any]) -> Json:
    res = env.get("result")
    return res if isinstance(res, dict) else {}


def _server_ms(env: Mapping[str, Any]) -> int:
    res = _result(env)
    nano = res.get("timeNano")
    if nano:
        return int(nano) // 1_000_000
    if env.get("time"):
        return int(env["time"])
    return int(res["timeSecond"]) * 1000


def _category(params: Mapping[str, Any]) -> str | None:
    category = params.get("category")
    return str(category) if category is not None else None


def _reset_wait(error: ExchangeError, server_now_ms: int, fallback: float) -> float:
    headers = getattr(error, "headers", {}) or {}
    reset = {k.lower(): v for k, v in headers.items()}.get("x-bapi-limit-reset-timestamp")
    try:
        return min(5.0, max(0.0, (int(reset) - server_now_ms) / 1000.0)) if reset is not None else fallback
    except ValueError:
        return fallback


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def _num(value: Num, name: str) -> str:
    """Exact wire string of a price/quantity."""
    if isinstance(value, (bool, float)):
        raise TypeError(f"{name}={value!r}: pass Decimal, str or int (money is exact)")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{name}={value!r} is not finite")
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    Decimal(value)  # validates the string
    return value


def _same(exchange_value: Any, requested: str | None) -> bool:
    if requested is None:
        return True
    try:
        return Decimal(str(exchange_value)) == Decimal(requested)
    except ArithmeticError:
        return False


def _s(obj: Mapping[str, Any] | None, key: str) -> str | None:
    if not obj:
        return None
    v = obj.get(key)
    return str(v) if v not in (None, "") else None


__all__ = ["BybitRest"]
