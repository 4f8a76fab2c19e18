"""Soak benchmark of the public feed against the local Bybit exchange in another process.

    python bench/soak.py --symbols 100 --seconds 180          # the issue's soak (a few minutes)
    python bench/soak.py --symbols 20 --seconds 5 --base-seconds 3   # a quick look

What runs, in this order, against one ``sim-exchange`` child process (loopback only):

1. **baseline**: a bare aiohttp client on the same connection plan (10 pairs per socket,
   ``orderbook.50`` + ``publicTrade``) that only receives frames: the socket and event-loop cost
   any client pays;
2. **feed**: the project's :class:`pysrc.feed.PublicFeed` into a native ``BookEngine`` (every
   frame applied, integrity checked, latency recorded, events queued);
3. **check**: the market is paused, every book is brought to the exchange's last ``u`` and
   compared level by level with the exchange's own view (``GET /sim/book``).

Reported: messages per second, exchange-to-book latency p50/p99 (pooled over every symbol), CPU
share of one core and peak RSS of this (client) process, resyncs and gaps, the CPU ratio of the
feed to the baseline (both measured in this run), and the book comparison. Targets from the
issue (all 100 books correct; client CPU < 25% of one core at Bybit's rates; p99 < 2 ms;
memory < 300 MB) are judged in the report, never asserted on timing.

The latency is the frame's ``ts`` (the exchange's wall clock in whole milliseconds, stamped when
the message is built) against this process's wall clock after the book applied it; the
truncation of ``ts`` to the millisecond adds 0 to 1 ms to every sample.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil

from pysrc.book import BookEngine
from pysrc.feed import PublicFeed
from pysrc.feed.loop import run as run_on_best_loop

PAIRS_PER_CONNECTION = 10
DEPTH = 50


class SimProcess:
    """``python -m pysrc.bot sim-exchange`` as a child process; reads its URLs from the ready line."""

    def __init__(self, symbols: int, seed: int, phases: int = 5) -> None:
        self.args = [sys.executable, "-P", "-m", "pysrc.bot", "sim-exchange", "--port", "0",
                     "--symbols", str(symbols), "--seed", str(seed), "--phases", str(phases)]
        self.proc: subprocess.Popen[str] | None = None
        self.urls: dict[str, str] = {}

    def __enter__(self) -> SimProcess:
        # -P and a neutral working directory: the installed package runs, as for a user.
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True, cwd=Path(os.sep))
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "ready" not in line:
            self.proc.kill()
            raise RuntimeError(f"sim-exchange did not start: {line!r}")
        self.urls = dict(part.split("=", 1) for part in line.split() if "=" in part)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _pct(data: list[float], q: float) -> float | None:
    if not data:
        return None
    data = sorted(data)
    return data[min(len(data) - 1, max(0, math.ceil(q / 100.0 * len(data)) - 1))]


async def _symbols(http: aiohttp.ClientSession, rest: str) -> list[str]:
    async with http.get(f"{rest}/v5/market/instruments-info", params={"category": "linear"}) as r:
        body = await r.json()
    return [i["symbol"] for i in body["result"]["list"]]


async def _set_paused(http: aiohttp.ClientSession, rest: str, paused: bool) -> None:
    async with http.post(f"{rest}/sim/market", json={"paused": paused}) as r:
        r.raise_for_status()


class _Sampler:
    """CPU time and peak RSS of this process over a phase."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak_rss = 0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
            await asyncio.sleep(0.5)

    def start(self) -> None:
        self.cpu0 = time.process_time()
        self.t0 = time.monotonic()
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> dict[str, float]:
        cpu, wall = time.process_time() - self.cpu0, time.monotonic() - self.t0
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
        return {"cpu_s": cpu, "wall_s": wall, "cpu_share": cpu / wall if wall > 0 else 0.0,
                "peak_rss_mb": self.peak_rss / 2**20}


async def baseline(url: str, symbols: list[str], seconds: float, warmup: float) -> dict[str, Any]:
    """Receive-only clients on the feed's connection plan: frames counted, nothing parsed but the
    ``ts`` of book frames (a string search), so the socket's own exchange-to-receive latency is
    measured in the same run as the feed's exchange-to-book latency."""
    count = [0]
    lat: list[float] = []
    measuring = [False]
    stop = asyncio.Event()

    async def reader(chunk: list[str]) -> None:
        topics = [f"orderbook.{DEPTH}.{s}" for s in chunk] + [f"publicTrade.{s}" for s in chunk]
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=1 << 24) as ws:
            await ws.send_str(orjson.dumps({"op": "subscribe", "args": topics}).decode())
            while not stop.is_set():
                try:
                    msg = await asyncio.wait_for(ws.receive(), 0.5)
                except TimeoutError:
                    continue
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    return
                count[0] += 1
                if measuring[0]:
                    data = msg.data
                    if data.startswith('{"topic":"orderbook'):
                        i = data.find('"ts":')
                        if i > 0:
                            lat.append(time.time() * 1000.0 - int(data[i + 5:i + 18]))

    tasks = [asyncio.create_task(reader(symbols[i:i + PAIRS_PER_CONNECTION]))
             for i in range(0, len(symbols), PAIRS_PER_CONNECTION)]
    try:
        await asyncio.sleep(warmup)
        n0, sampler = count[0], _Sampler()
        sampler.start()
        measuring[0] = True
        await asyncio.sleep(seconds)
        measuring[0] = False
        n1 = count[0]
        usage = await sampler.stop()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {**usage, "messages": n1 - n0, "msgs_per_s": (n1 - n0) / usage["wall_s"],
            "latency_ms_p50": _pct(lat, 50), "latency_ms_p99": _pct(lat, 99), "latency_samples": len(lat)}


def _describe_mismatch(symbol: str, engine: BookEngine, want: dict[str, Any], got: Any, expected: Any) -> str:
    """Where a book differs from the exchange's: the first differing level per side."""
    parts = [f"{symbol}: state {engine.state(symbol) if engine.has_book(symbol) else 'no book'}, "
             f"u {engine.update_id(symbol) if engine.has_book(symbol) else None} vs exchange {want['u']}"]
    for side, g, e in (("bids", got[0], expected[0]), ("asks", got[1], expected[1])):
        for i, (a, b) in enumerate(zip(g, e, strict=False)):
            if a != b:
                parts.append(f"{side}[{i}] {a} vs {b}")
                break
        if len(g) != len(e):
            parts.append(f"{side} {len(g)} vs {len(e)} levels")
    return "; ".join(parts)


async def feed_phase(
    urls: dict[str, str], symbols: list[str], seconds: float, warmup: float, features: bool
) -> dict[str, Any]:
    engine = BookEngine("bybit", features=features)
    rest = urls["rest"]
    async with aiohttp.ClientSession() as http:
        feed = PublicFeed(urls["ws_public"], engine, symbols=symbols, depth=DEPTH,
                          topics=("orderbook", "publicTrade"),
                          pairs_per_connection=PAIRS_PER_CONNECTION, trade_events=True)
        async with feed:
            ready = await feed.wait_usable(timeout=max(30.0, warmup * 4))
            await asyncio.sleep(warmup)
            m0 = feed.metrics()["totals"]
            sampler = _Sampler()
            sampler.start()
            # Drain the per-symbol queues as a strategy would, so backpressure is exercised.
            drained = [0]

            async def consume() -> None:
                while True:
                    for s in symbols:
                        q = feed.queue(s)
                        while q.qsize():
                            q.get_nowait()
                            drained[0] += 1
                    await asyncio.sleep(0.05)

            consumer = asyncio.create_task(consume())
            await asyncio.sleep(seconds)
            m1 = feed.metrics()
            usage = await sampler.stop()
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)

            latencies: list[float] = []
            for s in symbols:
                latencies.extend(feed.latency_samples(s))

            # The comparison: freeze the market, let the exchange publish what changed before the
            # pause (its book view is the market's, its u the last published one), then wait for
            # every book to reach the exchange's u and compare.
            await _set_paused(http, rest, True)
            await asyncio.sleep(0.3)
            mismatches: list[str] = []
            details: list[str] = []
            deadline = time.monotonic() + 30.0
            for s in symbols:
                while True:
                    async with http.get(f"{rest}/sim/book", params={"symbol": s, "depth": DEPTH}) as r:
                        want = await r.json()
                    live = engine.has_book(s) and engine.is_live(s)
                    bids, asks = engine.levels(s, DEPTH) if live else ([], [])
                    got = ([tuple(x) for x in bids], [tuple(x) for x in asks])
                    expected = ([tuple(x) for x in want["b"]], [tuple(x) for x in want["a"]])
                    at_u = live and engine.update_id(s) == int(want["u"][str(DEPTH)])
                    if (at_u and got == expected) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.05)
                if got != expected:
                    mismatches.append(s)
                    details.append(_describe_mismatch(s, engine, want, got, expected))
            await _set_paused(http, rest, False)
    totals = m1["totals"]
    messages = totals["messages"] - m0["messages"]
    return {
        **usage,
        "ready": ready,
        "messages": messages,
        "msgs_per_s": messages / usage["wall_s"],
        "latency_ms_p50": _pct(latencies, 50),
        "latency_ms_p99": _pct(latencies, 99),
        "latency_samples": len(latencies),
        "resyncs": totals["resyncs"],
        "gaps": totals["gaps"],
        "dropped": totals["dropped"],
        "malformed": totals["malformed"],
        "books_equal": len(symbols) - len(mismatches),
        "books": len(symbols),
        "mismatched": mismatches,
        "mismatch_details": details,
        "events_drained": drained[0],
    }


async def soak(symbols: int, seconds: float, base_seconds: float, warmup: float, seed: int,
               features: bool, phases: int = 5) -> dict[str, Any]:
    with SimProcess(symbols, seed, phases) as sim:
        sim_ps = psutil.Process(sim.proc.pid)  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http:
            names = await _symbols(http, sim.urls["rest"])
        base = await baseline(sim.urls["ws_public"], names, base_seconds, warmup)
        s0 = sim_ps.cpu_times()
        t0 = time.monotonic()
        feed = await feed_phase(sim.urls, names, seconds, warmup, features)
        s1 = sim_ps.cpu_times()
        sim_share = ((s1.user + s1.system) - (s0.user + s0.system)) / (time.monotonic() - t0)
    return {
        "symbols": len(names),
        "seconds": seconds,
        "features": features,
        "phases": phases,
        "baseline": base,
        "feed": feed,
        "exchange_cpu_share": sim_share,
        "cpu_ratio_feed_vs_baseline": (feed["cpu_share"] / base["cpu_share"]) if base["cpu_share"] else None,
        "rate_ratio_feed_vs_baseline": feed["msgs_per_s"] / base["msgs_per_s"] if base["msgs_per_s"] else None,
        "load_average": os.getloadavg(),
    }


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def report(r: dict[str, Any]) -> list[str]:
    f, b = r["feed"], r["baseline"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f} ms"

    lines = [
        f"soak: {r['symbols']} symbols, orderbook.{DEPTH} + publicTrade, {PAIRS_PER_CONNECTION} pairs per "
        f"connection, {r['seconds']:.0f} s (features={'on' if r['features'] else 'off'}, exchange clock "
        f"phases={r['phases']})",
        f"  baseline (receive only): {b['msgs_per_s']:,.0f} msgs/s, CPU {b['cpu_share']:.1%} of one core, "
        f"exchange-to-receive latency p50 {ms(b['latency_ms_p50'])}, p99 {ms(b['latency_ms_p99'])}",
        f"  feed into native books:  {f['msgs_per_s']:,.0f} msgs/s, CPU {f['cpu_share']:.1%} of one core, "
        f"peak RSS {f['peak_rss_mb']:.0f} MB",
        f"  ratios in this run: CPU feed/baseline {_ratio(r['cpu_ratio_feed_vs_baseline'])}, "
        f"msgs/s feed/baseline {_ratio(r['rate_ratio_feed_vs_baseline'])}",
        f"  exchange-to-book latency: p50 {ms(f['latency_ms_p50'])}, p99 {ms(f['latency_ms_p99'])} "
        f"({f['latency_samples']} samples; ts has 1 ms resolution)",
        f"  resyncs {f['resyncs']}, gaps {f['gaps']}, queue drops {f['dropped']}, malformed {f['malformed']}",
        f"  books equal to the exchange after the pause: {f['books_equal']}/{f['books']}"
        + (f" (mismatched: {', '.join(f['mismatched'][:10])})" if f["mismatched"] else ""),
        *(f"    {d}" for d in f["mismatch_details"][:10]),
        f"  exchange process CPU {r['exchange_cpu_share']:.1%} of one core; load average {r['load_average']}",
        "targets: all books correct -> " + ("met" if f["books_equal"] == f["books"] else "MISSED")
        + f"; client CPU < 25% of one core -> {'met' if f['cpu_share'] < 0.25 else 'MISSED'}"
        + f"; p99 < 2 ms -> {'met' if (f['latency_ms_p99'] or 99) < 2.0 else 'MISSED'}"
        + f"; memory < 300 MB -> {'met' if f['peak_rss_mb'] < 300 else 'MISSED'}",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/soak.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", type=int, default=100)
    p.add_argument("--seconds", type=float, default=180.0, help="length of the measured feed phase")
    p.add_argument("--base-seconds", type=float, default=20.0, help="length of the baseline phase")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--features", action="store_true", help="keep the feature vectors current too")
    p.add_argument("--phases", type=int, default=5,
                   help="the exchange's clock slices (1: every symbol pushed in the same millisecond)")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    a = p.parse_args(argv)
    result = run_on_best_loop(soak(a.symbols, a.seconds, a.base_seconds, a.warmup, a.seed, a.features,
                                   a.phases))
    print("\n".join(report(result)))
    if a.json:
        a.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0 if result["feed"]["books_equal"] == result["feed"]["books"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
