"""``sim-exchange``: run the local Bybit exchange until SIGINT/SIGTERM.

Prints one line when ready (so a parent process can read the port when ``--port 0``)::

    sim-exchange ready rest=http://127.0.0.1:PORT ws_public=ws://... ws_private=ws://... symbols=N
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
    p.add_argument("--fault", action="append", default=[], metavar="JSON",
                   help='a fault to arm at start, as for POST /sim/faults (repeatable), e.g. '
                        '\'{"kind": "drop", "stream": "public", "after_messages": 5000}\'')
    return p


async def _serve(args: argparse.Namespace) -> int:
    from pysrc.sim import SimExchange

    sim = SimExchange(symbols=args.symbols, seed=args.seed, api_key=args.api_key,
                      api_secret=args.api_secret, balance=Decimal(args.balance),
                      ip_ban_seconds=args.ip_ban_seconds, replay=args.replay,
                      replay_speed=args.replay_speed)
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
    try:
        print(f"sim-exchange ready rest={sim.rest_url} ws_public={sim.ws_public_url} "
              f"ws_private={sim.ws_private_url} symbols={len(sim.symbols)}", flush=True)
        await stop.wait()
    finally:
        await sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.symbols < 1:
        print("--symbols must be at least 1", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(_serve(args))
    return uvloop.run(_serve(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
