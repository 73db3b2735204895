"""packaging/prometheus and packaging/grafana: the scrape config works in a real
Prometheus (Kubernetes discovery stood in by file discovery with the same labels, as
Debian's Prometheus is built without Kubernetes discovery), and every Grafana expression
names series the agent's catalogue has."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from fastmango.agent import catalogue
from tests.conftest import ROOT, free_port
from tests.realservers import require, stop_process

PROM = ROOT / "packaging" / "prometheus" / "scrape-sidecars.yaml"
GRAFANA = ROOT / "packaging" / "grafana" / "fastmango.json"


def pod(name: str, container: str, port: int, annotations: dict[str, str], **labels: str) -> dict:
    """A target group as Kubernetes pod discovery makes it (one per container port)."""
    meta = {
        "__meta_kubernetes_namespace": "shop",
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_node_name": "node-1",
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_pod_container_port_number": str(port),
    }
    for k, v in annotations.items():
        meta["__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9]", "_", k)] = v
    for k, v in labels.items():
        meta["__meta_kubernetes_pod_label_" + k] = v
    return {"targets": [f"127.0.0.1:{port}"], "labels": meta}


def with_file_discovery(config: dict[str, Any], sd_file: Path) -> dict[str, Any]:
    """The same config, Kubernetes pod discovery replaced by a file of the same groups."""
    out = json.loads(json.dumps(config))
    for job in out["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        job["file_sd_configs"] = [{"files": [str(sd_file)], "refresh_interval": "1s"}]
    out["global"]["scrape_interval"] = "1s"
    out["global"]["scrape_timeout"] = "1s"
    return out


def test_scrape_config_finds_sidecars_by_their_pod_annotations(
    tmp_path: Path, start_agent: Any, agent_env: dict[str, str]
) -> None:
    config = yaml.safe_load(PROM.read_text())
    job = config["scrape_configs"][0]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    agent = start_agent("--interval", "1")
    agent_port = agent.port
    annotated = {"prometheus.io/scrape": "true", "prometheus.io/port": str(agent_port),
                 "prometheus.io/path": "/metrics"}  # fmt: skip
    groups = [
        # the app's pod: its web container and its fastmango sidecar; only the sidecar
        pod("web-7d9f-abcde", "web", free_port(), annotated, app_kubernetes_io_name="shop"),
        pod("web-7d9f-abcde", "fastmango", agent_port, annotated, app_kubernetes_io_name="shop"),
        # a pod that did not ask to be scraped
        pod("db-0", "fastmango", free_port(), {"prometheus.io/scrape": "false"}, app="db"),
    ]
    sd = tmp_path / "pods.json"
    sd.write_text(json.dumps(groups))
    # the alert rules, exported by the real CLI, as the README says to add them
    rules = tmp_path / "fastmango-alerts.yml"
    export = subprocess.run(
        [sys.executable, "-m", "fastmango.cli", "alerts", "export", "--format", "prometheus",
         "-o", str(rules)],
        cwd=tmp_path, capture_output=True, text=True, env=agent_env,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    assert "rule_files" in PROM.read_text()  # shown (commented) in the shipped file
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(yaml.safe_dump({**with_file_discovery(config, sd), "rule_files": [str(rules)]}))
    promtool = require("promtool", "prometheus")
    check = subprocess.run([promtool, "check", "config", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [require("prometheus", "prometheus"), f"--config.file={cfg}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not result:
            try:
                r = httpx.get(url + "/api/v1/query", params={"query": "fastmango_fleet_leader"})
                result = r.json()["data"]["result"]
            except (httpx.TransportError, KeyError, ValueError):
                pass
            time.sleep(0.25)
        assert result, "Prometheus never scraped the sidecar"
        labels = result[0]["metric"]
        assert labels["instance"] == "web-7d9f-abcde" and labels["pod"] == "web-7d9f-abcde"
        assert labels["namespace"] == "shop" and labels["app"] == "shop"
        assert labels["node"] == "node-1" and labels["job"] == "fastmango-sidecars"
        targets = httpx.get(url + "/api/v1/targets").json()["data"]
        active = targets["activeTargets"]
        assert [t["labels"]["instance"] for t in active] == ["web-7d9f-abcde"]
        assert active[0]["scrapeUrl"] == f"http://127.0.0.1:{agent_port}/metrics"
        assert len(targets["droppedTargets"]) == 2  # the web container, the unannotated pod
        groups = httpx.get(url + "/api/v1/rules").json()["data"]["groups"]
        alerts = {r["name"] for g in groups for r in g["rules"]}
        exported = {r["alert"] for g in yaml.safe_load(rules.read_text())["groups"]
                    for r in g["rules"] if "alert" in r}  # fmt: skip
        assert exported and alerts == exported
    finally:
        stop_process(proc)
        log.close()


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    out = []
    for panel in dashboard["panels"]:
        for t in panel.get("targets", []):
            out.append(t["expr"])
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]
            out.append(q["query"] if isinstance(q, dict) else q)
    return out


#: PromQL words that are not series names
PROMQL_WORDS = {
    "sum", "avg", "max", "min", "count", "by", "without", "rate", "irate", "increase",
    "histogram_quantile", "label_values", "on", "ignoring", "group_left", "group_right",
    "clamp_min", "clamp_max", "topk", "bottomk", "time", "changes", "resets", "deriv",
    "delta", "abs", "and", "or", "unless", "bool", "offset", "vector", "scalar",
    "avg_over_time", "max_over_time", "min_over_time", "le", "quantile", "interval",
}  # fmt: skip


def series_names(expr: str) -> set[str]:
    text = re.sub(r"label_values\((.*),\s*\w+\)$", r"\1", expr)  # the label asked for
    text = re.sub(r'"[^"]*"', '""', text)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text))
    by = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        by |= {w.strip() for w in m.group(1).split(",")}
    return {w for w in words - PROMQL_WORDS - by if not re.fullmatch(r"[0-9a-z]{1,2}", w)}


def as_promql(expr: str) -> str:
    """A Grafana expression as plain PromQL: variables filled in, label_values unwrapped."""
    expr = re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", expr)
    for var, value in (
        ("$__rate_interval", "5m"),
        ("$__interval", "1m"),
        ("$namespace", "shop"),
        ("$app", "shop"),
        ("$instance", "web-1"),
    ):
        expr = expr.replace(var, value)  # fmt: skip
    return expr


def test_series_names_finds_what_an_expression_reads() -> None:
    expr = 'sum by (route) (rate(foo_total{a="b", c=~"$x"}[$__rate_interval])) / on (le) bar'
    assert series_names(expr) == {"foo_total", "bar"}
    assert series_names('label_values(fastmango_fleet_leader{ns="a"}, namespace)') == {
        "fastmango_fleet_leader"
    }


def test_grafana_dashboard_names_only_catalogued_series(tmp_path: Path) -> None:
    dashboard = json.loads(GRAFANA.read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 36
    known = {s.name for s in catalogue.all_specs()}
    exprs = _expressions(dashboard)
    assert len(exprs) >= 10
    used: set[str] = set()
    for expr in exprs:
        names = series_names(expr)
        assert names, f"no series in {expr!r}"
        assert names <= known, f"{expr!r} names {names - known}, not in the catalogue"
        used |= names
    for must in (
        "http_requests_per_second",
        "http_request_duration_p95_seconds",
        "http_error_ratio",
        "fastmango_fleet_leader",
        "fastmango_fleet_instances",
    ):
        assert must in used, must  # fmt: skip
    # every expression parses as PromQL (promtool, as recording rules)
    rules = {"groups": [{"name": "grafana", "rules": [
        {"record": f"grafana:expr_{i}", "expr": as_promql(e)} for i, e in enumerate(exprs)
    ]}]}  # fmt: skip
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    check = subprocess.run([require("promtool", "prometheus"), "check", "rules", str(path)],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    # panels don't overlap on the grid
    cells = set()
    for p in dashboard["panels"]:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']!r} overlaps another"
                cells.add((x, y))
