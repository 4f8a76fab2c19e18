"""Load check of the local exchange: run it in its own process, subscribe ``--symbols`` symbols at
``orderbook.50`` + ``publicTrade`` (10 symbols per connection), and report the messages per
second the client sees and the server process's CPU share and memory.

    python -m pysrc.sim.bench --symbols 100 --seconds 20

The client here only counts frames (and checks the ``u`` chain of every book topic); it is not
the project's feed client.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import aiohttp
import orjson
import psutil  # type: ignore[import-untyped]


async def _reader(url: str, topics: list[str], counts: dict[str, int], last_u: dict[str, int],
                  gaps: list[int], stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(url, max_msg_size=1 << 24) as ws:
        await ws.send_str(orjson.dumps({"op": "subscribe", "args": topics}).decode())
        while not stop.is_set():
            try:
                msg = await asyncio.wait_for(ws.receive(), 0.5)
            except TimeoutError:
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            d = orjson.loads(msg.data)
            topic = d.get("topic")
            if topic is None:
                continue
            kind = topic.split(".", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "orderbook":
                u = d["data"]["u"]
                prev = last_u.get(topic)
                if d["type"] == "delta" and prev is not None and u != prev + 1:
                    gaps[0] += 1
                last_u[topic] = u


async def run(symbols: int, seconds: float, per_conn: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pysrc.sim.cli", "--port", "0", "--symbols", str(symbols),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await proc.stdout.readline()).decode()
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        url = fields["ws_public"]
        rest = fields["rest"]
        async with aiohttp.ClientSession() as s, s.get(f"{rest}/v5/market/instruments-info?category=linear") as r:
            names = [i["symbol"] for i in (await r.json())["result"]["list"]]
        ps = psutil.Process(proc.pid)
        counts: dict[str, int] = {}
        last_u: dict[str, int] = {}
        gaps = [0]
        stop = asyncio.Event()
        tasks = []
        for i in range(0, len(names), per_conn):
            chunk = names[i:i + per_conn]
            topics = [f"orderbook.50.{n}" for n in chunk] + [f"publicTrade.{n}" for n in chunk]
            tasks.append(asyncio.create_task(_reader(url, topics, counts, last_u, gaps, stop)))
        await asyncio.sleep(2.0)  # warm-up: snapshots, connection set-up
        c0 = dict(counts)
        cpu0 = ps.cpu_times()
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        cpu1 = ps.cpu_times()
        t1 = time.monotonic()
        c1 = dict(counts)
        rss = ps.memory_info().rss
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        wall = t1 - t0
        cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        rates = {k: (c1.get(k, 0) - c0.get(k, 0)) / wall for k in c1}
        return {
            "symbols": len(names), "seconds": round(wall, 1),
            "msgs_per_s": {k: round(v, 1) for k, v in rates.items()},
            "total_msgs_per_s": round(sum(rates.values()), 1),
            "book_msgs_per_topic_per_s": round(rates.get("orderbook", 0.0) / max(1, len(names)), 1),
            "server_cpu_share_of_one_core": round(cpu / wall, 3),
            "server_rss_mb": round(rss / 2**20, 1),
            "u_gaps": gaps[0],
        }
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pysrc.sim.bench")
    p.add_argument("--symbols", type=int, default=100)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--per-conn", type=int, default=10)
    a = p.parse_args(argv)
    try:
        import uvloop

        result = uvloop.run(run(a.symbols, a.seconds, a.per_conn))
    except ImportError:  # pragma: no cover
        result = asyncio.run(run(a.symbols, a.seconds, a.per_conn))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
