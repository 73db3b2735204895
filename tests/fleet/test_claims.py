"""Notification claims: one winner per key among concurrent claimers in separate
processes, claims that survive their claimer, and leases (at-least-once)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from fastmango.agent.fleet.service import FleetService
from fastmango.agent.settings import Settings
from fastmango.agent.settings_fleet import FleetSettings
from tests.conftest import ROOT
from tests.realservers import Postgres

HERE = Path(__file__).parent


def run_claimers(dsn: str, ids: list[str], n: int, prefix: str) -> dict[str, list[str]]:
    """Start one claimer process per id; once all are connected, start them at once."""
    env = {**os.environ, "FLEET_DSN": dsn, "PYTHONPATH": str(ROOT)}
    procs = {
        i: subprocess.Popen([sys.executable, str(HERE / "claimer.py"), i, str(n), prefix],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT)
        for i in ids
    }  # fmt: skip
    try:
        for i, p in procs.items():
            assert p.stdout is not None
            line = p.stdout.readline()
            assert line == b"ready\n", (i, line, p.stderr.read() if p.stderr else b"")
        for p in procs.values():
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            p.stdin.flush()
        out = {}
        for i, p in procs.items():
            stdout, stderr = p.communicate(timeout=60)
            assert p.returncode == 0, stderr.decode()
            out[i] = json.loads(stdout)
        return out
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def test_concurrent_claimers_in_separate_processes_get_one_winner_per_key(
    fleet_db: Postgres,
) -> None:
    n = 600
    won = run_claimers(fleet_db.dsn, ["web-1", "web-2", "web-3", "web-4"], n, "alert:")
    every = [k for keys in won.values() for k in keys]
    assert sorted(every) == sorted(f"alert:{i}" for i in range(n)), "a key won twice or never"
    # the race was real: more than one process won something
    assert sum(1 for keys in won.values() if keys) >= 2, won
    # the table says who claimed each, and agrees with what each process was told
    rows = fleet_db.psql("SELECT key, claimed_by FROM fastmango.notifications").split()
    owner = dict(r.split("|") for r in rows)
    assert len(owner) == n
    for who, keys in won.items():
        assert all(owner[k] == who for k in keys)
    # claims survive their claimers: a newcomer (a new leader after failover) wins nothing
    again = run_claimers(fleet_db.dsn, ["web-5"], n, "alert:")
    assert again == {"web-5": []}


async def test_lease_lets_another_agent_take_over_an_undelivered_claim(
    fleet_db: Postgres,
) -> None:
    a = FleetService(Settings(database_url=fleet_db.dsn, fleet=FleetSettings(instance_id="a")))
    b = FleetService(Settings(database_url=fleet_db.dsn, fleet=FleetSettings(instance_id="b")))
    try:
        assert await a.claim("cpu-high:1", lease=0.5)
        assert not await b.claim("cpu-high:1", lease=0.5)  # a's lease still runs
        await asyncio.sleep(0.7)
        assert await b.claim("cpu-high:1", lease=0.5)  # a never said delivered: b takes over
        await b.delivered("cpu-high:1")
        await asyncio.sleep(0.7)
        assert not await a.claim("cpu-high:1", lease=0.5)  # delivered: final
        assert not await a.claim("cpu-high:1")
        [row] = [c for c in await a.claims() if c["key"] == "cpu-high:1"]
        assert row["claimed_by"] == "b" and row["attempts"] == 2 and row["delivered_at"]
        # without a lease a claim is final at once
        assert await a.claim("disk-full:1")
        await asyncio.sleep(0.1)
        assert not await b.claim("disk-full:1", lease=0.05)
    finally:
        await a.stop()
        await b.stop()


async def test_fleet_of_one_claims_in_memory_and_always_leads() -> None:
    fleet = FleetService(Settings())
    assert fleet.mode == "single"
    assert await fleet.claim("x")
    assert not await fleet.claim("x")
    assert [c["key"] for c in await fleet.claims()] == ["x"]
    assert (await fleet.instances())[0]["self"]
