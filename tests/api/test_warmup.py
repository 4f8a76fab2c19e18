"""The start-up warm-up drives every read route once in-process, with a real token."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from pysrc.api.auth import ADMIN, AuthStore
from pysrc.api.warmup import read_paths, warm_up


def test_read_paths_are_the_gets_that_need_at_most_a_symbol(app: FastAPI) -> None:
    paths = read_paths(app.openapi(), "BTCUSDT")
    assert "/api/market/ticker/BTCUSDT" in paths and "/api/bot/status" in paths
    assert "/health" in paths and "/api/trading/risk-status" in paths
    assert not any("{" in p for p in paths), paths  # other path parameters are left out
    assert "/api/auth/login" not in paths  # a POST


def test_warm_up_runs_every_read_route_without_a_server_error(app: FastAPI, auth: AuthStore) -> None:
    token = auth.issue(auth.users[ADMIN])
    statuses = asyncio.run(warm_up(app, token, "BTCUSDT"))
    assert statuses["/api/bot/status"] == 200 and statuses["/api/market/orderbook/BTCUSDT"] == 200
    assert all(s < 500 for s in statuses.values()), statuses
    assert all(s != 401 for s in statuses.values()), "the warm-up token was refused"
    # the warm-up leaves the app serving normally
    statuses_again = asyncio.run(warm_up(app, token, "BTCUSDT"))
    assert statuses_again == statuses
