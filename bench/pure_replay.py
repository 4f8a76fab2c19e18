"""Baseline: the same replay as ``python -m pysrc.bot book-replay``, in pure Python.

The books are kept by ``pysrc.book.reference.ReferenceEngine`` (orjson + sortedcontainers with
``Decimal`` keys, the full semantics of ``docs/book-semantics.md``: validation, ``u`` rules,
truncation, the crossed-book guard). The output is the CLI's: one JSON object per book on stdout
after the whole file, a summary on stderr, so ``bench/replay_compare.py`` can require equal books::

    python bench/pure_replay.py FILE --exchange bybit --top 0

(Run it without ``-P`` so ``bench/`` is on ``sys.path`` for the shared ``_replay_cli`` module; the
reference engine itself is imported from the installed ``pysrc`` package.)
"""

from __future__ import annotations

import sys

from _replay_cli import replay_main

from pysrc.book.reference import ReferenceEngine


def main(argv: list[str] | None = None) -> int:
    return replay_main(ReferenceEngine("bybit"), argv, "pure_replay")


if __name__ == "__main__":
    sys.exit(main())
