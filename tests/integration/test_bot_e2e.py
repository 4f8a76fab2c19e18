"""The whole bot as a user runs it: ``python -m pysrc.bot`` in its own process, on embedded
defaults (local exchange child process, embedded PostgreSQL and Redis, paper trading), driven
through its REST API, stopped with SIGTERM and restarted on the same data directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

PASSWORD = "e2e-admin-password"


class Bot:
    """One bot process; its stdout is collected by a thread so the pipe never fills."""

    def __init__(self, data_dir: Path, cwd: Path) -> None:
        env = {**os.environ, "BOT_ADMIN_PASSWORD": PASSWORD, "BOT_LOG_LEVEL": "WARNING"}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "pysrc.bot", "--data-dir", str(data_dir), "--api-port", "0",
             "--status-interval", "1"],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self._wait_for_api()
        self.http = httpx.Client(base_url=self.url, timeout=30)
        r = self.http.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _wait_for_api(self, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.startswith("API on "):
                    return line.split()[2]
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("the bot did not start its API:\n" + "\n".join(self.lines[-40:]))

    def get(self, path: str, **kw: Any) -> Any:
        r = self.http.get(path, **kw)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def stop(self, timeout: float = 10.0) -> tuple[int, float]:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout + 20)
        return code, time.monotonic() - t0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture
def bot_dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    data, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    yield data, cwd


@pytest.mark.slow
def test_the_bot_end_to_end(bot_dirs: tuple[Path, Path]) -> None:
    data, cwd = bot_dirs
    bot = Bot(data, cwd)
    try:
        # Books for every default symbol.
        symbols = bot.get("/api/market/symbols")
        assert len(symbols) >= 10
        wait_until("every book live", lambda: all(s["usable"] for s in bot.get("/api/market/symbols")))
        health = bot.get("/health")
        assert health["status"] == "ok", health

        # Signals and paper orders from the strategies.
        wait_until("signals", lambda: bot.get("/api/trading/signals", params={"limit": 5}))
        wait_until("a strategy order", lambda: [o for o in bot.get("/api/trading/orders", params={"limit": 50})
                                              if o["strategy"] == "orderbook_scalper"])

        # A manual resting limit order, placed twice with the same client id: one order.
        sym = next(s for s in symbols if s["symbol"] == "BTCUSDT")
        book = bot.get(f"/api/market/orderbook/{sym['symbol']}", params={"depth": 1})
        tick = Decimal(sym["tick_size"])
        price = (Decimal(book["bids"][0][0]) * Decimal("0.9") / tick).to_integral_value() * tick
        body = {"symbol": "BTCUSDT", "side": "Buy", "order_type": "Limit", "qty": sym["min_qty"],
                "price": str(price), "client_order_id": "e2e-rest-1"}
        first = bot.http.post("/api/trading/orders", json=body)
        second = bot.http.post("/api/trading/orders", json=body)
        assert first.status_code == second.status_code == 200, (first.text, second.text)
        assert first.json()["client_order_id"] == second.json()["client_order_id"] == "e2e-rest-1"
        mine = [o for o in bot.get("/api/trading/orders", params={"limit": 500}) if o["client_order_id"] == "e2e-rest-1"]
        assert len(mine) == 1
        wait_until("the order acknowledged",
                   lambda: bot.get("/api/trading/orders/e2e-rest-1")["status"] == "ACKNOWLEDGED")
        cancelled = bot.http.delete("/api/trading/orders/e2e-rest-1")
        assert cancelled.status_code == 200, cancelled.text
        wait_until("the order cancelled",
                   lambda: bot.get("/api/trading/orders/e2e-rest-1")["status"] == "CANCELLED")

        # One more resting order and a position, then the kill switch.
        body2 = {**body, "client_order_id": "e2e-rest-2"}
        assert bot.http.post("/api/trading/orders", json=body2).status_code == 200
        wait_until("the second order acknowledged",
                   lambda: bot.get("/api/trading/orders/e2e-rest-2")["status"] == "ACKNOWLEDGED")
        market = {"symbol": "ETHUSDT", "side": "Buy", "order_type": "Market",
                  "qty": next(s for s in symbols if s["symbol"] == "ETHUSDT")["min_qty"],
                  "client_order_id": "e2e-market-1"}
        assert bot.http.post("/api/trading/orders", json=market).status_code == 200
        wait_until("a position", lambda: bot.get("/api/positions"))
        engaged = bot.http.post("/api/trading/kill-switch/engage", json={"reason": "e2e"})
        assert engaged.status_code == 200, engaged.text
        assert engaged.json()["kill_switch"] is True
        wait_until("no open orders", lambda: not bot.get("/api/trading/orders", params={"active": "true"}))
        wait_until("no positions", lambda: not bot.get("/api/positions"))
        assert bot.get("/api/trading/risk-status")["kill_switch"] is True
        assert bot.get("/api/trading/orders/e2e-rest-2")["status"] == "CANCELLED"
        metrics = bot.http.get("/metrics").text
        for name in ("bot_positions_opened_total", "bot_positions_closed_total", "bot_order_transitions_total",
                     "bot_circuit_breaker_open", "bot_kill_switch_engaged 1", "bot_exchange_to_decision_seconds"):
            assert name in metrics, name
        status = bot.get("/api/bot/status")
        assert status["trading"] is False and status["kill_switch"] is True
        orders_before = {o["client_order_id"]: o["status"] for o in bot.get("/api/trading/orders", params={"limit": 1000})}
        # Settings changed at run time survive the restart.
        changed = bot.http.put("/api/strategies/orderbook_scalper/params", json={"min_confidence": 0.6})
        assert changed.status_code == 200, changed.text
        bad = bot.http.put("/api/config/risk", json={"max_daily_loss": "0.9"})
        assert bad.status_code == 422 and "max_daily_loss" in bad.text

        code, took = bot.stop()
        assert code == 0, "\n".join(bot.lines[-30:])
        assert took < 10.0, f"stopping took {took:.1f} s"
    finally:
        bot.kill()

    # Restart on the same data: every order and position as it was, still halted.
    bot = Bot(data, cwd)
    try:
        orders_after = {o["client_order_id"]: o["status"] for o in bot.get("/api/trading/orders", params={"limit": 1000})}
        assert orders_after == orders_before
        assert bot.get("/api/positions") == []
        assert bot.get("/api/trading/risk-status")["kill_switch"] is True
        assert bot.get("/api/strategies/orderbook_scalper")["parameters"]["min_confidence"] == 0.6
        released = bot.http.post("/api/trading/kill-switch/release", json={"reason": "e2e done"})
        assert released.status_code == 200 and released.json()["kill_switch"] is False
        code, _ = bot.stop()
        assert code == 0
    finally:
        bot.kill()
