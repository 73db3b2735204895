"""`fastmango scale` changes what it is told and keeps the rest of the policy; with no
option it shows the status. Against a real agent process."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx


def cli(agent: Any, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "fastmango.cli", "scale", *args, "--url",
                          agent.url], cwd=agent.app_dir, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out


def policy(agent: Any, env: str) -> dict[str, Any]:
    return dict(httpx.get(agent.url + "/api/scaling").json()["environments"][env]["policy"])


def test_scale_changes_only_the_options_given(start_agent: Any) -> None:
    agent = start_agent()
    # nothing set yet, no option: the status, not a policy of defaults
    out = cli(agent)
    assert "no scaling policy set" in out.stdout
    assert httpx.get(agent.url + "/api/scaling").json()["environments"] == {}
    cli(agent, "--env=production", "--min=2", "--max=8", "--cpu=70%", "--rps=150",
        "--schedule", "Mon-Fri 08:00-20:00 Europe/Berlin min=1; otherwise 0",
        "--scale-down-window", "10m")  # fmt: skip
    out = cli(agent, "--env=production", "--min=3")
    assert "min 3, max 8, cpu 70%, 150 req/s per instance, schedule" in out.stdout
    p = policy(agent, "production")
    assert (p["min"], p["max"], p["targets"]["cpu"], p["targets"]["rps"]) == (3, 8, 70, 150)
    assert p["behavior"]["scale_down"]["stabilization"] == 600  # kept too
    assert p["predictive"]["enabled"]  # production's default, kept
    # `off` drops a target or the schedule; a --no-… flag turns a switch off
    cli(agent, "--env=production", "--rps=off", "--schedule=off", "--no-predictive")
    p = policy(agent, "production")
    assert p["targets"]["rps"] is None and p["targets"]["cpu"] == 70 and p["schedule"] is None
    assert not p["predictive"]["enabled"] and p["min"] == 3
    # an environment named with no option: its status
    out = cli(agent, "--env=production")
    assert out.stdout.startswith("production: current") and "policy: min 3, max 8" in out.stdout
