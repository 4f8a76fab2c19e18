"""The per-frame hot path: one engine call per frame, control frames recognised, events routed,
breaks reported, and everything unusable dead-lettered while the feed goes on."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from pysrc.book import BookEngine
from pysrc.exchange.deadletter import MemoryDeadLetters
from pysrc.feed.events import BookUpdated, Kline, Ticker, Trade, Trades
from pysrc.feed.metrics import SymbolMetrics
from pysrc.feed.pipeline import FramePipeline
from pysrc.feed.queue import SymbolQueue


class Source:
    name = "conn-test"

    def __init__(self) -> None:
        self.pongs: list[str] = []
        self.acks: list[tuple[str, str, bool, str]] = []

    def on_pong(self, req_id: str) -> None:
        self.pongs.append(req_id)

    def on_ack(self, req_id: str, op: str, success: bool, ret_msg: str) -> None:
        self.acks.append((req_id, op, success, ret_msg))


class Rig:
    def __init__(self, features: bool = False, trade_events: bool = True,
                 on_applied: Callable[[str], None] | None = None, book_events: bool = True) -> None:
        self.engine = BookEngine("bybit", features=features)
        self.queues = {s: SymbolQueue(s, 100) for s in ("BTCUSDT", "ETHUSDT")}
        self.metrics = {s: SymbolMetrics(s) for s in self.queues}
        self.dead = MemoryDeadLetters()
        self.breaks: list[tuple[str, str]] = []
        self.source = Source()
        self.pipeline = FramePipeline(
            self.engine,
            queues=self.queues,
            metrics=self.metrics,
            dead_letters=self.dead,
            on_break=lambda s, r: self.breaks.append((s, r)),
            trade_events=trade_events,
            wall_ms=lambda: 1_700_000_000_005.5,
            on_applied=on_applied,
            book_events=book_events,
        )

    def feed(self, frame: bytes | str) -> bool:
        return self.pipeline.on_frame(self.source, frame)

    def drain(self, symbol: str) -> list[object]:
        q = self.queues[symbol]
        return [q.get_nowait() for _ in range(q.qsize())]


TRADE = orjson.dumps({
    "topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1672304486868,
    "data": [
        {"T": 1672304486865, "s": "BTCUSDT", "S": "Buy", "v": "0.001", "p": "16578.50", "L": "PlusTick", "i": "t1", "BT": False, "seq": 1},
        {"T": 1672304486866, "s": "BTCUSDT", "S": "Sell", "v": "0.010", "p": "16578.00", "L": "MinusTick", "i": "t2", "BT": True, "seq": 2},
    ],
})  # fmt: skip


def test_book_frames_apply_and_notify(book_msg: Callable[..., bytes]) -> None:
    rig = Rig()
    assert rig.feed(book_msg("BTCUSDT", "snapshot", 10, [["100.5", "1"]], [["101.0", "2"]]))
    for u in range(11, 21):
        rig.feed(book_msg("BTCUSDT", "delta", u, [["100.5", str(u)]], []))
    m = rig.metrics["BTCUSDT"]
    assert (m.messages, m.applied) == (11, 11)
    assert rig.drain("BTCUSDT") == [BookUpdated("BTCUSDT")]  # coalesced
    assert rig.queues["BTCUSDT"].coalesced == 10
    assert rig.engine.levels("BTCUSDT", 1) == ([("100.5", "20")], [("101.0", "2")])
    # latency: local wall clock (fixed here) minus the frame's ts
    assert m.latency.samples()[0] == pytest.approx(5.5)
    assert m.latency.count == 11


def test_stale_waiting_and_breaks(book_msg: Callable[..., bytes]) -> None:
    rig = Rig()
    rig.feed(book_msg("BTCUSDT", "delta", 5, [["1", "1"]], []))  # before any snapshot
    rig.feed(book_msg("BTCUSDT", "snapshot", 10, [["100", "1"]], [["101", "1"]]))
    rig.feed(book_msg("BTCUSDT", "delta", 10, [["100", "9"]], []))  # duplicate u
    rig.feed(book_msg("BTCUSDT", "delta", 12, [["100", "9"]], []))  # gap
    m = rig.metrics["BTCUSDT"]
    assert (m.waiting, m.stale, m.gaps) == (1, 1, 1)
    assert rig.breaks == [("BTCUSDT", "gap")]
    rig.feed(book_msg("ETHUSDT", "snapshot", 1, [["10", "1"]], [["11", "1"]]))
    rig.feed(book_msg("ETHUSDT", "delta", 2, [["12", "1"]], []))  # crosses the book
    assert rig.breaks[-1] == ("ETHUSDT", "crossed")
    assert rig.metrics["ETHUSDT"].crossed == 1


def test_control_frames_reach_the_connection() -> None:
    rig = Rig()
    pong = b'{"success":true,"ret_msg":"pong","conn_id":"x","req_id":"p1","op":"ping"}'
    assert rig.feed(pong) is False
    assert rig.feed(b'{"args":["1672916271846"],"op":"pong"}') is False
    ack = b'{"success":false,"ret_msg":"error:handler not found","conn_id":"x","req_id":"c:3","op":"subscribe"}'
    rig.feed(ack)
    rig.feed(b'{"success":true,"ret_msg":"","conn_id":"x","op":"unsubscribe"}')
    assert rig.source.pongs == ["p1", ""]
    assert rig.source.acks == [
        ("c:3", "subscribe", False, "error:handler not found"),
        ("", "unsubscribe", True, ""),
    ]
    assert rig.dead.count == 0 and rig.pipeline.control == 4


@pytest.mark.parametrize("features", [False, True])
def test_trades_with_and_without_engine_features(features: bool) -> None:
    rig = Rig(features=features)
    assert rig.feed(TRADE) is True
    (event,) = rig.drain("BTCUSDT")
    assert event == Trades(
        "BTCUSDT",
        1672304486868,
        (
            Trade(1672304486865, "16578.50", "0.001", "Buy", "t1", False),
            Trade(1672304486866, "16578.00", "0.010", "Sell", "t2", True),
        ),
    )
    assert rig.metrics["BTCUSDT"].trades == 1
    if features:
        assert rig.engine.totals()["trades"] >= 1  # the analytics saw them too


def test_trade_events_can_be_switched_off() -> None:
    rig = Rig(features=True, trade_events=False)
    rig.feed(TRADE)
    assert rig.drain("BTCUSDT") == [] and rig.metrics["BTCUSDT"].trades == 1


def test_tickers_merge_deltas_and_klines_become_events() -> None:
    rig = Rig()
    rig.feed(orjson.dumps({"topic": "tickers.ETHUSDT", "type": "snapshot", "cs": 1, "ts": 10,
                           "data": {"symbol": "ETHUSDT", "lastPrice": "2000.10", "bid1Price": "2000.00"}}))
    rig.feed(orjson.dumps({"topic": "tickers.ETHUSDT", "type": "delta", "cs": 2, "ts": 11,
                           "data": {"symbol": "ETHUSDT", "bid1Price": "2000.05"}}))
    rig.feed(orjson.dumps({"topic": "kline.5.ETHUSDT", "type": "snapshot", "ts": 12, "data": [
        {"start": 0, "end": 299999, "interval": "5", "open": "1", "close": "2", "high": "3", "low": "0.5",
         "volume": "10", "turnover": "15", "confirm": True, "timestamp": 12}]}))
    snap, delta, kline = rig.drain("ETHUSDT")
    assert isinstance(snap, Ticker) and isinstance(delta, Ticker)
    assert delta.changes == {"symbol": "ETHUSDT", "bid1Price": "2000.05"}
    assert delta.state == {"symbol": "ETHUSDT", "lastPrice": "2000.10", "bid1Price": "2000.05"}
    assert snap.state["bid1Price"] == "2000.00"  # events do not share the merged dict
    assert rig.pipeline.ticker("ETHUSDT") == delta.state
    assert kline == Kline("ETHUSDT", "5", 0, 299999, "1", "2", "3", "0.5", "10", "15", True, 12)
    m = rig.metrics["ETHUSDT"]
    assert (m.tickers, m.klines, m.messages) == (2, 1, 3)


@pytest.mark.parametrize(
    "frame",
    [
        b"not json at all",
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta"}',  # no data
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta","data":{"s":"BTCUSDT","b":[["x","1"]],"a":[],"u":3}}',
        b'{"topic":"tickers.BTCUSDT","type":"snapshot","data":[1,2]}',  # wrong shape
        b'{"topic":"kline.1.BTCUSDT","data":[{"start":1}]}',  # fields missing
        b'{"topic":"allLiquidation.BTCUSDT","data":[]}',  # not subscribed by the feed
        b'{"topic":"publicTrade.DOGEUSDT","data":[]}',  # a symbol this feed does not own
        b'{"op":"auth","success":true}',
    ],
)
def test_unusable_frames_go_to_dead_letters_and_the_feed_goes_on(
    frame: bytes, book_msg: Callable[..., bytes]
) -> None:
    rig = Rig()
    rig.feed(book_msg("BTCUSDT", "snapshot", 1, [["100", "1"]], [["101", "1"]]))
    assert rig.feed(frame) is False
    (letter,) = rig.dead.entries()
    assert letter.raw == frame and letter.source == "conn-test" and letter.error
    rig.feed(book_msg("BTCUSDT", "delta", 2, [["100", "3"]], []))
    assert rig.engine.levels("BTCUSDT", 1)[0] == [("100", "3")]


def test_the_applied_hook_runs_after_each_applied_book_and_cannot_stop_the_reader(
    book_msg: Callable[..., bytes],
) -> None:
    seen: list[tuple[str, str]] = []

    def hook(symbol: str) -> None:
        # The book is already updated when the hook runs.
        seen.append((symbol, rig.engine.levels(symbol, 1)[0][0][1]))
        if len(seen) == 2:
            raise RuntimeError("a strategy bug")

    rig = Rig(on_applied=hook)
    rig.feed(book_msg("BTCUSDT", "snapshot", 10, [["100", "1"]], [["101", "1"]]))
    rig.feed(book_msg("BTCUSDT", "delta", 11, [["100", "2"]], []))
    rig.feed(book_msg("BTCUSDT", "delta", 11, [["100", "9"]], []))  # stale: not applied, no call
    rig.feed(book_msg("BTCUSDT", "delta", 12, [["100", "3"]], []))
    assert seen == [("BTCUSDT", "1"), ("BTCUSDT", "2"), ("BTCUSDT", "3")]
    assert rig.pipeline.hook_errors == 1
    assert rig.metrics["BTCUSDT"].applied == 3


def test_without_book_events_the_hook_is_the_only_consumer_of_applied_books(
    book_msg: Callable[..., bytes],
) -> None:
    """``book_events=False`` (the bot, which decides in the hook): applied books are not queued,
    trades still are, and the hook still sees every applied book."""
    seen: list[str] = []
    rig = Rig(features=True, on_applied=seen.append, book_events=False)
    rig.feed(book_msg("BTCUSDT", "snapshot", 10, [["16578.00", "1"]], [["16578.50", "1"]]))
    for u in range(11, 14):
        rig.feed(book_msg("BTCUSDT", "delta", u, [["16578.00", str(u)]], []))
    rig.feed(TRADE)
    assert seen == ["BTCUSDT"] * 4
    events = rig.drain("BTCUSDT")
    assert [type(e).__name__ for e in events] == ["Trades"], events
    assert rig.metrics["BTCUSDT"].applied == 4
