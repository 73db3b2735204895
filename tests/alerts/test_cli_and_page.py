"""`fastmango alerts …` against a real agent process, `promtool check rules` on the
export, and the dashboard's Alerts page in real headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alerts.conftest import SMTP_PASSWORD, SMTP_USER, Mailbox
from tests.dashboard.conftest import browser, shoot  # noqa: F401  (the module's browser)
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import TOKEN, FakeSlack

CONFIG = """
[collectors]
interval = "1s"
[alerts]
evaluation_interval = "0.5s"
group_wait = "0s"
group_interval = "1s"
retries = 1
builtin_rules = false
[[alerts.rules]]
name = "LoadSeen"
expr = "node_load1 >= 0"
severity = "warning"
summary = "load {{ $value }}"
[[alerts.rules]]
name = "HighErrorRatio"
expr = "http_error_ratio > 0.05"
for = "1m"
"""


def cli(
    app_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastmango.cli", *args],
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def wait_firing(url: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if any(a["state"] == "firing" for a in httpx.get(url + "/api/alerts").json()["alerts"]):
            return
        time.sleep(0.1)
    raise AssertionError("LoadSeen did not fire")


@pytest.fixture
def channels(smtp: Mailbox) -> Iterator[tuple[FakeSlack, FakeDiscord, Mailbox]]:
    with FakeSlack() as slack, FakeDiscord() as discord:
        yield slack, discord, smtp


def test_cli_end_to_end(
    tmp_path: Path,
    start_agent: Any,
    agent_env: dict[str, str],
    channels: tuple[FakeSlack, FakeDiscord, Mailbox],
) -> None:
    slack, discord, smtp = channels
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "fastmango.toml").write_text(
        CONFIG
        + f"""
[alerts.slack]
token = "{TOKEN}"
channel = "#alerts"
api_url = "{slack.api_url}"
[alerts.discord]
webhook_url = "{discord.webhook_url}"
[alerts.email]
host = "{smtp.host}"
port = {smtp.port}
username = "{SMTP_USER}"
password = "{SMTP_PASSWORD}"
to = ["ops@example.com"]
ca_file = "{smtp.ca_file}"
"""
    )
    agent = start_agent(app_dir=app_dir)
    env = dict(agent_env, FASTMANGO_SERVER__PORT=str(agent.port))
    wait_firing(agent.url)

    out = cli(app_dir, "alerts", env=env)
    assert out.returncode == 0, out.stderr
    assert "firing    warning   LoadSeen" in out.stdout
    assert "1 rule without data or failing: HighErrorRatio" in out.stdout

    out = cli(
        app_dir, "alerts", "silence", "LoadSeen", "--for", "30m", "--reason", "known", env=env
    )
    assert out.returncode == 0, out.stderr
    sid = out.stdout.split()[1]
    assert "alertname=LoadSeen" in out.stdout
    muted = [a["muted"] for a in httpx.get(agent.url + "/api/alerts").json()["alerts"]]
    assert muted == [f"silenced by {sid}"]
    bad = cli(app_dir, "alerts", "silence", "--match", "nolabel", "--reason", "x", env=env)
    assert bad.returncode == 1 and "expected label=value" in bad.stderr
    out = cli(app_dir, "alerts", "unsilence", sid, env=env)
    assert out.returncode == 0 and f"silence {sid} ended" in out.stdout

    out = cli(app_dir, "alerts", "test", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    for ch in ("slack: ok", "discord: ok", "email: ok"):
        assert ch in out.stdout
    assert any("FastmangoTest" in m.text for m in slack.messages.values())
    assert smtp.received[-1]["Subject"].startswith("[FIRING:1] FastmangoTest")
    discord.next("500", times=10)
    out = cli(app_dir, "alerts", "test", env=env)
    assert out.returncode == 1 and "discord: FAILED after 2 attempts" in out.stdout

    out = cli(app_dir, "alerts", "history", env=env)
    assert out.returncode == 0
    assert "LoadSeen inactive → firing" in out.stdout and "silence " + sid in out.stdout

    agent.stop()
    out = cli(app_dir, "alerts", env=env)
    assert out.returncode == 1 and "no agent answers" in out.stderr
    audit = [
        line for line in agent.output().splitlines() if "hunter2" in line or SMTP_PASSWORD in line
    ]
    assert audit == []  # no secret in the agent's log


def test_export_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus"
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "fastmango.toml").write_text("""
[[alerts.rules]]
name = "HighErrorRatio"
for = "90s"
[[alerts.rules]]
name = "GpuTemperatureHigh"
enabled = false
[[alerts.rules]]
name = "QueueBacklog"
expr = 'sum by (queue) (jobs_waiting{env="prod"}) / on(queue) jobs_capacity >= 0.75'
for = "10m"
keep_firing_for = "5m"
severity = "critical"
labels = { team = "payments" }
summary = 'Queue {{ $labels.queue }} at {{ $value | humanizePercentage }} ("full" soon)'
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
    out = cli(app_dir, "alerts", "export", "--format", "prometheus", "-o", "rules.yml", env=env)
    assert out.returncode == 0, out.stderr
    check = subprocess.run(
        [promtool, "check", "rules", str(app_dir / "rules.yml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 11 rules found" in check.stdout
    text = (app_dir / "rules.yml").read_text()
    assert "for: 1m30s" in text and "GpuTemperatureHigh" not in text
    assert (
        'expr: "(sum by (queue) (jobs_waiting{env=\\"prod\\"}) / on(queue) jobs_capacity) >= 0.75"'
        in text
    )
    assert "keep_firing_for: 5m" in text and '"team": "payments"' in text
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "fastmango.toml").write_text('[[alerts.rules]]\nname = "X"\nexpr = "rate(x[5m]) > 1"\n')
    out = cli(bad, "alerts", "export", env=env)
    assert out.returncode == 2 and "alerts" in out.stderr and "rate() at 1" in out.stderr


@pytest.mark.browser
def test_alerts_page(tmp_path: Path, start_agent: Any, browser: Any) -> None:  # noqa: F811
    with FakeSlack() as slack:
        app_dir = tmp_path / "app"
        app_dir.mkdir()
        (app_dir / "fastmango.toml").write_text(
            CONFIG
            + f"""
[alerts.slack]
token = "{TOKEN}"
channel = "#alerts"
api_url = "{slack.api_url}"
"""
        )
        agent = start_agent(app_dir=app_dir)
        wait_firing(agent.url)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        crashes: list[str] = []
        page.on("pageerror", lambda e: crashes.append(str(e)))
        try:
            page.goto(f"{agent.url}/#/alerts")
            page.wait_for_selector('tr[data-alert="LoadSeen"][data-state="firing"]')
            assert page.locator('[data-stat="firing"] .value').inner_text() == "1"
            assert (
                page.locator('tr[data-rule="HighErrorRatio"]').get_attribute("data-rule-state")
                == "nodata"
            )
            assert "no data" in page.locator('tr[data-rule="HighErrorRatio"]').inner_text()
            page.wait_for_selector('tr[data-channel="slack"][data-up="true"]', timeout=10_000)
            shoot(page, "alerts")
            # silence from the row's link and the form
            page.click('tr[data-alert="LoadSeen"] [data-action="silence"]')
            page.fill('input[name="reason"]', "browser test")
            page.click('[data-card="silence-form"] button[type="submit"]')
            page.wait_for_selector("tr[data-silence]")
            assert "Silence " in page.locator('[data-role="silence-result"]').inner_text()
            page.wait_for_function(
                "() => document.querySelector('[data-stat=muted] .value').textContent === '1'",
                timeout=10_000,
            )
            page.wait_for_selector('tr[data-type="silence"]', timeout=10_000)
            shoot(page, "alerts-silenced")
            page.click('[data-action="unsilence"]')
            page.wait_for_function(
                "() => !document.querySelector('tr[data-silence]')", timeout=10_000
            )
            page.click('[data-action="test"]')
            page.wait_for_function(
                "() => document.querySelector('tr[data-type=test]') !== null", timeout=10_000
            )
            assert any("FastmangoTest" in m.text for m in slack.messages.values())
            audit = httpx.get(agent.url + "/api/events?kind=audit").json()
            actions = [e["data"]["action"] for e in audit]
            assert {"alerts.silence", "alerts.unsilence", "alerts.test"} <= set(actions)
        finally:
            context.close()
        assert not crashes, crashes
