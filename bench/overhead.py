"""Overhead of the fastmango agent next to Debian's prometheus-node-exporter, in one run.

    python bench/overhead.py [--duration 120] [--scrapes 300] [--json]

What it measures (every figure in the run that prints it; nothing is carried over):

1. Scrape latency p50 / p99 of ``/metrics`` for node_exporter and for the agent at
   ``--interval 10`` and ``--interval 1``: one persistent ``httpx.Client`` per target
   (keep-alive, as Prometheus does), ``Accept: text/plain``, first uncompressed, then with
   ``Accept-Encoding: gzip`` as Prometheus sends it (the time includes reading and
   decompressing the body). The three targets are scraped in turn, one request at a time,
   so machine noise falls on all of them alike. Series (non-comment lines) and bytes on
   the wire per scrape.
2. CPU time per scrape (the process's user + system time over the scrape loop, divided by
   the scrapes; for the agent, net of its background collection rate measured in 3) and
   resident memory.
3. For the agent at each interval: CPU seconds per wall second over ``--duration`` seconds
   with no scrapes but one every ``PROMETHEUS_SCRAPE_INTERVAL`` (like Prometheus), and RSS
   at the end of that window.
4. Start to first served scrape: from ``Popen`` to the first 200 from ``/metrics`` that
   holds ``node_cpu_seconds_total``; the median of ``STARTS`` starts, each with a fresh
   state dir.
5. ``fastmango --help`` wall time, median of ``HELP_RUNS`` runs, through ``python -m
   fastmango.cli`` and through the installed console script.

Every child listens on 127.0.0.1 only, runs in a temporary folder (so no project
settings are picked up) without ``FASTMANGO_*`` variables, and is stopped on every path.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil
from _util import emit, free_port, median, percentile, progress, table

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMETHEUS_SCRAPE_INTERVAL = 15.0  # seconds between scrapes in the idle window
INTERVALS = (10, 1)  # the agent's --interval values compared
STARTS = 5  # starts per program for "start → first scrape"
HELP_RUNS = 10  # runs per form of `fastmango --help`
WARMUP_SCRAPES = 5  # per target and format, before the timed loop
READY_TIMEOUT = 30.0  # seconds a program may take to serve its first full scrape
READY_POLL = 0.01  # seconds between polls for it (each poll is work for the program)
STOP_TIMEOUT = 10.0  # seconds a child has to exit after SIGTERM before SIGKILL
READY_MARK = b"node_cpu_seconds_total"

PLAIN = {"Accept": "text/plain", "Accept-Encoding": "identity"}
GZIP = {"Accept": "text/plain", "Accept-Encoding": "gzip"}

# goals for the agent
P99_RATIO = 0.25  # agent's scrape p99 ≤ this × node_exporter's, same run, same format
CPU_GOAL_PCT = {10: 1.0, 1: 3.0}  # % of one core, by --interval
RSS_GOAL_MB = 60.0
START_GOAL_S = 1.0
HELP_GOAL_MS = 150.0

MB = 1e6


# -- children ------------------------------------------------------------------------
@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")


@dataclass
class Children:
    """Every child process and temporary folder of the run; :meth:`close` ends them all."""

    procs: list[Child] = field(default_factory=list)
    dirs: list[tempfile.TemporaryDirectory[str]] = field(default_factory=list)
    env: dict[str, str] = field(
        default_factory=lambda: {
            k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")
        }
    )

    def tempdir(self) -> Path:
        d = tempfile.TemporaryDirectory(prefix="fastmango-bench-")
        self.dirs.append(d)
        return Path(d.name)

    def spawn(self, name: str, argv: Sequence[str]) -> Child:
        cwd = self.tempdir()
        log = cwd / "child.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        child = Child(name, proc, log)
        self.procs.append(child)
        return child

    def agent(self, port: int, interval: int) -> Child:
        state = self.tempdir()
        argv = [
            sys.executable,
            "-m",
            "fastmango.cli",
            "agent",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--interval",
            str(interval),
            "--state-dir",
            str(state),
        ]
        return self.spawn(f"agent --interval {interval}", argv)

    def node_exporter(self, port: int) -> Child:
        return self.spawn(
            "node_exporter", [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"]
        )

    def stop(self, child: Child) -> None:
        if child.proc.poll() is None:
            child.proc.terminate()
            try:
                child.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        if child in self.procs:
            self.procs.remove(child)

    def close(self) -> None:
        with signals_handled(_record):
            self._close()

    def _close(self) -> None:
        for child in list(self.procs):
            with contextlib.suppress(Exception):
                child.proc.terminate()
        for child in list(self.procs):
            with contextlib.suppress(Exception):
                self.stop(child)
        for d in self.dirs:
            with contextlib.suppress(Exception):
                d.cleanup()
        self.dirs.clear()


def cpu_seconds(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


def wait_ready(child: Child, url: str, client: httpx.Client) -> None:
    """Poll ``url`` until it answers 200 with node_cpu_seconds_total in it."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        child.check_alive()
        try:
            r = client.get(url, headers=GZIP)
            if r.status_code == 200 and READY_MARK in r.content:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} served no full scrape within {READY_TIMEOUT:g}s")
        time.sleep(READY_POLL)


class Ticker:
    """Progress lines for a long loop, at most one every ``every`` seconds."""

    def __init__(self, label: str, every: float = 10.0) -> None:
        self.label, self.every, self.next = label, every, time.monotonic() + every

    def __call__(self, done: int, total: int) -> None:
        if time.monotonic() >= self.next:
            self.next = time.monotonic() + self.every
            progress(f"{self.label}: {done}/{total}")


# -- phases --------------------------------------------------------------------------
def time_help(runs: int, env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Median wall ms of `fastmango --help` via python -m and via the console script."""
    script = Path(sys.executable).parent / "fastmango"
    forms = {"help_module_ms": [sys.executable, "-m", "fastmango.cli", "--help"]}
    forms["help_script_ms"] = [str(script), "--help"]
    if not script.exists():
        progress(f"no console script at {script}; skipping it")
        del forms["help_script_ms"]
    times: dict[str, list[float]] = {k: [] for k in forms}
    for i in range(runs + 1):  # the first round warms the page cache and is dropped
        for key, argv in forms.items():
            t0 = time.perf_counter()
            subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)
            if i:
                times[key].append((time.perf_counter() - t0) * 1000)
    return {
        k: median(times[k]) if k in times else math.nan
        for k in ("help_module_ms", "help_script_ms")
    }


def time_start(kids: Children, which: str) -> float:
    """Seconds from Popen to the first full scrape, for one fresh start."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with httpx.Client(timeout=2.0) as client:
        t0 = time.perf_counter()
        child = kids.agent(port, INTERVALS[0]) if which == "agent" else kids.node_exporter(port)
        try:
            wait_ready(child, url, client)
            return time.perf_counter() - t0
        finally:
            kids.stop(child)


def idle_window(child: Child, url: str, client: httpx.Client, duration: float) -> dict[str, Any]:
    """CPU % of one core and RSS over ``duration`` s, scraped only every 15 s."""
    p = child.ps
    cpu0, t0 = cpu_seconds(p), time.monotonic()
    end = t0 + duration
    scrapes = 0
    next_scrape = t0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_scrape:
            client.get(url, headers=GZIP).raise_for_status()
            scrapes += 1
            next_scrape += PROMETHEUS_SCRAPE_INTERVAL
            progress(f"{child.name}: idle window, {end - time.monotonic():.0f} s left")
        time.sleep(max(0.0, min(next_scrape, end) - time.monotonic()))
    child.check_alive()
    cpu1, t1 = cpu_seconds(p), time.monotonic()
    return {
        "idle_cpu_pct": (cpu1 - cpu0) / (t1 - t0) * 100,
        "idle_rss_mb": p.memory_info().rss / MB,
        "idle_window_s": t1 - t0,
        "idle_scrapes": scrapes,
    }


@dataclass
class Target:
    key: str
    child: Child
    url: str
    client: httpx.Client
    idle_cpu_per_s: float = 0.0  # background CPU seconds per second, subtracted per scrape
    figures: dict[str, Any] = field(default_factory=dict)


def scrape_loops(targets: Sequence[Target], n: int) -> None:
    """n scrapes per target and format, the targets in turn; fills each target's figures."""
    for fmt, headers in (("", PLAIN), ("gzip_", GZIP)):
        label = "gzip" if fmt else "plain text"
        progress(f"scrape latency, {label}: {n} scrapes of each of {len(targets)} targets")
        for t in targets:
            for _ in range(WARMUP_SCRAPES):
                t.client.get(t.url, headers=headers).raise_for_status()
        lat: dict[str, list[float]] = {t.key: [] for t in targets}
        last: dict[str, httpx.Response] = {}
        start = {t.key: (cpu_seconds(t.child.ps), time.monotonic()) for t in targets}
        tick = Ticker(f"scrape latency, {label}")
        for i in range(n):
            for t in targets:
                t0 = time.perf_counter()
                r = t.client.get(t.url, headers=headers)
                lat[t.key].append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
                last[t.key] = r
            tick(i + 1, n)
        for t in targets:
            cpu0, w0 = start[t.key]
            cpu = cpu_seconds(t.child.ps) - cpu0
            wall = time.monotonic() - w0
            r = last[t.key]
            t.figures[f"scrape_{fmt}p50_ms"] = percentile(lat[t.key], 50)
            t.figures[f"scrape_{fmt}p99_ms"] = percentile(lat[t.key], 99)
            t.figures[f"scrape_{fmt}cpu_ms"] = (cpu - t.idle_cpu_per_s * wall) / n * 1000
            t.figures[f"{fmt}bytes"] = r.num_bytes_downloaded
            if not fmt:
                lines = r.text.splitlines()
                t.figures["series"] = sum(1 for ln in lines if ln and not ln.startswith("#"))
    for t in targets:
        t.figures["rss_mb"] = t.child.ps.memory_info().rss / MB


# -- goals and report ----------------------------------------------------------------
def goal(value: float, limit: float, unit: str) -> dict[str, Any]:
    ok = not math.isnan(value) and value <= limit
    return {"value": value, "limit": limit, "unit": unit, "pass": ok}


def goals_of(fig: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ne = fig["node_exporter"]
    out: dict[str, dict[str, Any]] = {}
    for iv in INTERVALS:
        a = fig[f"agent_{iv}s"]
        for fmt in ("", "gzip_"):
            limit = P99_RATIO * ne[f"scrape_{fmt}p99_ms"]
            out[f"agent_{iv}s_scrape_{fmt}p99"] = goal(a[f"scrape_{fmt}p99_ms"], limit, "ms")
        out[f"agent_{iv}s_cpu"] = goal(a["idle_cpu_pct"], CPU_GOAL_PCT[iv], "% of one core")
        out[f"agent_{iv}s_rss"] = goal(a["idle_rss_mb"], RSS_GOAL_MB, "MB")
    st = fig["startup"]
    out["agent_start"] = goal(st["agent_s"], START_GOAL_S, "s")
    out["help_module"] = goal(st["help_module_ms"], HELP_GOAL_MS, "ms")
    out["help_script"] = goal(st["help_script_ms"], HELP_GOAL_MS, "ms")
    return out


def verdict(goals: dict[str, dict[str, Any]], keys: Sequence[str]) -> str:
    failed = [k for k in keys if not goals[k]["pass"]]
    if not failed:
        return "pass"
    if len(keys) == 1:
        return "FAIL"
    return "FAIL " + ",".join(k.split("_")[1] for k in failed)


def report(fig: dict[str, Any]) -> str:
    ne, a10, a1, st, g = (
        fig[k] for k in ("node_exporter", "agent_10s", "agent_1s", "startup", "goals")
    )
    nan = math.nan
    rows: list[list[Any]] = []

    def row(label: str, key: str, goal_text: str = "", goal_keys: Sequence[str] = ()) -> None:
        cells = [d.get(key, nan) for d in (ne, a10, a1)]
        rows.append([label, *cells, goal_text, verdict(g, goal_keys) if goal_keys else ""])

    for fmt, name in (("", "text"), ("gzip_", "gzip")):
        row(f"scrape p50, {name} (ms)", f"scrape_{fmt}p50_ms")
        limit = P99_RATIO * ne[f"scrape_{fmt}p99_ms"]
        row(
            f"scrape p99, {name} (ms)",
            f"scrape_{fmt}p99_ms",
            f"≤ {P99_RATIO:g} × node_exporter = {limit:.3g}",
            [f"agent_{iv}s_scrape_{fmt}p99" for iv in INTERVALS],
        )
    row("series / scrape", "series")
    row("bytes / scrape, text", "bytes")
    row("bytes / scrape, gzip", "gzip_bytes")
    row("CPU / scrape, text (ms)", "scrape_cpu_ms")
    row("CPU / scrape, gzip (ms)", "scrape_gzip_cpu_ms")
    cpu_goal = " / ".join(f"≤ {CPU_GOAL_PCT[iv]:g} %" for iv in INTERVALS)
    row(
        "CPU idle*, % of one core",
        "idle_cpu_pct",
        cpu_goal,
        [f"agent_{iv}s_cpu" for iv in INTERVALS],
    )
    row(
        "RSS after idle window (MB)",
        "idle_rss_mb",
        f"≤ {RSS_GOAL_MB:g} MB",
        [f"agent_{iv}s_rss" for iv in INTERVALS],
    )
    row("RSS after scrapes (MB)", "rss_mb")
    heads = ["figure", "node_exporter", "agent 10s", "agent 1s", "goal (agent)", "result"]
    main = table(heads, left(heads, rows, 0, 4, 5))

    start_rows = [
        [
            "start → first scrape (s)",
            st["node_exporter_s"],
            st["agent_s"],
            f"≤ {START_GOAL_S:g} s",
            verdict(g, ["agent_start"]),
        ],
        [
            "`fastmango --help`, python -m (ms)",
            nan,
            st["help_module_ms"],
            f"≤ {HELP_GOAL_MS:g} ms",
            verdict(g, ["help_module"]),
        ],
        [
            "`fastmango --help`, script (ms)",
            nan,
            st["help_script_ms"],
            f"≤ {HELP_GOAL_MS:g} ms",
            verdict(g, ["help_script"]),
        ],
    ]
    heads = ["startup", "node_exporter", "fastmango", "goal", "result"]
    startup = table(heads, left(heads, start_rows, 0, 3, 4))
    s = fig["settings"]
    met = sum(v["pass"] for v in g.values())
    notes = "\n".join(
        [
            f"* idle: {s['duration_s']:g} s with one scrape every "
            f"{PROMETHEUS_SCRAPE_INTERVAL:g} s (gzip), as Prometheus would; RSS at its end.",
            f"Scrapes: {s['scrapes']} per target and format, targets in turn, keep-alive, "
            "Accept: text/plain.",
            "Agent CPU / scrape is net of its background collection (its idle rate).",
            f"Start: median of {STARTS} starts; --help: median of {HELP_RUNS} runs.",
            f"{s['node_exporter']}; Python {s['python']}; {s['cpus']} CPUs; "
            f"{s['elapsed_s']:.0f} s in all. Goals met: {met}/{len(g)}.",
        ]
    )
    return f"{main}\n\n{startup}\n\n{notes}"


def left(headers: Sequence[str], rows: list[list[Any]], *cols: int) -> list[list[Any]]:
    """Pad text columns so they read left-aligned in :func:`table` (which right-aligns)."""
    for c in cols:
        width = max(len(headers[c]), *(len(str(r[c])) for r in rows))
        for r in rows:
            r[c] = str(r[c]).ljust(width)
    return rows


def json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


# -- main ----------------------------------------------------------------------------
def run(duration: float, scrapes: int) -> dict[str, Any]:
    began = time.monotonic()
    kids = Children()
    clients: list[httpx.Client] = []
    try:
        version = (
            subprocess.run(
                [NODE_EXPORTER, "--version"], capture_output=True, text=True, check=True
            ).stdout
            or "?"
        )
        ne_version = version.splitlines()[0].split(" (")[0].replace(", version", "")

        progress(f"`fastmango --help`: {HELP_RUNS} runs each via python -m and the script")
        startup: dict[str, Any] = time_help(HELP_RUNS, kids.env, kids.tempdir())

        progress(f"start → first scrape: {STARTS} starts each of the agent and node_exporter")
        starts: dict[str, list[float]] = {"agent": [], "node_exporter": []}
        for _ in range(STARTS):
            for which, times in starts.items():
                times.append(time_start(kids, which))
        startup["agent_s"] = median(starts["agent"])
        startup["node_exporter_s"] = median(starts["node_exporter"])

        targets: list[Target] = []

        def launch(key: str, interval: int | None) -> Target:
            port = free_port()
            child = kids.node_exporter(port) if interval is None else kids.agent(port, interval)
            client = httpx.Client(timeout=10.0)
            clients.append(client)
            t = Target(key, child, f"http://127.0.0.1:{port}/metrics", client)
            wait_ready(child, t.url, client)
            targets.append(t)
            return t

        progress("starting node_exporter")
        launch("node_exporter", None)
        for iv in INTERVALS:
            progress(f"agent --interval {iv}: idle window of {duration:g} s")
            t = launch(f"agent_{iv}s", iv)
            t.figures.update(idle_window(t.child, t.url, t.client, duration))
            t.idle_cpu_per_s = t.figures["idle_cpu_pct"] / 100
        scrape_loops(targets, scrapes)

        fig: dict[str, Any] = {t.key: t.figures for t in targets}
        fig["startup"] = startup
        fig["settings"] = {
            "duration_s": duration,
            "scrapes": scrapes,
            "prometheus_scrape_interval_s": PROMETHEUS_SCRAPE_INTERVAL,
            "node_exporter": ne_version,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "elapsed_s": time.monotonic() - began,
        }
        fig["goals"] = goals_of(fig)
        fig["all_goals_met"] = all(v["pass"] for v in fig["goals"].values())
        return fig
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                c.close()
        kids.close()


SIGNALS: list[int] = []  # SIGINT / SIGTERM received during the run


def _interrupt(sig: int, frame: FrameType | None) -> None:
    SIGNALS.append(sig)
    raise KeyboardInterrupt


def _record(sig: int, frame: FrameType | None) -> None:
    SIGNALS.append(sig)


@contextlib.contextmanager
def signals_handled(handler: Any) -> Iterator[None]:
    """Run the block with ``handler`` for SIGINT and SIGTERM; restore the old ones after.

    The run uses :func:`_interrupt`: a signal unwinds as KeyboardInterrupt, so the finally
    blocks stop the children (Ctrl-C reaches the children too, so a scrape of one that
    stopped first may fail before the interrupt is raised here; SIGNALS tells). Stopping
    the children uses :func:`_record`, so a second Ctrl-C cannot cut the cleanup short.
    """
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=120.0,
        help="seconds of each agent's idle CPU window (default 120)",
    )
    parser.add_argument(
        "--scrapes",
        type=int,
        default=300,
        help="timed scrapes per target and format, at least 200 (default 300)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.scrapes < 200:
        parser.error("--scrapes must be at least 200 (a p99 needs them)")
    if args.duration <= 0:
        parser.error("--duration must be positive")
    if not Path(NODE_EXPORTER).is_file():
        parser.error(f"{NODE_EXPORTER} not found (apt-get install prometheus-node-exporter)")
    est = 2 * args.duration + args.scrapes * 0.12 + 30
    progress(f"overhead benchmark: about {est / 60:.1f} min")
    try:
        with signals_handled(_interrupt):
            fig = run(args.duration, args.scrapes)
    except Exception:
        if not SIGNALS:
            raise
        progress("interrupted; children stopped")
        return 130
    except KeyboardInterrupt:
        progress("interrupted; children stopped")
        return 130
    emit(json_safe(fig), report(fig), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
