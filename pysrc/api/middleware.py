"""The request middleware: trace id, rate limit, request log, metrics, last-resort 500.

One pure-ASGI middleware rather than several ``BaseHTTPMiddleware`` layers: each of those costs
a task and a body copy per request, and the API's read latency target (p99 < 20 ms at 200 req/s)
leaves no room for waste. For every HTTP request (and WebSocket handshake) it

1. takes the client's ``X-Trace-Id`` when it looks like an id (1-64 of ``[A-Za-z0-9._:-]``) or
   makes one, binds it with :func:`pysrc.obs.log.trace` for everything the request runs (routes,
   the backend, its log lines) and returns it in the ``X-Trace-Id`` response header;
2. applies the per-client token bucket (client = peer address; ``/health`` and ``/metrics`` are
   exempt so probes and scrapers never starve) and answers 429 in the error envelope with
   ``Retry-After``;
3. times the request into ``api_request_duration_seconds{method,route}`` and counts it in
   ``api_requests_total{method,route,status}``; ``route`` is the route's template
   (``/api/trading/orders/{order_id}``), never the raw path, so ids and scans cannot blow up
   the label set (unmatched paths count as ``<unmatched>``);
4. logs one ``api_request`` line: INFO for writes and errors, DEBUG for successful reads (a
   dashboard polling at a few requests per second must not flood the terminal);
5. turns an unexpected exception into a 500 envelope that says nothing but the trace id, after
   logging the traceback under that id.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pysrc.api.errors import envelope
from pysrc.api.ratelimit import TokenBuckets
from pysrc.api.shapes import dumps
from pysrc.obs.log import EVENTS, get_logger, new_trace_id, trace
from pysrc.obs.metrics import Registry

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TRACE_HEADER = b"x-trace-id"
USER_SCOPE_KEY = "bot.user"
"""Scope key the authentication dependency sets to the user's name (for the request log)."""
_TRACE_OK = re.compile(rb"[A-Za-z0-9._:\-]{1,64}")
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
EXEMPT_PATHS = frozenset({"/health", "/metrics"})
WARMUP_PEER = "warm-up"
"""The peer name of the start-up warm-up's in-process requests (:mod:`pysrc.api.warmup`)."""

log = get_logger("pysrc.api")
_std_log = logging.getLogger("pysrc.api")  # level check first: a filtered structlog call still costs ~10 us

# Request durations are mostly well under 10 ms; finer low buckets than the registry default.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ApiMetrics:
    """The API's own Prometheus metrics, registered in the registry given to the app."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.requests = registry.counter(
            "api_requests_total", "API requests by method, route template and status", ("method", "route", "status")
        )
        self.duration = registry.histogram(
            "api_request_duration_seconds",
            "API response time by method and route template",
            ("method", "route"),
            LATENCY_BUCKETS,
        )
        self.rate_limited = registry.counter("api_rate_limited_total", "API requests refused by the rate limit")
        self.ws_connections = registry.gauge("api_ws_connections", "open WebSocket connections")
        self.ws_sent = registry.counter("api_ws_messages_sent_total", "WebSocket messages sent to clients")
        self.ws_dropped = registry.counter(
            "api_ws_disconnects_total", "WebSocket connections closed by the server, by reason", ("reason",)
        )


def _trace_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == TRACE_HEADER:
            raw = bytes(value)
            if _TRACE_OK.fullmatch(raw):
                return raw.decode("ascii")
            break
    return new_trace_id()


def client_key(scope: Scope) -> str:
    """The rate-limit key: the peer address. Forwarded headers are not trusted (the API listens
    on loopback by default; behind a proxy, configure the proxy's own limit)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, limiter: TokenBuckets, metrics: ApiMetrics) -> None:
        self.app = app
        self.limiter = limiter
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        tid = _trace_id(scope)
        with trace(tid):
            if kind == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self._http(scope, receive, send, tid)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        wait = self.limiter.check(client_key(scope))
        if wait > 0:
            self.metrics.rate_limited.inc()
            log.warning(EVENTS.RATE_LIMIT_EXCEEDED, path=scope.get("path"), client=client_key(scope))
            # Accept, then close with a code: a close before accepting reaches the client as a
            # bare HTTP 403, which says nothing about waiting.
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1013, "reason": "rate limited"})
            return
        await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send, tid: str) -> None:
        start = time.perf_counter()
        method = scope.get("method", "GET")
        path = scope.get("path", "")
        status = 500
        started = False
        trace_header = (TRACE_HEADER, tid.encode("ascii"))

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                headers = list(message.get("headers", ()))
                headers.append(trace_header)
                message["headers"] = headers
            await send(message)

        try:
            if path not in EXEMPT_PATHS:
                wait = self.limiter.check(client_key(scope))
                if wait > 0:
                    self.metrics.rate_limited.inc()
                    log.warning(EVENTS.RATE_LIMIT_EXCEEDED, method=method, path=path, client=client_key(scope))
                    retry = str(max(1, int(wait + 0.999)))
                    body = envelope("rate_limited", f"too many requests; retry in {retry} s", trace_id=tid)
                    await self._respond(send_wrapper, 429, dumps(body), [(b"retry-after", retry.encode())])
                    return
            try:
                await self.app(scope, receive, send_wrapper)
            except Exception:
                log.exception("api_unhandled_error", method=method, path=path)
                if not started:
                    body = envelope("internal", "internal error; quote the trace id when reporting it", trace_id=tid)
                    await self._respond(send_wrapper, 500, dumps(body), [])
        finally:
            self._record(scope, method, path, status, time.perf_counter() - start)

    def _record(self, scope: Scope, method: str, path: str, status: int, elapsed: float) -> None:
        route = getattr(scope.get("route"), "path", None)
        if route is None:
            # Plain Starlette routes (/openapi.json, /docs) set no "route", only "endpoint";
            # they have no path parameters, so their path is their template.
            route = path if scope.get("endpoint") is not None else "<unmatched>"
        self.metrics.duration.observe(elapsed, method=method, route=route)
        self.metrics.requests.inc(method=method, route=route, status=str(status))
        # The start-up warm-up's reads answer 404 where nothing exists yet: not worth a line.
        quiet = method in _READS and (status < 400 or client_key(scope) == WARMUP_PEER)
        if quiet and not _std_log.isEnabledFor(logging.DEBUG):
            return
        fields = {
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "client": client_key(scope),
        }
        user = scope.get(USER_SCOPE_KEY)
        if user:
            fields["user"] = user
        (log.debug if quiet else log.info)("api_request", **fields)

    @staticmethod
    async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


__all__ = ["EXEMPT_PATHS", "LATENCY_BUCKETS", "USER_SCOPE_KEY", "ApiMetrics", "RequestMiddleware", "client_key"]
