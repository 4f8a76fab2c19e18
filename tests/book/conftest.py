"""Shared fixtures of the order-book tests.

Tests run with ``--import-mode=importlib`` and cannot import each other, so everything they share
(the real recordings turned into replayable steps, engine factories, a full dump of an engine's
books) is handed out here as fixtures.

The recordings live in ``../shared/realdata`` (the ``realdata`` fixture of ``tests/conftest.py``)
and are read in place, never copied. Provenance and licences are in SOURCES.md there: cryptofeed
sample data (XFree86-1.1, copyright Bryant Moscon), python-kraken-sdk fixtures (Apache-2.0) and
the nautilus_trader Bybit ob500 dump (LGPL-3.0).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pytest

from pysrc.book.capture import binance_snapshot_symbol, merge_by_time, read_capture

# One replay step: ("apply", None, raw message) or ("snapshot", symbol, REST body).
Step = tuple[str, "str | None", "bytes | str"]


class Engine(Protocol):
    """What the tests use of ``BookEngine`` / ``ReferenceEngine``."""

    def apply(self, message: bytes | str) -> tuple[int, str | None]: ...
    def apply_snapshot(self, symbol: str, message: bytes | str) -> tuple[int, str | None]: ...
    def symbols(self) -> list[str]: ...
    def state(self, symbol: str) -> str: ...
    def update_id(self, symbol: str) -> int: ...
    def last_ts(self, symbol: str) -> int | None: ...
    def stats(self, symbol: str) -> dict[str, int | str]: ...
    def totals(self) -> dict[str, int]: ...
    def levels(
        self, symbol: str, n: int = 20
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]: ...


@dataclass(frozen=True)
class Recording:
    """A real recording as replayable steps, with the file(s) it came from."""

    name: str
    exchange: str
    files: tuple[str, ...]
    steps: tuple[Step, ...]


# ---- turning files into steps --------------------------------------------------------------


def dump_exact_json(value: Any) -> str:
    """Serialize JSON parsed with ``parse_float=Decimal`` back with every number's digits
    (``4.0`` stays ``4.0``, ``0.00100000`` keeps its zeros), as the exchange sent them."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return (
            "{" + ",".join(f"{json.dumps(k)}:{dump_exact_json(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(dump_exact_json(v) for v in value) + "]"
    return json.dumps(value)


def _bybit_steps(root: Path) -> tuple[Step, ...]:
    lines = (root / "2024-12-01_XRPUSDT_ob500.data").read_bytes().splitlines()
    return tuple(("apply", None, line) for line in lines if line.strip())


def _recv_steps(path: Path) -> tuple[Step, ...]:
    return tuple(("apply", None, e.payload) for e in read_capture(path) if e.kind == "recv")


def _kraken_sdk_steps(path: Path) -> tuple[Step, ...]:
    fixture = json.loads(path.read_text(), parse_float=Decimal)
    init = fixture["init"] if isinstance(fixture["init"], list) else [fixture["init"]]
    return tuple(("apply", None, dump_exact_json(m)) for m in [*init, *fixture["updates"]])


def _binance_steps(root: Path) -> tuple[Step, ...]:
    events = merge_by_time(
        read_capture(root / "BINANCE_FUTURES.ws.1.0"),
        read_capture(root / "BINANCE_FUTURES.http.0.0"),
    )
    steps: list[Step] = []
    for event in events:
        if event.kind == "recv":
            steps.append(("apply", None, event.payload))
        elif event.kind == "http":
            assert event.url is not None
            steps.append(("snapshot", binance_snapshot_symbol(event.url), event.payload))
    return tuple(steps)


_RECORDINGS: dict[str, tuple[str, tuple[str, ...], Callable[[Path], tuple[Step, ...]]]] = {
    "bybit-ob500": ("bybit", ("2024-12-01_XRPUSDT_ob500.data",), _bybit_steps),
    "okx-books": ("okx", ("OKX.ws.1.0",), lambda r: _recv_steps(r / "OKX.ws.1.0")),
    "kraken-v1-book1000": (
        "kraken",
        ("KRAKEN.ws.50.0",),
        lambda r: _recv_steps(r / "KRAKEN.ws.50.0"),
    ),
    "kraken-sdk-v1": (
        "kraken",
        ("kraken-sdk-orderbook-v1.json",),
        lambda r: _kraken_sdk_steps(r / "kraken-sdk-orderbook-v1.json"),
    ),
    "kraken-sdk-v2": (
        "kraken",
        ("kraken-sdk-orderbook-v2.json",),
        lambda r: _kraken_sdk_steps(r / "kraken-sdk-orderbook-v2.json"),
    ),
    "binance-usdm": (
        "binance",
        ("BINANCE_FUTURES.ws.1.0", "BINANCE_FUTURES.http.0.0"),
        _binance_steps,
    ),
}
RECORDING_NAMES: tuple[str, ...] = tuple(_RECORDINGS)


@pytest.fixture(scope="session")
def recording(realdata: Path) -> Callable[[str], Recording]:
    """``recording(name)`` -> the named real recording (cached for the session)."""
    cache: dict[str, Recording] = {}

    def load(name: str) -> Recording:
        if name not in cache:
            exchange, files, build = _RECORDINGS[name]
            cache[name] = Recording(name, exchange, files, build(realdata))
        return cache[name]

    return load


# ---- engines -------------------------------------------------------------------------------

EngineFactory = Callable[..., Engine]


@pytest.fixture(scope="session")
def native_engine() -> EngineFactory:
    """Factory of native ``BookEngine`` (imported lazily, so pure-Python tests run without it)."""
    from pysrc.book import BookEngine

    return BookEngine


@pytest.fixture(scope="session")
def reference_engine() -> EngineFactory:
    from pysrc.book.reference import ReferenceEngine

    return ReferenceEngine


@pytest.fixture(scope="session", params=["native", "reference"])
def any_engine(request: pytest.FixtureRequest) -> EngineFactory:
    """Each test using it runs once with the native engine and once with the reference."""
    name = "native_engine" if request.param == "native" else "reference_engine"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def run_step(engine: Engine, step: Step) -> tuple[int, str | None]:
    kind, symbol, payload = step
    if kind == "snapshot":
        assert symbol is not None
        return engine.apply_snapshot(symbol, payload)
    return engine.apply(payload)


@pytest.fixture(scope="session")
def replay() -> Callable[[Engine, Iterable[Step]], list[tuple[int, str | None]]]:
    """``replay(engine, steps)`` -> the ``(outcome, symbol)`` of every step."""

    def run(engine: Engine, steps: Iterable[Step]) -> list[tuple[int, str | None]]:
        return [run_step(engine, step) for step in steps]

    return run


@pytest.fixture(scope="session")
def step_runner() -> Callable[[Engine, Step], tuple[int, str | None]]:
    return run_step


def dump_books(engine: Engine, symbols: Sequence[str] | None = None) -> dict[str, Any]:
    """Everything observable about an engine's books, for exact comparison."""
    books: dict[str, Any] = {}
    for symbol in engine.symbols() if symbols is None else symbols:
        books[symbol] = {
            "levels": engine.levels(symbol, 0),
            "state": engine.state(symbol),
            "update_id": engine.update_id(symbol),
            "last_ts": engine.last_ts(symbol),
            "stats": engine.stats(symbol),
        }
    return {"symbols": engine.symbols(), "books": books, "totals": engine.totals()}


@pytest.fixture(scope="session")
def book_dump() -> Callable[..., dict[str, Any]]:
    return dump_books


@pytest.fixture(scope="session")
def exact_json() -> Callable[[Any], str]:
    return dump_exact_json
