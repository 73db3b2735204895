"""The agent's /metrics against the real Prometheus tools: promtool and a scraping server."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.realservers import Prometheus, require

pytestmark = pytest.mark.integration


def promtool_check(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool", "prometheus"), "check", "metrics"],
        input=body, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_promtool_check_metrics_passes(start_agent) -> None:  # type: ignore[no-untyped-def]
    agent = start_agent("--interval", "1")
    time.sleep(2.5)  # host, container and self-metrics all published
    body = httpx.get(agent.url + "/metrics").text
    assert "node_cpu_seconds_total" in body and "container_" in body
    # node_exporter's meminfo names (node_memory_MemTotal_bytes…) are kept as node_exporter
    # writes them, so existing dashboards work; promtool's linter flags exactly those as
    # camelCase, as it does on node_exporter's own output. Nothing else may be flagged.
    res = promtool_check(body)
    assert res.returncode in (0, 3), res.stderr  # 1 would be a parse error
    for line in (res.stdout + res.stderr).splitlines():
        assert line.startswith("node_memory_") and "not 'camelCase'" in line, line
    others = "\n".join(ln for ln in body.splitlines() if not re.search(r"\bnode_memory_[A-Z]", ln))
    res = promtool_check(others + "\n")
    assert res.returncode == 0, res.stdout + res.stderr


def test_real_prometheus_scrapes_the_agent(start_agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    agent = start_agent("--interval", "1")
    prom = Prometheus(tmp_path / "prom", free_port(), [f"127.0.0.1:{agent.port}"])
    try:
        result = prom.query_until('node_cpu_seconds_total{job="fastmango",mode="idle"}')
        labels = result[0]["metric"]
        assert labels["__name__"] == "node_cpu_seconds_total"
        assert {"cpu", "mode", "instance", "job"} <= set(labels)
        assert labels["instance"] == f"127.0.0.1:{agent.port}"
        cpus = {r["metric"]["cpu"] for r in result}
        assert cpus == {str(i) for i in range(len(cpus))}
        up = prom.query_until('fastmango_collector_up{collector="host"}')
        assert up[0]["value"][1] == "1"
        [target] = prom.targets()
        assert target["health"] == "up" and target["lastError"] == ""
    finally:
        prom.stop()
