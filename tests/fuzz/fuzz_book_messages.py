"""atheris harness: random and mutated messages into every exchange codec of the native engine.

Run by tests/fuzz/test_fuzz_book_messages.py with a bounded number of runs; by hand:
``python -P tests/fuzz/fuzz_book_messages.py CORPUS_DIR -runs=1000000``.

Invariants checked on every input: the engine either applies the message or raises
MalformedMessage (no other exception, no crash, no panic), and a MalformedMessage leaves every
book's levels unchanged.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from pysrc import _native

# Seed books so deltas reach the apply paths, not only the "no book yet" paths.
SEEDS = {
    "bybit": [
        b'{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1,"data":{"s":"BTCUSDT",'
        b'"b":[["100.5","1"],["100.0","2"]],"a":[["101.0","3"],["101.5","1"]],"u":10,"seq":1},"cts":1}'
    ],
    "okx": [
        b'{"arg":{"channel":"books","instId":"X"},"action":"snapshot","data":[{"asks":[["3366.8","9","0","1"],'
        b'["3368","8","0","1"],["3372","8","0","1"]],"bids":[["3366.1","7","0","1"]],"ts":"5","checksum":831078360}]}'
    ],
    "kraken": [b'[1,{"as":[["5.0","1.0","1.0"]],"bs":[["4.0","1.0","1.0"]]},"book-10","XBT/USD"]'],
    "binance": [],
}


def fresh_engines() -> dict[str, _native.BookEngine]:
    engines = {}
    for ex, seeds in SEEDS.items():
        e = _native.BookEngine(ex)
        for s in seeds:
            e.apply(s)
        if ex == "binance":
            e.apply_snapshot("BTCUSDT", b'{"lastUpdateId":100,"bids":[["10.0","1"]],"asks":[["11.0","1"]]}')
        engines[ex] = e
    return engines


ENGINES = fresh_engines()
COUNT = 0


def snapshot_of(e: _native.BookEngine) -> list[tuple[str, object]]:
    return [(s, e.levels(s, 0)) for s in e.symbols()]


def TestOneInput(data: bytes) -> None:
    global ENGINES, COUNT
    COUNT += 1
    if COUNT % 5000 == 0:
        ENGINES = fresh_engines()  # keep books from drifting into one odd state forever
    for name, engine in ENGINES.items():
        before = snapshot_of(engine)
        try:
            engine.apply(data)
        except _native.MalformedMessage:
            after = snapshot_of(engine)
            if after != before:
                raise AssertionError(f"{name}: MalformedMessage changed the books")
        if name == "binance":
            try:
                engine.apply_snapshot("BTCUSDT", data)
            except _native.MalformedMessage:
                pass


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
