"""The WebSocket hub: token required, subscribe / receive / unsubscribe with symbol filters,
commands (audited when they change anything), protocol errors, a slow client dropped without
holding up the others, token expiry and shutdown."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from harness import BTC_ASKS, BTC_BIDS, MemoryBackend
from starlette.websockets import WebSocketDisconnect

from pysrc.api.app import create_app
from pysrc.api.auth import ADMIN, AuthStore
from pysrc.strategy import Side, Signal, SignalKind


def _ping(ws: Any, cid: str = "p") -> dict[str, Any]:
    """Send a ping and return the next message: everything queued before it comes first, so a
    pong right away proves nothing else was queued."""
    ws.send_json({"type": "command", "command": "ping", "id": cid})
    return dict(ws.receive_json())


def _pong(msg: dict[str, Any], cid: str = "p") -> None:
    assert msg["type"] == "command_result" and msg["data"]["id"] == cid and msg["data"]["result"] == {"pong": True}, msg


def test_token_required(client: TestClient, auth: AuthStore) -> None:
    expired = auth.issue(auth.users[ADMIN], now=time.time() - 3600)
    for url in ("/ws", "/ws?token=garbage", f"/ws?token={expired}"):
        with client.websocket_connect(url) as ws, pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_json()
        assert exc.value.code == 4401


def test_token_in_header_also_works(client: TestClient, token: str) -> None:
    with client.websocket_connect("/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
        _pong(_ping(ws))


def test_subscribe_receive_unsubscribe(client: TestClient, backend: MemoryBackend, token: str) -> None:
    with client.websocket_connect(f"/ws?token={token}") as ws:
        ws.send_json({"type": "subscribe", "channel": "market_data", "symbols": ["BTCUSDT"]})
        ack = ws.receive_json()
        assert ack["type"] == "subscribed" and ack["data"] == {"channel": "market_data", "symbols": ["BTCUSDT"]}
        assert isinstance(ack["ts"], int)

        backend.set_book("BTCUSDT", [("65001.0", "1")], BTC_ASKS)
        msg = ws.receive_json()
        assert msg["type"] == "market_data" and msg["symbol"] == "BTCUSDT"
        assert msg["data"]["bid"] == "65001.0" and msg["data"]["ask"] == "65000.1"
        assert abs(msg["ts"] - time.time() * 1000) < 60_000

        backend.set_book("ETHUSDT", [("3000.00", "1")], [("3000.01", "1")])  # not subscribed
        _pong(_ping(ws))

        ws.send_json({"type": "unsubscribe", "channel": "market_data", "symbols": ["BTCUSDT"]})
        assert ws.receive_json() == {
            "type": "unsubscribed",
            "ts": pytest.approx(time.time() * 1000, abs=60_000),
            "data": {"channel": "market_data", "symbols": []},
        }
        backend.set_book("BTCUSDT", BTC_BIDS, BTC_ASKS)
        _pong(_ping(ws, "p2"), "p2")


def test_all_symbols_and_every_channel(client: TestClient, backend: MemoryBackend, token: str) -> None:
    with client.websocket_connect(f"/ws?token={token}") as ws:
        for channel in ("market_data", "position_update", "signal", "alert"):
            ws.send_json({"type": "subscribe", "channel": channel})
            assert ws.receive_json()["data"] == {"channel": channel, "symbols": None}
        backend.set_book("ETHUSDT", [("3000.00", "1")], [("3000.01", "1")])
        assert ws.receive_json()["symbol"] == "ETHUSDT"
        backend.ingest_signal(Signal("BTCUSDT", Side.SELL, SignalKind.ABSORPTION, 0.5, 0.9, Decimal("65000.0"), 1, "orderbook_scalper"))
        sig = ws.receive_json()
        assert sig["type"] == "signal" and sig["data"]["side"] == "Sell" and sig["data"]["price"] == "65000.0"

        # A market buy over REST: its fill arrives as a position update.
        client.post(
            "/api/trading/orders",
            json={"symbol": "BTCUSDT", "side": "Buy", "order_type": "Market", "qty": "0.01"},
            headers={"Authorization": f"Bearer {token}"},
        )
        upd = ws.receive_json()
        assert upd["type"] == "position_update" and upd["data"]["size"] == "0.01" and upd["data"]["status"] == "OPEN"

        ws.send_json({"type": "command", "command": "engage_kill_switch", "args": {"reason": "ws drill"}, "id": 7})
        kinds = []
        result = None
        while result is None:
            m = ws.receive_json()
            kinds.append(m["type"])
            if m["type"] == "command_result":
                result = m
        assert "alert" in kinds and "position_update" in kinds  # the close, then the critical alert
        assert result["data"]["id"] == 7 and result["data"]["result"]["kill_switch"] is True
        assert backend.audit_log[-1]["action"] == "kill_switch.engage"
        assert backend.audit_log[-1]["actor"] == ADMIN and backend.audit_log[-1]["params"] == {"reason": "ws drill"}
        assert backend.audit_log[-1]["trace_id"] == result["data"]["trace_id"]


def test_commands_and_protocol_errors(client: TestClient, backend: MemoryBackend, token: str) -> None:
    with client.websocket_connect(f"/ws?token={token}") as ws:
        ws.send_json({"type": "command", "command": "status", "id": "s"})
        st = ws.receive_json()
        assert st["type"] == "command_result" and st["data"]["result"]["mode"] == "paper"
        ws.send_json({"type": "command", "command": "stop_trading"})
        assert ws.receive_json()["data"]["result"]["trading"] is False
        assert backend.trading is False and backend.audit_log[-1]["action"] == "bot.stop"

        def error_for(payload: Any) -> dict[str, Any]:
            if isinstance(payload, str):
                ws.send_text(payload)
            else:
                ws.send_json(payload)
            m = ws.receive_json()
            assert m["type"] == "error", m
            return dict(m["data"])

        assert error_for("not json")["field"] == "body"
        assert error_for([1, 2])["field"] == "body"
        assert error_for({"type": "dance"})["field"] == "type"
        assert error_for({"type": "subscribe", "channel": "gossip"})["field"] == "channel"
        assert error_for({"type": "subscribe", "channel": "signal", "symbols": "BTCUSDT"})["field"] == "symbols"
        assert error_for({"type": "subscribe", "channel": "signal", "symbols": ["btc"]})["field"] == "symbols"
        bad = error_for({"type": "command", "command": "rm -rf", "id": "x"})
        assert bad["field"] == "command" and bad["id"] == "x"
        assert error_for({"type": "command", "command": "close_position", "args": {"symbol": 5}})["field"] == "symbol"
        assert error_for({"type": "command", "command": "close_position", "args": []})["field"] == "args"
        nf = error_for({"type": "command", "command": "close_position", "args": {"symbol": "ETHUSDT"}, "id": 3})
        assert nf["code"] == "not_found" and nf["id"] == 3 and nf["trace_id"]
        assert backend.audit_log[-1]["ok"] is False and backend.audit_log[-1]["action"] == "position.close"
        ws.send_json({"type": "subscribe", "channel": "alert"})
        ws.receive_json()
        assert error_for({"type": "unsubscribe", "channel": "alert", "symbols": ["BTCUSDT"]})["field"] == "symbols"
        _pong(_ping(ws))  # still connected after every error


def test_slow_client_is_dropped_without_blocking_others(backend: MemoryBackend, auth: AuthStore) -> None:
    app: FastAPI = create_app(backend, auth, ws_queue_size=5, rate_limit_per_minute=100_000)
    token = auth.issue(auth.users[ADMIN])
    with TestClient(app) as c:
        hub = app.state.hub
        with c.websocket_connect(f"/ws?token={token}") as slow, c.websocket_connect(f"/ws?token={token}") as other:
            slow.send_json({"type": "subscribe", "channel": "market_data"})
            assert slow.receive_json()["type"] == "subscribed"
            other.send_json({"type": "subscribe", "channel": "alert"})
            assert other.receive_json()["type"] == "subscribed"
            events = [
                {"type": "market_data", "ts": i, "symbol": "BTCUSDT", "data": {"i": i}} for i in range(20)
            ]

            def burst() -> None:  # 20 events in one loop turn: the sender cannot drain in between
                for e in events:
                    hub.publish(e)

            hub.loop.call_soon_threadsafe(burst)
            got = []
            with pytest.raises(WebSocketDisconnect) as exc:
                while True:
                    got.append(slow.receive_json())
            assert exc.value.code == 4008 and "slow consumer" in exc.value.reason
            assert len(got) <= 5
            _pong(_ping(other))  # the other client is unaffected
        metrics = c.get("/metrics").text
        assert 'api_ws_disconnects_total{reason="slow_consumer"} 1' in metrics
        assert "api_ws_connections 0" in metrics


def test_token_expiry_closes_the_socket(client: TestClient, auth: AuthStore) -> None:
    short = auth.issue(auth.users[ADMIN], now=time.time() - auth.token_ttl_s + 2.5)  # 1.5-2.5 s left
    with client.websocket_connect(f"/ws?token={short}") as ws:
        _pong(_ping(ws))
        with pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_json()
        assert exc.value.code == 4401 and exc.value.reason == "token expired"


def test_shutdown_closes_connections_and_unsubscribes(backend: MemoryBackend, auth: AuthStore) -> None:
    app: FastAPI = create_app(backend, auth)
    token = auth.issue(auth.users[ADMIN])
    with TestClient(app) as c:
        assert len(backend.subscribers) == 1  # the hub subscribed at start-up
        with c.websocket_connect(f"/ws?token={token}") as ws:
            _pong(_ping(ws))
            assert c.portal is not None
            c.portal.call(app.state.hub.close)  # what the lifespan does on shutdown
            with pytest.raises(WebSocketDisconnect) as exc:
                ws.receive_json()
            assert exc.value.code == 1001
        assert backend.subscribers == []
        assert not app.state.hub.connections
        # New connections are refused while shutting down.
        with c.websocket_connect(f"/ws?token={token}") as ws2, pytest.raises(WebSocketDisconnect) as exc2:
            ws2.receive_json()
        assert exc2.value.code == 1001


def test_messages_are_rate_limited(backend: MemoryBackend, auth: AuthStore) -> None:
    app: FastAPI = create_app(backend, auth, rate_limit_per_minute=3)
    token = auth.issue(auth.users[ADMIN])
    with TestClient(app) as c, c.websocket_connect(f"/ws?token={token}") as ws:  # the handshake takes 1
        _pong(_ping(ws, "a"), "a")
        _pong(_ping(ws, "b"), "b")
        limited = _ping(ws, "c")
        assert limited["type"] == "error" and limited["data"]["code"] == "rate_limited"


def test_handshake_over_the_rate_limit_is_closed_1013(backend: MemoryBackend, auth: AuthStore) -> None:
    app: FastAPI = create_app(backend, auth, rate_limit_per_minute=1)
    token = auth.issue(auth.users[ADMIN])
    with TestClient(app) as c:
        assert c.get("/api/bot/status", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        with c.websocket_connect(f"/ws?token={token}") as ws, pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_json()
        assert exc.value.code == 1013 and exc.value.reason == "rate limited"


def test_too_many_connections(backend: MemoryBackend, auth: AuthStore) -> None:
    app: FastAPI = create_app(backend, auth, ws_max_connections=1)
    token = auth.issue(auth.users[ADMIN])
    with TestClient(app) as c, c.websocket_connect(f"/ws?token={token}") as first:
        _pong(_ping(first))
        with c.websocket_connect(f"/ws?token={token}") as second, pytest.raises(WebSocketDisconnect) as exc:
            second.receive_json()
        assert exc.value.code == 1013 and "too many connections" in exc.value.reason
        _pong(_ping(first, "again"), "again")
