"""Three agents as separate processes on one real PostgreSQL: one leader, and a new one
after a kill -9, a PostgreSQL restart, or the leader's connection being terminated."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx

from fastmango.agent.fleet.schema import LATEST, MIGRATIONS
from tests.fleet.conftest import fleet_of, wait_for

LOCK = "locktype = 'advisory' AND classid = 26221 AND objid = 1 AND objsubid = 2 AND granted"


def leaders(agents: list[Any]) -> list[Any]:
    """The agents that say they lead (each asked on its own /api/fleet)."""
    out = []
    for a in agents:
        try:
            if fleet_of(a)["is_leader"]:
                out.append(a)
        except httpx.TransportError:
            pass
    return out


def one_leader(agents: list[Any]) -> Any:
    found = leaders(agents)
    return found[0] if len(found) == 1 else None


def metric(agent: Any, name: str) -> float:
    for line in httpx.get(agent.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not on {agent.url}/metrics")


def test_three_agents_elect_exactly_one_leader(start_fleet: Any, fleet_db: Any) -> None:
    agents = start_fleet(3)
    leader = wait_for("one leader", lambda: one_leader(agents), 10)

    # every agent sees the same three instances, all up, and the same leader
    def agreed() -> bool:
        views = [fleet_of(a) for a in agents]
        return all(
            v["mode"] == "postgres" and v["connected"] and v["instances_up"] == 3
            and v["leader"] == fleet_of(leader)["instance"] for v in views
        )  # fmt: skip

    wait_for("every agent sees 3 instances and the leader", agreed, 10)
    view = fleet_of(agents[0])
    assert sorted(r["id"] for r in view["instances"]) == sorted(
        fleet_of(a)["instance"] for a in agents
    )
    assert [r["leader"] for r in view["instances"]].count(True) == 1
    assert all(0 <= r["heartbeat_age_seconds"] < 3 for r in view["instances"])
    assert all(r["address"].startswith("http://127.0.0.1:") for r in view["instances"])
    # stays one leader over a few checks
    for _ in range(5):
        assert leaders(agents) == [leader]
        time.sleep(0.2)
    # the schema was migrated once, although three agents started together
    versions = fleet_db.psql("SELECT version FROM fastmango.schema_version ORDER BY 1").split()
    assert versions == [str(v) for v, _, _ in MIGRATIONS]
    assert view["schema_version"] == LATEST
    # PostgreSQL agrees: one session holds the lock
    assert fleet_db.psql(f"SELECT count(*) FROM pg_locks WHERE {LOCK}").strip() == "1"
    # the catalogue's gauges
    wait_for("gauges", lambda: metric(leader, "fastmango_fleet_instances") == 3, 5)
    assert [metric(a, "fastmango_fleet_leader") for a in agents].count(1.0) == 1


def test_failover_after_terminate_kill_9_and_a_postgres_restart(
    start_fleet: Any, fleet_db: Any
) -> None:
    """One fleet of three through every failover in turn (starting fleets is the slow
    part): the leader's connection terminated, the next leader killed, PostgreSQL
    restarted."""
    agents = start_fleet(3)
    leader = wait_for("one leader", lambda: one_leader(agents), 10)

    # 1. pg_terminate_backend of the leader's connection: it steps down, another leads
    first_id = fleet_of(leader)["instance"]
    pid = fleet_db.psql(f"SELECT pid FROM pg_locks WHERE {LOCK}").strip()
    assert pid, "no session holds the leader lock"
    assert fleet_db.psql(f"SELECT pg_terminate_backend({pid})").strip() == "t"
    t0 = time.monotonic()
    second = wait_for(
        "another agent leads after pg_terminate_backend",
        lambda: (x := one_leader(agents)) is not None and x is not leader and x,
        10,
        every=0.05,
    )
    assert time.monotonic() - t0 < 10
    assert not fleet_of(leader)["is_leader"]
    assert fleet_of(second)["instance"] != first_id
    # the old leader keeps running and reconnects as a follower
    wait_for("old leader reconnected", lambda: fleet_of(leader)["connected"], 10)
    assert leader.proc.poll() is None
    assert leaders(agents) == [second]
    assert fleet_db.psql(f"SELECT pid FROM pg_locks WHERE {LOCK}").strip() not in ("", pid)

    # 2. kill -9 of the (new) leader: another leads within 10 s
    second_id = fleet_of(second)["instance"]
    rest = [a for a in agents if a is not second]
    os.kill(second.proc.pid, signal.SIGKILL)
    t0 = time.monotonic()
    third = wait_for("a new leader after kill -9", lambda: one_leader(rest), 10, every=0.05)
    took = time.monotonic() - t0
    assert took < 10, took
    second.proc.wait()
    assert fleet_of(third)["instance"] != second_id

    # the dead agent shows down once its heartbeat is older than stale_after (3 s)
    def dead_is_down() -> bool:
        rows = {r["id"]: r for r in fleet_of(rest[0])["instances"]}
        return rows[second_id]["state"] == "down" and not rows[second_id]["leader"]

    wait_for("the killed agent shows down", dead_is_down, 10)
    assert fleet_of(rest[0])["leader"] == fleet_of(third)["instance"]
    assert fleet_of(rest[0])["instances_up"] == 2

    # 3. PostgreSQL restarted: nobody leads while it is down, then they elect again
    fleet_db.stop()
    try:
        wait_for("everyone steps down", lambda: leaders(rest) == [], 10)
        views = [fleet_of(a) for a in rest]
        assert not any(v["connected"] for v in views)
        assert all(v["last_error"] for v in views)
        assert all(httpx.get(a.url + "/healthz").is_success for a in rest)  # still serving
    finally:
        fleet_db.start()
    t0 = time.monotonic()
    wait_for("one leader after the restart", lambda: one_leader(rest), 15)
    assert time.monotonic() - t0 < 15
    wait_for("all reconnected", lambda: all(fleet_of(a)["connected"] for a in rest), 10)
    wait_for("registry back", lambda: fleet_of(rest[0])["instances_up"] == 2, 10)
