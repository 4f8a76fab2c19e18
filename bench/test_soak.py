"""A short soak of the public feed against the local exchange in another process (the full one is
``python bench/soak.py --symbols 100 --seconds 180``; see docs/performance.md).

It runs in every benchmark session, including ``pytest bench --benchmark-disable`` in CI, because
its answer is checked: every book must equal the exchange's after the market is paused. The
figures (rates, CPU against the receive-only baseline of the same run, latency, memory) are
printed, never asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak import report, soak  # noqa: E402

from pysrc.feed.loop import run  # noqa: E402


def test_short_soak_books_equal_the_exchange(capsys) -> None:  # type: ignore[no-untyped-def]
    result = run(soak(symbols=20, seconds=5.0, base_seconds=3.0, warmup=2.0, seed=5, features=True))
    with capsys.disabled():
        print("\n" + "\n".join(report(result)))
    feed = result["feed"]
    assert feed["ready"], "not every book became usable"
    assert feed["books_equal"] == feed["books"] == 20, feed["mismatch_details"]
    assert feed["malformed"] == 0 and feed["messages"] > 0
