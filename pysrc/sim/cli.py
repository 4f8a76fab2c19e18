"""``sim-exchange``: run the local Bybit exchange until SIGINT/SIGTERM.

Prints one line when ready (so a parent process can read the port when ``--port 0``)::

    sim-exchange ready rest=http://127.0.0.1:PORT ws_public=ws://... ws_private=ws://... symbols=N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from decimal import Decimal


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pysrc.bot sim-exchange", description="Local Bybit v5 exchange (loopback).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed when ready)")
    p.add_argument("--symbols", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--api-key", default="sim-key")
    p.add_argument("--api-secret", default="sim-secret")
    p.add_argument("--balance", default="100000", help="USDT in the simulated wallet")
    p.add_argument("--ip-ban-seconds", type=float, default=60.0,
                   help="HTTP 403 ban after 600 requests / 5 s (Bybit: 10 minutes)")
    p.add_argument("--replay", default=None, help="recorded Bybit JSONL book stream to replay first")
    p.add_argument("--replay-speed", type=float, default=1.0)
    p.add_argument("--phases", type=int, default=5,
                   help="spread the symbols over this many slices of the 10 ms clock tick, as "
                        "Bybit's independent streams are (1: every symbol in lockstep)")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="stop when this process is gone (a parent that owns the exchange and died "
                        "without stopping it must not leave it running)")
    p.add_argument("--fault", action="append", default=[], metavar="JSON",
                   help='a fault to arm at start, as for POST /sim/faults (repeatable), e.g. '
                        '\'{"kind": "drop", "stream": "public", "after_messages": 5000}\'')
    return p


async def _serve(args: argparse.Namespace) -> int:
    from pysrc.sim import SimExchange

    sim = SimExchange(symbols=args.symbols, seed=args.seed, api_key=args.api_key,
                      api_secret=args.api_secret, balance=Decimal(args.balance),
                      ip_ban_seconds=args.ip_ban_seconds, replay=args.replay,
                      replay_speed=args.replay_speed, phases=args.phases)
    for spec in args.fault:
        sim.faults.apply(json.loads(spec))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    await sim.start(host=args.host, port=args.port)
    watchdog = asyncio.create_task(_watch_parent(args.parent_pid, stop)) if args.parent_pid else None
    try:
        print(f"sim-exchange ready rest={sim.rest_url} ws_public={sim.ws_public_url} "
              f"ws_private={sim.ws_private_url} symbols={len(sim.symbols)}", flush=True)
        await stop.wait()
    finally:
        if watchdog is not None:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
        await sim.stop()
    return 0


async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
    """Set ``stop`` once the owning process has exited (this process is re-parented then)."""
    while os.getppid() == pid:
        await asyncio.sleep(1.0)
    print(f"sim-exchange: parent process {pid} is gone; stopping", file=sys.stderr, flush=True)
    stop.set()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.symbols < 1:
        print("--symbols must be at least 1", file=sys.stderr)
        return 2
    if not 1 <= args.phases <= 10:
        print("--phases must be between 1 and 10", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(_serve(args))
    return uvloop.run(_serve(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
