"""Read a recorded Bybit v5 book stream (JSON lines, one raw WebSocket message per line, such as
``../shared/realdata/2024-12-01_XRPUSDT_ob500.data``) for the simulator to replay."""

from __future__ import annotations

from pathlib import Path

import orjson

Message = tuple[int, str, list[list[str]], list[list[str]]]


def read_bybit_book_stream(path: str | Path) -> dict[str, list[Message]]:
    """Per symbol, ``(ts, type, bids, asks)`` of every ``orderbook.*`` message, starting at the
    symbol's first snapshot (earlier deltas cannot be applied and are skipped). Other lines
    (trades, tickers, acks) are ignored."""
    out: dict[str, list[Message]] = {}
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            d = orjson.loads(line)
            topic = d.get("topic", "") if isinstance(d, dict) else ""
            if not topic.startswith("orderbook."):
                continue
            data = d["data"]
            sym = data.get("s") or topic.rsplit(".", 1)[-1]
            kind = d["type"]
            msgs = out.setdefault(sym, [])
            if not msgs and kind != "snapshot":
                continue
            msgs.append((int(d.get("ts") or d.get("cts") or 0), kind, data.get("b", []), data.get("a", [])))
    return {s: m for s, m in out.items() if m}
