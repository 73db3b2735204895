"""The alerts service in-process over a real store and exporter, with a clock the test
moves: pending → firing → one Slack message → restart → no duplicate → resolve updates
the same message; no data is its own state; silences and inhibition through the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmango.agent.alerts.service import AlertsService
from fastmango.agent.api import create_app
from fastmango.agent.daemon import Agent
from fastmango.agent.settings import Settings
from fastmango.series import Sample
from tests.fakes.slack import TOKEN, FakeSlack

T0 = 1_790_000_000.0
RATIO = "node_filesystem_avail_bytes / node_filesystem_size_bytes"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def settings(tmp: Path, slack: FakeSlack, **alerts: Any) -> Settings:
    cfg: dict[str, Any] = {
        "evaluation_interval": 3600,
        "group_wait": 0,
        "group_interval": 5,
        "retries": 1,
        "builtin_rules": False,
        "rules": [
            {
                "name": "HighErrorRatio",
                "expr": "http_error_ratio > 0.05",
                "for": "10s",
                "clear": 0.02,
                "severity": "critical",
                "summary": "{{ $value | humanizePercentage }} of requests fail",
            }
        ],
        "slack": {"token": TOKEN, "channel": "#alerts", "api_url": slack.api_url},
    }
    cfg.update(alerts)
    return Settings.model_validate({"state_dir": str(tmp / "state"), "alerts": cfg})


class Harness:
    """An agent (store, exporter, API) with the alerts service, driven by hand."""

    def __init__(self, cfg: Settings, clock: Clock) -> None:
        self.clock = clock
        self.svc = AlertsService(cfg)
        self.agent = Agent(cfg, collectors=[], clock=clock, services={"alerts": self.svc})

    async def start(self) -> None:
        self.agent.store.open()
        await self.svc.start(self.agent)
        await self.svc.ready()
        await self.settle()

    async def settle(self) -> None:
        while self.svc._sends:
            await asyncio.gather(*list(self.svc._sends))

    async def at(self, t: float, ratio: float | None) -> None:
        self.clock.now = T0 + t
        if ratio is None:
            self.agent.exporter.drop("app")
        else:
            self.agent.publish("app", [Sample("http_error_ratio", (), ratio, self.clock.now)])
        await self.svc.tick()
        await self.settle()

    async def stop(self, graceful: bool = True) -> None:
        if graceful:
            await self.svc.stop()
        else:  # as after kill -9: no checkpoint, only what was written so far
            assert self.svc._task is not None
            self.svc._task.cancel()
            await asyncio.gather(self.svc._task, return_exceptions=True)
        self.agent.store.close()

    def state(self) -> list[tuple[str, str]]:
        return [(a["labels"]["alertname"], a["state"]) for a in self.svc.snapshot()["alerts"]]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.mark.parametrize("graceful", [True, False], ids=["graceful", "kill"])
async def test_restart_neither_resends_nor_forgets(
    tmp_path: Path, slack: FakeSlack, clock: Clock, graceful: bool
) -> None:
    cfg = settings(tmp_path, slack)
    h = Harness(cfg, clock)
    await h.start()
    await h.at(0, 0.10)
    assert h.state() == [("HighErrorRatio", "pending")]
    await h.at(5, 0.10)
    assert not slack.calls("chat.postMessage")
    await h.at(10, 0.12)
    assert h.state() == [("HighErrorRatio", "firing")]
    assert len(slack.calls("chat.postMessage")) == 1
    ts = next(iter(slack.messages))
    await h.at(20, 0.12)  # group unchanged: nothing more
    await h.stop(graceful)

    h2 = Harness(cfg, clock)
    await h2.start()
    assert h2.state() == [("HighErrorRatio", "firing")]
    await h2.at(30, 0.11)
    await h2.at(40, 0.03)  # under 0.05 but over the clear level: still firing
    assert h2.state() == [("HighErrorRatio", "firing")]
    assert len(slack.calls("chat.postMessage")) == 1 and not slack.calls("chat.update")
    await h2.at(50, 0.01)
    assert h2.state() == [("HighErrorRatio", "resolved")]
    assert len(slack.calls("chat.postMessage")) == 1
    assert len(slack.calls("chat.update")) == 1
    assert slack.messages[ts].text.startswith("✅ [RESOLVED] HighErrorRatio")
    await h2.stop(graceful)

    h3 = Harness(cfg, clock)  # the resolve went out: a third start sends nothing again
    await h3.start()
    await h3.at(60, 0.0)
    await h3.at(70, 0.0)
    assert len(slack.calls("chat.postMessage")) == 1 and len(slack.calls("chat.update")) == 1
    events = h3.agent.store.events("alert", limit=200)
    kinds = [e["data"]["type"] for e in reversed(events)]
    assert kinds.count("notification") == 2
    transitions = [
        (e["data"]["from"], e["data"]["to"])
        for e in reversed(events)
        if e["data"]["type"] == "state"
    ]
    assert transitions == [("inactive", "pending"), ("pending", "firing"), ("firing", "resolved")]
    await h3.stop()


async def test_resolve_while_down_is_not_lost(
    tmp_path: Path, slack: FakeSlack, clock: Clock
) -> None:
    cfg = settings(tmp_path, slack)
    h = Harness(cfg, clock)
    await h.start()
    await h.at(0, 0.2)
    await h.at(10, 0.2)
    await h.stop()
    h2 = Harness(cfg, clock)
    await h2.start()
    await h2.at(600, None)  # after a restart the series is not there yet: no data, frozen
    assert h2.state() == [("HighErrorRatio", "firing")]
    assert h2.svc.snapshot()["rules"][0]["state"] == "nodata"
    await h2.at(610, 0.0)
    assert h2.state() == [("HighErrorRatio", "resolved")]
    assert [c.status for c in slack.calls("chat.update")] == [200]
    await h2.stop()


async def test_no_data_is_a_state_and_can_alert(
    tmp_path: Path, slack: FakeSlack, clock: Clock
) -> None:
    rules = [
        {
            "name": "ErrorLogs",
            "expr": 'log_lines_per_minute{level="error"} > 10',
            "for": "30s",
            "no_data": "alert",
        }
    ]
    h = Harness(settings(tmp_path, slack, rules=rules), clock)
    await h.start()
    await h.at(0, None)
    snap = h.svc.snapshot()
    assert snap["rules"][0]["state"] == "nodata"
    assert h.state() == [("ErrorLogs", "pending")]
    await h.at(30, None)
    assert h.state() == [("ErrorLogs", "firing")]
    assert "alertstate" in h.svc.snapshot()["alerts"][0]["labels"]
    assert len(slack.calls("chat.postMessage")) == 1
    body = h.agent.exporter.body()[0].decode()
    assert 'fastmango_alert_rule_nodata{rule="ErrorLogs"} 1.0' in body
    assert 'fastmango_alert_notifications_total{channel="slack",result="ok"} 1.0' in body
    await h.stop()


async def test_failing_channel_is_counted_and_never_blocks(
    tmp_path: Path, slack: FakeSlack, clock: Clock
) -> None:
    cfg = settings(tmp_path, slack)
    h = Harness(cfg, clock)
    await h.start()
    slack.next("slow", seconds=3)
    await h.at(0, 0.2)
    h.clock.now = T0 + 10
    loop = asyncio.get_running_loop()
    started = loop.time()
    h.agent.publish("app", [Sample("http_error_ratio", (), 0.2, h.clock.now)])
    await h.svc.tick()  # fires and starts the send; does not wait for Slack
    assert loop.time() - started < 1.5 and h.svc._sends  # Slack answers after 3 s
    await h.settle()
    assert len(slack.calls("chat.postMessage")) == 1
    slack.token = "xoxb-rotated"  # now every call fails: invalid_auth
    await h.at(20, 0.2)
    await h.at(30, 0.0)  # the resolve fails
    health = h.svc.snapshot()["channels"][0]
    assert health["up"] is False and "invalid_auth" in health["last_error"]
    body = h.agent.exporter.body()[0].decode()
    assert 'fastmango_alert_notifications_total{channel="slack",result="failed"} 1.0' in body
    assert 'fastmango_alert_channel_up{channel="slack"} 0.0' in body
    slack.token = TOKEN
    await h.at(36, 0.0)  # retried at the next group_interval
    assert slack.messages[next(iter(slack.messages))].text.startswith("✅")
    await h.stop()


async def test_inhibition_and_silence_api(tmp_path: Path, slack: FakeSlack, clock: Clock) -> None:
    rules = [
        {"name": "DiskLow", "alertname": "Disk", "expr": RATIO + " < 0.2", "severity": "warning"},
        {
            "name": "DiskCritical",
            "alertname": "Disk",
            "expr": RATIO + " < 0.05",
            "severity": "critical",
        },
    ]
    cfg = settings(tmp_path, slack, rules=rules, group_by=["alertname", "severity"])
    h = Harness(cfg, clock)
    await h.start()
    h.clock.now = T0
    fs = (("mountpoint", "/"),)
    h.agent.exporter.update(
        "disk",
        [
            Sample("node_filesystem_avail_bytes", fs, 1.0, T0),
            Sample("node_filesystem_size_bytes", fs, 100.0, T0),
        ],
    )
    await h.svc.tick()
    await h.settle()
    snap = h.svc.snapshot()
    muted = {a["severity"]: a["muted"] for a in snap["alerts"]}
    assert muted["critical"] is None and muted["warning"].startswith("inhibited by")
    assert len(slack.calls("chat.postMessage")) == 1
    assert "CRITICAL" not in slack.messages[next(iter(slack.messages))].text  # header has the emoji
    transport = httpx.ASGITransport(app=create_app(h.agent))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9871") as c:
        r = await c.post(
            "/api/alerts/silences",
            json={"match": ["mountpoint=/"], "duration": "1h", "reason": "resize"},
        )
        assert r.status_code == 200, r.text
        sid = r.json()["id"]
        assert r.json()["ends_at"] == pytest.approx(T0 + 3600)
        bad = await c.post("/api/alerts/silences", json={"rule": "Nope", "reason": "x"})
        assert bad.status_code == 400 and "no rule named 'Nope'" in bad.json()["detail"]
        bad = await c.post("/api/alerts/silences", json={"match": ["oops"], "reason": "x"})
        assert bad.status_code == 400 and "expected label=value" in bad.json()["detail"]
        snap = (await c.get("/api/alerts")).json()
        assert all(a["muted"] for a in snap["alerts"]) and snap["silences"][0]["id"] == sid
        r = await c.delete(f"/api/alerts/silences/{sid}")
        assert r.status_code == 200
        assert (await c.delete(f"/api/alerts/silences/{sid}")).status_code == 404
        h.agent.store.flush()  # events are written by the store's thread: wait for them
        hist = (await c.get("/api/alerts/history")).json()
        assert {"state", "notification", "silence", "unsilence"} <= {
            e["data"]["type"] for e in hist
        }
        export = await c.get("/api/alerts/export?format=prometheus")
        assert export.status_code == 200 and 'alert: "Disk"' in export.text
    h.agent.store.flush()
    audits = [e["data"] for e in h.agent.store.events("audit")]
    assert [(a["action"], a["result"]) for a in reversed(audits)] == [
        ("alerts.silence", "ok"),
        ("alerts.silence", "refused"),
        ("alerts.silence", "refused"),
        ("alerts.unsilence", "ok"),
        ("alerts.unsilence", "not found"),
    ]
    await h.stop()


async def test_send_event_and_test_channels(tmp_path: Path, slack: FakeSlack, clock: Clock) -> None:
    h = Harness(settings(tmp_path, slack), clock)
    await h.start()
    svc: Any = h.agent.services["alerts"]
    send: Callable[..., Any] = svc.send_event
    await send(
        title="Rollback",
        text="production rolled back to v41: health check failed",
        severity="critical",
        labels={"env": "production"},
    )
    msg = slack.messages[next(iter(slack.messages))]
    assert "Rollback" in msg.text and "rolled back to v41" in msg.text
    out = await svc.test_channels()
    assert out["slack"]["ok"] is True
    slack.token = "other"
    out = await svc.test_channels()
    assert out["slack"]["ok"] is False and "invalid_auth" in out["slack"]["error"]
    await h.stop()
