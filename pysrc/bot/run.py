"""``python -m pysrc.bot run``: build the configuration, run the bot, stop it on SIGINT/SIGTERM.

Exit codes: 0 after a graceful stop, 2 for a configuration error (the message names the key), 1
when start-up failed for another reason (the message says which component).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from pysrc.config import ConfigError, load


def build_config(args: argparse.Namespace) -> Any:
    overrides: dict[str, Any] = {
        "settings.api.host": args.api_host,
        "settings.api.port": args.api_port,
        "settings.mode": args.mode,
        "settings.status_interval_s": args.status_interval if args.status_interval else None,
    }
    if args.symbols:
        overrides["symbols"] = [s.strip() for s in args.symbols.split(",") if s.strip()]
    return load(args.config, overrides=overrides)


async def _main(args: argparse.Namespace) -> int:
    from pysrc.bot.runtime import BotRuntime

    config = build_config(args)
    runtime = BotRuntime(config, data_dir=args.data_dir, allow_live=args.live,
                         status_interval=args.status_interval)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runtime.request_stop)
    try:
        try:
            await runtime.start()
        except Exception as exc:
            await runtime.stop()  # whatever started before the failure stops again
            if isinstance(exc, ConfigError):
                raise
            print(f"bybit-bot: start-up failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        await runtime.wait_stopped()
        await runtime.stop()
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_bot(args: argparse.Namespace) -> int:
    from pysrc.feed.loop import run

    try:
        return run(_main(args))
    except ConfigError as exc:
        print(f"bybit-bot: configuration error: {exc}", file=sys.stderr)
        return 2


__all__ = ["build_config", "run_bot"]
