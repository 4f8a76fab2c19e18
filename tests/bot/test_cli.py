"""`python -m pysrc.bot book-replay` as a user runs it: a real process on real recordings."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import zstandard

BYBIT = "2024-12-01_XRPUSDT_ob500.data"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # -P and an empty working directory: the installed package runs, as for a user.
    return subprocess.run(
        [sys.executable, "-P", "-m", "pysrc.bot", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def finals(stdout: str) -> dict[str, dict]:
    rows = [orjson.loads(line) for line in stdout.splitlines() if line.strip()]
    return {r["symbol"]: r for r in rows}


def test_bybit_dump_final_book(realdata: Path, tmp_path: Path) -> None:
    p = run("book-replay", str(realdata / BYBIT), "--exchange", "bybit", "--top", "3", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    book = finals(p.stdout)["XRPUSDT"]
    assert book["bids"][0] == ["1.9537", "10605"]
    assert book["asks"][0][0] == "1.9538"
    assert len(book["bids"]) == len(book["asks"]) == 3
    assert (book["messages"], book["gaps"], book["update_id"]) == (50, 0, 20254918)
    assert set(book) == {
        "exchange", "symbol", "bids", "asks", "update_id", "messages", "gaps", "resyncs",
        "checksums_checked", "checksum_failures",
    }
    assert "50 lines" in p.stderr and "msg/s" in p.stderr


def test_top_zero_returns_every_level(realdata: Path, tmp_path: Path) -> None:
    p = run("book-replay", str(realdata / BYBIT), "--exchange", "bybit", "--top", "0", cwd=tmp_path)
    book = finals(p.stdout)["XRPUSDT"]
    assert len(book["bids"]) == len(book["asks"]) == 500


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_compressed_input_is_read_transparently(realdata: Path, tmp_path: Path, suffix: str) -> None:
    raw = (realdata / BYBIT).read_bytes()
    path = tmp_path / f"dump{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix == ".gz" else zstandard.ZstdCompressor().compress(raw))
    p = run("book-replay", str(path), "--exchange", "bybit", "--top", "1", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert finals(p.stdout)["XRPUSDT"]["bids"][0][0] == "1.9537"


def test_tob_rows_and_malformed_lines_do_not_stop_the_replay(realdata: Path, tmp_path: Path) -> None:
    lines = (realdata / BYBIT).read_bytes().splitlines()
    mixed = [lines[0], b'{"topic":"orderbook.500.XRPUSDT","type":"delta"', b"not json", b"", *lines[1:]]
    mixed.append(b'{"success":true,"ret_msg":"pong","conn_id":"x","op":"ping"}')
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(mixed) + b"\n")
    p = run("book-replay", str(path), "--exchange", "bybit", "--emit", "tob", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rows = [orjson.loads(x) for x in p.stdout.splitlines()]
    assert len(rows) == 50
    assert set(rows[0]) == {"symbol", "ts", "bid", "bid_size", "ask", "ask_size"}
    assert rows[-1]["bid"] == "1.9537" and rows[-1]["ask"] == "1.9538"
    assert rows[0]["ts"] == 1733011200691
    assert "2 malformed" in p.stderr and "malformed: line 2" in p.stderr


def test_binance_capture_and_rest_snapshots_merge_by_time(realdata: Path, tmp_path: Path) -> None:
    p = run(
        "book-replay",
        str(realdata / "BINANCE_FUTURES.ws.1.0"),
        str(realdata / "BINANCE_FUTURES.http.0.0"),
        "--exchange",
        "binance",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    books = finals(p.stdout)
    assert set(books) == {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}
    assert all(b["gaps"] == 0 and b["bids"] and b["asks"] for b in books.values())


def test_binance_jsonl_snapshot_line_applies_to_symbol(realdata: Path, tmp_path: Path) -> None:
    # The user-facing jsonl form: REST body lines and combined-stream lines, in time order.
    events = []
    for line in (realdata / "BINANCE_FUTURES.http.0.0").read_text().splitlines():
        if "symbol=SUSHIUSDT" in line:
            head, body = line.split(": ", 1)
            events.append((float(head.split(" -> ")[1]), body))
    for line in (realdata / "BINANCE_FUTURES.ws.1.0").read_text().splitlines():
        head, _, body = line.partition(": ")
        if "sushiusdt@depth" in body:
            events.append((float(head), body))
    events.sort(key=lambda e: e[0])
    path = tmp_path / "sushi.jsonl"
    path.write_text("\n".join(b for _, b in events) + "\n")
    p = run("book-replay", str(path), "--exchange", "binance", "--symbol", "SUSHIUSDT", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    book = finals(p.stdout)["SUSHIUSDT"]
    assert book["gaps"] == 0 and book["update_id"] > 0


def test_okx_and_kraken_checksums_all_verify(realdata: Path, tmp_path: Path) -> None:
    p = run("book-replay", str(realdata / "OKX.ws.1.0"), "--exchange", "okx", cwd=tmp_path)
    books = finals(p.stdout)
    assert sum(b["checksums_checked"] for b in books.values()) == 290
    assert sum(b["checksum_failures"] for b in books.values()) == 0
    p = run("book-replay", str(realdata / "KRAKEN.ws.50.0"), "--exchange", "kraken", cwd=tmp_path)
    books = finals(p.stdout)
    assert len(books) == 10
    assert sum(b["checksums_checked"] for b in books.values()) == 4269
    assert sum(b["checksum_failures"] for b in books.values()) == 0


def test_unreadable_file_exits_non_zero(tmp_path: Path) -> None:
    p = run("book-replay", str(tmp_path / "missing.jsonl"), "--exchange", "bybit", cwd=tmp_path)
    assert p.returncode == 2 and "no such file" in p.stderr
    bad = tmp_path / "broken.gz"
    bad.write_bytes(b"\x1f\x8bnot really gzip")
    p = run("book-replay", str(bad), "--exchange", "bybit", cwd=tmp_path)
    assert p.returncode == 2, p.stderr


def test_invalid_arguments_name_the_problem(tmp_path: Path) -> None:
    p = run("book-replay", "x", "--exchange", "nasdaq", cwd=tmp_path)
    assert p.returncode == 2 and "--exchange" in p.stderr


def test_demo_runs_on_generated_data(tmp_path: Path) -> None:
    p = run("demo", "--messages", "5000", "--symbols", "4", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert len([ln for ln in p.stdout.splitlines() if "live" in ln]) == 4
    assert "gaps=0" in p.stderr and "crossed=0" in p.stderr


def test_emit_features_prints_the_named_vector_per_applied_message(realdata: Path, tmp_path: Path) -> None:
    import math

    from pysrc.analytics import FEATURE_NAMES

    p = run("book-replay", str(realdata / BYBIT), "--exchange", "bybit", "--emit", "features", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rows = [orjson.loads(x) for x in p.stdout.splitlines()]
    assert len(rows) == 50
    assert set(rows[0]) == {"symbol", "ts", "features"}
    assert tuple(rows[-1]["features"]) == FEATURE_NAMES
    last = rows[-1]["features"]
    assert last["best_bid"] == 1.9537 and last["best_ask"] == 1.9538
    assert all(v is None or math.isfinite(v) for r in rows for v in r["features"].values())


def test_emit_features_with_configured_temporal_features(realdata: Path, tmp_path: Path) -> None:
    from pysrc.analytics import FEATURE_NAMES

    p = run(
        "book-replay", str(realdata / BYBIT), "--exchange", "bybit", "--emit", "features",
        "--temporal", "imbalance_5:mean:10u", "--temporal", "mid:roc:1s", cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    rows = [orjson.loads(x) for x in p.stdout.splitlines()]
    assert tuple(rows[-1]["features"]) == (*FEATURE_NAMES, "imbalance_5_mean_10u", "mid_roc_1s")
    means = [r["features"]["imbalance_5_mean_10u"] for r in rows]
    imb = [r["features"]["imbalance_5"] for r in rows]
    assert means[0] == imb[0]
    assert abs(means[-1] - sum(imb[-10:]) / 10) < 1e-9


def test_bad_temporal_spec_names_it(realdata: Path, tmp_path: Path) -> None:
    p = run(
        "book-replay", str(realdata / BYBIT), "--exchange", "bybit", "--emit", "features",
        "--temporal", "mid:median:10u", cwd=tmp_path,
    )
    assert p.returncode == 2 and "mid:median:10u" in p.stderr and "unknown statistic" in p.stderr
    p = run("book-replay", str(realdata / BYBIT), "--exchange", "bybit", "--temporal", "mid:mean:10u", cwd=tmp_path)
    assert p.returncode == 2 and "--emit features" in p.stderr
