"""``fastmango billing`` against a real ``fastmango agent`` process over a seeded store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import free_port

from .seed import CONFIG

pytestmark = pytest.mark.integration

#: the seeded counters stand for this instance: the real collectors stay off
QUIET = """
[collectors.host]
enabled = false

[collectors.container]
enabled = false
"""


def billing_process(app: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``fastmango billing`` as a real process in the app's folder."""
    return subprocess.run(
        [sys.executable, "-m", "fastmango.cli", "billing", *args],
        cwd=app, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def billing(app: Path, *args: str) -> Any:
    """The same command run in this process (the agent it talks to is still a real
    process): saves an interpreter start per call."""
    from fastmango.cli import main

    cwd = Path.cwd()
    os.chdir(app)
    try:
        res = CliRunner().invoke(main, ["billing", *args], catch_exceptions=False)
    finally:
        os.chdir(cwd)
    res.returncode = res.exit_code
    return res


@pytest.fixture
def cost_agent(start_agent: Any, seeded_state: Path) -> Any:
    app = seeded_state.parent
    (app / "fastmango.toml").write_text(CONFIG + QUIET)
    return start_agent(app_dir=app)


def test_billing_table_json_optimize_and_prices(cost_agent: Any) -> None:
    app, url = cost_agent.app_dir, cost_agent.url
    table = billing_process(app, "--url", url)
    assert table.returncode == 0, table.stderr
    out = table.stdout
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "render" in lines["production"] and "standard" in lines["production"]
    assert "█" in lines["production"] and "|" in lines["production"]  # bar with budget mark
    assert "unknown" in lines["preview"]  # never deployed: unknown, not $0.00
    assert "$0.00" not in lines["preview"]
    assert "compute unknown: no replicas events for preview" in out
    assert 'no egress price on render (set cost.prices."render/egress_gb")' in out
    assert "render/size/standard = 25 as of 2026-05-04" in out  # stale price flagged

    doc = json.loads(billing(app, "--url", url, "--json").stdout)
    api = httpx.get(url + "/api/cost").json()
    rows = {r["env"]: r for r in doc["environments"]}
    assert rows["production"]["month_to_date"] == pytest.approx(
        {r["env"]: r for r in api["environments"]}["production"]["month_to_date"], abs=0.02
    )
    assert f"${rows['production']['month_to_date']:,.2f}" in lines["production"]
    assert rows["preview"]["month_to_date"] is None

    opt = billing(app, "--url", url, "--optimize")
    assert opt.returncode == 0, opt.stderr
    assert "Right-size production from standard to starter" in opt.stdout
    assert "evidence: p95 CPU" in opt.stdout
    assert (
        "fastmango scale --env=staging --schedule 'Mon-Fri 08:00-20:00 UTC min=1; otherwise 0'"
        in (opt.stdout)
    )
    assert "/month" in opt.stdout and "Checked without a saving" in opt.stdout
    sav = json.loads(billing(app, "--url", url, "--optimize", "--json").stdout)
    assert all(s["dollars_per_month"] > 0 and s["evidence"] for s in sav["savings"])

    prices = billing(app, "--url", url, "--prices")
    assert "render/size/standard" in prices.stdout and "STALE" in prices.stdout

    one = json.loads(billing(app, "--url", url, "--json", "--env", "staging").stdout)
    assert [r["env"] for r in one["environments"]] == ["staging"]
    bad = billing(app, "--url", url, "--env", "nope")
    assert bad.returncode == 1 and "no environment named 'nope'" in bad.stderr

    metrics = httpx.get(url + "/metrics").text
    assert 'fastmango_cost_month_projected_dollars{env="production"}' in metrics
    assert 'fastmango_cost_budget_dollars{env="production"} 60.0' in metrics


def test_billing_says_when_no_agent_runs(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    res = billing(tmp_path, "--url", url)
    assert res.returncode == 1
    assert f"no agent answers at {url}" in res.stderr
