"""One PostgreSQL collection cycle of fastmango next to Debian's postgres_exporter, in one run.

    python bench/postgres.py [--cycles 50] [--json]

It starts a real PostgreSQL (``tests/realservers.Postgres``: Debian ``postgresql``, a
temporary folder, a free loopback port, ``pg_stat_statements`` preloaded), initialises
pgbench tables and keeps a rate-limited ``pgbench`` load running in the background, then
measures, interleaved (one fastmango cycle, one exporter scrape, and again):

- fastmango's :class:`~fastmango.collector.postgres.PostgresCollector`, in this process:
  wall time per ``collect()``, this process's CPU per cycle (``time.process_time`` around
  each ``collect()``), and the CPU of its monitoring backends in PostgreSQL;
- Debian's ``prometheus-postgres-exporter`` (installed with apt-get when missing and
  running as root), default flags, on a free loopback port: wall time per ``GET /metrics``,
  its process's CPU per scrape (psutil), and the CPU of its backends in PostgreSQL.

Each side connects as its own role (``fm_monitor``, ``pgx_monitor``, both in
``pg_monitor``), so its backends are found by ``usename`` and its statements counted from
``pg_stat_statements`` by ``userid`` (calls delta ÷ cycles). Backend CPU is utime + stime
from ``/proc/<pid>/stat`` (clock ticks, 10 ms) over the whole loop, ÷ cycles. The goal:
fastmango's total CPU per cycle (own + PostgreSQL's) ≤ postgres_exporter's per scrape.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from _util import emit, free_port, median, percentile, progress, table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastmango.collector.postgres import PostgresCollector  # noqa: E402
from tests.realservers import Postgres  # noqa: E402

EXPORTER = "prometheus-postgres-exporter"
WARMUP = 3  # cycles per side before the timed loop (connections, prepared statements)
PGBENCH_RATE = "50"  # transactions per second of the background load
TICK = os.sysconf("SC_CLK_TCK")
ROLES = {"fastmango": ("fm_monitor", "fm-bench-pw"), "exporter": ("pgx_monitor", "pgx-bench-pw")}


def exporter_binary() -> str:
    path = shutil.which(EXPORTER)
    if path is None and os.geteuid() == 0:
        progress(f"installing {EXPORTER} (apt-get)")
        subprocess.run(["apt-get", "install", "-y", EXPORTER], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        path = shutil.which(EXPORTER)
    if path is None:
        raise SystemExit(f"{EXPORTER} is missing: apt-get install {EXPORTER}")
    return path


def backend_cpu(pids: list[int]) -> float:
    """utime + stime of processes, in seconds (0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK


class Probe:
    """The bench's own connection (as postgres): backends and statement counts per role."""

    def __init__(self, con: Any) -> None:
        self.con = con

    async def pids(self, role: str) -> list[int]:
        rows = await self.con.fetch("SELECT pid FROM pg_stat_activity WHERE usename = $1", role)
        return sorted(r["pid"] for r in rows)

    async def calls(self, role: str) -> int:
        return int(await self.con.fetchval(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE userid = $1::regrole",
            role))  # fmt: skip


async def measure(
    pg: Postgres, exporter: subprocess.Popen[bytes], url: str, cycles: int
) -> dict[str, Any]:
    import asyncpg

    fm_role, fm_pw = ROLES["fastmango"]
    collector = PostgresCollector([pg.dsn_for(fm_role, fm_pw)])
    probe = Probe(await asyncpg.connect(pg.dsn))
    client = httpx.AsyncClient(timeout=30)
    try:
        await collector.start()
        for _ in range(WARMUP):
            await collector.collect()
            (await client.get(url)).raise_for_status()
        pids = {side: await probe.pids(ROLES[side][0]) for side in ROLES}
        calls = {side: await probe.calls(ROLES[side][0]) for side in ROLES}
        pg_cpu = {side: backend_cpu(pids[side]) for side in ROLES}
        exporter_ps = psutil.Process(exporter.pid)
        exporter_cpu = sum(exporter_ps.cpu_times()[:2])
        fm_wall: list[float] = []
        fm_cpu = 0.0
        ex_wall: list[float] = []
        series = {"fastmango": 0, "exporter": 0}
        for i in range(cycles):
            t0, c0 = time.perf_counter(), time.process_time()
            samples = await collector.collect()
            fm_cpu += time.process_time() - c0
            fm_wall.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            body = (await client.get(url)).text
            ex_wall.append(time.perf_counter() - t0)
            series = {"fastmango": len(samples), "exporter": sum(
                1 for line in body.splitlines() if line and not line.startswith("#"))}  # fmt: skip
            if (i + 1) % 10 == 0:
                progress(f"{i + 1}/{cycles} cycles")
        exporter_cpu = sum(exporter_ps.cpu_times()[:2]) - exporter_cpu
        after = {side: await probe.pids(ROLES[side][0]) for side in ROLES}
        for side in ROLES:
            if after[side] != pids[side]:
                progress(f"warning: {side}'s backends changed ({pids[side]} → "
                         f"{after[side]}); its PostgreSQL CPU is partial")  # fmt: skip
        pg_cpu = {side: backend_cpu(after[side]) - pg_cpu[side] for side in ROLES}
        calls = {side: await probe.calls(ROLES[side][0]) - calls[side] for side in ROLES}
        details = collector.details()["servers"][0]
    finally:
        await client.aclose()
        await collector.close()
        await probe.con.close()

    def side(name: str, wall: list[float], own_cpu: float) -> dict[str, Any]:
        return {
            "wall_median_ms": median(wall) * 1000,
            "wall_p95_ms": percentile(wall, 95) * 1000,
            "own_cpu_ms": own_cpu / cycles * 1000,
            "postgres_cpu_ms": pg_cpu[name] / cycles * 1000,
            "total_cpu_ms": (own_cpu + pg_cpu[name]) / cycles * 1000,
            "queries": calls[name] / cycles,
            "backends": len(pids[name]),
            "series": series[name],
        }

    return {
        "fastmango": side("fastmango", fm_wall, fm_cpu)
        | {"lock_chain": True, "top_queries": bool(details["top_queries"]["statements"])},
        "exporter": side("exporter", ex_wall, exporter_cpu)
        | {"lock_chain": False, "top_queries": False},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=50, help="timed cycles per side")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    binary = exporter_binary()
    progress("starting PostgreSQL")
    pg = Postgres()
    exporter: subprocess.Popen[bytes] | None = None
    load: subprocess.Popen[bytes] | None = None
    try:
        pg.start()
        pg.psql("CREATE EXTENSION pg_stat_statements")
        for role, password in ROLES.values():
            pg.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE pg_monitor")
        progress("pgbench -i -s 1, then a background load of "
                 f"{PGBENCH_RATE} transactions/s")  # fmt: skip
        pg.pgbench("-i", "-q", "-s", "1")
        load = pg.pgbench_popen("-c", "2", "-R", PGBENCH_RATE, "-T", "3600", "-n")
        port = free_port()
        env = dict(os.environ)
        env["DATA_SOURCE_NAME"] = pg.dsn_for(*ROLES["exporter"]) + "?sslmode=disable"
        exporter = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}",
                                     "--log.level=warn"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)  # fmt: skip
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 15
        while True:
            try:
                if b"pg_up 1" in httpx.get(url, timeout=2).content:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or exporter.poll() is not None:
                raise SystemExit("postgres_exporter did not report pg_up 1 in 15 s")
            time.sleep(0.1)
        progress(f"measuring {args.cycles} cycles per side, interleaved")
        figures = asyncio.run(measure(pg, exporter, url, args.cycles))
        version = pg.psql("SHOW server_version").strip()
        exporter_version = subprocess.run([binary, "--version"], capture_output=True,
                                          text=True).stderr.split("\n")[0]  # fmt: skip
    finally:
        for proc in (exporter, load):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        pg.cleanup()

    fm, ex = figures["fastmango"], figures["exporter"]
    ok = fm["total_cpu_ms"] <= ex["total_cpu_ms"]
    figures["goal"] = {"value": fm["total_cpu_ms"], "limit": ex["total_cpu_ms"], "unit": "ms",
                       "pass": ok}  # fmt: skip
    figures["settings"] = {"cycles": args.cycles, "postgresql": version,
                           "exporter": exporter_version, "pgbench_rate": PGBENCH_RATE}  # fmt: skip
    rows = [
        ("wall per cycle, median (ms)", fm["wall_median_ms"], ex["wall_median_ms"]),
        ("wall per cycle, p95 (ms)", fm["wall_p95_ms"], ex["wall_p95_ms"]),
        ("own CPU per cycle (ms)", fm["own_cpu_ms"], ex["own_cpu_ms"]),
        ("PostgreSQL CPU per cycle (ms)", fm["postgres_cpu_ms"], ex["postgres_cpu_ms"]),
        ("total CPU per cycle (ms)", fm["total_cpu_ms"], ex["total_cpu_ms"]),
        ("statements per cycle", fm["queries"], ex["queries"]),
        ("monitoring backends", fm["backends"], ex["backends"]),
        ("series", fm["series"], ex["series"]),
        ("lock-wait blocker chain", "yes", "no"),
        ("top queries (bounded on /metrics)", "yes" if fm["top_queries"] else "no", "no"),
    ]
    text = "\n".join([
        f"PostgreSQL {version}; {exporter_version}; {args.cycles} cycles each, interleaved, "
        f"pgbench load {PGBENCH_RATE} tx/s",
        "",
        table(("per collection cycle", "fastmango", "postgres_exporter"), rows),
        "",
        f"goal: fastmango total CPU per cycle {fm['total_cpu_ms']:.2f} ms ≤ postgres_exporter's "
        f"{ex['total_cpu_ms']:.2f} ms: {'pass' if ok else 'FAIL'}",
    ])  # fmt: skip
    emit(figures, text, args.json)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
