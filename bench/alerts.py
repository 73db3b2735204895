"""Alerts: how fast an app's failure becomes a Slack message, and what a rule evaluation
costs, next to Prometheus doing the same work in the same run.

    .venv/bin/python bench/alerts.py [--rounds 3] [--series 2000] [--ticks 200] [--json]

1. detect: a uvicorn app with FastmangoMiddleware under steady traffic; at t0 half its
   requests start failing. fastmango (`fastmango agent`, 1 s collection and evaluation,
   the error-ratio rule with ``for = 0``, group_wait 0) and Prometheus (scraping the same
   app every 1 s, evaluating the same condition from the raw counters every 1 s, ``for:
   0s``) both watch it. Measured per round: t0 → fastmango firing, → the message at the
   local Slack (slack-sdk, chat.postMessage), → Prometheus firing (its /api/v1/alerts);
   then recovery → fastmango resolved and the Slack message updated (chat.update), →
   Prometheus no longer firing.
2. evaluate: every built-in rule over a snapshot of ``--series`` series (filesystems,
   PostgreSQL, GPU, app, cost, logs), fastmango's whole tick (read the snapshot, evaluate,
   step, route) timed in-process; Prometheus's ``prometheus_rule_group_last_duration_seconds``
   for the same rules exported with ``fastmango alerts export`` over the same series
   scraped from a static exposition.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from _util import emit, free_port, median, progress, table  # noqa: E402

from tests.fakes.slack import TOKEN, FakeSlack  # noqa: E402

PROM_RULE = (
    'sum(rate(http_server_request_duration_seconds_count{http_response_status_code=~"5.."}[4s]))'
    " / sum(rate(http_server_request_duration_seconds_count[4s])) > 0.05"
)


def env_clean(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
    env["TMPDIR"] = str(tmp)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait(check: Any, timeout: float, what: str, every: float = 0.02) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(every)
    raise TimeoutError(f"{what} did not happen within {timeout:g} s")


class Traffic(threading.Thread):
    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.failing, self.done = base, False, threading.Event()

    def run(self) -> None:
        n = 0
        with httpx.Client(timeout=5) as c:
            while not self.done.is_set():
                path = "/fail" if self.failing and n % 2 else "/items/1"
                with contextlib.suppress(httpx.HTTPError):
                    c.get(self.base + path)
                n += 1
                time.sleep(0.01)


def prometheus(tmp: Path, port: int, targets: list[str], rules: str, interval: str) -> Any:
    (tmp / "rules.yml").write_text(rules)
    (tmp / "prometheus.yml").write_text(
        f"global: {{scrape_interval: {interval}, evaluation_interval: {interval}}}\n"
        "rule_files: [rules.yml]\n"
        f"scrape_configs:\n  - job_name: app\n    static_configs: [{{targets: {targets!r}}}]\n"
    )
    return subprocess.Popen(
        ["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn"],
        stdout=(tmp / "prometheus.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def detect(rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in (
        "fm_firing", "slack_post", "prom_firing", "fm_resolved", "slack_update",
        "prom_resolved")}  # fmt: skip
    with tempfile.TemporaryDirectory() as td, FakeSlack() as slack:
        tmp = Path(td)
        env = env_clean(tmp)
        app_port, agent_port, prom_port = free_port(), free_port(), free_port()
        app_url = f"http://127.0.0.1:{app_port}"
        procs = [subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.collector.appfixture.app:app", "--host",
             "127.0.0.1", "--port", str(app_port), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
        app_dir = tmp / "app"
        app_dir.mkdir()
        (app_dir / "fastmango.toml").write_text(f"""
[collectors]
interval = "1s"
[collectors.app]
metrics_urls = ["{app_url}/metrics"]
[alerts]
evaluation_interval = "1s"
group_wait = "0s"
group_interval = "1s"
builtin_rules = false
[[alerts.rules]]
name = "HighErrorRatio"
expr = "http_error_ratio > 0.05"
severity = "critical"
[alerts.slack]
token = "{TOKEN}"
channel = "#alerts"
api_url = "{slack.api_url}"
""")
        rules = ("groups:\n  - name: bench\n    rules:\n      - alert: HighErrorRatio\n"
                 f"        expr: '{PROM_RULE}'\n        for: 0s\n")  # fmt: skip
        traffic = Traffic(app_url)
        try:
            wait(lambda: _ok(app_url + "/items/1"), 30, "the app")
            traffic.start()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "fastmango.cli", "agent", "--port", str(agent_port)],
                cwd=app_dir, env=env, stdout=(tmp / "agent.log").open("wb"),
                stderr=subprocess.STDOUT))  # fmt: skip
            procs.append(prometheus(tmp, prom_port, [f"127.0.0.1:{app_port}"], rules, "1s"))
            agent = f"http://127.0.0.1:{agent_port}"
            prom = f"http://127.0.0.1:{prom_port}"
            wait(lambda: _rule_ok(agent), 30, "the agent's first evaluation with data")
            wait(lambda: _ok(prom + "/-/ready"), 30, "Prometheus")
            time.sleep(6)  # Prometheus has a few scrapes of healthy traffic
            for r in range(rounds):
                progress(f"detect round {r + 1}/{rounds}")
                posts, updates = (
                    len(slack.calls("chat.postMessage")),
                    len(slack.calls("chat.update")),
                )
                t0 = time.time()
                traffic.failing = True
                got = _watch(agent, prom, slack, posts, updates, firing=True)
                for k, v in got.items():
                    out[k].append(v - t0)
                t1 = time.time()
                traffic.failing = False
                got = _watch(agent, prom, slack, posts, updates, firing=False)
                for k, v in got.items():
                    out[k].append(v - t1)
                time.sleep(6)  # both windows hold only healthy traffic again
        finally:
            traffic.done.set()
            for p in reversed(procs):
                stop(p)
    return out


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _rule_ok(agent: str) -> bool:
    try:
        rules = httpx.get(agent + "/api/alerts", timeout=1).json()["rules"]
        return bool(rules) and rules[0].get("state") == "ok"
    except (httpx.HTTPError, ValueError, KeyError):
        return False


def _watch(agent: str, prom: str, slack: FakeSlack, posts: int, updates: int,
           firing: bool) -> dict[str, float]:  # fmt: skip
    """Poll both sides every 20 ms until each has seen the change; when each did."""
    seen: dict[str, float] = {}
    names = ("fm_firing", "slack_post", "prom_firing") if firing else (
        "fm_resolved", "slack_update", "prom_resolved")  # fmt: skip
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=2) as c:
        while len(seen) < 3 and time.monotonic() < deadline:
            now = time.time()
            if names[0] not in seen:
                states = [a["state"] for a in c.get(agent + "/api/alerts").json()["alerts"]]
                if (firing and "firing" in states) or (not firing and "firing" not in states):
                    seen[names[0]] = now
            if names[1] not in seen:
                calls = slack.calls("chat.postMessage" if firing else "chat.update")
                if len(calls) > (posts if firing else updates):
                    seen[names[1]] = calls[-1].at
            if names[2] not in seen:
                alerts = c.get(prom + "/api/v1/alerts").json()["data"]["alerts"]
                on = any(a["state"] == "firing" for a in alerts)
                if on == firing:
                    seen[names[2]] = now
            time.sleep(0.02)
    if len(seen) < 3:
        raise TimeoutError(f"not seen within 60 s: {set(names) - set(seen)}")
    return seen


def snapshot(n: int) -> list[Any]:
    """About ``n`` series shaped like a busy host: filesystems, PostgreSQL, GPUs, app…"""
    from fastmango.series import Sample, labels_of

    now = time.time()
    out: list[Sample] = []

    def add(name: str, value: float, **labels: str) -> None:
        out.append(Sample(name, labels_of(**labels), value, now))

    add("http_error_ratio", 0.01)
    add("http_request_duration_p95_seconds", 0.12)
    add("container_memory_working_set_bytes", 4e8)
    add("fastmango_container_memory_limit_bytes", 1e9)
    for e in ("production", "staging"):
        add("fastmango_cost_month_projected_dollars", 90.0, env=e)
        add("fastmango_cost_budget_dollars", 100.0, env=e)
    for level in ("error", "warning", "info"):
        add("log_lines_per_minute", 3.0, level=level)
    for g in range(8):
        add("DCGM_FI_DEV_GPU_TEMP", 60.0 + g, gpu=str(g), UUID=f"GPU-{g}", pci_bus_id="0",
            device=f"nvidia{g}", modelName="H100", Hostname="h")  # fmt: skip
    i = 0
    while len(out) < n:
        server = f"db{i % 4}:5432/app"
        add("pg_settings_max_connections", 100.0, server=server)
        for st in ("active", "idle", "idle in transaction"):
            add("pg_stat_activity_count", 5.0, server=server, datname=f"d{i}", state=st)
        add("pg_lock_wait_longest_seconds", 0.5, server=server, datname=f"d{i}")
        mount = f"/data{i}"
        add("node_filesystem_avail_bytes", 5e10, device=f"sd{i}", fstype="ext4", mountpoint=mount)
        add("node_filesystem_size_bytes", 1e11, device=f"sd{i}", fstype="ext4", mountpoint=mount)
        for k in range(8):
            add("node_network_receive_bytes_total", 1.0, device=f"eth{i}_{k}")
        i += 1
    return out


def evaluate(series: int, ticks: int) -> dict[str, Any]:
    from types import SimpleNamespace

    from fastmango.agent import catalogue
    from fastmango.agent.alerts.export import prometheus_rules
    from fastmango.agent.alerts.service import AlertsService
    from fastmango.agent.exporter import Exporter
    from fastmango.agent.settings import Settings
    from fastmango.series import MetricSpec

    samples = snapshot(series)
    specs = catalogue.index()
    for s in samples:  # the cost and log series are published by other parts
        if s.name not in specs:
            specs[s.name] = MetricSpec(s.name, "gauge", "bench", tuple(k for k, _ in s.labels))
    exporter = Exporter(specs)
    exporter.update("bench", samples)
    exporter.render_pending()
    svc = AlertsService(Settings(), notifiers={})
    svc.host = SimpleNamespace(exporter=exporter, store=SimpleNamespace(
        append_event=lambda *a, **k: None), publish=lambda *a: None, url="", services={})  # type: ignore[assignment]  # fmt: skip
    times = []
    for _ in range(ticks):
        t = time.perf_counter()
        svc.evaluate(svc._fetcher(), time.time())
        svc.route(time.time())
        times.append(time.perf_counter() - t)
    fm = median(times)
    # Prometheus: the same rules over the same series, scraped from a static exposition
    body = exporter.body()[0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    prom_durations: list[float] = []
    with tempfile.TemporaryDirectory() as td:
        port = free_port()
        proc = prometheus(Path(td), port, [f"127.0.0.1:{server.server_address[1]}"],
                          prometheus_rules(svc.rules), "1s")  # fmt: skip
        try:
            wait(lambda: _ok(f"http://127.0.0.1:{port}/-/ready"), 30, "Prometheus")
            progress("Prometheus evaluating the exported rules for 12 s")
            time.sleep(3)
            for _ in range(10):
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                for line in text.splitlines():
                    if line.startswith("prometheus_rule_group_last_duration_seconds{"):
                        prom_durations.append(float(line.rsplit(" ", 1)[1]))
                time.sleep(1)
        finally:
            stop(proc)
            server.shutdown()
            server.server_close()
    return {"series": len(samples), "rules": len(svc.rules), "fastmango_tick_ms": fm * 1000,
            "prometheus_rule_group_ms": median(prom_durations) * 1000}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="failure/recovery rounds")
    ap.add_argument("--series", type=int, default=2000, help="series in the snapshot")
    ap.add_argument("--ticks", type=int, default=200, help="timed evaluation ticks")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    progress("evaluate: built-in rules over a snapshot")
    ev = evaluate(args.series, args.ticks)
    progress("detect: app failure → alert → Slack, next to Prometheus")
    d = detect(args.rounds)
    med = {k: median(v) for k, v in d.items()}
    rows = [
        ["failure → firing (s)", med["fm_firing"], med["prom_firing"],
         med["fm_firing"] / med["prom_firing"]],
        ["failure → Slack message (s)", med["slack_post"], float("nan"), float("nan")],
        ["recovery → resolved (s)", med["fm_resolved"], med["prom_resolved"],
         med["fm_resolved"] / med["prom_resolved"]],
        ["recovery → message updated (s)", med["slack_update"], float("nan"), float("nan")],
        [f"evaluate {ev['rules']} rules over {ev['series']} series (ms)",
         ev["fastmango_tick_ms"], ev["prometheus_rule_group_ms"],
         ev["fastmango_tick_ms"] / ev["prometheus_rule_group_ms"]],
    ]  # fmt: skip
    text = table(["figure (median)", "fastmango", "Prometheus", "ratio"], rows)
    text += (
        f"\n\n{args.rounds} rounds; collection, scrape and evaluation every 1 s on both "
        "sides; Prometheus has no Slack sender (Alertmanager is not installed here)."
    )
    emit({"detect": d, "detect_median": med, "evaluate": ev}, text, args.json)


if __name__ == "__main__":
    main()
