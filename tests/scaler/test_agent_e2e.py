"""End to end: a real `fastmango agent` process, `fastmango scale` and `scale status`
through its API, the audit trail, the agent's memory with a predictive policy on, and
the dashboard's Scaling page in real Chromium."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS, shoot


@pytest.fixture
def agent(start_agent: Any, agent_env: dict[str, str]) -> Any:
    agent_env["FASTMANGO_SCALE__INTERVAL"] = "1s"
    return start_agent("--interval", "1")


def cli(agent: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "fastmango.cli", *args, "--url", agent.url],
                         cwd=agent.app_dir, capture_output=True, text=True, timeout=60)  # fmt: skip
    if check:
        assert out.returncode == 0, out.stderr
    return out


def wait_decided(agent: Any, env: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = httpx.get(agent.url + "/api/scaling").json()["environments"].get(env)
        if st and st["reason"]:
            return dict(st)
        time.sleep(0.2)
    raise TimeoutError(f"no decision for {env}")


def test_scale_cli_status_audit_and_memory(agent: Any) -> None:
    out = cli(agent, "scale", "--env=production", "--min=2", "--max=10", "--cpu=70%",
              "--rps=150", "--p95=200ms", "--predictive", "--reason", "launch week")  # fmt: skip
    assert "production: min 2, max 10, cpu 70%, 150 req/s per instance, p95 200ms" in out.stdout
    assert "predictive" in out.stdout
    assert "dry-run: no platform is configured for environment 'production'" in out.stdout
    st = wait_decided(agent, "production")
    assert (st["current"], st["desired"], st["reason"]) == (1, 2, "TooFewReplicas")
    status = cli(agent, "scale", "status").stdout
    assert "production: current 1, desired 2 — TooFewReplicas [dry-run" in status
    assert "inputs: cpu" in status and "forecast: not used (ForecastHistoryShort" in status
    assert "forecaster: waiting for history" in status
    # every decision is in the store as a scaling event, the policy change in the audit log
    ev = httpx.get(agent.url + "/api/events", params={"kind": "scaling"}).json()[0]["data"]
    assert ev["env"] == "production" and ev["dry_run"] is True and ev["desired"] == 2
    audit = httpx.get(agent.url + "/api/events", params={"kind": "audit"}).json()
    rec = next(a["data"] for a in audit if a["data"]["action"] == "scale.policy")
    assert rec["result"] == "ok" and rec["reason"] == "launch week"
    assert rec["who"].startswith("local:")
    # predictive on: scikit-learn is not in the resident agent
    proc = psutil.Process(agent.proc.pid)
    maps = Path(f"/proc/{proc.pid}/maps").read_text()
    assert "sklearn" not in maps and "scipy" not in maps
    rss = proc.memory_info().rss / 2**20
    print(f"agent RSS with a predictive policy on: {rss:.1f} MiB")
    assert rss < 150  # generous guard; the figure is printed for the report


def test_bad_input_is_refused_and_audited(agent: Any) -> None:
    bad = cli(agent, "scale", "--env=production", "--cpu=seventy", check=False)
    assert bad.returncode == 2 and "--cpu: 'seventy' is not a percentage" in bad.stderr
    bad = cli(agent, "scale", "--env=dev", "--schedule", "Mon-Fri 08:00-20:00 Mars/Base min=1",
              check=False)  # fmt: skip
    assert bad.returncode == 2 and "unknown time zone 'Mars/Base'" in bad.stderr
    r = httpx.put(agent.url + "/api/scaling/policy/production", json={"min": 5, "max": 2})
    assert r.status_code == 400 and "above max" in r.json()["detail"]
    r = httpx.put(agent.url + "/api/scaling/policy/bad name", json={})
    assert r.status_code == 400
    audit = httpx.get(agent.url + "/api/events", params={"kind": "audit"}).json()
    assert any(a["data"]["action"] == "scale.policy" and a["data"]["result"] == "rejected"
               for a in audit)  # fmt: skip
    gone = cli(agent, "scale", "status", "--env=nowhere", check=False)
    assert gone.returncode == 1 and "no scaling policy for 'nowhere'" in gone.stderr


def test_status_without_agent(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "fastmango.cli", "scale", "status", "--url",
                          "http://127.0.0.1:9"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 1 and "agent" in out.stderr.lower()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.mark.browser
def test_scaling_page(agent: Any, browser: Any) -> None:
    cli(agent, "scale", "--env=production", "--min=2", "--max=10", "--cpu=70%", "--predictive")
    wait_decided(agent, "production")
    time.sleep(2.5)  # a few decisions for the charts
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    crashes: list[str] = []
    page.on("pageerror", lambda e: crashes.append(str(e)))
    try:
        page.goto(f"{agent.url}/#/scaling?range=15m")
        page.wait_for_selector('[data-env="production"] [data-role="reason"]')
        assert page.inner_text('[data-env="production"] [data-role="reason"]') == "TooFewReplicas"
        assert "1 → 2 instances" in page.inner_text(
            '[data-env="production"] [data-role="replicas"]'
        )
        page.wait_for_selector('.chart[data-chart="replicas"] canvas')
        page.wait_for_function(
            "() => Number(document.querySelector('.chart[data-chart=\"replicas\"]')"
            ".dataset.points || 0) >= 2", timeout=15000)  # fmt: skip
        assert page.locator('.chart[data-chart="forecast"] canvas').count() == 1
        assert (
            page.locator('[data-card="decisions"] tr[data-decision="TooFewReplicas"]').count() >= 1
        )
        # set a policy for another environment from the page (audited like the CLI)
        form = page.locator('[data-card="new-policy"] form')
        form.locator('input[name="env"]').fill("production-eu")  # predictive by default
        assert form.locator('input[name="predictive"]').is_checked()
        form.locator('input[name="env"]').fill("staging")
        assert not form.locator('input[name="predictive"]').is_checked()
        form.locator('input[name="min"]').fill("0")
        form.locator('input[name="max"]').fill("3")
        form.locator('input[name="schedule"]').fill(
            "Mon-Fri 08:00-20:00 Europe/Berlin min=1; otherwise 0"
        )
        form.locator('button[type="submit"]').click()
        page.wait_for_selector('[data-env="staging"]', timeout=15000)
        shoot(page, "scaling")
        assert not crashes, crashes
    finally:
        context.close()
    audit = httpx.get(agent.url + "/api/events", params={"kind": "audit"}).json()
    assert any(a["data"]["target"] == "staging" and a["data"]["result"] == "ok" for a in audit)


def test_decisions_apply_through_the_deployer_to_the_platform(
    start_agent: Any, agent_env: dict[str, str], tmp_path: Path
) -> None:
    """With a platform configured, the agent's decisions are applied through the deployer's
    adapter (here the local Render API), under its lock, with audit and replicas events."""
    from tests.deployer.conftest import write_app
    from tests.fakes.render import FakeRender

    with FakeRender(instances=2) as render:
        app_dir = write_app(tmp_path / "shop", {"production": render}, token_in_file=True)
        agent_env["FASTMANGO_SCALE__INTERVAL"] = "1s"
        agent = start_agent("--interval", "1", app_dir=app_dir)
        out = cli(agent, "scale", "--env=production", "--min=4", "--max=6", "--cpu=70%",
                  "--no-predictive", "--reason", "launch day")  # fmt: skip
        assert "dry-run" not in out.stdout
        deadline = time.monotonic() + 20
        while render.num_instances != 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert render.num_instances == 4  # from 2: TooFewReplicas, applied on Render
        st = wait_decided(agent, "production")
        assert st["dry_run"] is False and st["desired"] == 4
        replicas = httpx.get(agent.url + "/api/events", params={"kind": "replicas"}).json()
        assert replicas[0]["data"]["env"] == "production"
        assert replicas[0]["data"]["replicas"] == 4 and replicas[0]["data"]["platform"] == "render"
        audit = httpx.get(agent.url + "/api/events", params={"kind": "audit"}).json()
        scaled = [a["data"] for a in audit if a["data"]["action"] == "scale"]
        assert scaled and scaled[0]["result"] == "ok" and scaled[0]["who"] == "fastmango-scaler"
        assert "rnd_testtoken123" not in agent.output()
