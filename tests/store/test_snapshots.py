"""Market-data snapshots: day partitions created ahead, old ones dropped, a missing partition
created on insert (plain PostgreSQL; under TimescaleDB the same calls are no-ops)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pysrc.store.repositories import MarketSnapshot, MarketSnapshotRepository


def _day(d: datetime) -> str:
    return "market_snapshots_p" + d.astimezone(UTC).strftime("%Y%m%d")


def test_partition_maintenance(store) -> None:
    async def body(ctx):
        snaps = MarketSnapshotRepository(ctx.pool)
        if await snaps.storage() != "partitioned":
            pytest.skip("TimescaleDB hypertable: chunks and retention are TimescaleDB's job")
        now = datetime.now(UTC)
        # The migration created today and the next 7 days.
        parts = await snaps.partitions()
        assert parts == [_day(now + timedelta(days=i)) for i in range(8)]
        assert await snaps.maintain() == []  # nothing to do twice
        # Ten days later (maintenance did not run meanwhile): today and three days ahead are
        # created, and with 5 days kept, days 0..4 are dropped. (Days 8 and 9 would be created by
        # the first insert that needs them.)
        later = now + timedelta(days=10)
        done = await snaps.maintain(ahead_days=3, retain_days=5, as_of=later)
        dropped = sorted(p for a, p in done if a == "dropped")
        created = sorted(p for a, p in done if a == "created")
        assert dropped == [_day(now + timedelta(days=i)) for i in range(5)]
        assert created == [_day(now + timedelta(days=i)) for i in range(10, 14)]
        assert await snaps.partitions() == [_day(now + timedelta(days=i)) for i in (5, 6, 7, 10, 11, 12, 13)]
        with pytest.raises(Exception, match="retain_days"):
            await snaps.maintain(retain_days=0)

    store.run(body)


def test_insert_creates_missing_partition_and_reads_back(store) -> None:
    async def body(ctx):
        snaps = MarketSnapshotRepository(ctx.pool)
        now = datetime.now(UTC).replace(microsecond=0)
        old = now - timedelta(days=40)  # no partition for that day yet
        rows = [
            MarketSnapshot(now, "BTCUSDT", Decimal("65000.1"), Decimal("65000.2"), Decimal("1.5"), Decimal(2),
                           data={"imbalance": 0.2, "features": [1, 2, 3]}),
            MarketSnapshot(now + timedelta(seconds=1), "BTCUSDT", Decimal("65000.3"), Decimal("65000.4")),
            MarketSnapshot(old, "BTCUSDT", Decimal(60000), Decimal(60001)),
        ]
        assert await snaps.insert_many(rows) == 3
        if await snaps.storage() == "partitioned":
            assert _day(old) in await snaps.partitions()
        latest = await snaps.latest("BTCUSDT")
        assert latest.best_bid == Decimal("65000.3") and latest.data == {}
        got = await snaps.between("BTCUSDT", now - timedelta(days=41), now + timedelta(days=1))
        assert [g.best_bid for g in got] == [Decimal(60000), Decimal("65000.1"), Decimal("65000.3")]
        assert got[1].data == {"imbalance": 0.2, "features": [1, 2, 3]}
        # Retention drops the old day with its rows.
        if await snaps.storage() == "partitioned":
            done = await snaps.maintain(retain_days=30)
            assert ("dropped", _day(old)) in done
            assert len(await snaps.between("BTCUSDT", now - timedelta(days=41), now + timedelta(days=1))) == 2

    store.run(body)
