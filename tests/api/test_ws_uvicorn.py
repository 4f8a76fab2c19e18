"""The WebSocket endpoint on a real uvicorn server (the test client skips the HTTP handshake and
TCP): close codes as a real client sees them, an event round trip, and a clean shutdown with a
connection open."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from harness import BTC_ASKS, BTC_BIDS, MemoryBackend
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from pysrc.api.app import create_app
from pysrc.api.auth import ADMIN, AuthStore


class _Server:
    def __init__(self, backend: MemoryBackend, auth: AuthStore) -> None:
        app = create_app(backend, auth, rate_limit_per_minute=100_000)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on")
        )
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "uvicorn did not shut down"


@pytest.fixture()
def served(backend: MemoryBackend, auth: AuthStore) -> Iterator[str]:
    with _Server(backend, auth) as url:
        yield url


def test_real_client_sees_4401_without_a_token(served: str) -> None:
    for url in (served, served + "?token=nope"):
        with connect(url) as ws, pytest.raises(ConnectionClosed) as exc:
            ws.recv(timeout=5)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 4401


def test_round_trip_and_shutdown_with_a_connection_open(backend: MemoryBackend, auth: AuthStore) -> None:
    token = auth.issue(auth.users[ADMIN])
    srv = _Server(backend, auth)
    url = srv.__enter__()
    stopped = False
    try:
        with connect(f"{url}?token={token}") as ws:
            ws.send(json.dumps({"type": "subscribe", "channel": "market_data", "symbols": ["BTCUSDT"]}))
            assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
            backend.set_book("BTCUSDT", BTC_BIDS, BTC_ASKS)  # from this thread: handed to the loop
            msg = json.loads(ws.recv(timeout=5))
            assert msg["type"] == "market_data" and msg["data"]["bid"] == "65000.0"
            t = time.monotonic()
            srv.__exit__(None, None, None)  # uvicorn shutdown with the socket open
            stopped = True
            assert time.monotonic() - t < 10
            with pytest.raises(ConnectionClosed) as exc:
                ws.recv(timeout=5)
            # 1012 (service restart) when uvicorn closes it, 1001 when the hub does first.
            assert exc.value.rcvd is not None and exc.value.rcvd.code in (1001, 1012)
    finally:
        if not stopped:
            srv.__exit__(None, None, None)
    assert backend.subscribers == []  # the hub unsubscribed in the lifespan


def test_a_client_that_stops_reading_is_dropped(backend: MemoryBackend, auth: AuthStore) -> None:
    """Real TCP back-pressure: the client reads nothing, the socket buffers fill, the sender
    blocks, the bounded queue fills, and the hub drops the client instead of waiting."""
    token = auth.issue(auth.users[ADMIN])
    app = create_app(backend, auth, rate_limit_per_minute=100_000, ws_queue_size=16)
    hub = app.state.hub
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        with connect(f"ws://127.0.0.1:{port}/ws?token={token}", max_queue=1, close_timeout=1) as ws:
            ws.send(json.dumps({"type": "subscribe", "channel": "market_data"}))
            assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
            blob = "x" * 50_000
            deadline = time.monotonic() + 20
            i = 0
            while hub.connections and time.monotonic() < deadline:
                backend.emit({"type": "market_data", "ts": i, "symbol": "BTCUSDT", "data": {"blob": blob}})
                i += 1
                if i % 200 == 0:
                    time.sleep(0.01)  # let the loop run the sender
            assert not hub.connections, f"not dropped after {i} events"
        assert hub.metrics.ws_dropped.get(reason="slow_consumer") == 1
    finally:
        server.should_exit = True
        thread.join(15)
