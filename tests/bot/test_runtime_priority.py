"""Symbol prioritisation under load: while the bot runs late, symbols outside the priority set are
evaluated at most every DEFERRED_EVAL_S; their books stay exact and evaluation resumes at full rate
once the load passes."""

from __future__ import annotations

from pathlib import Path

import orjson

from pysrc.analytics import FeatureReader
from pysrc.book import BookEngine
from pysrc.bot.runtime import BotRuntime
from pysrc.config import load


def snapshot(symbol: str, u: int, bid: str) -> bytes:
    return orjson.dumps({"topic": f"orderbook.50.{symbol}", "type": "snapshot", "ts": 1_700_000_000_000 + u,
                         "data": {"s": symbol, "b": [[bid, "1"]], "a": [["200", "1"]], "u": u}})


def test_low_priority_symbols_are_deferred_only_while_overloaded(tmp_path: Path) -> None:
    rt = BotRuntime(load(env={}), data_dir=tmp_path, status_interval=0)
    rt.engine = BookEngine("bybit", features=True)
    rt.reader = FeatureReader(rt.engine)
    rt.symbols = ["HOTUSDT", "COLDUSDT"]
    evaluated = lambda: rt.m_tick.count()  # noqa: E731 - one evaluation = one tick observation

    rt._overloaded, rt._priority = True, {"HOTUSDT"}
    for u in (1, 2, 3):
        rt.engine.apply(snapshot("HOTUSDT", u, f"10{u}"))
        rt._on_book("HOTUSDT")
    assert evaluated() == 3  # the priority symbol keeps the full rate

    for u in (1, 2, 3):
        rt.engine.apply(snapshot("COLDUSDT", u, f"10{u}"))
        rt._on_book("COLDUSDT")
    assert evaluated() == 4 and rt._deferred == 2  # first one evaluated, the next two deferred
    assert rt.engine.best_bid("COLDUSDT") == ("103", "1")  # the book itself is never deferred

    rt._overloaded = False
    rt.engine.apply(snapshot("COLDUSDT", 4, "104"))
    rt._on_book("COLDUSDT")
    assert evaluated() == 5 and rt._deferred == 2
