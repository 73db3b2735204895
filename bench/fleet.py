"""Leader failover of a fleet of agents on one real PostgreSQL, against the issue's 10 s.

    python bench/fleet.py [--agents 3] [--rounds 5] [--check-interval 1] [--claims 500] [--json]

It starts a real PostgreSQL (``tests/realservers.Postgres``) and ``--agents`` real
``fastmango agent`` processes sharing it (``FASTMANGO_DATABASE_URL``), with the default
fleet settings except ``fleet.check_interval`` (default 1 s, the shipped default). Then,
``--rounds`` times each:

- **kill -9**: SIGKILL the leader; the time until another agent says ``is_leader`` on its
  ``/api/fleet`` (polled every 20 ms); the killed agent is started again afterwards;
- **pg_terminate_backend**: terminate the session holding the leader lock; the time until
  an agent (another one) leads again;

and once **PostgreSQL restarted** (``pg_ctl stop -m fast`` then ``start``): the time from
the server accepting connections again until one agent leads. In this process it also
times ``claim()`` (``INSERT … ON CONFLICT DO NOTHING``) and ``fleet_signals()`` over the
fleet's roll-ups, ``--claims`` calls each. Every figure is measured in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _util import emit, free_port, median, percentile, progress, table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import AgentProcess, wait_http  # noqa: E402
from tests.realservers import Postgres  # noqa: E402

GOAL = 10.0  # seconds: the failover bound
LOCK = "locktype = 'advisory' AND classid = 26221 AND objid = 1 AND objsubid = 2 AND granted"


class Fleet:
    def __init__(self, pg: Postgres, base: Path, n: int, check_interval: float) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
        self.env.update({
            "PYTHONUNBUFFERED": "1",
            "FASTMANGO_DATABASE_URL": pg.dsn,
            "FASTMANGO_FLEET__CHECK_INTERVAL": str(check_interval),
            "FASTMANGO_COLLECTORS__POSTGRES__ENABLED": "false",
            "FASTMANGO_COLLECTORS__GPU__ENABLED": "false",
        })  # fmt: skip
        self.base = base
        self.agents: list[AgentProcess] = []
        for i in range(n):
            self.agents.append(self._start(i, free_port()))
        for a in self.agents:
            wait_http(a.url + "/healthz", timeout=60)
        self.client = httpx.Client(timeout=2)

    def _start(self, i: int, port: int) -> AgentProcess:
        app = self.base / f"app{i}"
        app.mkdir(exist_ok=True)
        return AgentProcess(app, port, [], self.env)

    def restart(self, agent: AgentProcess) -> AgentProcess:
        agent.stop()
        i = self.agents.index(agent)
        self.agents[i] = new = self._start(i, agent.port)
        wait_http(new.url + "/healthz", timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.view(new).get("connected"):
            time.sleep(0.05)
        return new

    def view(self, agent: AgentProcess) -> dict[str, Any]:
        try:
            out: dict[str, Any] = self.client.get(agent.url + "/api/fleet").json()
            return out
        except (httpx.HTTPError, ValueError):
            return {}

    def leaders(self, among: list[AgentProcess] | None = None) -> list[AgentProcess]:
        return [a for a in (among or self.agents) if a.proc.poll() is None
                and self.view(a).get("is_leader")]  # fmt: skip

    def wait_leader(self, among: list[AgentProcess], timeout: float, not_: Any = None) -> float:
        """Seconds until exactly one of ``among`` (not ``not_``) leads (inf past timeout)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            found = self.leaders(among)
            if len(found) == 1 and found[0] is not not_:
                return time.monotonic() - t0
            time.sleep(0.02)
        return float("inf")

    def close(self) -> None:
        self.client.close()
        for a in self.agents:
            a.stop()


async def time_calls(dsn: str, n: int) -> dict[str, list[float]]:
    from fastmango.agent.fleet.service import FleetService
    from fastmango.agent.settings import Settings
    from fastmango.agent.settings_fleet import FleetSettings
    from fastmango.series import Sample

    svc = FleetService(Settings(database_url=dsn, fleet=FleetSettings(instance_id="bench")))
    try:
        await svc.claims(1)  # connect and migrate first
        now = time.time()
        await svc.write_rollup(
            [Sample("http_requests_per_second", (), 10.0, now - k) for k in range(600)]
        )
        claim, signals = [], []
        for i in range(n):
            t0 = time.perf_counter()
            await svc.claim(f"bench:{now}:{i}")
            claim.append(time.perf_counter() - t0)
        for _ in range(n):
            t0 = time.perf_counter()
            await svc.fleet_signals(["http_requests_per_second"], 60)
            signals.append(time.perf_counter() - t0)
        return {"claim": claim, "fleet_signals": signals}
    finally:
        await svc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--check-interval", type=float, default=1.0)
    ap.add_argument("--claims", type=int, default=500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.agents < 2:
        ap.error("--agents must be at least 2 (a failover needs someone to take over)")

    pg = Postgres()
    fleet: Fleet | None = None
    results: dict[str, list[float]] = {"kill -9": [], "pg_terminate_backend": [],
                                       "PostgreSQL restart": []}  # fmt: skip
    try:
        pg.start()
        with tempfile.TemporaryDirectory(prefix="fastmango-bench-fleet-") as tmp:
            progress(f"starting {args.agents} agents on one PostgreSQL")
            fleet = Fleet(pg, Path(tmp), args.agents, args.check_interval)
            if fleet.wait_leader(fleet.agents, 30) == float("inf"):
                raise SystemExit("no leader was elected within 30 s")
            for r in range(args.rounds):
                progress(f"round {r + 1}/{args.rounds}: kill -9 of the leader")
                [leader] = fleet.leaders()
                rest = [a for a in fleet.agents if a is not leader]
                os.kill(leader.proc.pid, signal.SIGKILL)
                results["kill -9"].append(fleet.wait_leader(rest, 30))
                fleet.restart(leader)

                progress(f"round {r + 1}/{args.rounds}: pg_terminate_backend of the leader")
                [leader] = fleet.leaders()
                pid = pg.psql(f"SELECT pid FROM pg_locks WHERE {LOCK}").strip()
                pg.psql(f"SELECT pg_terminate_backend({pid})")
                results["pg_terminate_backend"].append(
                    fleet.wait_leader(fleet.agents, 30, not_=leader)
                )
                time.sleep(4 * args.check_interval)  # the old leader back as a follower

            progress("PostgreSQL restart")
            pg.stop()
            pg.start()
            results["PostgreSQL restart"].append(fleet.wait_leader(fleet.agents, 60))
            progress(f"timing claim() and fleet_signals(), {args.claims} calls each")
            calls = asyncio.run(time_calls(pg.dsn, args.claims))
    finally:
        if fleet is not None:
            fleet.close()
        pg.cleanup()

    rows = []
    figures: dict[str, Any] = {"agents": args.agents, "rounds": args.rounds,
                               "check_interval_s": args.check_interval, "goal_s": GOAL,
                               "failover": {}, "calls_ms": {}}  # fmt: skip
    for what, values in results.items():
        med, worst = median(values), max(values)
        rows.append([what, len(values), med, worst, f"≤ {GOAL:g}", med / GOAL,
                     "yes" if worst <= GOAL else "NO"])  # fmt: skip
        figures["failover"][what] = {
            "median_s": med, "max_s": worst, "runs": values,
            "ratio_to_goal": med / GOAL, "within_goal": worst <= GOAL,
        }  # fmt: skip
    text = table(["failover after", "runs", "median s", "max s", "goal s", "median/goal",
                  "all within"], rows)  # fmt: skip
    call_rows = []
    for what, values in calls.items():
        ms = [v * 1000 for v in values]
        call_rows.append([what, len(ms), median(ms), percentile(ms, 99)])
        figures["calls_ms"][what] = {"median": median(ms), "p99": percentile(ms, 99)}
    text += "\n\n" + table(["call (in process)", "calls", "median ms", "p99 ms"], call_rows)
    text += (f"\n\n{args.agents} agents, fleet.check_interval = {args.check_interval:g} s; "
             "time from the event to another agent answering is_leader on /api/fleet.")  # fmt: skip
    emit(figures, text, args.json)


if __name__ == "__main__":
    main()
