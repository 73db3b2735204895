"""An alert firing across a failover is delivered exactly once: two agents of one fleet
watch one app; the leader posts the firing message to (local) Slack and is killed; the
new leader sends no second firing message and, when the app recovers, updates the very
message the dead leader posted."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alerts.test_scenario import Traffic, app  # noqa: F401  (the app fixture)
from tests.fakes.slack import TOKEN, FakeSlack
from tests.fleet.conftest import fleet_of, wait_for

pytestmark = pytest.mark.integration


def toml(app_url: str, slack_url: str) -> str:
    return f"""
[collectors]
interval = "1s"
[collectors.app]
metrics_urls = ["{app_url}/metrics"]
[alerts]
evaluation_interval = "0.5s"
group_wait = "0s"
group_interval = "1s"
builtin_rules = false
[[alerts.rules]]
name = "HighErrorRatio"
expr = "http_error_ratio > 0.05"
for = "1s"
severity = "critical"
[alerts.slack]
token = "{TOKEN}"
channel = "#alerts"
api_url = "{slack_url}"
"""


def leader(agents: list[Any]) -> Any:
    for a in agents:
        try:
            if fleet_of(a)["is_leader"]:
                return a
        except (httpx.HTTPError, KeyError):
            continue
    return None


def test_an_alert_firing_across_a_failover_is_delivered_exactly_once(
    start_fleet: Any,
    app: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    with FakeSlack() as slack:
        traffic = Traffic(app)
        traffic.thread.start()
        try:
            agents = start_fleet(2, tomls=[toml(app, slack.api_url)] * 2)
            first = wait_for("a leader", lambda: leader(agents), 15)
            traffic.failing = True
            wait_for("the firing message", lambda: slack.calls("chat.postMessage"), 30)
            ts = next(iter(slack.messages))
            first.proc.kill()  # kill -9 of the leader that sent it
            first.proc.wait(10)
            rest = [a for a in agents if a is not first]
            wait_for("a new leader", lambda: leader(rest), 15)
            time.sleep(3)  # the new leader routes its own firing alert: nothing new is sent
            assert len(slack.calls("chat.postMessage")) == 1
            traffic.failing = False
            wait_for("the resolve", lambda: slack.calls("chat.update"), 40)
            time.sleep(2)
            assert len(slack.calls("chat.postMessage")) == 1
            assert len(slack.calls("chat.update")) == 1
            assert slack.messages[ts].text.startswith("✅ [RESOLVED] HighErrorRatio")
        finally:
            traffic.stop.set()
            traffic.thread.join(5)
