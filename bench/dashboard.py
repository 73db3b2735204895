"""Server time of the dashboard's Overview page over a week of 1-minute data, and its JS.

    python bench/dashboard.py [--loads 30] [--json]

What it measures (every figure in the run that prints it):

1. A state store is filled with 7 days of 1-minute data for ~60 series (host CPU by
   mode for 4 CPUs, container, network, disk, app, GPU and PostgreSQL; the same
   synthetic history the tests use, :mod:`fastmango.dashboard.history`), written through
   the store and rolled up by its own maintenance. A real ``fastmango agent`` process
   (``--interval 10``) then serves it on a free loopback port.
2. One page load is what the browser asks the server for: the HTML (``GET /``), then its
   API calls (``GET /api/session`` and ``GET /api/dashboard/overview?range=R``), one after
   the other over one keep-alive connection; the figure is the sum of their wall times as
   the client sees them (an upper bound of the server's time; loopback). Static files
   are left out: they are cacheable files. The live stream (``/api/stream``) is
   long-lived and left out too.
3. "Cold" loads send ``Cache-Control: no-cache`` with the overview request, so the server
   recomputes every chart (as for the first visitor); "warm" loads may be answered from
   the agent's short-lived cache (other tabs, live refreshes). ``--loads`` loads of each
   (default 30), median and p95, for 7 days; the cold median for every range.
4. Page JS: the bytes of every script the page loads (own and vendored uPlot), raw and
   gzipped.

Goals (``result``: pass or FAIL): 7-day cold load median ≤ 300 ms; page JS ≤ 100 KB
(100,000 bytes, uncompressed).
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from _util import emit, free_port, median, percentile, progress, table

ROOT = Path(__file__).resolve().parent.parent
RANGES = ("15m", "1h", "24h", "7d")
GOAL_LOAD_MS = 300.0
GOAL_JS_BYTES = 100_000
DAYS = 7


def page_js() -> dict[str, int]:
    """JS the Overview page loads (uPlot, app.js, overview.js), and the most any page loads
    (each page's own file is loaded on its first visit)."""
    from fastmango.dashboard.routes import STATIC, page_scripts

    files = [STATIC / url.split("?")[0].removeprefix("/static/") for url in page_scripts()]
    pages = sorted((STATIC / "pages").glob("*.js"))
    overview = [*files, STATIC / "pages" / "overview.js"]
    raw = sum(f.stat().st_size for f in overview)
    zipped = sum(len(gzip.compress(f.read_bytes(), 9)) for f in overview)
    most = sum(f.stat().st_size for f in files) + max(f.stat().st_size for f in pages)
    return {"files": len(overview), "raw_bytes": raw, "gzip_bytes": zipped,
            "largest_page_bytes": most}  # fmt: skip


def fill(state: Path) -> tuple[int, float]:
    from fastmango.agent.store import Retention, Store
    from fastmango.dashboard.history import backfill

    store = Store(state / "state.db", Retention())
    store.open()
    began = time.perf_counter()
    try:
        now = time.time()
        n = backfill(store, now - DAYS * 86400, now - 60)
    finally:
        store.close()
    return n, time.perf_counter() - began


def load(client: httpx.Client, range_key: str, cold: bool) -> float:
    """One page load's server time in ms: HTML, then the page's API calls."""
    total = 0.0
    fresh = {"Cache-Control": "no-cache"} if cold else {}
    for path, headers in (
        ("/", {}),
        ("/api/session", {}),
        (f"/api/dashboard/overview?range={range_key}", fresh),
    ):
        began = time.perf_counter()
        resp = client.get(path, headers=headers)
        resp.read()
        total += time.perf_counter() - began
        resp.raise_for_status()
    return total * 1000


def run(loads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fastmango-bench-") as tmp:
        app = Path(tmp)
        progress(f"writing {DAYS} days of 1-minute history for ~60 series")
        samples, fill_s = fill(app / ".fastmango")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
        log = (app / "agent.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastmango.cli", "agent", "--host", "127.0.0.1",
             "--port", str(port), "--interval", "10"],
            cwd=app, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "the agent did not start:\n" + (app / "agent.log").read_text()
                    )
                time.sleep(0.05)
            size = (app / ".fastmango" / "state.db").stat().st_size
            with httpx.Client(base_url=base, timeout=30) as client:
                for r in RANGES:  # warm-up: imports, page cache
                    load(client, r, cold=True)
                progress(f"{loads} cold and {loads} warm loads of the 7-day overview")
                cold = [load(client, "7d", cold=True) for _ in range(loads)]
                warm = [load(client, "7d", cold=False) for _ in range(loads)]
                by_range = {}
                for r in RANGES:
                    by_range[r] = median([load(client, r, cold=True) for _ in range(loads // 3)])
                doc = client.get("/api/dashboard/overview?range=7d").json()
                points = max(len(doc["x"]), 0)
                lines = sum(len(p["lines"]) for p in doc["panels"])
                body = len(client.get("/api/dashboard/overview?range=7d").content)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    js = page_js()
    fig: dict[str, Any] = {
        "history": {
            "days": DAYS,
            "samples": samples,
            "fill_seconds": fill_s,
            "store_bytes": size,
        },
        "overview_7d": {"points_per_line": points, "lines": lines, "json_bytes": body},
        "load_7d_cold_ms": {"median": median(cold), "p95": percentile(cold, 95)},
        "load_7d_warm_ms": {"median": median(warm), "p95": percentile(warm, 95)},
        "load_cold_median_ms": by_range,
        "js": js,
        "loads": loads,
    }
    fig["goals"] = {
        "load_7d_cold_median": {"value": median(cold), "limit": GOAL_LOAD_MS, "unit": "ms",
                                "pass": median(cold) <= GOAL_LOAD_MS},
        "page_js": {"value": js["largest_page_bytes"], "limit": GOAL_JS_BYTES, "unit": "bytes",
                    "pass": js["largest_page_bytes"] <= GOAL_JS_BYTES},
    }  # fmt: skip
    fig["all_goals_met"] = all(g["pass"] for g in fig["goals"].values())
    return fig


def report(fig: dict[str, Any]) -> str:
    g = fig["goals"]
    rows = [
        ["7-day overview load, cold (median)", fig["load_7d_cold_ms"]["median"], "≤ 300 ms",
         "pass" if g["load_7d_cold_median"]["pass"] else "FAIL"],
        ["7-day overview load, cold (p95)", fig["load_7d_cold_ms"]["p95"], "", ""],
        ["7-day overview load, warm (median)", fig["load_7d_warm_ms"]["median"], "", ""],
        ["7-day overview load, warm (p95)", fig["load_7d_warm_ms"]["p95"], "", ""],
    ] + [
        [f"{r} overview load, cold (median)", v, "", ""]
        for r, v in fig["load_cold_median_ms"].items()
    ] + [
        ["Overview page JS, KB (app.js + page + uPlot)", fig["js"]["raw_bytes"] / 1000, "", ""],
        ["Overview page JS gzipped, KB", fig["js"]["gzip_bytes"] / 1000, "", ""],
        ["largest page's JS, KB", fig["js"]["largest_page_bytes"] / 1000, "≤ 100 KB",
         "pass" if g["page_js"]["pass"] else "FAIL"],
    ]  # fmt: skip
    h = fig["history"]
    o = fig["overview_7d"]
    notes = (
        f"\nhistory: {h['samples']:,} samples over {h['days']} days, written and rolled up in "
        f"{h['fill_seconds']:.1f} s; store {h['store_bytes'] / 1e6:.1f} MB\n"
        f"7-day document: {o['lines']} lines × {o['points_per_line']} points, "
        f"{o['json_bytes'] / 1000:.0f} KB JSON; {fig['loads']} loads each; times in ms"
    )
    return table(["figure", "value", "goal", "result"], rows) + notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=30, help="page loads per figure (30)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.loads < 10:
        parser.error("--loads must be at least 10")
    sys.path.insert(0, str(ROOT))
    try:
        fig = run(args.loads)
    except KeyboardInterrupt:
        progress("interrupted; the agent was stopped")
        return 130
    emit(fig, report(fig), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
