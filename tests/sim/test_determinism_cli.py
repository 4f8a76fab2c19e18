"""Same seed, same market; the ``sim-exchange`` command runs as a real process."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.request
from typing import Any

from pysrc.sim import SimExchange
from pysrc.sim.instruments import make_instruments


def _run(seed: int, steps: int) -> tuple[list[Any], list[Any]]:
    sim = SimExchange(symbols=4, seed=seed)
    sim.step_market(steps)
    books = [sim.book(s, 200) for s in sim.symbols]
    trades = [
        (t.buy, t.ticks, t.lots, t.trade_id, t.seq)
        for s in sim.symbols for t in sim.markets[s].recent
    ]
    return books, trades


def test_fixed_seed_gives_the_same_market() -> None:
    a_books, a_trades = _run(42, 1500)
    b_books, b_trades = _run(42, 1500)
    assert a_books == b_books
    assert a_trades == b_trades and len(a_trades) > 20
    c_books, _ = _run(43, 1500)
    assert c_books != a_books


def test_symbols_are_deterministic_and_books_are_sane() -> None:
    names = [i.symbol for i in make_instruments(100)]
    assert names == [i.symbol for i in make_instruments(100)]
    assert len(set(names)) == 100 and names[0] == "BTCUSDT"
    sim = SimExchange(symbols=30, seed=9)
    sim.step_market(300)
    for s in sim.symbols:
        bids, asks = sim.book(s, 1000)
        assert len(bids) == 1000 and len(asks) == 1000
        inst = sim.markets[s].inst
        assert inst.parse_price(bids[0][0]) < inst.parse_price(asks[0][0]), "never crossed"


def test_cli_prints_urls_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pysrc.sim.cli import main; sys.exit(main(sys.argv[1:]))",
         "--port", "0", "--symbols", "3", "--seed", "5", "--api-key", "k", "--api-secret", "s"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("sim-exchange ready "), line
        fields = dict(p.split("=", 1) for p in line.split() if "=" in p)
        assert fields["ws_public"].endswith("/v5/public/linear") and fields["ws_private"].endswith("/v5/private")
        with urllib.request.urlopen(f"{fields['rest']}/v5/market/instruments-info?category=linear", timeout=10) as r:
            body = json.loads(r.read())
        assert [i["symbol"] for i in body["result"]["list"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_in_process_start_stop_twice() -> None:
    async def main() -> None:
        async with SimExchange(symbols=1) as sim:
            assert sim.port > 0 and sim.rest_url == f"http://127.0.0.1:{sim.port}"
        sim2 = SimExchange(symbols=1)
        await sim2.start(port=0)
        await sim2.stop()

    asyncio.run(main())


def test_replay_of_a_recorded_bybit_dump(realdata: Any, bybit: Any) -> None:
    """The recorded XRPUSDT stream drives the simulator's book; a client of the simulator ends with
    exactly the recording's final book (as the native engine rebuilds it from the file)."""
    from pysrc.book import BookEngine

    path = realdata / "2024-12-01_XRPUSDT_ob500.data"
    reference = BookEngine("bybit")
    reference.apply_lines(path.read_bytes())

    async def main() -> None:
        sim = SimExchange(symbols=4, seed=1, replay=path, replay_speed=5.0, replay_hold=True)
        await sim.start()
        try:
            import aiohttp

            async with aiohttp.ClientSession() as s:
                pub = bybit.Public(await s.ws_connect(sim.ws_public_url))
                await pub.send({"op": "subscribe", "args": ["orderbook.200.XRPUSDT"]})
                engine = BookEngine("bybit")
                m = sim.markets["XRPUSDT"]
                while not (m.replay_done and engine.has_book("XRPUSDT")
                           and engine.levels("XRPUSDT", 200) == sim.book("XRPUSDT", 200)):
                    d, raw = await pub.next(timeout=15)
                    if d.get("topic", "").startswith("orderbook."):
                        engine.apply(raw)
                assert sim.book("XRPUSDT", 200) == reference.levels("XRPUSDT", 200)
                assert engine.stats("XRPUSDT")["gaps"] == 0
                await pub.close()
        finally:
            await sim.stop()

    asyncio.run(main())


def test_exchange_stops_when_its_parent_is_gone() -> None:
    """A bot that dies without stopping its local exchange (SIGKILL, a crash) must not leave the
    exchange running: ``--parent-pid`` makes it watch its owner."""
    # The middle process starts the exchange as its child, prints the child's pid, then waits to
    # be killed; the exchange is then re-parented and must stop by itself.
    starter = (
        "import subprocess, sys, os, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import sys; from pysrc.sim.cli import main; "
        "sys.exit(main(sys.argv[1:]))', '--port', '0', '--symbols', '1', '--parent-pid', str(os.getpid())],"
        " stdout=subprocess.PIPE, text=True)\n"
        "print(p.pid, p.stdout.readline().split()[1], flush=True)\n"
        "time.sleep(120)\n"
    )
    middle = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    assert middle.stdout is not None
    child_pid, ready = middle.stdout.readline().split()
    assert ready == "ready"
    import os
    import time

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # a zombie (exited, not yet reaped by init) counts as gone
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    try:
        assert alive(int(child_pid))
        middle.kill()
        middle.wait(10)
        deadline = time.monotonic() + 20
        while alive(int(child_pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(int(child_pid)), "the orphaned exchange kept running"
    finally:
        if middle.poll() is None:
            middle.kill()
        if alive(int(child_pid)):
            os.kill(int(child_pid), 9)


def test_symbols_are_spread_over_the_clock_phases() -> None:
    sim = SimExchange(symbols=7, seed=3, phases=5)
    assert [m.phase for m in sim.markets.values()] == [0, 1, 2, 3, 4, 0, 1]
    assert [m.phase for m in SimExchange(symbols=3, seed=3, phases=1).markets.values()] == [0, 0, 0]
    import pytest

    with pytest.raises(ValueError, match="phases"):
        SimExchange(symbols=1, phases=0)


class _Recorder:
    """The socket end of a subscriber: keeps the frames the publisher writes (the publisher, the
    books and the market model are the real ones; the exchange's clock is not running)."""

    def __init__(self) -> None:
        self.topics: set[str] = set()
        self.frames: list[bytes] = []

    def send(self, frame: bytes) -> bool:
        self.frames.append(frame)
        return True

    def pushed(self) -> set[str]:
        out = {json.loads(f[f.index(b"{"):])["topic"].split(".")[-1] for f in self.frames}
        self.frames.clear()
        return out


def test_a_clock_slice_pushes_only_its_own_symbols() -> None:
    """With 5 phases, a slice of the tick pushes the books and trades of its own symbols only,
    so the 100 symbols of a soak are not all produced in the same millisecond (Bybit's streams
    are independent); each symbol still gets one push per tick."""
    sim = SimExchange(symbols=10, seed=4, phases=5, market_running=False)
    conn = _Recorder()
    for x in sim.symbols:
        sim.publisher.subscribe(conn, f"orderbook.50.{x}")  # type: ignore[arg-type]
        sim.publisher.subscribe(conn, f"publicTrade.{x}")  # type: ignore[arg-type]
    assert conn.pushed() == set(sim.symbols)  # the snapshots
    names = sim.symbols
    for phase in range(5):
        sim.step_market(50)  # every book changes, trades print
        sim.publisher.push_books(50, 1, phase)
        sim.publisher.push_trades(1, phase)
        assert conn.pushed() == {names[phase], names[phase + 5]}
    sim.step_market(50)
    sim.publisher.push_books(50, 1)  # no phase: every symbol
    assert conn.pushed() == set(names)
