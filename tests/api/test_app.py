"""The app around the routes: OpenAPI lists every route, /docs serves, /metrics renders the
API's own metrics and the backend's, /health maps component states to 200/503, CORS follows
the configuration, and the Backend protocol is what the harness implements."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from harness import MemoryBackend

from pysrc.api.app import create_app, create_app_from_config
from pysrc.api.auth import ADMIN, AuthStore
from pysrc.api.backend import Backend, missing_methods
from pysrc.api.shapes import dumps, redact
from pysrc.config import load
from pysrc.obs.metrics import CONTENT_TYPE, Registry

# The endpoint set of issue 6 (method, path): a missing or renamed route fails here.
EXPECTED = {
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/change-password"),
    ("GET", "/api/auth/verify"),
    ("GET", "/api/bot/status"),
    ("POST", "/api/bot/start"),
    ("POST", "/api/bot/stop"),
    ("GET", "/api/bot/config"),
    ("GET", "/api/trading/orders"),
    ("POST", "/api/trading/orders"),
    ("GET", "/api/trading/orders/{order_id}"),
    ("DELETE", "/api/trading/orders/{order_id}"),
    ("PATCH", "/api/trading/orders/{order_id}"),
    ("GET", "/api/trading/signals"),
    ("GET", "/api/trading/balance"),
    ("GET", "/api/trading/risk-status"),
    ("GET", "/api/trading/execution-stats"),
    ("POST", "/api/trading/kill-switch/engage"),
    ("POST", "/api/trading/kill-switch/release"),
    ("GET", "/api/positions"),
    ("GET", "/api/positions/{symbol}"),
    ("PUT", "/api/positions/{symbol}/tp"),
    ("PUT", "/api/positions/{symbol}/sl"),
    ("POST", "/api/positions/{symbol}/close"),
    ("GET", "/api/market/symbols"),
    ("GET", "/api/market/ticker/{symbol}"),
    ("GET", "/api/market/candles/{symbol}"),
    ("GET", "/api/market/orderbook/{symbol}"),
    ("GET", "/api/market/metrics"),
    ("GET", "/api/market/metrics/{symbol}"),
    ("GET", "/api/strategies"),
    ("GET", "/api/strategies/{name}"),
    ("PUT", "/api/strategies/{name}/params"),
    ("POST", "/api/strategies/{name}/enable"),
    ("POST", "/api/strategies/{name}/disable"),
    ("GET", "/api/config/sizing"),
    ("PUT", "/api/config/sizing"),
    ("GET", "/api/config/risk"),
    ("PUT", "/api/config/risk"),
}


def test_openapi_lists_every_route(authed: TestClient) -> None:
    client = authed
    schema = client.get("/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert documented == EXPECTED
    # And each one is served (routed to a handler: neither "no such route" nor 405).
    for method, path in sorted(EXPECTED):
        url = path.format(order_id="x", symbol="BTCUSDT", name="orderbook_scalper")
        resp = client.request(method, url, json={})
        assert resp.status_code != 405, (method, path)
        if resp.status_code == 404:
            assert resp.json()["error"]["message"] != "no such route", (method, path)
    assert "/ws" in {getattr(r, "path", None) for r in client.app.routes}  # type: ignore[attr-defined]
    # Every /api route except login declares the bearer scheme.
    for path, ops in schema["paths"].items():
        for op in ops.values():
            needs = path.startswith("/api") and path != "/api/auth/login"
            assert bool(op.get("security")) == needs, (path, op.get("security"))
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert schema["components"]["schemas"]["PlaceOrderRequest"]["properties"]["qty"]["type"] == "string"
    assert "ErrorEnvelope" in schema["components"]["schemas"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_metrics_text(authed: TestClient, backend: MemoryBackend) -> None:
    authed.get("/api/bot/status")
    authed.get("/api/trading/orders/abc")  # 404 through a templated route
    authed.get("/api/no/such/thing")
    authed.post("/api/trading/orders", json={"symbol": "BTCUSDT", "side": "Buy", "order_type": "Market", "qty": "0.01"})
    resp = authed.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"] == CONTENT_TYPE
    text = resp.text
    assert 'api_requests_total{method="GET",route="/api/bot/status",status="200"} 1' in text
    assert 'api_requests_total{method="GET",route="/api/trading/orders/{order_id}",status="404"} 1' in text
    assert 'route="<unmatched>",status="404"' in text  # raw paths never become labels
    assert "/api/no/such/thing" not in text
    assert 'api_request_duration_seconds_bucket{method="GET",route="/api/bot/status",le="+Inf"} 1' in text
    assert 'api_request_duration_seconds_count{method="POST",route="/api/trading/orders"} 1' in text
    assert 'bot_orders_placed_total{venue="paper"} 1' in text  # the backend's own metrics follow
    assert "# TYPE api_ws_connections gauge" in text
    assert text.count("# TYPE api_requests_total") == 1


def test_metrics_go_into_the_given_registry(backend: MemoryBackend, auth: AuthStore) -> None:
    reg = Registry()
    app = create_app(backend, auth, metrics=reg)
    with TestClient(app) as c:
        c.get("/health")
    assert reg.metrics["api_requests_total"].get(method="GET", route="/health", status="200") == 1  # type: ignore[attr-defined]


def test_health(client: TestClient, backend: MemoryBackend) -> None:
    ok = client.get("/health")
    assert ok.status_code == 200
    body = ok.json()
    assert body["status"] == "ok"
    assert set(body["components"]) == {"feed", "books", "database", "redis", "exchange"}
    assert body["components"]["exchange"]["breakers"] == {"orders": "closed", "queries": "closed"}
    backend.set_health("redis", "degraded")
    assert client.get("/health").status_code == 200 and client.get("/health").json()["status"] == "degraded"
    backend.set_health("database", "down")
    down = client.get("/health")
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "down" and body["components"]["database"]["status"] == "down"
    assert body["error"]["code"] == "unavailable" and body["error"]["trace_id"] == down.headers["x-trace-id"]


def test_cors_from_config(client: TestClient) -> None:
    pre = client.options(
        "/api/bot/status",
        headers={
            "Origin": "http://dash.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "http://dash.example"
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    simple = client.get("/health", headers={"Origin": "http://dash.example"})
    assert simple.headers["access-control-allow-origin"] == "http://dash.example"
    assert "x-trace-id" in simple.headers["access-control-expose-headers"].lower()
    other = client.get("/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_without_origins(backend: MemoryBackend, auth: AuthStore) -> None:
    with TestClient(create_app(backend, auth)) as c:
        assert "access-control-allow-origin" not in c.get("/health", headers={"Origin": "http://dash.example"}).headers


def test_create_app_from_config(backend: MemoryBackend, auth: AuthStore, tmp_path: Path) -> None:
    cfg_file = tmp_path / "bot.yaml"
    cfg_file.write_text("settings:\n  api:\n    cors_origins: [http://a.example]\n    rate_limit_per_minute: 2\n")
    app = create_app_from_config(load(cfg_file, env={}), backend, auth)
    token = auth.issue(auth.users[ADMIN])
    with TestClient(app) as c:
        h = {"Authorization": f"Bearer {token}", "Origin": "http://a.example"}
        assert [c.get("/api/bot/status", headers=h).status_code for _ in range(3)] == [200, 200, 429]
        assert c.get("/health", headers=h).headers["access-control-allow-origin"] == "http://a.example"


def test_harness_implements_the_protocol() -> None:
    b = MemoryBackend()
    assert isinstance(b, Backend)
    assert missing_methods(b) == []
    missing = missing_methods(object())
    assert "place_order" in missing and "subscribe_events" in missing and len(missing) >= 35

    class SyncStatus(MemoryBackend):
        def status(self) -> dict[str, object]:  # type: ignore[override]
            return {}

    assert missing_methods(SyncStatus()) == ["status (async expected)"]


def test_shapes_render_money_exactly() -> None:
    from decimal import Decimal

    assert dumps({"p": Decimal("65000.10"), "q": Decimal("1E+1"), "n": None}) == b'{"p":"65000.10","q":"10","n":null}'
    tree = {"settings": {"exchange": {"api_secret": "x", "api_key": ""}, "redis_url": "redis://u:p@h:6379/0"}}
    assert redact(tree) == {"settings": {"exchange": {"api_secret": "***", "api_key": ""}, "redis_url": "redis://***@h:6379/0"}}
