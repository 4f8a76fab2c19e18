"""Errors: authentication (401), validation of every body (422 naming the field), backend
refusals (404/409/422/503), the rate limit (429), unknown routes, a crashing route (500) — all in
the one envelope with the request's trace id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from harness import MemoryBackend

from pysrc.api.app import create_app
from pysrc.api.auth import ADMIN, AuthStore


def _err(resp: Any, status: int, code: str | None = None, field: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["trace_id"] == resp.headers["x-trace-id"]
    assert isinstance(err["message"], str) and err["message"]
    if code is not None:
        assert err["code"] == code, err
    if field is not None:
        assert err.get("field") == field, err
    return dict(err)


# Every protected route with a body that would be valid: without a token each must be a 401.
PROTECTED: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/auth/verify", None),
    ("POST", "/api/auth/change-password", {"old_password": "x", "new_password": "yyyyyyyy"}),
    ("GET", "/api/bot/status", None),
    ("POST", "/api/bot/start", None),
    ("POST", "/api/bot/stop", None),
    ("GET", "/api/bot/config", None),
    ("GET", "/api/trading/orders", None),
    ("POST", "/api/trading/orders", {"symbol": "BTCUSDT", "side": "Buy", "order_type": "Market", "qty": "0.01"}),
    ("GET", "/api/trading/orders/abc", None),
    ("DELETE", "/api/trading/orders/abc", None),
    ("PATCH", "/api/trading/orders/abc", {"price": "1"}),
    ("GET", "/api/trading/signals", None),
    ("GET", "/api/trading/balance", None),
    ("GET", "/api/trading/risk-status", None),
    ("GET", "/api/trading/execution-stats", None),
    ("POST", "/api/trading/kill-switch/engage", {"reason": "x"}),
    ("POST", "/api/trading/kill-switch/release", None),
    ("GET", "/api/positions", None),
    ("GET", "/api/positions/BTCUSDT", None),
    ("PUT", "/api/positions/BTCUSDT/tp", {"price": "1"}),
    ("PUT", "/api/positions/BTCUSDT/sl", {"price": "1"}),
    ("POST", "/api/positions/BTCUSDT/close", None),
    ("GET", "/api/market/symbols", None),
    ("GET", "/api/market/ticker/BTCUSDT", None),
    ("GET", "/api/market/candles/BTCUSDT", None),
    ("GET", "/api/market/orderbook/BTCUSDT", None),
    ("GET", "/api/market/metrics", None),
    ("GET", "/api/market/metrics/BTCUSDT", None),
    ("GET", "/api/strategies", None),
    ("GET", "/api/strategies/orderbook_scalper", None),
    ("PUT", "/api/strategies/orderbook_scalper/params", {"min_confidence": 0.6}),
    ("POST", "/api/strategies/orderbook_scalper/enable", None),
    ("POST", "/api/strategies/orderbook_scalper/disable", None),
    ("GET", "/api/config/sizing", None),
    ("PUT", "/api/config/sizing", {"mode": "fixed"}),
    ("GET", "/api/config/risk", None),
    ("PUT", "/api/config/risk", {"max_positions": 5}),
]


# ---- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_every_protected_route_needs_a_token(
    client: TestClient, backend: MemoryBackend, method: str, path: str, body: dict[str, Any] | None
) -> None:
    resp = client.request(method, path, json=body)
    err = _err(resp, 401, "unauthorized")
    assert err["message"] == "missing bearer token"
    assert resp.headers["www-authenticate"] == "Bearer"
    assert backend.audit_log == []  # refused before anything ran


def test_bad_and_expired_tokens(client: TestClient, auth: AuthStore) -> None:
    expired = auth.issue(auth.users[ADMIN], now=time.time() - 3600)
    forged = jwt.encode(
        {"sub": ADMIN, "iat": int(time.time()), "exp": int(time.time()) + 60, "pwv": 1},
        "not-the-key-not-the-key-not-the-key-123",
        algorithm="HS256",
    )
    for bad in ("garbage", expired, forged, auth.issue(auth.users[ADMIN]) + "x"):
        err = _err(client.get("/api/bot/status", headers={"Authorization": f"Bearer {bad}"}), 401, "unauthorized")
        assert err["message"] == "invalid or expired token"
    _err(client.get("/api/bot/status", headers={"Authorization": "Basic YWRtaW46eA=="}), 401)
    _err(client.get("/api/bot/status", headers={"Authorization": "Bearer"}), 401)


def test_wrong_password_does_not_say_which_part(client: TestClient) -> None:
    wrong_pw = _err(client.post("/api/auth/login", json={"username": "admin", "password": "nope"}), 401, "invalid_credentials")
    wrong_user = _err(
        client.post("/api/auth/login", json={"username": "mallory", "password": "correct-horse-battery"}),
        401,
        "invalid_credentials",
    )
    assert wrong_pw["message"] == wrong_user["message"] == "invalid username or password"
    assert "field" not in wrong_pw and "field" not in wrong_user


def test_change_password_errors(authed: TestClient, backend: MemoryBackend) -> None:
    err = _err(
        authed.post("/api/auth/change-password", json={"old_password": "wrong", "new_password": "long-enough-1"}),
        401,
        "invalid_credentials",
    )
    assert err["message"] == "invalid username or password"
    assert backend.audit_log[-1]["action"] == "auth.change_password" and backend.audit_log[-1]["ok"] is False
    _err(
        authed.post("/api/auth/change-password", json={"old_password": "correct-horse-battery", "new_password": "short"}),
        422,
        "validation_error",
        "new_password",
    )


# ---- validation: every body and the constrained parameters ---------------------------------------

ORDER = {"symbol": "BTCUSDT", "side": "Buy", "order_type": "Limit", "qty": "0.01", "price": "64000"}


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/auth/change-password", {"old_password": "x"}, "new_password"),
        ("POST", "/api/auth/change-password", {"old_password": "x", "new_password": "yyyyyyyyy", "extra": 1}, "extra"),
        ("POST", "/api/trading/orders", {**ORDER, "qty": 0.01}, "qty"),  # a JSON number: refused
        ("POST", "/api/trading/orders", {**ORDER, "qty": "-1"}, "qty"),
        ("POST", "/api/trading/orders", {**ORDER, "qty": "0"}, "qty"),
        ("POST", "/api/trading/orders", {**ORDER, "qty": "1e3"}, "qty"),
        ("POST", "/api/trading/orders", {**ORDER, "qty": "NaN"}, "qty"),
        ("POST", "/api/trading/orders", {**ORDER, "price": "abc"}, "price"),
        ("POST", "/api/trading/orders", {k: v for k, v in ORDER.items() if k != "price"}, "price"),
        ("POST", "/api/trading/orders", {**ORDER, "order_type": "Market"}, "price"),  # market + price
        ("POST", "/api/trading/orders", {**ORDER, "order_type": "Stop"}, "order_type"),
        ("POST", "/api/trading/orders", {**ORDER, "side": "buy"}, "side"),
        ("POST", "/api/trading/orders", {**ORDER, "symbol": "btc-usdt"}, "symbol"),
        ("POST", "/api/trading/orders", {**ORDER, "client_order_id": "x" * 37}, "client_order_id"),
        ("POST", "/api/trading/orders", {**ORDER, "client_order_id": "has space"}, "client_order_id"),
        ("POST", "/api/trading/orders", {**ORDER, "qyt": "1"}, "qyt"),
        ("POST", "/api/trading/orders", {"side": "Buy", "order_type": "Market", "qty": "1"}, "symbol"),
        ("PATCH", "/api/trading/orders/abc", {}, "body"),
        ("PATCH", "/api/trading/orders/abc", {"price": "0"}, "price"),
        ("PATCH", "/api/trading/orders/abc", {"qty": 5}, "qty"),
        ("PUT", "/api/positions/BTCUSDT/tp", {}, "price"),
        ("PUT", "/api/positions/BTCUSDT/sl", {"price": 64000}, "price"),
        ("POST", "/api/trading/kill-switch/engage", {"reason": 5}, "reason"),
        ("POST", "/api/trading/kill-switch/release", {"why": "x"}, "why"),
        ("PUT", "/api/strategies/orderbook_scalper/params", {}, "body"),
        ("PUT", "/api/strategies/orderbook_scalper/params", ["x"], "body"),
        ("PUT", "/api/config/sizing", {}, "body"),
        ("PUT", "/api/config/risk", [1, 2], "body"),
        ("GET", "/api/trading/orders?limit=0", None, "limit"),
        ("GET", "/api/trading/orders?status=DONE", None, "status"),
        ("GET", "/api/trading/orders?symbol=btc", None, "symbol"),
        ("GET", "/api/trading/signals?limit=100000", None, "limit"),
        ("GET", "/api/market/candles/BTCUSDT?interval=7", None, "interval"),
        ("GET", "/api/market/orderbook/BTCUSDT?depth=0", None, "depth"),
        ("GET", "/api/market/ticker/btcusdt", None, "symbol"),
        ("GET", "/api/strategies/bad%20name", None, "name"),
    ],
)
def test_validation_errors_name_the_field(
    authed: TestClient,
    backend: MemoryBackend,
    method: str,
    path: str,
    body: Any,
    field: str,
) -> None:
    before = len(backend.orders)
    err = _err(authed.request(method, path, json=body), 422, "validation_error", field)
    assert err["message"].startswith(field)
    assert len(backend.orders) == before


def test_malformed_json_body(authed: TestClient) -> None:
    resp = authed.post("/api/trading/orders", content=b"{not json", headers={"Content-Type": "application/json"})
    err = _err(resp, 422, "validation_error", "body")
    assert "JSON" in err["message"]


def test_decimal_messages_explain_why(authed: TestClient) -> None:
    err = _err(authed.post("/api/trading/orders", json={**ORDER, "qty": 0.01}), 422, field="qty")
    assert "string" in err["message"]
    err = _err(authed.post("/api/trading/orders", json={**ORDER, "order_type": "Market"}), 422, field="price")
    assert "Market" in err["message"]
    all_problems = _err(authed.post("/api/trading/orders", json={"qty": "x"}), 422)
    fields = {d["field"] for d in all_problems["details"]}
    assert {"symbol", "side", "order_type", "qty"} <= fields


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/config/risk", {"max_positions": 0}, "max_positions"),
        ("/api/config/risk", {"max_daily_loss": "0.9"}, "max_daily_loss"),
        ("/api/config/risk", {"no_such_limit": 1}, "no_such_limit"),
        ("/api/config/risk", {"max_positions_per_symbol": 50}, "max_positions_per_symbol"),
        ("/api/config/sizing", {"mode": "yolo"}, "mode"),
        ("/api/config/sizing", {"position_size_pct": "2"}, "position_size_pct"),
        ("/api/strategies/orderbook_scalper/params", {"imbalance_buy_threshold": 2.0}, "imbalance_buy_threshold"),
        ("/api/strategies/orderbook_scalper/params", {"nope": 1}, "nope"),
    ],
)
def test_backend_validation_names_the_key(
    authed: TestClient, backend: MemoryBackend, path: str, body: dict[str, Any], field: str
) -> None:
    before = (backend.risk.limits, backend.risk.sizing, backend.strategies_mgr.get("orderbook_scalper").get_parameters())
    err = _err(authed.put(path, json=body), 422, "invalid", field)
    assert field in err["message"]
    after = (backend.risk.limits, backend.risk.sizing, backend.strategies_mgr.get("orderbook_scalper").get_parameters())
    assert after == before  # all or nothing
    assert backend.audit_log[-1]["ok"] is False


def test_order_values_off_the_instrument_rules(authed: TestClient) -> None:
    _err(authed.post("/api/trading/orders", json={**ORDER, "qty": "0.0105"}), 422, "invalid", "qty")
    _err(authed.post("/api/trading/orders", json={**ORDER, "price": "64000.05"}), 422, "invalid", "price")
    _err(authed.post("/api/trading/orders", json={**ORDER, "symbol": "XRPUSDT"}), 422, "invalid", "symbol")


# ---- backend refusals --------------------------------------------------------------------------


def test_not_found_conflict_unavailable(authed: TestClient, backend: MemoryBackend) -> None:
    _err(authed.get("/api/trading/orders/nope"), 404, "not_found")
    _err(authed.delete("/api/trading/orders/nope"), 404, "not_found")
    _err(authed.patch("/api/trading/orders/nope", json={"price": "1"}), 404, "not_found")
    _err(authed.get("/api/positions/ETHUSDT"), 404, "not_found")
    _err(authed.put("/api/positions/ETHUSDT/tp", json={"price": "1"}), 404, "not_found")
    _err(authed.post("/api/positions/ETHUSDT/close"), 404, "not_found")
    _err(authed.get("/api/market/ticker/XRPUSDT"), 404, "not_found")
    _err(authed.get("/api/strategies/momentum"), 404, "not_found")
    _err(authed.post("/api/strategies/momentum/enable"), 404, "not_found")
    # No ETH book yet: the feed and the books are not ready.
    _err(authed.get("/api/market/ticker/ETHUSDT"), 503, "unavailable")
    _err(authed.get("/api/market/orderbook/ETHUSDT"), 503, "unavailable")
    _err(
        authed.post("/api/trading/orders", json={"symbol": "ETHUSDT", "side": "Buy", "order_type": "Market", "qty": "1"}),
        503,
        "unavailable",
    )
    # A filled order cannot be cancelled or amended.
    filled = authed.post("/api/trading/orders", json={"symbol": "BTCUSDT", "side": "Buy", "order_type": "Market", "qty": "0.01"})
    cid = filled.json()["client_order_id"]
    _err(authed.delete(f"/api/trading/orders/{cid}"), 409, "order_final")
    _err(authed.patch(f"/api/trading/orders/{cid}", json={"price": "1"}), 409, "order_final")
    # Trading stopped: manual orders refused.
    authed.post("/api/bot/stop")
    _err(authed.post("/api/trading/orders", json=ORDER), 409, "trading_stopped")
    # Risk: beyond the exposure limit.
    authed.post("/api/bot/start")
    _err(authed.post("/api/trading/orders", json={**ORDER, "qty": "1"}), 409, "risk_rejected")


def test_unknown_route_and_method(authed: TestClient) -> None:
    _err(authed.get("/api/nothing-here"), 404, "not_found")
    _err(authed.put("/api/bot/status"), 405, "method_not_allowed")


def test_trace_id_is_honoured_and_returned(authed: TestClient, backend: MemoryBackend) -> None:
    resp = authed.post("/api/bot/stop", headers={"X-Trace-Id": "dash-1234"})
    assert resp.headers["x-trace-id"] == "dash-1234"
    assert backend.audit_log[-1]["trace_id"] == "dash-1234"
    err = _err(authed.get("/api/positions/ETHUSDT", headers={"X-Trace-Id": "dash-5678"}), 404)
    assert err["trace_id"] == "dash-5678"
    weird = authed.get("/api/bot/status", headers={"X-Trace-Id": "bad id\twith spaces"})
    assert weird.headers["x-trace-id"] != "bad id\twith spaces" and len(weird.headers["x-trace-id"]) == 16
    assert authed.get("/api/bot/status").headers["x-trace-id"] != authed.get("/api/bot/status").headers["x-trace-id"]


class _Crashing(MemoryBackend):
    async def balance(self) -> dict[str, Any]:
        raise RuntimeError("secret detail that must not leak")


def test_unexpected_exception_is_a_bare_500(auth: AuthStore) -> None:
    app = create_app(_Crashing(), auth)
    with TestClient(app) as c:
        resp = c.get("/api/trading/balance", headers={"Authorization": f"Bearer {auth.issue(auth.users[ADMIN])}"})
    err = _err(resp, 500, "internal")
    assert "secret" not in resp.text and "RuntimeError" not in resp.text
    assert err["message"].startswith("internal error")


# ---- rate limiting ---------------------------------------------------------------------------------


@pytest.fixture()
def limited(backend: MemoryBackend, auth: AuthStore) -> Iterator[TestClient]:
    app: FastAPI = create_app(backend, auth, rate_limit_per_minute=5)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {auth.issue(auth.users[ADMIN])}"
        yield c


def test_rate_limit_429_with_retry_after(limited: TestClient) -> None:
    codes = [limited.get("/api/bot/status").status_code for _ in range(5)]
    assert codes == [200] * 5
    resp = limited.get("/api/bot/status")
    err = _err(resp, 429, "rate_limited")
    assert int(resp.headers["retry-after"]) >= 1 and "retry" in err["message"]
    # Login counts too (brute force), probes and scrapes do not.
    _err(limited.post("/api/auth/login", json={"username": "admin", "password": "x"}), 429)
    assert limited.get("/health").status_code == 200
    assert limited.get("/metrics").status_code == 200
    assert "api_rate_limited_total 2" in limited.get("/metrics").text


def test_token_bucket_refills() -> None:
    from pysrc.api.ratelimit import TokenBuckets, default_burst

    now = [0.0]
    tb = TokenBuckets(60, burst=2, clock=lambda: now[0], max_keys=2)
    assert tb.check("a") == 0 and tb.check("a") == 0
    assert tb.check("a") == pytest.approx(1.0)  # 1 token per second
    now[0] = 0.5
    assert tb.check("a") == pytest.approx(0.5)
    now[0] = 1.0
    assert tb.check("a") == 0
    assert tb.check("b") == 0  # another client has its own bucket
    tb.check("c")
    assert len(tb) == 2  # least recently used forgotten
    assert default_burst(1200) == 200 and default_burst(5) == 5 and default_burst(60) == 10


def test_auth_file_untouched_by_reads(tmp_path: Path) -> None:
    # Tokens are verified in memory: a read must never rewrite the auth file.
    store = AuthStore(tmp_path)
    store.open("s3cret-pass")
    mtime = (tmp_path / "auth.json").stat().st_mtime_ns
    app = create_app(MemoryBackend(), store)
    with TestClient(app) as c:
        for _ in range(3):
            assert c.get("/api/bot/status", headers={"Authorization": f"Bearer {store.issue(store.users[ADMIN])}"}).status_code == 200
    assert (tmp_path / "auth.json").stat().st_mtime_ns == mtime
