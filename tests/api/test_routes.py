"""Every route's happy path against the in-memory harness: state goes in through one route and
comes out through another (an order placed is listed, a position opened by a fill is closed),
money stays an exact decimal string, and every mutating route leaves an audit row."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from harness import MemoryBackend

from pysrc.strategy import Side, Signal, SignalKind


def _ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    assert resp.headers["x-trace-id"]
    return resp.json()


def _last_audit(backend: MemoryBackend) -> dict[str, Any]:
    return backend.audit_log[-1]


# ---- auth ---------------------------------------------------------------------------------------


def test_login_verify_and_change_password(client: TestClient, backend: MemoryBackend) -> None:
    body = _ok(client.post("/api/auth/login", json={"username": "admin", "password": "correct-horse-battery"}))
    assert body["token_type"] == "bearer" and body["expires_in"] == 600
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    who = _ok(client.get("/api/auth/verify", headers=headers))
    assert who["valid"] is True and who["username"] == "admin" and who["expires_at"] > who["issued_at"]

    changed = _ok(
        client.post(
            "/api/auth/change-password",
            json={"old_password": "correct-horse-battery", "new_password": "a-new-password"},
            headers=headers,
        )
    )
    assert client.get("/api/auth/verify", headers=headers).status_code == 401  # the old token is dead
    _ok(client.get("/api/auth/verify", headers={"Authorization": f"Bearer {changed['access_token']}"}))
    row = _last_audit(backend)
    assert row["action"] == "auth.change_password" and row["ok"] and row["actor"] == "admin"
    assert "a-new-password" not in str(backend.audit_log)  # no secret in the audit
    _ok(client.post("/api/auth/login", json={"username": "admin", "password": "a-new-password"}))


# ---- bot ---------------------------------------------------------------------------------------


def test_bot_status_start_stop_config(authed: TestClient, backend: MemoryBackend) -> None:
    st = _ok(authed.get("/api/bot/status"))
    assert st["trading"] is True and st["mode"] == "paper" and st["kill_switch"] is False
    assert _ok(authed.post("/api/bot/stop"))["trading"] is False
    assert _last_audit(backend)["action"] == "bot.stop"
    assert _ok(authed.get("/api/bot/status"))["trading"] is False
    assert _ok(authed.post("/api/bot/start"))["trading"] is True
    assert _last_audit(backend)["action"] == "bot.start" and _last_audit(backend)["actor"] == "admin"
    cfg = _ok(authed.get("/api/bot/config"))
    assert cfg["settings"]["api"]["port"] == 8000 and "strategies" in cfg


def test_config_redacts_secrets(authed: TestClient, backend: MemoryBackend) -> None:
    backend.config["settings"]["exchange"]["api_secret"] = "s3cr3t-value"
    backend.config["settings"]["database_url"] = "postgresql://bot:pw@db:5432/bot"
    cfg = _ok(authed.get("/api/bot/config"))
    text = str(cfg)
    assert "s3cr3t-value" not in text and ":pw@" not in text
    assert cfg["settings"]["exchange"]["api_secret"] == "***"
    assert cfg["settings"]["exchange"]["api_key"] == ""  # unset stays visibly unset


# ---- trading -----------------------------------------------------------------------------------


def test_place_limit_then_list_get_modify_cancel(authed: TestClient, backend: MemoryBackend) -> None:
    order = _ok(
        authed.post(
            "/api/trading/orders",
            json={
                "symbol": "BTCUSDT",
                "side": "Buy",
                "order_type": "Limit",
                "qty": "0.010",
                "price": "64000.0",
                "client_order_id": "manual-1",
            },
        )
    )
    assert order["client_order_id"] == "manual-1" and order["order_id"]
    assert order["status"] == "ACKNOWLEDGED"  # rests below the ask
    assert order["qty"] == "0.010" and order["price"] == "64000.0"  # exact strings, digits kept
    row = _last_audit(backend)
    assert row["action"] == "order.place" and row["ok"] and row["params"]["qty"] == "0.010"
    assert row["trace_id"]

    listed = _ok(authed.get("/api/trading/orders"))
    assert [o["client_order_id"] for o in listed] == ["manual-1"]
    assert _ok(authed.get("/api/trading/orders", params={"active": "true", "symbol": "BTCUSDT"}))
    assert _ok(authed.get("/api/trading/orders", params={"symbol": "ETHUSDT"})) == []
    assert _ok(authed.get("/api/trading/orders", params={"status": "FILLED"})) == []
    assert len(_ok(authed.get("/api/trading/orders", params={"side": "Buy", "limit": 1}))) == 1

    for ident in ("manual-1", order["order_id"]):  # by client id or exchange id
        detail = _ok(authed.get(f"/api/trading/orders/{ident}"))
        assert detail["client_order_id"] == "manual-1"
        assert [h["to_state"] for h in detail["history"]] == ["PENDING_SUBMIT", "SUBMITTED", "ACKNOWLEDGED"]

    amended = _ok(authed.patch("/api/trading/orders/manual-1", json={"price": "64100.5", "qty": "0.02"}))
    assert amended["price"] == "64100.5" and amended["qty"] == "0.02" and amended["status"] == "ACKNOWLEDGED"
    assert _last_audit(backend)["action"] == "order.modify"

    cancelled = _ok(authed.delete("/api/trading/orders/manual-1"))
    assert cancelled["status"] == "CANCELLED"
    assert _last_audit(backend)["action"] == "order.cancel"
    assert _ok(authed.delete("/api/trading/orders/manual-1"))["status"] == "CANCELLED"  # idempotent
    assert _ok(authed.get("/api/trading/orders", params={"active": "false"}))[0]["status"] == "CANCELLED"


def test_same_client_order_id_twice_is_one_order(authed: TestClient, backend: MemoryBackend) -> None:
    body = {"symbol": "BTCUSDT", "side": "Buy", "order_type": "Limit", "qty": "0.01", "price": "64000", "client_order_id": "dup-1"}
    first = _ok(authed.post("/api/trading/orders", json=body))
    second = _ok(authed.post("/api/trading/orders", json=body))
    assert first == second
    assert len(_ok(authed.get("/api/trading/orders"))) == 1 and len(backend.orders) == 1
    other = authed.post("/api/trading/orders", json={**body, "qty": "0.02"})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_mismatch"
    assert other.json()["error"]["field"] == "client_order_id"
    assert backend.audit_log[-1]["ok"] is False and "idempotency_mismatch" in backend.audit_log[-1]["error"]


def test_market_order_fills_and_opens_a_position(authed: TestClient, backend: MemoryBackend) -> None:
    order = _ok(
        authed.post("/api/trading/orders", json={"symbol": "BTCUSDT", "side": "Buy", "order_type": "Market", "qty": "0.002"})
    )
    assert order["status"] == "FILLED" and order["avg_fill_price"] == "65000.1"
    assert order["client_order_id"]  # generated
    pos = _ok(authed.get("/api/positions/BTCUSDT"))
    assert pos["side"] == "Buy" and pos["size"] == "0.002" and pos["status"] == "OPEN"
    assert [p["symbol"] for p in _ok(authed.get("/api/positions"))] == ["BTCUSDT"]
    stats = _ok(authed.get("/api/trading/execution-stats"))
    assert stats["orders_placed"] == 1 and stats["orders_filled"] == 1 and stats["fill_ratio"] == 1.0
    risk = _ok(authed.get("/api/trading/risk-status"))
    assert risk["kill_switch"] is False and risk["open_positions"] == 1
    bal = _ok(authed.get("/api/trading/balance"))
    assert bal["currency"] == "USDT" and Decimal(bal["wallet_balance"]) == Decimal(10_000)


def test_positions_tp_sl_close(authed: TestClient, backend: MemoryBackend) -> None:
    _ok(authed.post("/api/trading/orders", json={"symbol": "BTCUSDT", "side": "Buy", "order_type": "Market", "qty": "0.01"}))
    tp = _ok(authed.put("/api/positions/BTCUSDT/tp", json={"price": "66000.0"}))
    assert tp["take_profit"] == "66000.0" and tp["previous"] is None
    tp2 = _ok(authed.put("/api/positions/BTCUSDT/tp", json={"price": "66500"}))
    assert tp2["previous"] == "66000.0"
    sl = _ok(authed.put("/api/positions/BTCUSDT/sl", json={"price": "64000.0"}))
    assert sl["stop_loss"] == "64000.0"
    assert [r["action"] for r in backend.audit_log[-3:]] == ["position.take_profit", "position.take_profit", "position.stop_loss"]
    wrong_side = authed.put("/api/positions/BTCUSDT/sl", json={"price": "70000"})
    assert wrong_side.status_code == 422 and wrong_side.json()["error"]["field"] == "price"

    closed = _ok(authed.post("/api/positions/BTCUSDT/close"))
    assert closed["position"]["status"] == "CLOSED" and closed["order"]["side"] == "Sell"
    assert closed["order"]["reduce_only"] is True and closed["order"]["status"] == "FILLED"
    assert _ok(authed.get("/api/positions")) == []
    assert authed.get("/api/positions/BTCUSDT").status_code == 404
    # Bought at 65000.1, sold at 65000.0: realised -0.001 on 0.01.
    assert Decimal(_ok(authed.get("/api/trading/balance"))["realised_pnl_today"]) == Decimal("-0.001")


def test_kill_switch_cancels_closes_and_blocks(authed: TestClient, backend: MemoryBackend) -> None:
    _ok(authed.post("/api/trading/orders", json={"symbol": "BTCUSDT", "side": "Buy", "order_type": "Market", "qty": "0.01"}))
    _ok(authed.post("/api/trading/orders", json={"symbol": "BTCUSDT", "side": "Buy", "order_type": "Limit", "qty": "0.01", "price": "60000"}))
    engaged = _ok(authed.post("/api/trading/kill-switch/engage", json={"reason": "drill"}))
    assert engaged["kill_switch"] is True and engaged["cancelled_orders"] == 1 and engaged["closed_positions"] == 1
    assert engaged["kill_switch_reason"] == "drill"
    assert _ok(authed.get("/api/trading/risk-status"))["kill_switch"] is True
    assert _ok(authed.get("/api/positions")) == []
    assert _ok(authed.get("/api/trading/orders", params={"active": "true"})) == []
    assert _last_audit(backend)["action"] == "kill_switch.engage" and _last_audit(backend)["params"] == {"reason": "drill"}

    refused = authed.post("/api/trading/orders", json={"symbol": "BTCUSDT", "side": "Buy", "order_type": "Market", "qty": "0.01"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "kill_switch_engaged"
    assert authed.post("/api/bot/start").status_code == 409

    released = _ok(authed.post("/api/trading/kill-switch/release"))  # body optional
    assert released["kill_switch"] is False
    assert _last_audit(backend)["params"]["reason"] == "released by admin via the API"
    assert _ok(authed.get("/api/bot/status"))["trading"] is False  # stays stopped until started
    assert _ok(authed.post("/api/bot/start"))["trading"] is True


def test_signals(authed: TestClient, backend: MemoryBackend) -> None:
    for i, sym in enumerate(("BTCUSDT", "ETHUSDT", "BTCUSDT")):
        backend.ingest_signal(
            Signal(sym, Side.BUY, SignalKind.IMBALANCE, 0.8, 0.7, Decimal("65000.1"), 1_700_000_000_000 + i, "orderbook_scalper")
        )
    rows = _ok(authed.get("/api/trading/signals"))
    assert [r["ts"] for r in rows] == [1_700_000_000_002, 1_700_000_000_001, 1_700_000_000_000]
    assert rows[0]["price"] == "65000.1" and rows[0]["validated_by"] == "none" and rows[0]["decision"] == "approved"
    assert len(_ok(authed.get("/api/trading/signals", params={"limit": 1}))) == 1
    assert {r["symbol"] for r in _ok(authed.get("/api/trading/signals", params={"symbol": "ETHUSDT"}))} == {"ETHUSDT"}


# ---- market --------------------------------------------------------------------------------------


def test_market_routes(authed: TestClient, backend: MemoryBackend) -> None:
    syms = _ok(authed.get("/api/market/symbols"))
    assert {s["symbol"] for s in syms} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    btc = next(s for s in syms if s["symbol"] == "BTCUSDT")
    assert btc["usable"] is True and btc["tick_size"] == "0.1"

    t = _ok(authed.get("/api/market/ticker/BTCUSDT"))
    assert t["bid"] == "65000.0" and t["ask"] == "65000.1"

    book = _ok(authed.get("/api/market/orderbook/BTCUSDT", params={"depth": 2}))
    assert book["bids"] == [["65000.0", "1.500"], ["64999.9", "2.000"]] and len(book["asks"]) == 2

    backend.record_trade("BTCUSDT", Decimal(65000), Decimal("0.5"), ts=1_700_000_000_000)
    backend.record_trade("BTCUSDT", Decimal(65010), Decimal("0.5"), ts=1_700_000_030_000)
    backend.record_trade("BTCUSDT", Decimal(64990), Decimal(1), ts=1_700_000_070_000)
    one = _ok(authed.get("/api/market/candles/BTCUSDT", params={"interval": "1", "limit": 10}))
    assert [c["open"] for c in one] == ["65000", "64990"] and one[0]["high"] == "65010"
    five = _ok(authed.get("/api/market/candles/BTCUSDT", params={"interval": "5"}))
    assert len(five) == 1 and five[0]["volume"] == "2.0" and five[0]["close"] == "64990"

    m = _ok(authed.get("/api/market/metrics/BTCUSDT"))
    assert m["symbol"] == "BTCUSDT" and m["usable"] and 0 < m["spread_bps"] < 1 and m["imbalance_5"] is not None
    allm = _ok(authed.get("/api/market/metrics"))
    assert set(allm["symbols"]) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"} and allm["totals"]["usable"] == 1


# ---- strategies and configuration ----------------------------------------------------------------


def test_strategy_routes(authed: TestClient, backend: MemoryBackend) -> None:
    rows = _ok(authed.get("/api/strategies"))
    assert [r["name"] for r in rows] == ["orderbook_scalper"] and rows[0]["enabled"] is True
    one = _ok(authed.get("/api/strategies/orderbook_scalper"))
    assert any(p["name"] == "imbalance_buy_threshold" for p in one["parameter_schema"])

    upd = _ok(authed.put("/api/strategies/orderbook_scalper/params", json={"imbalance_buy_threshold": 0.8}))
    assert upd["parameters"]["imbalance_buy_threshold"] == 0.8
    assert _last_audit(backend)["params"] == {"name": "orderbook_scalper", "params": {"imbalance_buy_threshold": 0.8}}
    assert _ok(authed.post("/api/strategies/orderbook_scalper/disable"))["enabled"] is False
    assert backend.strategies_mgr.is_enabled("orderbook_scalper") is False
    assert _ok(authed.post("/api/strategies/orderbook_scalper/enable"))["enabled"] is True
    assert [r["action"] for r in backend.audit_log[-3:]] == ["strategy.params", "strategy.disable", "strategy.enable"]


def test_config_sizing_and_risk(authed: TestClient, backend: MemoryBackend) -> None:
    sizing = _ok(authed.get("/api/config/sizing"))
    assert sizing["mode"] == "percent" and sizing["position_size_pct"] == "0.01"
    new = _ok(authed.put("/api/config/sizing", json={"mode": "fixed", "fixed_size_usdt": "25.5"}))
    assert new["mode"] == "fixed" and new["fixed_size_usdt"] == "25.5"
    assert backend.risk.sizing.fixed_size_usdt == Decimal("25.5")

    risk = _ok(authed.get("/api/config/risk"))
    assert risk["max_positions"] == 10 and risk["max_daily_loss"] == "0.05"
    new_risk = _ok(authed.put("/api/config/risk", json={"max_positions": 20, "max_daily_loss": "0.03"}))
    assert new_risk["max_positions"] == 20 and new_risk["max_daily_loss"] == "0.03"
    assert _ok(authed.get("/api/config/risk"))["max_positions"] == 20
    assert [r["action"] for r in backend.audit_log[-2:]] == ["config.sizing", "config.risk"]
