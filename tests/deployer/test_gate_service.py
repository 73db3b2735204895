"""The agent's health gate in-process over a real store and the Render fake: a healthy
release passes; a regressing one is rolled back and announced through the alerts
service's ``send_event``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastmango.agent.deploys import actions
from fastmango.agent.deploys.service import DeploysService, create
from fastmango.agent.settings import Settings
from fastmango.agent.store import Store
from fastmango.series import Sample, labels_of
from tests.deployer.conftest import TOKENS
from tests.fakes.render import FakeRender


class Alerts:
    """Stands in for the alerts service at its boundary: records what it was sent."""

    name = "alerts"

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_event(self, **kw: Any) -> None:
        self.sent.append(kw)


def settings_for(tmp: Path, fake: FakeRender) -> Settings:
    return Settings.model_validate(
        {
            "state_dir": str(tmp / "state"),
            "environments": {
                "production": {
                    "platform": "render",
                    "app": fake.service,
                    "token": TOKENS["render"],
                    "api_url": fake.url + "/v1",
                }
            },
            "deploy": {
                "poll_interval": 0.02,
                "gate": {"duration": "3s", "interval": "0.2s", "baseline": "30s", "threshold": 2},
            },
        }
    )


def samples(store: Store, start: float, n: int, err: float, p95: float) -> None:
    rows = []
    for i in range(n):
        t = start + i * 0.2
        rows += [
            Sample("http_error_ratio", labels_of({}), err, t),
            Sample("http_request_duration_p95_seconds", labels_of({}), p95, t),
        ]
    store.append(rows, {"http_error_ratio": "gauge", "http_request_duration_p95_seconds": "gauge"})
    store.flush()


async def wait_verdict(svc: DeploysService, within: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        st = svc.gate_state("production")
        if st and st.get("verdict") not in (None, "running"):
            return st
        await asyncio.sleep(0.05)
    raise AssertionError(f"no verdict: {svc.gate_state('production')}")


async def run_gate(tmp_path: Path, after_err: float, after_p95: float) -> tuple[Any, ...]:
    fake = FakeRender().start()
    settings = settings_for(tmp_path, fake)
    store = Store(settings.store_path)
    store.open()
    alerts = Alerts()
    svc = create(settings)
    assert isinstance(svc, DeploysService)
    host = SimpleNamespace(
        settings=settings, store=store, clock=time.time, services={"alerts": alerts, "deploys": svc}
    )
    try:
        samples(store, time.time() - 20, 100, 0.001, 0.1)
        await svc.start(host)  # type: ignore[arg-type]
        out = await actions.deploy(settings, "production", "img:new", who="cli:test", store=store)
        assert out.result == "ok"
        store.flush()
        samples(store, time.time(), 15, after_err, after_p95)
        verdict = await wait_verdict(svc)
        return verdict, alerts, fake, store
    finally:
        await svc.stop()
        store.close()
        fake.stop()


async def test_healthy_release_passes(tmp_path: Path) -> None:
    verdict, alerts, fake, store = await run_gate(tmp_path, 0.002, 0.11)
    assert verdict["verdict"] == "pass" and verdict["version"] == "v4"
    assert verdict["figures"]["http_error_ratio"]["after"] == 0.002
    assert not alerts.sent and fake.live()["image"]["ref"] == "img:new"
    gates = [e["data"] for e in store.events("gate")]
    assert gates[0]["verdict"] == "pass"


async def test_regression_rolls_back_and_alerts(tmp_path: Path) -> None:
    verdict, alerts, fake, _ = await run_gate(tmp_path, 0.001, 0.9)
    assert verdict["verdict"] == "rolled_back", verdict
    assert verdict["rollback_release"] == "v5"
    assert any(
        "p95 latency 900 ms > 1.5× the previous release's 100 ms" in r for r in verdict["reasons"]
    )
    assert fake.live()["image"]["ref"] == "registry.example.com/shop:1.2"
    assert alerts.sent == [
        {
            "title": "production: v4 rolled back automatically",
            "text": alerts.sent[0]["text"],
            "severity": "warning",
            "labels": {"env": "production", "version": "v4", "source": "health-gate"},
        }
    ]
    assert "health gate: p95 latency" in alerts.sent[0]["text"]
