"""Pay the API's first-use costs at start-up, not on the trading loop.

FastAPI builds its route state and each endpoint's dependency signatures lazily, on the first
request, and the OpenAPI schema on the first ``/docs``: together some 100-300 ms of one event
loop that, in the bot, also applies the market data. :func:`warm_up` drives every read route once
in-process (ASGI calls, no socket) right after the server starts and before trading is enabled,
so the first dashboard request is as cheap as the thousandth.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pysrc.api.middleware import WARMUP_PEER

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

WARMUP_CLIENT = (WARMUP_PEER, 0)
"""The peer address the warm-up requests carry (its own rate-limit bucket; visible in logs)."""


def read_paths(openapi: dict[str, Any], symbol: str) -> list[str]:
    """Every GET path of the schema that needs nothing but (at most) a ``{symbol}``: the reads a
    dashboard polls. Routes with other path parameters or required query parameters are left out
    (they would only answer 404/422 without doing the route's work)."""
    out: list[str] = []
    for path, ops in openapi.get("paths", {}).items():
        get = ops.get("get")
        if get is None:
            continue
        params = get.get("parameters", [])
        if any(p.get("in") == "path" and p.get("name") != "symbol" for p in params):
            continue
        if any(p.get("in") == "query" and p.get("required") for p in params):
            continue
        out.append(path.replace("{symbol}", symbol))
    return sorted(out)


async def _get(app: App, path: str, token: str) -> int:
    status = [0]
    sent = [False]

    async def receive() -> dict[str, Any]:
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": WARMUP_CLIENT, "server": ("127.0.0.1", 0),
        "headers": [(b"host", b"warm-up"), (b"authorization", f"Bearer {token}".encode())],
    }
    await app(scope, receive, send)
    return status[0]


async def warm_up(app: Any, token: str, symbol: str) -> dict[str, int]:
    """Build the OpenAPI schema and run every read route once; returns path -> status."""
    schema = app.openapi()
    return {path: await _get(app, path, token) for path in read_paths(schema, symbol)}


__all__ = ["WARMUP_CLIENT", "read_paths", "warm_up"]
