"""Generates ``docs/features.md`` from the native feature schema, so the documentation cannot drift
from the code.

The schema (names, order, units, windows, formulas, missing rules) lives in one table in the Rust
core (``native/analytics/schema.rs``) and is exported as ``pysrc._native.feature_schema()``. This
module only formats it::

    python -P -m pysrc.analytics.docs > docs/features.md      # regenerate
    python -P -m pysrc.analytics.docs --check docs/features.md  # exit 1 if the file is stale

``-P`` keeps the source checkout off ``sys.path`` so the installed wheel (with the compiled core)
is the one asked. ``tests/analytics/test_docs.py`` fails when the committed file and the schema
differ.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

COMMAND = "python -P -m pysrc.analytics.docs > docs/features.md"
CHECK_COMMAND = "python -P -m pysrc.analytics.docs --check docs/features.md"

# Section titles of the schema's groups, in the words of the schema's own section comments. A
# group the core adds later without a title here still renders (under its raw name), so a new
# group never breaks generation; it only looks plainer until a title is added.
GROUP_TITLES: dict[str, str] = {
    "book": "Book state",
    "clusters": "Clusters (walls)",
    "lifetime": "Level lifetime",
    "trades": "Trade flow",
    "manipulation": "Manipulation",
    "temporal": "Temporal",
    "cross": "Cross-symbol and cross-exchange",
}

_FIELDS = ("name", "group", "units", "window", "formula", "missing")

# The conventions of the formulas come from the core itself (native/analytics/schema.rs), so the
# page cannot drift from the code's own statement of them.
def _conventions() -> str:
    from pysrc._core import native

    return "## Conventions used in the formulas\n\n" + str(native.FEATURE_CONVENTIONS)


def _temporal() -> str:
    from pysrc._core import native

    return (
        "## Configured temporal features\n\n"
        "Beyond the fixed windows of the base vector, any base feature can get rolling statistics "
        "over windows chosen at start-up (they are appended after the base features; the base "
        "layout and its version never change).\n\n" + str(native.FEATURE_TEMPORAL_DOC)
    )


# How values and missing values reach Python: the contract of BookEngine.features_into in
# pysrc/_native.pyi, restated for readers of this page.
_READING = """\
## Reading the vector

An engine created with `BookEngine("bybit", features=True)` keeps every symbol's vector current
on every applied book message; Bybit `publicTrade` messages given to the same `apply` feed the
trade features (their outcome is `TRADES`). Nothing is computed on read.

* `engine.features_into(symbol, values, mask, normalized=False)` writes the vector into
  `values` (float64, one slot per feature, in the order below) and `mask` (uint8, same length:
  1 = present, 0 = missing) and returns the number of book updates the vector has seen.
* A missing value is written as `0.0` with mask `0`, never as NaN: always read the mask.
  "missing when" in the tables below says when that happens.
* `normalized=True` writes running z-scores instead of raw values (exponentially weighted over
  about 1,000 updates, clipped to [-10, 10]).
* `pysrc.analytics.FeatureReader(engine).read(symbol)` does the same into reusable buffers and
  returns a `FeatureVector` (`values`, boolean `mask`, `updates`; `as_dict()` gives
  name -> value or None). With `copy=False` it allocates nothing and the arrays are overwritten
  by the next read.
* The layout is versioned by `FEATURE_SCHEMA_VERSION` (`pysrc.analytics.SCHEMA_VERSION`), bumped
  whenever a name, position or definition changes: store it with a trained model and refuse a
  vector of another version.

```python
from pysrc.analytics import FEATURE_NAMES, FeatureReader
from pysrc.book import ApplyOutcome, BookEngine

IMBALANCE_5 = FEATURE_NAMES.index("imbalance_5")
engine = BookEngine("bybit", features=True)
reader = FeatureReader(engine)
for message in websocket_messages:  # order books and public trades, raw bytes
    outcome, symbol = engine.apply(message)
    if outcome == ApplyOutcome.APPLIED:  # a book update: the vector is current
        vec = reader.read(symbol, copy=False)
        if vec.mask[IMBALANCE_5]:
            imbalance_5 = vec.values[IMBALANCE_5]
```

`#` in the tables is the feature's position in the vector (0-based index into `values`).
"""


def _cell(text: str) -> str:
    """One Markdown table cell: pipes would end the cell, and `<` before a letter would start an
    HTML tag; formulas such as `|buy - sell|` and `k <= 5` must render as written."""
    text = " ".join(text.split())  # a line break inside a cell would end the table row
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)


def _anchor(title: str) -> str:
    """The anchor GitHub generates for a heading (lower case, punctuation dropped, spaces -> -)."""
    return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


def _title(group: str) -> str:
    return GROUP_TITLES.get(group, group.replace("_", " ").capitalize())


def render_features_md(
    schema: Sequence[Mapping[str, str]] | None = None, version: int | None = None
) -> str:
    """The whole text of ``docs/features.md``.

    ``schema`` and ``version`` default to the compiled core's ``feature_schema()`` and
    ``FEATURE_SCHEMA_VERSION``; passing them explicitly only serves tests of the formatting.
    """
    if schema is None or version is None:
        from pysrc._core import native

        schema = native.feature_schema() if schema is None else schema
        version = native.FEATURE_SCHEMA_VERSION if version is None else version
    for i, spec in enumerate(schema):
        absent = [f for f in _FIELDS if not isinstance(spec.get(f), str)]
        if absent:
            raise ValueError(f"feature {i} of the schema lacks {absent}")

    # Groups in order of first appearance; a feature keeps its vector position whatever its
    # group, so a group that is not contiguous in the vector still lists its true positions.
    groups: dict[str, list[tuple[int, Mapping[str, str]]]] = {}
    for i, spec in enumerate(schema):
        groups.setdefault(spec["group"], []).append((i, spec))

    out: list[str] = [
        "<!-- Generated from the native feature schema (native/analytics/schema.rs, exported as",
        "     pysrc._native.feature_schema()). Do not edit: change the schema, rebuild, and run",
        f"     {COMMAND}",
        f"     ({CHECK_COMMAND} exits 1 when this file is stale). -->",
        "",
        "# Feature vector",
        "",
        (
            f"Schema version **{version}**: {len(schema)} features in {len(groups)} groups, kept "
            "current by the Rust core on every book update. This page is generated from the same "
            "table the code and the tests follow, so it cannot drift from them."
        ),
        "",
        "| group | features | positions |",
        "|---|---:|---|",
    ]
    for group, items in groups.items():
        title = _title(group)
        positions = [i for i, _ in items]
        contiguous = positions == list(range(positions[0], positions[-1] + 1))
        where = (
            f"{positions[0]}-{positions[-1]}"
            if contiguous and len(positions) > 1
            else ", ".join(map(str, positions))
        )
        out.append(f"| [{_cell(title)}](#{_anchor(title)}) (`{group}`) | {len(items)} | {where} |")
    out.extend(["", _conventions(), _READING, _temporal()])
    for group, items in groups.items():
        out.append(f"## {_title(group)}")
        out.append("")
        out.append(f"Group `{group}`, {len(items)} features.")
        out.append("")
        out.append("| # | name | units | window | formula | missing when |")
        out.append("|---:|---|---|---|---|---|")
        for i, spec in items:
            out.append(
                f"| {i} | `{spec['name']}` | {_cell(spec['units'])} | {_cell(spec['window'])} "
                f"| {_cell(spec['formula'])} | {_cell(spec['missing'])} |"
            )
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m pysrc.analytics.docs",
        description="Print docs/features.md, generated from the native feature schema.",
    )
    parser.add_argument(
        "--check",
        metavar="FILE",
        type=Path,
        help="compare FILE with the generated text instead of printing it; exit 1 if it differs",
    )
    args = parser.parse_args(argv)
    text = render_features_md()
    if args.check is None:
        sys.stdout.write(text)
        return 0
    try:
        current = args.check.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"{args.check}: cannot read ({exc.strerror})", file=sys.stderr)
        return 1
    if current == text:
        return 0
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        text.splitlines(keepends=True),
        fromfile=str(args.check),
        tofile="generated from the schema",
    )
    sys.stderr.writelines(diff)
    print(f"{args.check} is stale; regenerate it with: {COMMAND}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
