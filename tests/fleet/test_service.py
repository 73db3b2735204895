"""The service as other parts use it, in process on a real PostgreSQL: is_leader,
wait_leader_change, peers, the leader's gauges, and the roll-up loop reading the store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from fastmango.agent import catalogue
from fastmango.agent.fleet.service import FleetService
from fastmango.agent.settings import Settings
from fastmango.agent.settings_fleet import FleetSettings
from fastmango.agent.store import Store
from fastmango.series import Sample
from tests.realservers import Postgres


class Host:
    """What the daemon gives a service: settings, a real store, the catalogue, publish."""

    def __init__(self, settings: Settings, path: Path, url: str) -> None:
        self.settings = settings
        self.store = Store(path)
        self.store.open()
        self.specs = catalogue.index()
        self.kinds = {n: s.kind for n, s in self.specs.items()}
        self.clock: Callable[[], float] = time.time
        self.url = url
        self.services: dict[str, Any] = {}
        self.published: dict[str, list[Sample]] = {}

    def publish(self, source: str, samples: list[Sample] | None) -> None:
        if samples is not None:
            self.published[source] = samples
            self.store.append(samples, self.kinds)

    def gauge(self, name: str) -> float:
        return next(s.value for s in self.published["fleet"] if s.name == name)


def fleet_settings(dsn: str | None, name: str) -> Settings:
    fast = {"heartbeat_interval": 0.3, "check_interval": 0.2, "stale_after": 2,
            "rollup_interval": 1, "reconnect_max": 0.5}  # fmt: skip
    return Settings(database_url=dsn, fleet=FleetSettings(instance_id=name, **fast))


@pytest.fixture
async def started(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    running: list[tuple[FleetService, Host]] = []

    async def start(dsn: str | None, name: str) -> tuple[FleetService, Host]:
        settings = fleet_settings(dsn, name)
        host = Host(settings, tmp_path / f"{name}.db", f"http://127.0.0.1:{9000 + len(running)}")
        svc = FleetService(settings)
        host.services["fleet"] = svc
        await svc.start(host)  # type: ignore[arg-type]
        running.append((svc, host))
        return svc, host

    yield start
    for svc, host in reversed(running):
        await svc.stop()
        host.store.close()


async def until(what: str, check: Callable[[], bool], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        await asyncio.sleep(0.05)


async def test_leader_change_peers_and_gauges(fleet_db: Postgres, started: Any) -> None:
    a, host_a = await started(fleet_db.dsn, "web-a")
    assert await asyncio.wait_for(a.wait_leader_change(), 10) is True
    assert a.is_leader and a.leader_since is not None
    b, host_b = await started(fleet_db.dsn, "web-b")
    await until("each sees the other", lambda: len(a.peers()) == 1 and len(b.peers()) == 1)
    assert a.peers() == [{"id": "web-b", "address": "http://127.0.0.1:9001"}]
    # the registry names the leader once a's session is recorded (its next heartbeat)
    await until("b knows who leads", lambda: b.leader_id == "web-a")
    assert not b.is_leader
    await until("gauges", lambda: host_a.gauge("fastmango_fleet_instances") == 2)
    assert (
        host_a.gauge("fastmango_fleet_leader") == 1 and host_b.gauge("fastmango_fleet_leader") == 0
    )
    # the leader leaves: the follower's wait_leader_change wakes with True
    waiting = asyncio.create_task(b.wait_leader_change())
    await a.stop()
    assert await asyncio.wait_for(waiting, 5) is True
    assert b.is_leader
    await until("a left the registry", lambda: [r["id"] for r in b.cached_instances()] == ["web-b"])
    assert [e["data"]["leader"] for e in host_b.store.events("fleet")] == [True]


async def test_rollup_loop_writes_the_signals_from_the_store(
    fleet_db: Postgres, started: Any
) -> None:
    a, host_a = await started(fleet_db.dsn, "web-a")
    b, host_b = await started(fleet_db.dsn, "web-b")
    kinds = host_a.kinds
    now = time.time()
    for host, rps in ((host_a, 12.0), (host_b, 30.0)):
        host.store.append(
            [Sample("http_requests_per_second", (), rps, now - k * 0.25) for k in range(12)]
            + [Sample("http_error_ratio", (), 0.01 if rps < 20 else 0.03, now - 1)],
            kinds,
        )

    async def both() -> dict[str, Any]:
        got = await a.fleet_signals(["http_requests_per_second", "http_error_ratio"], 10)
        done = all(s.instances == 2 for s in got.values()) and len(got) == 2
        return got if done else {}

    deadline = time.monotonic() + 15
    while not (got := await both()):
        assert time.monotonic() < deadline, "the roll-up loop never wrote both agents' signals"
        await asyncio.sleep(0.2)
    assert got["http_requests_per_second"].sum == pytest.approx(42.0)
    assert got["http_requests_per_second"].per_instance == pytest.approx(
        {"web-a": 12.0, "web-b": 30.0}
    )
    errors = (await b.fleet_signals(["http_error_ratio"], 10))["http_error_ratio"]
    assert errors.avg == pytest.approx(0.02) and errors.max == pytest.approx(0.03)


async def test_fleet_of_one_leads_at_start(started: Any) -> None:
    solo, host = await started(None, "solo")
    assert solo.is_leader and solo.mode == "single" and solo.peers() == []
    assert host.gauge("fastmango_fleet_leader") == 1
    assert host.gauge("fastmango_fleet_instances") == 1
    assert [r["id"] for r in await solo.instances()] == ["solo"]
