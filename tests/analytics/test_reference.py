"""The feature oracle on small books and trade sequences whose values are worked out by hand.

Every expected value below is derived in the test from the schema's formula on the few numbers
involved (with ``Fraction`` where exactness matters), not read from the oracle. These cases pin
the readings the oracle makes, so the native-vs-oracle tests hold the native core to them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from fractions import Fraction as F
from pathlib import Path

import pytest

from pysrc.analytics.reference import FEATURE_NAMES, N_FEATURES, TRADES, FeatureOracle
from pysrc.book.reference import APPLIED, GAP, SKIPPED

Features = Callable[[FeatureOracle, str], dict[str, float | None]]

S = "TESTUSDT"


def bps(x: F | float, base: F | float) -> float:
    return float(F(x) / F(base) * 10_000)


def close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def feed(oracle: FeatureOracle, *messages: bytes) -> list[tuple[int, str | None]]:
    return [oracle.apply(m) for m in messages]


# ---- layout ----------------------------------------------------------------------------------


def test_names_match_schema_source(repo_root: Path) -> None:
    """The oracle's names, in order, are those of ``native/analytics/schema.rs``."""
    source = (repo_root / "native" / "analytics" / "schema.rs").read_text()
    body = source[source.index("schema! {") :]
    names = re.findall(r'^\s*\w+\s*=\s*\("([a-z0-9_]+)"', body, flags=re.MULTILINE)
    assert tuple(names) == FEATURE_NAMES
    assert N_FEATURES == 70


def test_before_any_update_and_trades_do_not_recompute(
    oracle_factory: Callable[..., FeatureOracle], bybit, features: Features
) -> None:
    o = oracle_factory()
    assert o.vector(S) == ([0.0] * N_FEATURES, [False] * N_FEATURES, 0)
    # trades for a symbol without a book are recorded, the vector stays empty
    assert o.apply(bybit.trades(S, [(1000, "Buy", "100", "1")])) == (TRADES, S)
    assert o.vector(S)[2] == 0 and not any(o.vector(S)[1])
    assert o.apply(bybit.snapshot(S, 2000, [("99", "1")], [("101", "1")])) == (APPLIED, S)
    f = features(o, S)
    assert f["trade_count_10s"] == 1.0 and f["trade_volume_10s"] == 1.0
    before = o.vector(S)
    assert before[2] == 1
    # a trade message records the trade without recomputing the vector
    assert o.apply(bybit.trades(S, [(2500, "Sell", "99", "2")])) == (TRADES, S)
    assert o.vector(S) == before
    # non-book, non-trade topics are skipped as the book engine does
    assert o.apply(b'{"topic":"tickers.TESTUSDT","type":"snapshot","ts":1,"data":{}}') == (
        SKIPPED,
        None,
    )
    feed(o, bybit.delta(S, 3000, bids=[("99", "3")]))
    f = features(o, S)
    assert o.vector(S)[2] == 2
    assert f["trade_count_10s"] == 2.0 and f["volume_delta_10s"] == -1.0


def test_a_gap_is_not_an_update(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    feed(o, bybit.snapshot(S, 1000, [("99", "1")], [("101", "1")]))
    assert o.apply(bybit.delta(S, 2000, bids=[("99", "2")], u=10**9)) == (GAP, S)
    assert o.vector(S)[2] == 1
    assert features(o, S)["bid_size_1"] == 1.0


# ---- book state --------------------------------------------------------------------------------


def test_three_level_book(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    bids = [("100", "3"), ("99", "1"), ("98", "2")]
    asks = [("101", "1"), ("102", "2"), ("103", "4")]
    feed(o, bybit.snapshot(S, 10_000, bids, asks))
    f = features(o, S)
    mid = F(201, 2)
    micro = F(100 * 1 + 101 * 3, 3 + 1)  # (bb * as_1 + ba * bs_1) / (bs_1 + as_1) = 100.75
    assert f["best_bid"] == 100.0 and f["best_ask"] == 101.0
    assert f["mid"] == 100.5 and f["spread"] == 1.0
    assert close(f["spread_bps"], bps(1, mid))
    assert f["microprice"] == 100.75
    assert close(f["microprice_offset_bps"], bps(micro - mid, mid))
    assert f["bid_size_1"] == 3.0 and f["ask_size_1"] == 1.0
    assert f["imbalance_1"] == 0.5  # (3 - 1) / (3 + 1)
    for n in (5, 10, 20):  # fewer levels than n: the levels that exist
        assert close(f[f"imbalance_{n}"], float(F(6 - 7, 13)))
    assert f["bid_depth_5"] == f["bid_depth_20"] == 6.0
    assert f["ask_depth_5"] == f["ask_depth_20"] == 7.0
    assert f["bid_notional_10"] == 100 * 3 + 99 * 1 + 98 * 2
    assert f["ask_notional_10"] == 101 * 1 + 102 * 2 + 103 * 4
    # pressure: weights 1, 1/2, 1/3
    num = F(3 - 1) + F(1 - 2, 2) + F(2 - 4, 3)
    den = F(3 + 1) + F(1 + 2, 2) + F(2 + 4, 3)
    assert close(f["pressure_10"], float(num / den))  # 1/9
    assert f["bid_levels"] == 3.0 and f["ask_levels"] == 3.0
    # 10,000 quote is not reachable in either side
    assert f["impact_buy_bps"] is None and f["impact_sell_bps"] is None
    # nothing within 10 bps of 100.5 but the mid itself
    assert f["density_bid_10bps"] == 0.0 and f["density_ask_10bps"] == 0.0
    # first update: no OFI; the 100-update sum of missing OFI is 0
    assert f["ofi"] is None and f["ofi_sum_100"] == 0.0 and f["ofi_norm_100"] == 0.0
    # medians 2 (bids) and 2 (asks): no size reaches 10
    assert f["wall_bid_count"] == 0.0 and f["wall_ask_count"] == 0.0
    for name in ("wall_bid_dist_bps", "wall_bid_size_ratio", "wall_bid_age_s", "support_dist_bps"):
        assert f[name] is None
    assert f["hotspot_bid_dist_bps"] is None  # fewer than 5 levels
    assert f["level_ttl_mean_s"] is None
    assert f["best_bid_age_s"] == 0.0 and f["best_ask_age_s"] == 0.0
    assert f["trade_volume_10s"] == 0.0 and f["trade_count_10s"] == 0.0
    assert f["volume_delta_10s"] == 0.0 and f["buy_ratio_10s"] is None
    assert f["volume_anomaly_z"] is None and f["vpin"] is None and f["poc_dist_bps"] is None
    assert f["spoof_score_60s"] == 0.0 and f["layering_score_60s"] == 0.0
    assert f["mid_ret_mean_100"] is None and f["mid_roc_1s_bps"] is None
    assert close(f["imbalance_5_mean_100"], float(F(-1, 13)))
    assert f["imbalance_5_std_100"] is None
    assert close(f["spread_bps_mean_100"], bps(1, mid))
    assert f["corr_ref_100"] is None and f["basis_ext_bps"] is None


def test_one_side_empty(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    feed(
        o,
        bybit.snapshot(
            S, 1000, [("100", "1"), ("99", "50")] + [(str(98 - i), "1") for i in range(5)], []
        ),
    )
    f = features(o, S)
    present = {name for name, v in f.items() if v is not None}
    # the bid-only and "never" features, lifetime and trade counters and the detectors' scores
    assert present == {
        "best_bid",
        "bid_levels",
        "ask_levels",
        "best_bid_age_s",
        "trade_volume_10s",
        "trade_count_10s",
        "volume_delta_10s",
        "spoof_score_60s",
        "layering_score_60s",
    }
    assert f["ask_levels"] == 0.0 and f["bid_levels"] == 7.0


def test_impact_walks_a_partial_level(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    bids = [("99", "200")]  # 19,800 quote at one price: vwap = 99
    asks = [("100", "50"), ("101", "40"), ("102", "100")]  # 5,000 + 4,040 + 960 of 10,200
    feed(o, bybit.snapshot(S, 1000, bids, asks))
    f = features(o, S)
    mid = F(199, 2)
    qty = 50 + 40 + F(10_000 - 5_000 - 4_040, 102)
    vwap = F(10_000) / qty
    assert close(f["impact_buy_bps"], bps(vwap - mid, mid))
    assert close(f["impact_sell_bps"], bps(mid - 99, mid))


def test_impact_needs_exactly_10000_quote(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    # bids hold 9,999.01 quote: not enough
    feed(
        o,
        bybit.snapshot(
            S,
            1000,
            [("99.99", "100"), ("1", "0.01")],
            [("100", "60"), ("100.5", "40"), ("200", "0.1")],
        ),
    )
    f = features(o, S)
    assert f["impact_sell_bps"] is None
    # 6,000 + 4,020 > 10,000: 60 + 3,980 / 100.5 at 100.5
    qty = 60 + F(4_000, F(201, 2))
    mid = (F(9999, 100) + 100) / 2
    assert close(f["impact_buy_bps"], bps(F(10_000) / qty - mid, mid))
    o = oracle_factory()
    feed(o, bybit.snapshot(S, 1000, [("99", "200")], [("100", "60"), ("200", "20")]))
    f = features(o, S)
    mid = F(199, 2)
    # 6,000 + 4,000 exactly: the second level is taken whole
    assert close(f["impact_buy_bps"], bps(F(10_000, 80) - mid, mid))


def test_density_boundaries_are_exact(oracle_factory, bybit, features: Features) -> None:
    """mid = 10: the 10 bps band is [9.99, 10.01] exactly, and both best levels sit on its
    edges (in floats, 10 * 1.001 = 10.009999999999998 would drop the best ask)."""
    o = oracle_factory()
    bids = [("9.99", "1"), ("9.98", "2")]
    asks = [("10.01", "3"), ("10.02", "4")]
    feed(o, bybit.snapshot(S, 1000, bids, asks))
    f = features(o, S)
    assert f["density_bid_10bps"] == 1.0
    assert f["density_ask_10bps"] == 3.0
    o = oracle_factory()
    bids = [("99.95", "1"), ("99.9", "2"), ("99.89", "4")]
    asks = [("100.05", "1"), ("100.1", "5"), ("100.11", "7")]
    feed(o, bybit.snapshot(S, 1000, bids, asks))
    f = features(o, S)
    assert f["density_bid_10bps"] == 3.0 and f["density_ask_10bps"] == 6.0


# ---- OFI -----------------------------------------------------------------------------------------

# Previous best levels: bid 100 x 3, ask 101 x 1 (plus depth so deletes leave a level behind).
OFI_BIDS = [("100", "3"), ("99", "1"), ("98", "2")]
OFI_ASKS = [("101", "1"), ("102", "2"), ("103", "4")]


@pytest.mark.parametrize(
    ("bids", "asks", "expected", "top"),
    [
        # bid up: [bb >= bb'] bs_1 = 2, and [bb <= bb'] is false
        ([("100.5", "2")], [], 2, 2 + 1),
        # bid down (best deleted): - [bb <= bb'] bs_1' = -3
        ([("100", "0")], [], -3, 1 + 1),
        # same bid price, size 3 -> 5: 5 - 3
        ([("100", "5")], [], 2, 5 + 1),
        # ask up (best deleted): + [ba >= ba'] as_1' = +1
        ([], [("101", "0")], 1, 3 + 2),
        # ask down: - [ba <= ba'] as_1 = -7
        ([], [("100.8", "7")], -7, 3 + 7),
        # same ask price, size 1 -> 4: -4 + 1
        ([], [("101", "4")], -3, 3 + 4),
        # both move: bid up 100.5 x 2 (+2), ask down 100.8 x 7 (-7)
        ([("100.5", "2")], [("100.8", "7")], -5, 2 + 7),
        # nothing at the top changes: 3 - 3 - 1 + 1
        ([("98", "9")], [], 0, 3 + 1),
    ],
)
def test_ofi_cases(oracle_factory, bybit, features: Features, bids, asks, expected, top) -> None:
    o = oracle_factory()
    feed(o, bybit.snapshot(S, 1000, OFI_BIDS, OFI_ASKS), bybit.delta(S, 1100, bids, asks))
    f = features(o, S)
    assert f["ofi"] == expected
    assert f["ofi_sum_100"] == expected  # the first update's OFI is missing and counts as 0
    assert close(f["ofi_norm_100"], float(F(expected) / F(4 + top, 2)))


def test_ofi_window_is_100_updates(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    feed(o, bybit.snapshot(S, 0, [("100", "1")], [("101", "1")]))
    # each delta raises the best bid size by 1: OFI = +1 each time
    for i in range(2, 151):
        feed(o, bybit.delta(S, i, bids=[("100", str(i))]))
    f = features(o, S)
    assert f["ofi"] == 1.0
    assert f["ofi_sum_100"] == 100.0
    # mean of bs_1 + as_1 over the last 100 updates: sizes 51..150 plus 1
    mean_top = F(sum(range(51, 151)) + 100, 100)
    assert close(f["ofi_norm_100"], float(100 / mean_top))


def test_ofi_missing_when_previous_update_had_an_empty_side(
    oracle_factory, bybit, features: Features
) -> None:
    o = oracle_factory()
    feed(o, bybit.snapshot(S, 0, [("100", "1")], []), bybit.delta(S, 10, asks=[("101", "2")]))
    f = features(o, S)
    assert f["ofi"] is None and f["ofi_sum_100"] == 0.0 and f["ofi_norm_100"] == 0.0


# ---- walls and hotspots ----------------------------------------------------------------------


def wall_book() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    # bids: sizes 2,1,2,20,3,2,12 -> median 2, walls >= 10: 20 at 97 and 12 at 94
    bids = [(str(100 - i), s) for i, s in enumerate(["2", "1", "2", "20", "3", "2", "12"])]
    # asks: sizes 1,3,5,40,2,4,16,20 -> median (4 + 5) / 2 = 4.5, walls >= 22.5: 40 at 104 only
    # (a lower median 4 would make 20 a wall too; an upper one, 5, would not change the count)
    asks = [(str(101 + i), s) for i, s in enumerate(["1", "3", "5", "40", "2", "4", "16", "20"])]
    return bids, asks


def test_walls_with_a_clear_median(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    bids, asks = wall_book()
    feed(o, bybit.snapshot(S, 5000, bids, asks))
    f = features(o, S)
    mid = F(201, 2)
    assert f["wall_bid_count"] == 2.0
    assert f["wall_ask_count"] == 1.0
    assert close(f["wall_bid_dist_bps"], bps(mid - 97, mid))
    assert close(f["wall_ask_dist_bps"], bps(104 - mid, mid))
    assert f["wall_bid_size_ratio"] == 10.0  # 20 / 2
    assert close(f["wall_ask_size_ratio"], float(F(40) / F(9, 2)))
    assert f["wall_bid_age_s"] == 0.0 and f["wall_ask_age_s"] == 0.0
    # hotspot: bid runs of 5 sum to 28, 28, 39 -> the third run (98..94), middle 96
    assert close(f["hotspot_bid_dist_bps"], bps(mid - 96, mid))
    # asks: 51, 54, 67, 82 -> the fourth run (104..108), middle 106
    assert close(f["hotspot_ask_dist_bps"], bps(106 - mid, mid))


def test_largest_wall_ties_go_nearer_the_mid_and_hotspot_ties_to_the_best(
    oracle_factory, bybit, features: Features
) -> None:
    o = oracle_factory()
    bids = [(str(100 - i), s) for i, s in enumerate(["1", "1", "1", "1", "10", "1", "10"])]
    asks = [(str(101 + i), "1") for i in range(6)]  # all runs of 5 tie: the first wins
    feed(o, bybit.snapshot(S, 0, bids, asks))
    f = features(o, S)
    mid = F(201, 2)
    assert f["wall_bid_count"] == 2.0
    assert close(f["wall_bid_dist_bps"], bps(mid - 96, mid))  # 96, not 94
    assert f["wall_ask_count"] == 0.0
    assert close(f["hotspot_ask_dist_bps"], bps(103 - mid, mid))  # run 101..105, middle 103


def test_walls_use_only_the_top_50(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    bids = [(str(1000 - i), "1") for i in range(50)] + [("900", "100")]
    asks = [(str(1001 + i), "1") for i in range(50)]
    feed(o, bybit.snapshot(S, 0, bids, asks, depth=200))
    f = features(o, S)
    assert f["bid_levels"] == 51.0
    assert f["wall_bid_count"] == 0.0  # the big level is the 51st
    feed(o, bybit.delta(S, 10, bids=[("951", "0")], depth=200))
    assert features(o, S)["wall_bid_count"] == 1.0  # now 50th: a wall, ratio 100


def test_support_resistance_and_wall_age(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    bids, asks = wall_book()
    mid = F(201, 2)
    feed(o, bybit.snapshot(S, 0, bids, asks))
    for ts in (10_000, 20_000, 29_999):
        feed(o, bybit.delta(S, ts, bids=[("100", "2")]))  # the walls stay walls
        assert features(o, S)["support_dist_bps"] is None
    feed(o, bybit.delta(S, 30_000, bids=[("100", "2")]))
    f = features(o, S)
    # both bid walls (97 and 94) are 30 s old: the highest-priced one is the support
    assert close(f["support_dist_bps"], bps(mid - 97, mid))
    assert close(f["resistance_dist_bps"], bps(104 - mid, mid))
    assert f["wall_bid_age_s"] == 30.0 and f["wall_ask_age_s"] == 30.0
    # 97 stops being a wall for one update, then comes back: its run restarts
    feed(o, bybit.delta(S, 31_000, bids=[("97", "3")]))
    f = features(o, S)
    assert close(f["support_dist_bps"], bps(mid - 94, mid))
    assert f["wall_bid_dist_bps"] is not None and close(f["wall_bid_dist_bps"], bps(mid - 94, mid))
    assert f["wall_bid_age_s"] == 31.0
    feed(o, bybit.delta(S, 32_000, bids=[("97", "20")]))
    f = features(o, S)
    assert close(f["support_dist_bps"], bps(mid - 94, mid))
    assert f["wall_bid_age_s"] == 0.0  # the largest (97, size 20) is new again
    feed(o, bybit.delta(S, 62_000, bids=[("100", "2")]))
    f = features(o, S)
    assert close(f["support_dist_bps"], bps(mid - 97, mid))
    assert f["wall_bid_age_s"] == 30.0


# ---- level lifetime ----------------------------------------------------------------------------


def test_level_lifetimes(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    bids = [("100", "1"), ("99", "1"), ("98", "1")]
    feed(o, bybit.snapshot(S, 0, bids, [("101", "1"), ("102", "1")]))
    feed(o, bybit.delta(S, 2000, bids=[("100.5", "1")]))  # created at 2 s
    feed(o, bybit.delta(S, 3000, bids=[("100", "7")]))  # a size update keeps the creation ts
    feed(o, bybit.delta(S, 5000, bids=[("99", "0")]))  # lived 5 s
    f = features(o, S)
    assert f["level_ttl_mean_s"] == 5.0
    assert f["best_bid_age_s"] == 3.0  # 100.5, created at 2 s
    feed(o, bybit.delta(S, 6000, bids=[("100.5", "0")]))  # lived 4 s
    f = features(o, S)
    assert f["level_ttl_mean_s"] == 4.5
    assert f["best_bid_age_s"] == 6.0  # 100, created by the snapshot
    assert f["best_ask_age_s"] == 6.0
    # deleting an absent level is not a delete
    feed(o, bybit.delta(S, 7000, bids=[("50", "0")]))
    assert features(o, S)["level_ttl_mean_s"] == 4.5


def test_lifetime_counts_only_the_top_20_ranked_just_before_the_delete(
    oracle_factory, bybit, features: Features
) -> None:
    o = oracle_factory()
    bids = [(str(100 - i), "1") for i in range(25)]  # 100 .. 76: rank 20 is 81, rank 21 is 80
    feed(o, bybit.snapshot(S, 0, bids, [("101", "1")]))
    feed(o, bybit.delta(S, 500, bids=[("80", "0")]))  # rank 21: not counted
    assert features(o, S)["level_ttl_mean_s"] is None
    feed(o, bybit.delta(S, 1000, bids=[("81", "0")]))  # rank 20: counted, 1 s
    assert features(o, S)["level_ttl_mean_s"] == 1.0
    # now 100..82 are ranks 1-19, 79 is 20 and 78 is 21. The best goes first in the message,
    # so 78 is rank 20 when its own delete applies: both count, 3 s each
    feed(o, bybit.delta(S, 3000, bids=[("100", "0"), ("78", "0")]))
    assert features(o, S)["level_ttl_mean_s"] == float(F(1 + 3 + 3, 3))


def test_truncation_is_not_a_delete_and_snapshots_create_levels(
    oracle_factory, bybit, features: Features
) -> None:
    o = oracle_factory()
    bids = [("100", "1"), ("99", "1"), ("98", "1")]
    feed(o, bybit.snapshot(S, 0, bids, [("101", "1")], depth=3))
    feed(o, bybit.delta(S, 1000, bids=[("100.5", "1")], depth=3))  # 98 falls off the book
    f = features(o, S)
    assert f["bid_levels"] == 3.0 and f["level_ttl_mean_s"] is None
    feed(o, bybit.snapshot(S, 4000, bids, [("101", "1")], depth=3))
    f = features(o, S)
    assert f["best_bid_age_s"] == 0.0  # the snapshot created every level anew
    assert f["level_ttl_mean_s"] is None


def test_lifetime_keeps_the_last_100_removals(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    feed(o, bybit.snapshot(S, 0, [("100", "1")], [("200", "1")]))
    ts = 0
    # 120 levels, the i-th lives i ms: insert at ts, delete at ts + i
    for i in range(1, 121):
        feed(o, bybit.delta(S, ts, bids=[("150", "1")]))
        ts += i
        feed(o, bybit.delta(S, ts, bids=[("150", "0")]))
    f = features(o, S)
    expected = F(sum(range(21, 121)), 100 * 1000)
    assert close(f["level_ttl_mean_s"], float(expected))


# ---- trade flow -------------------------------------------------------------------------------


def test_trade_windows(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    now = 1_000_000
    feed(
        o,
        bybit.trades(
            S,
            [
                (now - 300_000, "Buy", "100", "50"),  # outside both windows
                (now - 299_999, "Sell", "98", "3"),
                (now - 10_000, "Buy", "100", "50"),  # outside the 10 s window
                (now - 9_999, "Buy", "101", "2"),
                (now - 5_000, "Sell", "99", "1"),
                (now - 10, "Buy", "100", "3"),
                (now + 20, "Buy", "102", "1"),  # received before the book message: counts
            ],
        ),
        bybit.snapshot(S, now, [("99.5", "1")], [("100.5", "1")]),
    )
    f = features(o, S)
    assert f["trade_volume_10s"] == 7.0
    assert f["trade_count_10s"] == 4.0
    assert f["volume_delta_10s"] == 6 - 1
    assert close(f["buy_ratio_10s"], 6 / 7)
    vwap = F(101 * 2 + 99 * 1 + 100 * 3 + 102 * 1, 7)
    assert close(f["trade_vwap_dev_bps"], bps(vwap - 100, 100))
    # 300 s profile: 98: 3, 100: 53, 101: 2, 99: 1, 102: 1 -> total 60, POC 100
    # value area: 53 >= 42 already
    assert f["poc_dist_bps"] == 0.0
    assert f["va_low_dist_bps"] == 0.0 and f["va_high_dist_bps"] == 0.0
    # acc/dist with H = 102, L = 98: sum v (2p - 200) / 4 / 60
    acc = F(3 * (196 - 200) + 53 * 0 + 2 * 2 + 1 * (-2) + 1 * 4, 4 * 60)
    assert close(f["acc_dist_300s"], float(acc))


def test_value_area_with_ties(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    # POC tie between 100 and 101 (5 each) goes to the lower price; total 18, 70% = 12.6:
    # 100 (5) -> +101 (5 vs 99's 2) = 10 -> +102 (3 vs 99's 2) = 13
    trades = [
        (1000, "Buy", "99", "2"),
        (1001, "Sell", "100", "5"),
        (1002, "Buy", "101", "5"),
        (1003, "Buy", "102", "3"),
        (1004, "Sell", "98", "3"),
    ]
    feed(o, bybit.trades(S, trades), bybit.snapshot(S, 2000, [("99.5", "1")], [("100.5", "1")]))
    f = features(o, S)
    assert f["poc_dist_bps"] == 0.0
    assert f["va_low_dist_bps"] == 0.0
    assert close(f["va_high_dist_bps"], bps(2, 100))
    acc = F(2 * -2 + 5 * 0 + 5 * 2 + 3 * 4 + 3 * -4, 4 * 18)
    assert close(f["acc_dist_300s"], float(acc))
    o = oracle_factory()
    # total 12, 70% = 8.4: POC 100 (6), then 101 and 99 tie at 3: the higher -> 9, done
    trades = [(1000, "Buy", "99", "3"), (1001, "Sell", "100", "6"), (1002, "Buy", "101", "3")]
    feed(o, bybit.trades(S, trades), bybit.snapshot(S, 2000, [("99.5", "1")], [("100.5", "1")]))
    f = features(o, S)
    assert f["poc_dist_bps"] == 0.0
    assert f["va_low_dist_bps"] == 0.0
    assert close(f["va_high_dist_bps"], bps(1, 100))
    o = oracle_factory()
    # total 14, 70% = 9.8: POC 100 (6) -> 101 (tie with 99 at 3, the higher) = 9 -> 99 (3) vs
    # 102 (1) -> 12
    trades = [
        (1000, "Buy", "99", "3"),
        (1001, "Sell", "100", "6"),
        (1002, "Buy", "101", "3"),
        (1003, "Buy", "102", "1"),
        (1004, "Sell", "98", "1"),
    ]
    feed(o, bybit.trades(S, trades), bybit.snapshot(S, 2000, [("99.5", "1")], [("100.5", "1")]))
    f = features(o, S)
    assert f["poc_dist_bps"] == 0.0
    assert close(f["va_low_dist_bps"], bps(-1, 100))
    assert close(f["va_high_dist_bps"], bps(1, 100))


def test_acc_dist_missing_when_one_price(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    feed(o, bybit.trades(S, [(1000, "Buy", "100", "1"), (1001, "Sell", "100", "2")]))
    feed(o, bybit.snapshot(S, 2000, [("99", "1")], []))
    f = features(o, S)
    assert f["acc_dist_300s"] is None
    assert f["poc_dist_bps"] is None  # a book side is empty
    assert close(f["buy_ratio_10s"], 1 / 3)
    assert f["trade_vwap_dev_bps"] is None


def test_volume_anomaly_z(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    feed(o, bybit.snapshot(S, 0, [("99", "1")], [("101", "1")]))
    assert features(o, S)["volume_anomaly_z"] is None  # one update
    feed(o, bybit.delta(S, 100, bids=[("99", "2")]))
    assert features(o, S)["volume_anomaly_z"] is None  # volume 0 twice: s == 0
    feed(o, bybit.trades(S, [(150, "Buy", "101", "10")]), bybit.delta(S, 200, bids=[("99", "3")]))
    # x: 0, 0, 10 with a = 0.01: m = 0.1, v = 0.99 * 0.01 * 100
    m, v = 0.1, 0.99 * (0.01 * 100.0)
    assert close(features(o, S)["volume_anomaly_z"], (10 - m) / math.sqrt(v))
    feed(o, bybit.delta(S, 300, bids=[("99", "4")]))
    m2 = m + 0.01 * (10 - m)
    v2 = 0.99 * (v + 0.01 * (10 - m) ** 2)
    assert close(features(o, S)["volume_anomaly_z"], (10 - m2) / math.sqrt(v2))


def vpin_trades(n: int, start: int = 1000) -> list[tuple[int, str, str, str]]:
    return [(start + i, "Buy" if i % 2 == 0 else "Sell", "100", "1") for i in range(n)]


def test_vpin_buckets(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    # 49 trades before the book: not enough
    feed(
        o, bybit.trades(S, vpin_trades(49)), bybit.snapshot(S, 2000, [("99", "1")], [("101", "1")])
    )
    assert features(o, S)["vpin"] is None
    # the 50th: V = 50 / 10 = 5; ten buckets B S B S B | S B S B S ... each |3 - 2| / 5
    feed(o, bybit.trades(S, [(2001, "Sell", "100", "1")]), bybit.delta(S, 2100, bids=[("99", "2")]))
    assert close(features(o, S)["vpin"], 0.2)
    # a sell of 8 fills bucket 11 with 5 (|0 - 5| / 5 = 1) and leaves 3 in bucket 12
    feed(o, bybit.trades(S, [(2200, "Sell", "100", "8")]), bybit.delta(S, 2300, bids=[("99", "3")]))
    assert close(features(o, S)["vpin"], float(F(10 * F(1, 5) + 1, 11)))
    # a buy of 2 closes bucket 12: |2 - 3| / 5
    feed(o, bybit.trades(S, [(2400, "Buy", "100", "2")]), bybit.delta(S, 2500, bids=[("99", "4")]))
    assert close(features(o, S)["vpin"], float(F(10 * F(1, 5) + 1 + F(1, 5), 12)))


def test_vpin_uses_exact_buckets_and_the_last_50(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    # first 50 trades of 0.1 (V = 0.5, not exact in binary), all buys: ten buckets of 1.0
    first = [(1000 + i, "Buy", "100", "0.1") for i in range(50)]
    feed(o, bybit.trades(S, first), bybit.snapshot(S, 2000, [("99", "1")], [("101", "1")]))
    assert features(o, S)["vpin"] == 1.0

    def balanced(n: int, start: int) -> list[tuple[int, str, str, str]]:
        # n buckets, each a buy of 0.25 and a sell of 0.25: |buy - sell| = 0
        out = []
        for i in range(n):
            out += [
                (start + 2 * i, "Buy", "100", "0.25"),
                (start + 2 * i + 1, "Sell", "100", "0.25"),
            ]
        return out

    feed(o, bybit.trades(S, balanced(40, 3000)), bybit.delta(S, 4000, bids=[("99", "2")]))
    assert close(features(o, S)["vpin"], float(F(10, 50)))
    # five more: the last 50 buckets are 5 of the first ten and 45 balanced ones
    feed(o, bybit.trades(S, balanced(5, 5000)), bybit.delta(S, 6000, bids=[("99", "3")]))
    assert close(features(o, S)["vpin"], float(F(5, 50)))
    feed(o, bybit.trades(S, balanced(10, 7000)), bybit.delta(S, 8000, bids=[("99", "4")]))
    assert features(o, S)["vpin"] == 0.0


# ---- spoofing and layering -----------------------------------------------------------------

SMALL_BIDS = [("99.99", "1"), ("99.98", "1"), ("99.97", "1"), ("99.96", "1"), ("99.95", "1")]
SPOOF_BIDS = SMALL_BIDS + [("99.90", "50"), ("99.89", "1"), ("99.88", "1")]
SPOOF_ASKS = [("100.01", "1"), ("100.02", "1"), ("100.03", "1"), ("100.04", "1")]


def spoof_run(
    oracle: FeatureOracle,
    bybit,
    *,
    vanish_ts: int = 3000,
    move_mid: bool = True,
    trades: list[tuple[int, str, str, str]] | None = None,
    vanish_size: str = "0",
    wall_price: str = "99.90",
) -> None:
    bids = [(p, s) for p, s in SPOOF_BIDS if p != "99.90"] + [(wall_price, "50")]
    bids.sort(key=lambda level: -float(level[0]))
    feed(oracle, bybit.snapshot(S, 0, bids, SPOOF_ASKS))  # mid 100.00, wall 10 bps below
    if move_mid:
        # the mid comes down to 99.98: bids 99.99 and 99.98 go, an ask appears at 99.99
        feed(
            oracle,
            bybit.delta(S, 1000, bids=[("99.99", "0"), ("99.98", "0")], asks=[("99.99", "1")]),
        )
    else:
        feed(oracle, bybit.delta(S, 1000, bids=[("99.99", "2")]))
    if trades:
        feed(oracle, bybit.trades(S, trades))
    feed(oracle, bybit.delta(S, vanish_ts, bids=[(wall_price, vanish_size)]))


def test_spoofing_detection(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    spoof_run(o, bybit)
    f = features(o, S)
    mid_v = F(9998, 100)
    dist_v = (mid_v - F(9990, 100)) / mid_v * 10_000  # 8.0016 bps, nearer than 10 bps
    score = 50 * (1 - dist_v / 20)  # ratio at first sight: 50 / median 1
    assert close(f["spoof_score_60s"], float(score))
    assert f["layering_score_60s"] == 0.0
    (det,) = o.detections(S)
    assert det["kind"] == "spoofing" and det["side"] == "bid" and det["ts"] == 3000
    assert close(det["score"], float(score))  # type: ignore[arg-type]
    assert det["levels"] == [(99.9, 50.0, 0, 3000)]
    # still in the 60 s window at 62,999, gone at 63,000
    feed(o, bybit.delta(S, 62_999, bids=[("99.97", "2")]))
    assert close(features(o, S)["spoof_score_60s"], float(score))
    feed(o, bybit.delta(S, 63_000, bids=[("99.97", "3")]))
    assert features(o, S)["spoof_score_60s"] == 0.0
    assert o.detections(S) == []


@pytest.mark.parametrize(
    ("kwargs", "detected"),
    [
        ({}, True),
        ({"vanish_ts": 10_000}, True),  # within 10 s, inclusive
        ({"vanish_ts": 10_001}, False),
        ({"move_mid": False}, False),  # not nearer to the mid when it vanished
        ({"trades": [(2000, "Sell", "99.90", "1")]}, False),
        ({"trades": [(0, "Sell", "99.9", "1")]}, False),  # at first sight counts (same price)
        ({"trades": [(3001, "Sell", "99.90", "1")]}, True),  # after it vanished
        ({"trades": [(2000, "Sell", "99.91", "1")]}, True),  # another price
        ({"vanish_size": "2"}, True),  # no longer a wall: vanished too
        ({"vanish_size": "5"}, False),  # 5 >= 5 x median 1: still a wall
        ({"wall_price": "99.80"}, True),  # exactly 20 bps from 100.00 at first sight
        ({"wall_price": "99.79"}, False),  # 21 bps
    ],
)
def test_spoofing_conditions(oracle_factory, bybit, features: Features, kwargs, detected) -> None:
    o = oracle_factory()
    spoof_run(o, bybit, **kwargs)
    assert (features(o, S)["spoof_score_60s"] != 0.0) is detected
    assert len(o.detections(S)) == int(detected)


def test_spoof_distance_is_absolute(oracle_factory, bybit, features: Features) -> None:
    """When the mid has moved through the wall's price by the time it vanished, the distance is
    still a distance: |price - mid|."""
    o = oracle_factory()
    # ask wall 100.01 (ratio 20) at 0.5 bps; the mid jumps to 100.035, the wall is 2.5 bps
    # below it: farther than when it appeared, no detection
    feed(
        o,
        bybit.snapshot(
            S,
            0,
            [("100.00", "7"), ("99.98", "1"), ("99.95", "2.5")],
            [("100.01", "25"), ("100.04", "1.25"), ("100.05", "0.1")],
        ),
        bybit.delta(S, 1, bids=[("100.03", "1")], asks=[("100.01", "0")]),
    )
    assert features(o, S)["spoof_score_60s"] == 0.0 and o.detections(S) == []
    o = oracle_factory()
    # ask wall 100.04 (ratio 25) at 3.5 bps from 100.005; it vanishes as a bid appears at its
    # price: the mid 100.045 is 0.5 bps above it, nearer, and the score is below the ratio
    asks = [("100.01", "1"), ("100.02", "1"), ("100.04", "25"), ("100.05", "1"), ("100.06", "1")]
    feed(
        o,
        bybit.snapshot(S, 0, [("100.00", "1"), ("99.99", "1")], asks),
        bybit.delta(
            S, 500, bids=[("100.04", "1")], asks=[("100.01", "0"), ("100.02", "0"), ("100.04", "0")]
        ),
    )
    dist = F(5, 1000) / F(100045, 1000) * 10_000
    assert close(features(o, S)["spoof_score_60s"], float(25 * (1 - dist / 20)))


def test_spoof_not_nearer_when_the_mid_is_the_same_number(
    oracle_factory, bybit, features: Features
) -> None:
    """Mids are exact: (99.91 + 99.93) / 2 and (99.88 + 99.96) / 2 are both 99.92 (in floats
    the second is 99.91999999999999), so the wall at 99.88 is not nearer when it vanishes."""
    o = oracle_factory()
    bids = [("99.91", "1"), ("99.89", "1"), ("99.88", "7"), ("99.86", "0.1")]
    feed(o, bybit.snapshot(S, 0, bids, [("99.93", "1"), ("99.96", "1")]))
    assert features(o, S)["wall_bid_count"] == 1.0
    feed(o, bybit.delta(S, 1000, bids=[("99.91", "0"), ("99.89", "0")], asks=[("99.93", "0")]))
    f = features(o, S)
    assert f["wall_bid_count"] == 0.0  # median (7 + 0.1) / 2: 7 is no longer a wall
    assert f["mid"] == 99.92 and f["mid_ret_mean_100"] == 0.0
    assert f["spoof_score_60s"] == 0.0


LAYER_BIDS = [(f"{(9999 - i) / 100:.2f}", "1") for i in range(10)]  # 99.99 .. 99.90
LAYER_ASKS = [("100.01", "1"), ("100.02", "1")]


def layering_run(
    oracle: FeatureOracle,
    bybit,
    appear: tuple[int, int, int] = (1000, 1500, 2500),
    vanish: tuple[int, int, int] = (5000, 5500, 6000),
    trades: list[tuple[int, str, str, str]] | None = None,
) -> None:
    walls = [("99.85", "20"), ("99.80", "30"), ("99.75", "40")]  # 15, 20, 25 bps below 100.00
    events = [(t, [w]) for t, w in zip(appear, walls, strict=True)]
    events += [(t, [(w[0], "0")]) for t, w in zip(vanish, walls, strict=True)]
    events.sort(key=lambda e: e[0])
    feed(oracle, bybit.snapshot(S, 0, LAYER_BIDS, LAYER_ASKS))
    if trades:
        feed(oracle, bybit.trades(S, trades))
    for ts, levels in events:
        feed(oracle, bybit.delta(S, ts, bids=levels))


def test_layering_detection(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    layering_run(o, bybit)
    f = features(o, S)
    # ratios at first sight: 20 / 1, 30 / 1, 40 / 1 (medians of 11, 12, 13 levels are 1)
    assert f["layering_score_60s"] == 90.0  # count 3 * mean ratio 30
    assert f["spoof_score_60s"] == 0.0  # the mid never moved
    (det,) = o.detections(S)
    assert det["kind"] == "layering" and det["side"] == "bid" and det["ts"] == 6000
    assert det["levels"] == [
        (99.85, 20.0, 1000, 5000),
        (99.8, 30.0, 1500, 5500),
        (99.75, 40.0, 2500, 6000),
    ]


@pytest.mark.parametrize(
    ("kwargs", "detected"),
    [
        ({"appear": (1000, 1500, 3000)}, True),  # within 2 s, inclusive
        ({"appear": (1000, 1500, 3001)}, False),
        ({"vanish": (5000, 5500, 7000)}, True),
        ({"vanish": (5000, 5500, 7001)}, False),
        ({"trades": [(4000, "Buy", "99.80", "1")]}, False),  # one of the three traded
        ({"trades": [(999, "Buy", "99.85", "1")]}, True),  # before it appeared
    ],
)
def test_layering_conditions(oracle_factory, bybit, features: Features, kwargs, detected) -> None:
    o = oracle_factory()
    layering_run(o, bybit, **kwargs)
    assert (features(o, S)["layering_score_60s"] != 0.0) is detected


def test_layering_beyond_50_bps_is_not_counted(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    bids = LAYER_BIDS
    feed(o, bybit.snapshot(S, 0, bids, LAYER_ASKS))
    # 40, 50 and 51 bps below 100.00 at first sight: only two qualify
    for ts, price in ((1000, "99.60"), (1100, "99.50"), (1200, "99.49")):
        feed(o, bybit.delta(S, ts, bids=[(price, "30")]))
    for ts, price in ((3000, "99.60"), (3100, "99.50"), (3200, "99.49")):
        feed(o, bybit.delta(S, ts, bids=[(price, "0")]))
    assert features(o, S)["layering_score_60s"] == 0.0
    o = oracle_factory()
    feed(o, bybit.snapshot(S, 0, bids, LAYER_ASKS))
    for ts, price in ((1000, "99.60"), (1100, "99.50"), (1200, "99.51")):
        feed(o, bybit.delta(S, ts, bids=[(price, "30")]))
    feed(o, bybit.delta(S, 3000, bids=[("99.60", "0"), ("99.50", "0"), ("99.51", "0")]))
    assert features(o, S)["layering_score_60s"] == 90.0


def test_layering_counts_price_levels(oracle_factory, bybit, features: Features) -> None:
    """A wall flickering across the 5x threshold at one price is one wall, not several."""
    o = oracle_factory()
    feed(o, bybit.snapshot(S, 0, LAYER_BIDS, LAYER_ASKS))
    for ts, levels in (
        (1000, [("99.85", "20"), ("99.80", "30")]),
        (1200, [("99.85", "0")]),
        (1400, [("99.85", "20")]),
        (1600, [("99.85", "0")]),
        (1800, [("99.85", "20")]),
        (2000, [("99.85", "0"), ("99.80", "0")]),
    ):
        feed(o, bybit.delta(S, ts, bids=levels))
    # four episodes within 2 s, but two price levels
    assert features(o, S)["layering_score_60s"] == 0.0
    o = oracle_factory()
    feed(o, bybit.snapshot(S, 0, LAYER_BIDS, LAYER_ASKS))
    for ts, levels in (
        (1000, [("99.85", "20"), ("99.80", "30"), ("99.75", "40")]),
        (1200, [("99.85", "0")]),  # first episode at 99.85, ratio 20
        (1300, [("99.85", "25")]),
        (1500, [("99.85", "0")]),  # second one, ratio 25
        (1600, [("99.80", "0")]),  # two prices so far: nothing
        (1700, [("99.75", "0")]),  # three: 99.85 by its latest episode
    ):
        feed(o, bybit.delta(S, ts, bids=levels))
        assert features(o, S)["layering_score_60s"] == (95.0 if ts == 1700 else 0.0)
    (det,) = o.detections(S)
    assert sorted(det["levels"]) == [  # type: ignore[type-var]
        (99.75, 40.0, 1000, 1700),
        (99.8, 30.0, 1000, 1600),
        (99.85, 25.0, 1300, 1500),
    ]


def test_layering_ignores_an_older_wall_vanishing_with_the_group(
    oracle_factory, bybit, features: Features
) -> None:
    o = oracle_factory()
    feed(o, bybit.snapshot(S, 0, LAYER_BIDS, LAYER_ASKS))
    feed(o, bybit.delta(S, 1, bids=[("99.70", "25")]))  # 30 bps, 3 s older than the others
    feed(o, bybit.delta(S, 3001, bids=[("99.85", "20"), ("99.80", "30"), ("99.75", "40")]))
    feed(o, bybit.delta(S, 5000, bids=[(p, "0") for p in ("99.85", "99.80", "99.75", "99.70")]))
    assert features(o, S)["layering_score_60s"] == 90.0
    (det,) = o.detections(S)
    assert sorted(lv[0] for lv in det["levels"]) == [99.75, 99.8, 99.85]  # type: ignore[attr-defined]


# ---- temporal ----------------------------------------------------------------------------------


def mid_book(mid_cents: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A book whose mid is ``mid_cents / 100`` (one-cent spread)."""
    bid = F(2 * mid_cents - 1, 200)
    ask = F(2 * mid_cents + 1, 200)
    return [(f"{float(bid):.3f}", "1")], [(f"{float(ask):.3f}", "1")]


def feed_mids(o: FeatureOracle, bybit, points: list[tuple[int, int]]) -> None:
    """Snapshots with the given (ts, mid in cents): each replaces the book."""
    for ts, cents in points:
        bids, asks = mid_book(cents)
        feed(o, bybit.snapshot(S, ts, bids, asks))


def test_returns_roc_and_acceleration(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    points = [(0, 10_000), (500, 10_100), (1000, 10_000), (1500, 10_200), (2000, 10_300)]
    feed_mids(o, bybit, points)
    f = features(o, S)
    mids = [F(c, 100) for _, c in points]
    r = [math.log(mids[i] / mids[i - 1]) * 1e4 for i in range(1, len(mids))]
    mean = sum(r) / len(r)
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / len(r))
    skew = sum((x - mean) ** 3 for x in r) / len(r) / std**3
    assert math.isclose(f["mid_ret_mean_100"], mean, rel_tol=1e-9)  # type: ignore[arg-type]
    assert math.isclose(f["mid_ret_std_100"], std, rel_tol=1e-9)  # type: ignore[arg-type]
    assert math.isclose(f["mid_ret_skew_100"], skew, rel_tol=1e-9)  # type: ignore[arg-type]
    # mid_then for 1 s at 2000 ms: the update at 1000 (mid 100) -> +300 bps
    assert close(f["mid_roc_1s_bps"], 300.0)
    # roc at 1000 ms: against the update at 0 (mid 100) -> 0; acceleration 300 - 0
    assert close(f["mid_accel_1s_bps"], 300.0)
    assert f["mid_roc_10s_bps"] is None  # no update 10 s old
    assert math.isclose(f["realized_vol_10s_bps"], math.sqrt(sum(x * x for x in r)), rel_tol=1e-12)  # type: ignore[arg-type]
    assert f["variance_ratio_10"] is None  # fewer than 20 returns
    # spread: one cent at every update
    spreads = [float(F(1, 100) / m * 10_000) for m in mids]
    assert close(f["spread_bps_mean_100"], sum(spreads) / len(spreads))


def test_roc_uses_the_last_update_at_or_before_the_horizon(
    oracle_factory, bybit, features: Features
) -> None:
    o = oracle_factory()
    feed_mids(o, bybit, [(0, 10_000), (999, 10_100), (1_999, 10_300), (2_000, 10_400)])
    f = features(o, S)
    # at 2000: last update with ts <= 1000 is the one at 999 (mid 101)
    assert close(f["mid_roc_1s_bps"], bps(F(104) - 101, 101))
    # roc at 999: last with ts <= -1 -> none: no acceleration
    assert f["mid_accel_1s_bps"] is None
    o = oracle_factory()
    feed_mids(o, bybit, [(0, 10_000), (1_000, 10_100), (1_000, 10_200), (2_000, 10_400)])
    f = features(o, S)
    # two updates at 1000: the later one (mid 102) is "the last update with ts <= 1000"
    assert close(f["mid_roc_1s_bps"], bps(F(104) - 102, 102))
    # roc at that update: against the update at 0 -> +200 bps
    assert close(f["mid_accel_1s_bps"], bps(F(104) - 102, 102) - 200.0)


def test_roc_missing_when_that_update_had_no_mid(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    feed(o, bybit.snapshot(S, 0, [("99", "1")], []))
    bids, asks = mid_book(10_000)
    feed(o, bybit.snapshot(S, 1500, bids, asks))
    f = features(o, S)
    assert f["mid_roc_1s_bps"] is None
    assert f["mid_ret_mean_100"] is None  # no mid at the previous update


def test_realized_vol_window_and_variance_ratio(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    # 30 updates 1 s apart: the mid walks +1, -1, +2, ... cents (a zig-zag: variance ratio < 1)
    cents = [10_000]
    for i in range(1, 30):
        cents.append(cents[-1] + (1 if i % 2 else -1) * (1 + i % 3))
    points = [(1000 * i, c) for i, c in enumerate(cents)]
    feed_mids(o, bybit, points)
    f = features(o, S)
    mids = [F(c, 100) for c in cents]
    r = [math.log(mids[i] / mids[i - 1]) * 1e4 for i in range(1, len(mids))]
    # returns of updates with ts > now - 10 s = 19 s: the updates at 20 s .. 29 s
    now = 29_000
    recent = [r[i - 1] for i in range(1, 30) if 1000 * i > now - 10_000]
    assert len(recent) == 10
    assert math.isclose(
        f["realized_vol_10s_bps"], math.sqrt(sum(x * x for x in recent)), rel_tol=1e-12
    )  # type: ignore[arg-type]

    def pvar(xs: list[float]) -> float:
        m = sum(xs) / len(xs)
        return sum((x - m) ** 2 for x in xs) / len(xs)

    sums = [sum(r[i : i + 10]) for i in range(len(r) - 9)]
    assert len(r) == 29 and len(sums) == 20
    assert math.isclose(f["variance_ratio_10"], pvar(sums) / (10 * pvar(r)), rel_tol=1e-9)  # type: ignore[arg-type]
    assert f["variance_ratio_10"] < 1.0  # type: ignore[operator]
    # and the 10 s roc: against the update at 19 s
    assert close(f["mid_roc_10s_bps"], bps(mids[29] - mids[19], mids[19]))


def test_temporal_window_is_the_last_100_updates(oracle_factory, bybit, features: Features) -> None:
    o = oracle_factory()
    # imbalance_5 of update i: bid size i, ask size 1 -> (i - 1) / (i + 1)
    feed(o, bybit.snapshot(S, 0, [("99", "1")], [("101", "1")]))
    for i in range(2, 131):
        feed(o, bybit.delta(S, i, bids=[("99", str(i))]))
    f = features(o, S)
    values = [F(i - 1, i + 1) for i in range(31, 131)]
    mean = sum(values) / 100
    assert close(f["imbalance_5_mean_100"], float(mean))
    std = math.sqrt(float(sum((v - mean) ** 2 for v in values) / 100))
    assert math.isclose(f["imbalance_5_std_100"], std, rel_tol=1e-9)  # type: ignore[arg-type]
    assert f["mid_ret_mean_100"] == 0.0 and f["mid_ret_std_100"] == 0.0
    assert f["mid_ret_skew_100"] is None  # std == 0
    assert f["variance_ratio_10"] is None  # var(r) == 0


# ---- cross-symbol and cross-exchange ---------------------------------------------------------


def test_correlation_with_the_reference_and_basis(
    oracle_factory, bybit, features: Features
) -> None:
    o = oracle_factory(reference_symbol="REFUSDT")
    ref_cents = [10_000, 10_100, 10_050, 10_200, 10_100]
    sym_cents = [5_000, 5_060, 5_020, 5_080, 5_010]
    ts = 0
    for rc, sc in zip(ref_cents, sym_cents, strict=True):
        bids, asks = mid_book(rc)
        feed(o, bybit.snapshot("REFUSDT", ts, bids, asks))
        bids, asks = mid_book(sc)
        feed(o, bybit.snapshot(S, ts + 10, bids, asks))
        ts += 100
    f = features(o, S)
    x = [math.log(F(sym_cents[i], sym_cents[i - 1])) * 1e4 for i in range(1, 5)]
    y = [math.log(F(ref_cents[i], ref_cents[i - 1])) * 1e4 for i in range(1, 5)]
    mx, my = sum(x) / 4, sum(y) / 4
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    assert math.isclose(f["corr_ref_100"], sxy / math.sqrt(sxx * syy), rel_tol=1e-9)  # type: ignore[arg-type]
    assert features(o, "REFUSDT")["corr_ref_100"] is None  # the reference itself
    # the external mid applies from the next update on
    o.set_external_mid(S, 49.5)
    assert features(o, S)["basis_ext_bps"] is None
    feed(o, bybit.delta(S, ts, bids=[(f"{(5_010 * 2 - 1) / 200:.3f}", "2")]))
    assert close(features(o, S)["basis_ext_bps"], bps(F(5010, 100) - F(99, 2), F(99, 2)))
    o.set_external_mid(S, None)
    feed(o, bybit.delta(S, ts + 1, bids=[(f"{(5_010 * 2 - 1) / 200:.3f}", "3")]))
    assert features(o, S)["basis_ext_bps"] is None


def test_correlation_needs_three_pairs_and_a_reference(
    oracle_factory, bybit, features: Features
) -> None:
    o = oracle_factory()
    ts = 0
    for rc, sc in ((10_000, 5_000), (10_100, 5_050), (10_000, 5_000), (10_200, 5_100)):
        bids, asks = mid_book(rc)
        feed(o, bybit.snapshot("REFUSDT", ts, bids, asks))
        bids, asks = mid_book(sc)
        feed(o, bybit.snapshot(S, ts + 1, bids, asks))
        ts += 10
    assert features(o, S)["corr_ref_100"] is None  # no reference symbol
    o = oracle_factory(reference_symbol="REFUSDT")
    ts = 0
    for rc, sc in ((10_000, 5_000), (10_100, 5_050), (10_000, 5_000)):
        bids, asks = mid_book(rc)
        feed(o, bybit.snapshot("REFUSDT", ts, bids, asks))
        bids, asks = mid_book(sc)
        feed(o, bybit.snapshot(S, ts + 1, bids, asks))
        ts += 10
    assert features(o, S)["corr_ref_100"] is None  # two pairs
    bids, asks = mid_book(10_200)
    feed(o, bybit.snapshot("REFUSDT", ts, bids, asks))
    bids, asks = mid_book(5_100)
    feed(o, bybit.snapshot(S, ts + 1, bids, asks))
    # the symbol moves by exactly the reference's ratios: a correlation of 1 (up to rounding)
    assert features(o, S)["corr_ref_100"] > 0.99  # type: ignore[operator]


# ---- normalized mode -----------------------------------------------------------------------------


def test_normalized_z_scores(oracle_factory, bybit) -> None:
    o = oracle_factory()
    i = FEATURE_NAMES.index("bid_levels")
    j = FEATURE_NAMES.index("ofi")
    feed(o, bybit.snapshot(S, 0, [("99", "1"), ("98", "1"), ("97", "1")], [("101", "1")]))
    z, mask, n = o.normalized(S)
    assert n == 1 and mask[i] and z[i] == 0.0  # first value: v == 0
    assert not mask[j] and z[j] == 0.0  # missing
    feed(o, bybit.delta(S, 10, bids=[("96", "1")]))  # 4 levels
    a = 0.001
    m = 3 + a * (4 - 3)
    v = (1 - a) * (0 + a * (4 - 3) ** 2)
    z, mask, _ = o.normalized(S)
    assert (4 - m) / math.sqrt(v) > 10 and z[i] == 10.0  # clipped
    feed(o, bybit.delta(S, 20, bids=[("96", "0")]))  # 3 levels
    m_prev = m
    m = m_prev + a * (3 - m_prev)
    v = (1 - a) * (v + a * (3 - m_prev) ** 2)
    z, mask, _ = o.normalized(S)
    assert math.isclose(z[i], (3 - m) / math.sqrt(v), rel_tol=1e-12)
    assert o.vector(S)[0][i] == 3.0  # the raw vector is untouched
