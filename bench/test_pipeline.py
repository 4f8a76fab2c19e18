"""A short run of the whole-pipeline benchmark (``bench/pipeline.py``; the issue's figure is
``python bench/pipeline.py --symbols 100 --seconds 60``). Its answers are checked in every bench
session, including ``pytest bench --benchmark-disable`` in CI: every book usable, every API answer
well-formed, decisions measured, a clean SIGTERM exit. Latencies and CPU are printed, never
asserted."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import report, run  # noqa: E402


def test_short_pipeline_run(capsys) -> None:  # type: ignore[no-untyped-def]
    result = run(symbols=12, seconds=4.0, api_seconds=2.0, api_rate=100.0)
    with capsys.disabled():
        print("\n" + "\n".join(report(result)))
    assert result["usable"] == result["symbols"] == 12
    assert result["exchange_to_signal_ms"]["samples"] > 0
    assert result["api"]["error_count"] == 0, result["api"]["errors"]
    assert result["exit_code"] == 0
