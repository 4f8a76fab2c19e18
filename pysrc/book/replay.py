"""Replay files of raw exchange messages through the native book engine.

Input is one message per line exactly as received from the WebSocket (Bybit's historical
order-book dumps are in this form), optionally gzip- or zstd-compressed; cryptofeed capture files
(``<ts>: <json>`` lines, see :mod:`pysrc.book.capture`) are recognised too, and several capture
files are merged by time so a Binance WebSocket capture and its REST snapshots replay together.
Lines that are not book messages are skipped and counted; malformed lines are counted, the first
few reported, and the replay goes on.
"""

from __future__ import annotations

import gzip
import io
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from pysrc.book import ApplyOutcome, BookEngine, MalformedMessage

Emit = Literal["final", "tob", "features"]
InputFormat = Literal["auto", "jsonl", "capture"]

# A (payload, rest_snapshot_symbol) pair: the symbol is set only for REST depth snapshots.
Item = tuple[bytes, str | None]


class ReplayInputError(Exception):
    """The input cannot be read at all (missing file, bad compression, unknown format)."""


@dataclass
class ReplayStats:
    lines: int = 0
    applied: int = 0
    skipped: int = 0
    errors: int = 0
    seconds: float = 0.0
    first_errors: list[str] = field(default_factory=list)

    @property
    def messages_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0


def open_binary(path: Path) -> IO[bytes]:
    """Open a plain, ``.gz`` or ``.zst`` file for binary line reading."""
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")
        if path.suffix == ".zst":
            import zstandard

            raw = path.open("rb")
            reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
            return io.BufferedReader(reader, buffer_size=1 << 20)
        return path.open("rb", buffering=1 << 20)
    except OSError as exc:
        raise ReplayInputError(f"cannot open {path}: {exc}") from exc


def _sniff(path: Path) -> InputFormat:
    with open_binary(path) as fh:
        try:
            for line in fh:
                s = line.strip()
                if s:
                    return "jsonl" if s[:1] in (b"{", b"[") or s == b"pong" else "capture"
        except (OSError, EOFError) as exc:
            raise ReplayInputError(f"cannot read {path}: {exc}") from exc
    return "jsonl"


def _is_rest_snapshot(line: bytes) -> bool:
    # Cheap test that avoids parsing every line twice: only REST depth bodies carry lastUpdateId
    # without an event type (Binance WebSocket events all have "e").
    return b'"lastUpdateId"' in line and b'"e":' not in line


def _jsonl_items(path: Path, symbol: str | None) -> Iterator[Item]:
    with open_binary(path) as fh:
        try:
            for line in fh:
                if _is_rest_snapshot(line):
                    yield line, symbol or ""
                else:
                    yield line, None
        except (OSError, EOFError) as exc:
            raise ReplayInputError(f"cannot read {path}: {exc}") from exc


def _capture_items(paths: list[Path], symbol: str | None) -> Iterator[Item]:
    from pysrc.book.capture import binance_snapshot_symbol, merge_by_time, read_capture

    events = merge_by_time(*(read_capture(p) for p in paths))
    for ev in events:
        if ev.kind == "recv":
            yield ev.payload.encode(), None
        elif ev.kind == "http":
            sym = binance_snapshot_symbol(ev.url or "") or symbol or ""
            yield ev.payload.encode(), sym
        else:
            yield b"", None  # connect / sent lines: counted as skipped


def read_items(paths: list[Path], fmt: InputFormat = "auto", symbol: str | None = None) -> Iterator[Item]:
    """Messages of all ``paths`` in replay order."""
    for p in paths:
        if not p.is_file():
            raise ReplayInputError(f"no such file: {p}")
    formats = {p: (_sniff(p) if fmt == "auto" else fmt) for p in paths}
    captures = [p for p in paths if formats[p] == "capture"]
    for p in paths:
        if formats[p] == "jsonl":
            yield from _jsonl_items(p, symbol)
    if captures:
        yield from _capture_items(captures, symbol)


CHUNK_BYTES = 4 << 20


def replay_jsonl_fast(
    paths: list[Path], engine: BookEngine, *, rest_symbol: str | None = None, max_reported_errors: int = 5
) -> ReplayStats:
    """``--emit final`` on message-per-line files: read multi-megabyte chunks and let the core
    apply every line of a chunk in one call. Same per-message semantics as :func:`replay`."""
    stats = ReplayStats()
    t0 = time.perf_counter()
    for path in paths:
        with open_binary(path) as fh:
            carry = b""
            while True:
                try:
                    block = fh.read(CHUNK_BYTES)
                except (OSError, EOFError) as exc:
                    raise ReplayInputError(f"cannot read {path}: {exc}") from exc
                if not block:
                    chunk, carry = carry, b""
                else:
                    cut = block.rfind(b"\n")
                    if cut < 0:
                        carry += block
                        continue
                    chunk, carry = carry + block[: cut + 1], block[cut + 1 :]
                if chunk:
                    # A chunk ending in "\n" yields one empty trailing piece: not a line.
                    body = chunk[:-1] if chunk.endswith(b"\n") else chunk
                    rep = engine.apply_lines(body, rest_symbol, max_reported_errors)
                    base = stats.lines
                    stats.lines += int(rep["lines"])
                    stats.applied += int(rep["applied"])
                    stats.skipped += int(rep["skipped"])
                    stats.errors += int(rep["errors"])
                    for line_no, msg in rep["first_errors"]:  # type: ignore[union-attr]
                        if len(stats.first_errors) < max_reported_errors:
                            stats.first_errors.append(f"line {base + line_no}: {msg}")
                if not block:
                    break
    stats.seconds = time.perf_counter() - t0
    return stats


def sniff_format(path: Path) -> InputFormat:
    """``jsonl`` or ``capture`` from the first non-empty line."""
    return _sniff(path)


def book_summary(engine: BookEngine, symbol: str, top: int) -> dict[str, Any]:
    """The ``--emit final`` object of one book."""
    bids, asks = engine.levels(symbol, top)
    st = engine.stats(symbol)
    return {
        "exchange": engine.exchange,
        "symbol": symbol,
        "bids": [list(level) for level in bids],
        "asks": [list(level) for level in asks],
        "update_id": engine.update_id(symbol),
        "messages": st["messages"],
        "gaps": st["gaps"],
        "resyncs": st["resyncs"],
        "checksums_checked": st["checksums_checked"],
        "checksum_failures": st["checksum_failures"],
    }


def replay(
    items: Iterable[Item],
    engine: BookEngine,
    *,
    emit: Emit = "final",
    only_symbol: str | None = None,
    write: Callable[[bytes], Any] | None = None,
    max_reported_errors: int = 5,
) -> ReplayStats:
    """Apply every item to ``engine``; with ``emit="tob"`` write one JSON line per applied book
    message through ``write``. Returns counts; never raises for a bad line."""
    stats = ReplayStats()
    apply = engine.apply
    applied_code = int(ApplyOutcome.APPLIED)
    skipped_code = int(ApplyOutcome.SKIPPED)
    trades_code = int(ApplyOutcome.TRADES)
    tob = emit == "tob"
    reader = None
    if emit == "features":
        from pysrc.analytics import FeatureReader

        reader = FeatureReader(engine)
    t0 = time.perf_counter()
    for payload, rest_symbol in items:
        stats.lines += 1
        if len(payload) <= 1 or payload.isspace():
            stats.skipped += 1
            continue
        try:
            if rest_symbol is None:
                code, sym = apply(payload)
            else:
                code, sym = engine.apply_snapshot(rest_symbol, payload)
        except MalformedMessage as exc:
            stats.errors += 1
            if len(stats.first_errors) < max_reported_errors:
                stats.first_errors.append(f"line {stats.lines}: {exc}")
            continue
        if code == skipped_code or code == trades_code:
            stats.skipped += 1
            continue
        if code != applied_code:
            continue
        stats.applied += 1
        if reader is not None and sym is not None and (only_symbol is None or sym == only_symbol) and write is not None:
            fv = reader.read(sym, copy=False)
            write(orjson.dumps({"symbol": sym, "ts": engine.last_ts(sym), "features": fv.as_dict()}) + b"\n")
            continue
        if tob and sym is not None and (only_symbol is None or sym == only_symbol) and write is not None:
            bid = engine.best_bid(sym)
            ask = engine.best_ask(sym)
            if bid is None or ask is None:
                continue
            row = {
                "symbol": sym,
                "ts": engine.last_ts(sym),
                "bid": bid[0],
                "bid_size": bid[1],
                "ask": ask[0],
                "ask_size": ask[1],
            }
            write(orjson.dumps(row) + b"\n")
    stats.seconds = time.perf_counter() - t0
    return stats


__all__ = [
    "CHUNK_BYTES",
    "ReplayInputError",
    "ReplayStats",
    "book_summary",
    "open_binary",
    "read_items",
    "replay",
    "replay_jsonl_fast",
    "sniff_format",
]
