"""A CI-sized atheris run over the native message parsers, seeded with real recorded messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris has no wheel for this platform")

HARNESS = Path(__file__).with_name("fuzz_book_messages.py")
RUNS = 150_000


def seed_corpus(realdata: Path, out: Path) -> int:
    """A few real messages of every exchange, cut from the recordings (captures unwrapped)."""
    out.mkdir()
    n = 0
    sources = {
        "2024-12-01_XRPUSDT_ob500.data": None,
        "OKX.ws.1.0": ": ",
        "KRAKEN.ws.50.0": ": ",
        "BINANCE_FUTURES.ws.1.0": ": ",
    }
    for name, sep in sources.items():
        lines = (realdata / name).read_bytes().splitlines()
        picked = [ln for ln in lines if ln.strip()][1:60:6]
        for line in picked:
            payload = line.split(sep.encode(), 1)[1] if sep and sep.encode() in line else line
            # Keep seeds small so mutations stay fast; the big snapshots are covered elsewhere.
            (out / f"seed{n:04d}").write_bytes(payload[:4096])
            n += 1
    return n


def test_parsers_survive_fuzzing(realdata: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    assert seed_corpus(realdata, corpus) > 20
    proc = subprocess.run(
        [sys.executable, "-P", str(HARNESS), str(corpus), f"-runs={RUNS}", "-seed=1", "-max_len=8192",
         "-rss_limit_mb=2048"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert f"Done {RUNS} runs" in proc.stderr, tail
