"""Roll-ups (pure, tables) and the fleet's sums and averages through a real PostgreSQL."""

from __future__ import annotations

import math

import pytest

from fastmango.agent.fleet.rollups import Bucket, aggregate, bucket_start, bucketize, merge
from fastmango.agent.fleet.service import FleetService
from fastmango.agent.settings import Settings
from fastmango.agent.settings_fleet import FleetSettings
from fastmango.series import Sample
from tests.realservers import Postgres


def s(name: str, value: float, ts: float) -> Sample:
    return Sample(name, (), value, ts)


@pytest.mark.parametrize(
    ("ts", "width", "start"),
    [(0.0, 10, 0.0), (9.999, 10, 0.0), (10.0, 10, 10.0), (1700000005.5, 10, 1700000000.0),
     (59.0, 60, 0.0), (61.0, 2, 60.0)],
)  # fmt: skip
def test_bucket_start(ts: float, width: float, start: float) -> None:
    assert bucket_start(ts, width) == start


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([], []),
        ([s("rps", 4, 1), s("rps", 6, 9)], [Bucket("rps", 0, 10, 2, 6)]),
        ([s("rps", 4, 1), s("rps", 6, 11)],
         [Bucket("rps", 0, 4, 1, 4), Bucket("rps", 10, 6, 1, 6)]),
        ([s("b", 1, 1), s("a", 2, 2)], [Bucket("a", 0, 2, 1, 2), Bucket("b", 0, 1, 1, 1)]),
        ([s("rps", math.nan, 1), s("rps", math.inf, 2), s("rps", 3, 3)],
         [Bucket("rps", 0, 3, 1, 3)]),
        ([Sample("rps", (("route", "/a"),), 1, 1), Sample("rps", (("route", "/b"),), 3, 1)],
         [Bucket("rps", 0, 4, 2, 3)]),
    ],
)  # fmt: skip
def test_bucketize(samples: list[Sample], expected: list[Bucket]) -> None:
    assert bucketize(samples, 10) == expected


def test_merge_adds_parts_of_one_bucket() -> None:
    assert merge(Bucket("x", 0, 3, 2, 2), Bucket("x", 0, 5, 1, 5)) == Bucket("x", 0, 8, 3, 5)
    assert Bucket("x", 0, 8, 4, 5).mean == 2
    assert math.isnan(Bucket("x", 0, 0, 0, 0).mean)


# (instance, name, sum, count, max) rows → name: (sum, avg, max, instances)
CASES = [
    ("one instance", [("a", "rps", 30, 3, 12)], {"rps": (10, 10, 12, 1)}),
    ("three instances add up",
     [("a", "rps", 10, 1, 10), ("b", "rps", 20, 1, 20), ("c", "rps", 30, 1, 30)],
     {"rps": (60, 20, 30, 3)}),
    ("an instance's buckets average first",
     [("a", "rps", 10, 1, 10), ("a", "rps", 30, 1, 30), ("b", "rps", 5, 1, 5)],
     {"rps": (25, 12.5, 30, 2)}),
    ("signals apart", [("a", "rps", 10, 1, 10), ("a", "p95", 0.2, 1, 0.2)],
     {"p95": (0.2, 0.2, 0.2, 1), "rps": (10, 10, 10, 1)}),
    ("empty buckets ignored", [("a", "rps", 0, 0, 0)], {}),
    ("nothing", [], {}),
]  # fmt: skip


@pytest.mark.parametrize(("title", "rows", "expected"), CASES, ids=[c[0] for c in CASES])
def test_aggregate(title: str, rows: list[tuple], expected: dict) -> None:
    got = aggregate((i, Bucket(n, 0, total, c, top)) for i, n, total, c, top in rows)
    assert set(got) == set(expected)
    for name, (total, avg, top, instances) in expected.items():
        v = got[name]
        assert (v.sum, v.avg, v.max, v.instances) == pytest.approx((total, avg, top, instances))


def test_aggregate_keeps_only_the_names_asked_for() -> None:
    rows = [("a", Bucket("rps", 0, 1, 1, 1)), ("a", Bucket("cpu", 0, 1, 1, 1))]
    assert list(aggregate(rows, ["cpu"])) == ["cpu"]
    assert aggregate(rows, ["cpu"])["cpu"].per_instance == {"a": 1}


async def test_every_agent_writes_and_the_leader_reads_the_fleet_sums(fleet_db: Postgres) -> None:
    """Three agents' roll-ups in one PostgreSQL; any of them reads the fleet's figures."""
    now = [1_800_000_000.0]
    agents = [
        FleetService(
            Settings(database_url=fleet_db.dsn, fleet=FleetSettings(instance_id=f"web-{i}")),
            clock=lambda: now[0],
        )
        for i in range(3)
    ]
    try:
        t = now[0] - 30
        for i, agent in enumerate(agents):
            rps = 10.0 * (i + 1)  # 10, 20, 30 req/s
            wrote = await agent.write_rollup(
                [s("http_requests_per_second", rps, t + k) for k in range(0, 30, 2)]
                + [s("http_request_duration_p95_seconds", 0.1 * (i + 1), t + 1)]
            )
            assert wrote == 3 + 1  # 3 buckets of 10 s, and one p95 bucket
        # written twice in parts: the parts add up, the mean stays
        await agents[0].write_rollup([s("http_requests_per_second", 10.0, t + 29)])
        got = await agents[2].fleet_signals(
            ["http_requests_per_second", "http_request_duration_p95_seconds", "absent"], 60
        )
        assert set(got) == {"http_requests_per_second", "http_request_duration_p95_seconds"}
        rps = got["http_requests_per_second"]
        assert rps.sum == pytest.approx(60) and rps.avg == pytest.approx(20)
        assert rps.instances == 3 and rps.max == 30
        assert rps.per_instance == pytest.approx({"web-0": 10, "web-1": 20, "web-2": 30})
        p95 = got["http_request_duration_p95_seconds"]
        assert p95.avg == pytest.approx(0.2) and p95.max == pytest.approx(0.3)
        # the window: an old bucket falls out
        now[0] += 45
        later = await agents[1].fleet_signals(["http_requests_per_second"], 20)
        assert later == {}
        # a fleet of one answers the same from memory
        solo = FleetService(Settings(), clock=lambda: now[0])
        await solo.write_rollup([s("http_requests_per_second", 7, now[0] - 5)])
        assert (await solo.fleet_signals(["http_requests_per_second"], 60))[
            "http_requests_per_second"
        ].sum == 7
    finally:
        for agent in agents:
            await agent.stop()


async def test_concurrent_migrations_run_once(fleet_db: Postgres) -> None:
    import asyncio

    import asyncpg

    from fastmango.agent.fleet.schema import LATEST, migrate

    conns = [await asyncpg.connect(fleet_db.dsn) for _ in range(6)]
    try:
        versions = await asyncio.gather(*(migrate(c) for c in conns))
        assert versions == [LATEST] * 6
        assert await conns[0].fetchval("SELECT count(*) FROM fastmango.schema_version") == LATEST
        assert await migrate(conns[0]) == LATEST  # again: nothing to do
    finally:
        for c in conns:
            await c.close()
