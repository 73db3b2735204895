"""The whole scenario with real processes: a uvicorn app with FastmangoMiddleware, a
`fastmango agent` scraping it, and the local Slack. The app's error ratio rises →
pending → firing → one Slack message; the agent is restarted while it fires (no second
message), stopped, the app recovers while it is down, and the restarted agent updates
the same message to resolved (the resolve is not lost)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, free_port, wait_for, wait_http
from tests.fakes.slack import TOKEN, FakeSlack
from tests.realservers import stop_process

pytestmark = pytest.mark.integration


class Traffic:
    """Requests to the app from a thread: every other one fails while ``failing``."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.failing = False
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(timeout=5) as c:
            while not self.stop.is_set():
                path = "/fail" if self.failing and self.sent % 2 else "/items/1"
                with contextlib.suppress(httpx.HTTPError):
                    c.get(self.base + path)
                self.sent += 1
                time.sleep(0.02)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMANGO_")}
    env["TMPDIR"] = str(tmp_path)
    log = (tmp_path / "uvicorn.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.collector.appfixture.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/items/1", timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)
        log.close()


def alerts_of(url: str) -> list[dict[str, Any]]:
    return list(httpx.get(url + "/api/alerts", timeout=5).json()["alerts"])


def test_error_ratio_to_slack_across_restarts(tmp_path: Path, app: str, start_agent: Any) -> None:
    with FakeSlack() as slack:
        app_dir = tmp_path / "app"
        app_dir.mkdir()
        (app_dir / "fastmango.toml").write_text(f"""
[collectors]
interval = "1s"
[collectors.app]
metrics_urls = ["{app}/metrics"]
[alerts]
evaluation_interval = "0.5s"
group_wait = "0s"
group_interval = "1s"
builtin_rules = false
[[alerts.rules]]
name = "HighErrorRatio"
expr = "http_error_ratio > 0.05"
for = "2s"
severity = "critical"
summary = "{{{{ $value | humanizePercentage }}}} of requests fail"
[alerts.slack]
token = "{TOKEN}"
channel = "#alerts"
api_url = "{slack.api_url}"
""")
        traffic = Traffic(app)
        traffic.thread.start()
        try:
            agent = start_agent(app_dir=app_dir)
            traffic.failing = True
            states = []

            def firing() -> bool:
                now = [a["state"] for a in alerts_of(agent.url)]
                if now and now[-1] not in states[-1:]:
                    states.append(now[-1])
                return now == ["firing"]

            wait_for(firing, 20, "the alert to fire")
            assert states[:2] == ["pending", "firing"]
            wait_for(lambda: slack.messages, 10, "the Slack message")
            ts = next(iter(slack.messages))
            assert slack.messages[ts].text.startswith("🔴 [FIRING:1] HighErrorRatio")

            # restart while it fires: it comes back firing and sends nothing new
            agent.stop()
            agent = start_agent(app_dir=app_dir)
            assert [a["state"] for a in alerts_of(agent.url)] == ["firing"]
            time.sleep(3)
            assert len(slack.calls("chat.postMessage")) == 1 and not slack.calls("chat.update")

            # the app recovers while the agent is down; the restarted agent resolves
            agent.stop()
            traffic.failing = False
            time.sleep(1.5)
            agent = start_agent(app_dir=app_dir)
            wait_for(lambda: slack.calls("chat.update"), 20, "the resolve")
            time.sleep(1.5)
            assert len(slack.calls("chat.postMessage")) == 1
            assert len(slack.calls("chat.update")) == 1
            assert slack.messages[ts].text.startswith("✅ [RESOLVED] HighErrorRatio")
            assert [a["state"] for a in alerts_of(agent.url)] == ["resolved"]
            hist = httpx.get(agent.url + "/api/alerts/history", timeout=5).json()
            sent = [
                e["data"]["status"] for e in reversed(hist) if e["data"]["type"] == "notification"
            ]
            assert sent == ["firing", "resolved"]
            metrics = httpx.get(agent.url + "/metrics", timeout=5).text
            assert 'fastmango_alert_notifications_total{channel="slack",result="ok"} 1.0' in metrics
        finally:
            traffic.stop.set()
            traffic.thread.join(5)
