"""Command-line shell shared by the baseline replays (``pure_replay.py``, ``cext_replay.py``).

It reproduces the output of ``python -m pysrc.bot book-replay FILE --emit final``: after the whole
file, one JSON object per book on stdout (``exchange, symbol, bids, asks, update_id, messages,
gaps, resyncs, checksums_checked, checksum_failures``; prices and sizes as decimal strings, best
first), and a one-line summary on stderr. ``bench/replay_compare.py`` parses the outputs of the
native CLI and of the baselines and requires them to be equal per symbol.

The scripts that use it are run as ``python bench/<script>.py`` (without ``-P``) so that their own
folder is on ``sys.path``; ``bench/`` holds no ``pysrc`` package, so the installed one is imported.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import orjson

# The same output function as the CLI, so the baselines print exactly what book-replay prints.
from pysrc.book.replay import book_summary


def open_stream(path: str) -> BinaryIO:
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def iter_lines(fh: Iterable[bytes]) -> Iterator[bytes]:
    for line in fh:
        if line.strip():
            yield line


def replay_main(engine: Any, argv: list[str] | None, prog: str) -> int:
    """Shared by this script and ``pure_replay.py``: replay FILE into ``engine``, print books."""
    ap = argparse.ArgumentParser(
        prog=prog, description=f"{prog}: replay a Bybit stream into a baseline book"
    )
    ap.add_argument("file")
    ap.add_argument("--exchange", default="bybit", choices=["bybit"])
    ap.add_argument("--symbol", default=None)
    ap.add_argument("--top", type=int, default=20, help="levels per side to print; 0 = all")
    ap.add_argument("--emit", default="final", choices=["final"])
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    n = errors = 0
    apply = engine.apply
    with open_stream(args.file) as fh:
        for line in iter_lines(fh):
            n += 1
            try:
                apply(line)
            except ValueError:  # MalformedMessage is a ValueError in both engines
                errors += 1
    elapsed = time.perf_counter() - t0
    out = sys.stdout.buffer
    for symbol in engine.symbols():
        if args.symbol is not None and symbol != args.symbol:
            continue
        out.write(orjson.dumps(book_summary(engine, symbol, args.top)) + b"\n")
    out.flush()
    rate = n / elapsed if elapsed > 0 else float("inf")
    print(
        f"{prog}: {n} messages, {errors} errors, {len(engine.symbols())} books in "
        f"{elapsed:.3f} s ({rate:,.0f} msg/s)",
        file=sys.stderr,
    )
    return 0
