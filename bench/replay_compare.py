"""Whole-process replay of a large Bybit ``orderbook.200`` stream: native CLI against baselines.

    python bench/replay_compare.py                       # 1,000,000 messages, 20 symbols
    python bench/replay_compare.py --messages 200000     # quicker

The stream is generated once (``pysrc.book.synthetic``, seeded) into ``bench/.data/`` (ignored by
git) and reused. Then these processes are timed, taking turns, best of ``--runs``:

(a) ``python -P -m pysrc.bot book-replay FILE --exchange bybit --top 0``   the native engine
(b) ``python bench/pure_replay.py FILE ...``   the pure-Python ReferenceEngine, same output
(c) ``python -P -c <orjson.loads every line>``   parsing alone, no book at all
(d) ``python bench/cext_replay.py FILE ...``   the ``order-book`` C extension, cryptofeed style

plus the bare interpreter start-up (``python -P -c "import orjson"``) for scale. The final books
printed by (a), (b) and (d) must be identical for every symbol (and show no gap), otherwise the
script says so and exits with status 1: a fast wrong answer does not count.

Wall time is what the issue's targets are about; CPU time (user + sys of the child) is printed
too because it is less sensitive to the neighbours on a shared two-core machine. Commands whose
first run takes longer than 30 s get at most two runs, which keeps the default (1M messages)
within about five minutes here.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH_DIR / ".data"

ORJSON_ONLY = """\
import sys, orjson
loads = orjson.loads
n = 0
with open(sys.argv[1], "rb", buffering=1 << 20) as fh:
    for line in fh:
        loads(line)
        n += 1
print(f"orjson-only: {n} lines", file=sys.stderr)
"""

SLOW_FIRST_RUN_S = 30.0


@dataclass
class Command:
    key: str
    label: str
    argv: list[str]
    books: bool  # prints final books that must match the native output
    loop_re: re.Pattern[str] | None  # extracts the in-process replay time from stderr
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    loops: list[float] = field(default_factory=list)
    output: bytes | None = None
    stderr: str = ""
    error: str | None = None


def _commands(py: str, path: Path) -> list[Command]:
    f = str(path)
    common = [f, "--exchange", "bybit", "--top", "0"]
    return [
        Command(
            "native",
            "(a) native: python -P -m pysrc.bot book-replay",
            [py, "-P", "-m", "pysrc.bot", "book-replay", *common],
            True,
            re.compile(r", ([0-9.]+)s \("),
        ),
        Command(
            "pure",
            "(b) pure Python: bench/pure_replay.py (ReferenceEngine)",
            [py, str(BENCH_DIR / "pure_replay.py"), *common],
            True,
            re.compile(r" in ([0-9.]+) s \("),
        ),
        Command(
            "orjson",
            "(c) orjson.loads on every line, nothing else",
            [py, "-P", "-c", ORJSON_ONLY, f],
            False,
            None,
        ),
        Command(
            "cext",
            "(d) order-book C extension: bench/cext_replay.py",
            [py, str(BENCH_DIR / "cext_replay.py"), *common],
            True,
            re.compile(r" in ([0-9.]+) s \("),
        ),
        Command(
            "startup",
            "python start-up + import orjson (for scale)",
            [py, "-P", "-c", "import orjson"],
            False,
            None,
        ),
    ]


def _ensure_stream(args: argparse.Namespace) -> Path:
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = (
        data_dir
        / f"bybit-ob{args.depth}-{args.symbols}sym-{args.messages}msg-seed{args.seed}.jsonl"
    )
    if path.is_file() and not args.regenerate:
        print(f"stream: reusing {path} ({path.stat().st_size / 1e6:.0f} MB)")
        return path
    from pysrc.book.synthetic import write_stream

    tmp = path.with_suffix(".tmp")
    t0 = time.perf_counter()
    n = write_stream(
        tmp, symbols=args.symbols, messages=args.messages, depth=args.depth, seed=args.seed
    )
    tmp.replace(path)  # only a complete file gets the final name
    print(
        f"stream: generated {n:,} messages into {path} ({path.stat().st_size / 1e6:.0f} MB) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return path


def _run(cmd: Command, cwd: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd.argv, cwd=cwd, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        cmd.error = f"exit status {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}"
        return
    cmd.walls.append(wall)
    cmd.cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    cmd.stderr = proc.stderr.decode(errors="replace").strip()
    if cmd.loop_re is not None:
        m = cmd.loop_re.search(cmd.stderr)
        if m:
            cmd.loops.append(float(m.group(1)))
    if cmd.books:
        if cmd.output is None:
            cmd.output = proc.stdout
        elif proc.stdout != cmd.output:
            cmd.error = "output differs between runs"


def _books(output: bytes) -> dict[str, Any]:
    return {b["symbol"]: b for b in map(orjson.loads, output.splitlines()) if b}


def _compare(cmds: dict[str, Command], messages: int) -> list[str]:
    """Problems found in the outputs (empty when (a), (b), (d) agree and look sane)."""
    problems: list[str] = []
    native = cmds.get("native")
    if native is None or native.output is None:
        return ["the native CLI produced no output"]
    want = _books(native.output)
    if sum(b["messages"] for b in want.values()) != messages:
        problems.append(
            f"native: books account for {sum(b['messages'] for b in want.values())} of {messages} messages"
        )
    for sym, b in want.items():
        if b["gaps"] or b["resyncs"]:
            problems.append(
                f"native: {sym} saw gaps={b['gaps']} resyncs={b['resyncs']} on a gap-free stream"
            )
    for key in ("pure", "cext"):
        cmd = cmds.get(key)
        if cmd is None or cmd.output is None:
            continue
        got = _books(cmd.output)
        if set(got) != set(want):
            problems.append(f"{key}: symbols differ from native: {sorted(set(got) ^ set(want))}")
        for sym in sorted(set(got) & set(want)):
            if got[sym] != want[sym]:
                fields = [k for k in want[sym] if got[sym].get(k) != want[sym][k]]
                problems.append(f"{key}: {sym} differs from native in {fields}")
    return problems


def _fmt_ratio(x: float) -> str:
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x"


def _opt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _opt_ratio(x: float | None) -> str:
    return "-" if x is None else _fmt_ratio(x)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--depth", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=3, help="runs per command (best is kept)")
    ap.add_argument(
        "--only", default="native,pure,orjson,cext,startup", help="comma-separated subset"
    )
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--regenerate", action="store_true", help="rewrite the stream file")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the child processes")
    ap.add_argument(
        "--json",
        default=None,
        help="write the results here (default: DATA_DIR/replay-compare-<messages>msg.json)",
    )
    args = ap.parse_args(argv)

    path = _ensure_stream(args)
    wanted = [k.strip() for k in args.only.split(",") if k.strip()]
    cmds = {c.key: c for c in _commands(args.python, path) if c.key in wanted}
    if "cext" in cmds:
        try:
            import order_book  # noqa: F401
        except ImportError:
            print("order-book is not installed (pip install order-book): skipping (d)")
            del cmds["cext"]
    cwd = Path(args.data_dir)  # neutral: holds no `pysrc` folder that could shadow the install
    load_start = os.getloadavg()
    print(f"timing {len(cmds)} commands, up to {args.runs} runs each, taking turns ...")
    for r in range(args.runs):
        for cmd in cmds.values():
            if cmd.error:
                continue
            if r >= 2 and cmd.walls and cmd.walls[0] > SLOW_FIRST_RUN_S:
                continue
            _run(cmd, cwd)
            if cmd.error:
                print(f"  {cmd.key}: FAILED: {cmd.error}")
            else:
                print(
                    f"  run {r + 1}: {cmd.key:<8} {cmd.walls[-1]:8.2f} s wall  {cmd.cpus[-1]:8.2f} s cpu"
                )
    load_end = os.getloadavg()

    problems = _compare(cmds, args.messages)
    n = args.messages
    native = cmds.get("native")
    base_wall = min(native.walls) if native and native.walls else None
    base_cpu = min(native.cpus) if native and native.cpus else None

    print()
    print(
        f"Whole-process replay of {n:,} Bybit orderbook.{args.depth} messages, {args.symbols} symbols "
        f"({path.stat().st_size / 1e6:.0f} MB); best of up to {args.runs} runs"
    )
    head = (
        f"{'command':<58} {'wall s':>8} {'cpu s':>8} {'loop s':>8} {'msg/s (wall)':>13} "
        f"{'wall/native':>12} {'cpu/native':>11}"
    )
    print(head)
    print("-" * len(head))
    rows: list[dict[str, Any]] = []
    for cmd in cmds.values():
        if not cmd.walls:
            print(f"{cmd.label:<58} {'failed':>8}")
            continue
        wall, cpu = min(cmd.walls), min(cmd.cpus)
        loop = min(cmd.loops) if cmd.loops else None
        rate = n / wall if cmd.key != "startup" else None
        rw = wall / base_wall if base_wall else None
        rc = cpu / base_cpu if base_cpu else None
        print(
            f"{cmd.label:<58} {wall:8.2f} {cpu:8.2f} {_opt(loop, '.2f'):>8} "
            f"{_opt(rate, ',.0f'):>13} {_opt_ratio(rw):>12} {_opt_ratio(rc):>11}"
        )
        rows.append(
            {
                "key": cmd.key,
                "label": cmd.label,
                "argv": cmd.argv,
                "walls": cmd.walls,
                "cpus": cmd.cpus,
                "loops": cmd.loops,
                "best_wall": wall,
                "best_cpu": cpu,
                "best_loop": loop,
                "wall_vs_native": rw,
                "cpu_vs_native": rc,
            }
        )
    print()
    targets: list[str] = []
    if base_wall and "pure" in cmds and cmds["pure"].walls:
        speedup = min(cmds["pure"].walls) / base_wall
        verdict = "met" if speedup >= 10 else "MISSED"
        aim = "reached" if speedup >= 25 else "not reached"
        targets.append(
            f"target >= 10x faster than the pure-Python replay: {speedup:.1f}x ({verdict}; 25x aim {aim})"
        )
    if base_wall and "orjson" in cmds and cmds["orjson"].walls:
        ratio = min(cmds["orjson"].walls) / base_wall
        verdict = "met" if ratio > 1 else "MISSED"
        targets.append(
            f"aim: faster than orjson.loads on every line alone: native takes {1 / ratio:.2f}x the time of the "
            f"orjson-only process ({verdict})"
        )
    if base_wall and "cext" in cmds and cmds["cext"].walls:
        targets.append(
            f"vs order-book C extension replay: {min(cmds['cext'].walls) / base_wall:.1f}x"
        )
    for line in targets:
        print(line)
    print(
        f"load average at start {[round(x, 2) for x in load_start]}, at end {[round(x, 2) for x in load_end]}"
    )
    if problems:
        print("\nOUTPUTS DIFFER / LOOK WRONG:")
        for p in problems[:40]:
            print(f"  {p}")
    else:
        compared = [
            k for k in ("native", "pure", "cext") if k in cmds and cmds[k].output is not None
        ]
        print(f"final books identical for every symbol across: {', '.join(compared)}")

    out = (
        Path(args.json)
        if args.json
        else Path(args.data_dir) / f"replay-compare-{args.messages}msg.json"
    )
    out.write_bytes(
        orjson.dumps(
            {
                "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "command": "python bench/replay_compare.py "
                + " ".join(argv if argv is not None else sys.argv[1:]),
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "messages": n,
                "symbols": args.symbols,
                "depth": args.depth,
                "seed": args.seed,
                "file_bytes": path.stat().st_size,
                "rows": rows,
                "targets": targets,
                "problems": problems,
                "load_start": load_start,
                "load_end": load_end,
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    print(f"results written to {out}")
    if any(c.error for c in cmds.values()):
        return 2
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
