"""Helpers for the exchange tests: a fake monotonic clock (no sleeping in unit tests), the real
local exchange on an ephemeral loopback port, and a condition poller (no timed assertions)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

SIM_KEY = "sim-key"
SIM_SECRET = "sim-secret"


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@asynccontextmanager
async def running_sim(**kwargs: Any) -> AsyncIterator[Any]:
    """A real SimExchange on 127.0.0.1, ephemeral port, stopped on exit."""
    from pysrc.sim import SimExchange

    kwargs.setdefault("symbols", 3)
    kwargs.setdefault("seed", 1)
    sim = SimExchange(api_key=SIM_KEY, api_secret=SIM_SECRET, **kwargs)
    await sim.start(host="127.0.0.1", port=0)
    try:
        yield sim
    finally:
        await sim.stop()


async def wait_until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``cond`` until true; generous timeout, no timing assertions."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.01)
