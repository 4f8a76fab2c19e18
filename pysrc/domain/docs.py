"""Keeps the tables in ``docs/state-machines.md`` identical to the code's tables.

The page is prose written by hand with generated blocks between markers::

    <!-- BEGIN GENERATED: order-rules -->
    ...
    <!-- END GENERATED: order-rules -->

Only the blocks are rewritten; everything else is left as written::

    python -m pysrc.domain.docs docs/state-machines.md          # rewrite the blocks in place
    python -m pysrc.domain.docs --check docs/state-machines.md  # exit 1 if a block is stale

``tests/domain/test_docs.py`` fails when the committed page and the tables differ.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pysrc.domain.ids import ClientOrderIdGenerator
from pysrc.domain.orders import EXCHANGE_STATUS, EXCHANGE_STATUS_NOTES, ORDER_TABLE
from pysrc.domain.positions import POSITION_TABLE

COMMAND = "python -m pysrc.domain.docs docs/state-machines.md"


def _status_table() -> str:
    lines = ["| Bybit `orderStatus` | implies | meaning |", "|---|---|---|"]
    for status, state in EXCHANGE_STATUS.items():
        lines.append(f"| `{status}` | {state.value} | {EXCHANGE_STATUS_NOTES[status]} |")
    return "\n".join(lines) + "\n"


def _id_examples() -> str:
    # A pinned clock and nonce, so the example is stable (2025-01-01T00:00:00Z).
    gen = ClientOrderIdGenerator(clock=lambda: 1_735_689_600_000, randbelow=lambda n: 1_234_567_890)
    rows = ["| symbol | strategy | id | length |", "|---|---|---|---:|"]
    for symbol, strategy in (
        ("BTCUSDT", "breakout"),
        ("BTCUSDT", "orderbook_scalper"),
        ("1000PEPEUSDT", "sar_wave"),
        ("1000000MOGUSDT", "volume profile"),
    ):
        value = gen.next_id(symbol, strategy)
        rows.append(f"| `{symbol}` | `{strategy}` | `{value}` | {len(value)} |")
    return "\n".join(rows) + "\n"


BLOCKS: dict[str, Callable[[], str]] = {
    "order-rules": ORDER_TABLE.markdown_rules,
    "order-matrix": ORDER_TABLE.markdown_matrix,
    "order-status-map": _status_table,
    "position-rules": POSITION_TABLE.markdown_rules,
    "position-matrix": POSITION_TABLE.markdown_matrix,
    "id-examples": _id_examples,
}

_BLOCK = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED: (?P=name) -->)",
    re.DOTALL,
)


def render(text: str) -> str:
    """``text`` with every generated block replaced by its current content. A page that lacks a
    block, or names one that does not exist, raises ``ValueError``."""
    found: set[str] = set()

    def fill(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in BLOCKS:
            raise ValueError(f"unknown generated block {name!r}")
        found.add(name)
        return f"{m.group(1)}{BLOCKS[name]()}{m.group(4)}"

    out = _BLOCK.sub(fill, text)
    missing = set(BLOCKS) - found
    if missing:
        raise ValueError(f"the page lacks the generated blocks {sorted(missing)}")
    return out


def stale_blocks(text: str) -> list[str]:
    """Names of the blocks whose committed content differs from the code's tables."""
    return [
        m["name"]
        for m in _BLOCK.finditer(text)
        if m["name"] in BLOCKS and m["body"] != BLOCKS[m["name"]]()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pysrc.domain.docs",
        description="Rewrite (or --check) the generated tables of docs/state-machines.md.",
    )
    parser.add_argument("page", type=Path)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a block is stale; change nothing"
    )
    args = parser.parse_args(argv)
    text = args.page.read_text(encoding="utf-8")
    if args.check:
        render(text)  # validates the set of blocks
        stale = stale_blocks(text)
        if stale:
            print(f"{args.page}: stale blocks {stale}; regenerate with: {COMMAND}", file=sys.stderr)
            return 1
        return 0
    new = render(text)
    if new != text:
        args.page.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
