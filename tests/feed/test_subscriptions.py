"""Per-topic subscription state from Bybit's acks (which name only the req_id)."""

from __future__ import annotations

from pysrc.feed.subscriptions import (
    ACTIVE,
    FAILED,
    NEW,
    PENDING,
    RETRY,
    Request,
    SubscriptionTracker,
)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


TOPICS = [f"orderbook.50.S{i}" for i in range(5)] + ["publicTrade.S0", "publicTrade.S1"]


def tracker(clock: Clock, **kw: object) -> SubscriptionTracker:
    return SubscriptionTracker(TOPICS, req_prefix="c0:", max_args=3, clock=clock, **kw)  # type: ignore[arg-type]


def test_subscribe_all_batches_and_ack_activates() -> None:
    clock = Clock()
    t = tracker(clock)
    assert set(t.states().values()) == {NEW}
    reqs = t.subscribe_all()
    assert [len(r.args) for r in reqs] == [3, 3, 1]
    assert [r.req_id for r in reqs] == ["c0:1", "c0:2", "c0:3"]
    assert all(r.op == "subscribe" for r in reqs)
    assert set(t.states().values()) == {PENDING}
    assert t.subscribe_all() == []  # nothing new to send
    result = t.on_ack("c0:2", "subscribe", True)
    assert result is not None and result.activated == reqs[1].args
    assert [t.state(x) for x in reqs[1].args] == [ACTIVE] * 3
    assert t.state(reqs[0].args[0]) == PENDING
    assert t.on_ack("nope", "subscribe", True) is None


def test_request_encoding_is_bybit_shape() -> None:
    r = Request("c0:7", "subscribe", ("orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"))
    assert r.encode() == (
        '{"req_id":"c0:7","op":"subscribe","args":["orderbook.50.BTCUSDT","publicTrade.BTCUSDT"]}'
    )


def test_failed_multi_topic_request_is_retried_topic_by_topic() -> None:
    clock = Clock()
    t = tracker(clock)
    reqs = t.subscribe_all()
    t.on_ack(reqs[0].req_id, "subscribe", False, "error:handler not found,topic:orderbook.50.S1")
    assert [t.state(x) for x in reqs[0].args] == [RETRY] * 3
    again = t.due()
    # each failed topic alone, right away
    assert [r.args for r in again] == [(x,) for x in reqs[0].args]
    assert [t.state(x) for x in reqs[0].args] == [PENDING] * 3
    # two succeed alone, one keeps failing
    t.on_ack(again[0].req_id, "subscribe", True)
    t.on_ack(again[2].req_id, "subscribe", True)
    bad = reqs[0].args[1]
    t.on_ack(again[1].req_id, "subscribe", False, "error:handler not found")
    assert t.state(bad) == RETRY
    assert t.state(reqs[0].args[0]) == ACTIVE and t.state(reqs[0].args[2]) == ACTIVE
    assert t.due() == []  # a lone failure waits before retrying
    clock.t += 1.0
    retry = t.due()
    assert [r.args for r in retry] == [(bad,)]
    assert t.last_error(bad) == "error:handler not found"


def test_lone_failures_back_off_and_give_up() -> None:
    clock = Clock()
    t = SubscriptionTracker(["tickers.X"], retry_base=1.0, retry_cap=4.0, max_attempts=4, clock=clock)
    (req,) = t.subscribe_all()
    waits = []
    for _ in range(4):
        t.on_ack(req.req_id, "subscribe", False, "boom")
        if t.state("tickers.X") == FAILED:
            break
        start = clock.t
        while not (nxt := t.due()):
            clock.t += 0.25
        waits.append(clock.t - start)
        (req,) = nxt
    assert waits == [1.0, 2.0, 4.0]
    assert t.state("tickers.X") == FAILED
    assert t.failures() == 4
    clock.t += 1000
    assert t.due() == []  # given up: no more retries


def test_ack_timeout_counts_as_failure() -> None:
    clock = Clock()
    t = SubscriptionTracker(["a.X", "b.X"], ack_timeout=5.0, clock=clock)
    (req,) = t.subscribe_all()
    clock.t += 4.9
    assert t.due() == []
    clock.t += 0.2
    retries = t.due()  # timed out as a pair -> each alone at once
    assert sorted(r.args for r in retries) == [("a.X",), ("b.X",)]
    assert t.on_ack(req.req_id, "subscribe", True) is None  # the late ack matches nothing


def test_already_subscribed_means_active() -> None:
    t = SubscriptionTracker(["a.X"], clock=Clock())
    (req,) = t.subscribe_all()
    t.on_ack(req.req_id, "subscribe", False, "error:already subscribed,topic:a.X")
    assert t.state("a.X") == ACTIVE


def test_resubscribe_sends_unsubscribe_then_subscribe() -> None:
    t = SubscriptionTracker(["orderbook.50.X", "publicTrade.X"], clock=Clock())
    (req,) = t.subscribe_all()
    t.on_ack(req.req_id, "subscribe", True)
    unsub, sub = t.resubscribe("orderbook.50.X")
    assert (unsub.op, unsub.args, sub.op, sub.args) == (
        "unsubscribe", ("orderbook.50.X",), "subscribe", ("orderbook.50.X",),
    )
    assert t.state("orderbook.50.X") == PENDING
    assert t.state("publicTrade.X") == ACTIVE
    r = t.on_ack(unsub.req_id, "unsubscribe", True)
    assert r is not None and r.op == "unsubscribe"
    assert t.state("orderbook.50.X") == PENDING
    t.on_ack(sub.req_id, "subscribe", True)
    assert t.state("orderbook.50.X") == ACTIVE


def test_acks_without_req_id_match_in_order() -> None:
    t = SubscriptionTracker(["a.X", "b.X", "c.X"], max_args=1, clock=Clock())
    assert len(t.subscribe_all()) == 3
    t.on_ack("", "subscribe", True)
    assert [t.state(x) for x in ("a.X", "b.X", "c.X")] == [ACTIVE, PENDING, PENDING]
    assert t.pending_requests() == 2


def test_reset_forgets_everything_of_the_old_socket() -> None:
    t = SubscriptionTracker(["a.X", "b.X"], clock=Clock())
    (req,) = t.subscribe_all()
    t.on_ack(req.req_id, "subscribe", True)
    t.reset()
    assert t.states() == {"a.X": NEW, "b.X": NEW}
    assert t.pending_requests() == 0
    assert len(t.subscribe_all()) == 1
