"""The agent's scaling service over a real state store: observations, decisions,
dry-run, apply with audit, the forecaster fitted in a real worker process."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastmango.agent.scaling.service import ScalingService
from fastmango.agent.settings import Settings
from fastmango.agent.store import Store
from fastmango.deployer.platform import Instance, Status
from fastmango.scaler.policy import Policy, Predictive, Targets
from fastmango.series import Sample

NOW = 1_800_000_000.0


class Host:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.specs: dict[str, Any] = {}
        self.url = "http://127.0.0.1:0"
        self.services: dict[str, Any] = {}
        self.published: list[list[Sample]] = []
        self.now = NOW

    def clock(self) -> float:
        return self.now

    def publish(self, source: str, samples: list[Sample] | None) -> None:
        self.published.append(samples or [])


class FakePlatform:
    """A platform whose instances are all ready (the deployer's adapters do the real I/O)."""

    name = "fly"

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    async def status(self) -> Status:
        inst = tuple(Instance(f"m{i}", "started", True, started_at=NOW - 3600)
                     for i in range(self.replicas))  # fmt: skip
        return Status(None, self.replicas, self.replicas, inst)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db", clock=lambda: NOW)
    s.open()
    yield s
    s.close()


def settings(**env: Any) -> Settings:
    return Settings.model_validate({"state_dir": "/tmp", "environments": env})


def load(store: Store, cpu: float, rps: float) -> None:
    kinds: dict[str, Any] = {"fastmango_container_cpu_utilization_ratio": "gauge",
                             "http_requests_per_second": "gauge"}  # fmt: skip
    store.append([Sample("fastmango_container_cpu_utilization_ratio", (), cpu, NOW - 10),
                  Sample("http_requests_per_second", (), rps, NOW - 10)], kinds)  # fmt: skip
    store.flush()


async def test_dry_run_without_platform(store: Store) -> None:
    host = Host(settings(), store)
    svc = ScalingService(host.settings)
    svc.host = host  # type: ignore[assignment]
    load(store, 0.9, 120.0)
    svc.set_policy("production", Policy(min=1, max=10, targets=Targets(cpu=70)), "tester")
    before = svc.status()["environments"]["production"]  # why dry-run, before any tick
    assert before["dry_run"] is True and "no platform" in before["dry_run_reason"]
    out = await svc.tick(NOW)
    d = out["production"]
    assert (d.current, d.replicas, d.reason) == (1, 2, "ScaleUp")
    store.flush()
    ev = store.events("scaling")[0]["data"]
    assert {"env", "current", "desired", "applied", "dry_run", "reason", "message", "inputs",
            "forecast"} <= set(ev)  # fmt: skip
    assert ev["env"] == "production" and ev["desired"] == 2
    assert ev["applied"] is False and ev["dry_run"] is True
    assert "no platform is configured" in ev["dry_run_reason"]
    assert ev["inputs"]["cpu"] == pytest.approx(90.0) and ev["inputs"]["rps"] == 120.0
    names = {s.name for s in host.published[-1]}
    assert "fastmango_scaling_desired_replicas" in names
    st = svc.status()["environments"]["production"]
    assert st["desired"] == 2 and st["dry_run"] is True


async def test_apply_with_platform_and_audit(store: Store) -> None:
    host = Host(settings(production={"platform": "fly", "app": "shop", "size": "shared-1x"}),
                store)  # fmt: skip
    calls: list[tuple[str, int, str, str]] = []

    async def apply(env: str, replicas: int, who: str, reason: str) -> None:
        calls.append((env, replicas, who, reason))

    platform = FakePlatform(3)
    svc = ScalingService(host.settings, apply=apply, platforms=lambda env: platform)
    svc.host = host  # type: ignore[assignment]
    load(store, 0.9, 300.0)
    svc.set_policy("production", Policy(min=2, max=10, targets=Targets(cpu=70)), "tester")
    d = (await svc.tick(NOW))["production"]
    assert (d.current, d.replicas) == (3, 4)
    assert calls == [("production", 4, "fastmango-scaler", calls[0][3])]
    assert calls[0][3].startswith("ScaleUp")
    store.flush()
    assert store.events("scaling")[0]["data"]["applied"] is True
    audit = store.events("audit")[0]["data"]
    assert (audit["action"], audit["target"], audit["result"], audit["replicas"]) == (
        "scale", "production", "ok", 4)  # fmt: skip
    rep = store.events("replicas")[0]["data"]
    assert rep == {"env": "production", "platform": "fly", "replicas": 4, "size": "shared-1x",
                   "source": "scaler"}  # fmt: skip

    # the policy asks for dry-run: nothing applied
    svc.set_policy("production", Policy(min=2, max=10, targets=Targets(cpu=70), dry_run=True),
                   "tester")  # fmt: skip
    host.now += 15
    await svc.tick(host.now)
    assert len(calls) == 1


async def test_failed_apply_is_audited_and_loop_goes_on(store: Store) -> None:
    host = Host(settings(production={"platform": "fly", "app": "shop"}), store)

    async def apply(env: str, replicas: int, who: str, reason: str) -> None:
        raise RuntimeError("platform answered 503")

    svc = ScalingService(host.settings, apply=apply, platforms=lambda env: FakePlatform(1))
    svc.host = host  # type: ignore[assignment]
    load(store, 0.95, 10.0)
    svc.set_policy("production", Policy(min=1, max=10, targets=Targets(cpu=50)), "tester")
    d = (await svc.tick(NOW))["production"]
    assert d.replicas == 2
    store.flush()
    assert store.events("audit")[0]["data"]["result"] == "error"
    assert "503" in store.events("audit")[0]["data"]["error"]
    assert store.events("scaling")[0]["data"]["applied"] is False
    assert "503" in (svc.status()["environments"]["production"]["error"] or "")


async def test_policies_survive_a_restart(store: Store) -> None:
    host = Host(settings(), store)
    svc = ScalingService(host.settings)
    svc.host = host  # type: ignore[assignment]
    svc.set_policy("staging", Policy(min=0, max=3, schedule="Mon-Fri 08:00-20:00 UTC min=1; "
                                     "otherwise 0"), "tester")  # fmt: skip
    svc.set_policy("gone", Policy(), "tester")
    svc.set_policy("gone", None, "tester")
    store.flush()
    again = ScalingService(host.settings)
    await again.start(host)  # type: ignore[arg-type]
    await again.stop()
    assert set(again.envs) == {"staging"}
    assert again.envs["staging"].policy.schedule is not None


async def test_predictive_short_history_falls_back(store: Store) -> None:
    host = Host(settings(), store)
    svc = ScalingService(host.settings)
    svc.host = host  # type: ignore[assignment]
    load(store, 0.5, 100.0)
    svc.set_policy("production", Policy(targets=Targets(cpu=70),
                                        predictive=Predictive(enabled=True)), "tester")  # fmt: skip
    d = (await svc.tick(NOW))["production"]
    assert d.forecast_status == "ForecastHistoryShort"
    assert "waiting for history" in svc.status()["forecaster"]["status"]


async def test_forecaster_fits_in_a_worker_and_is_used(store: Store) -> None:
    import sys

    host = Host(settings(), store)
    svc = ScalingService(host.settings)
    svc.host = host  # type: ignore[assignment]
    pol = Policy(min=1, max=20, targets=Targets(rps=10),
                 predictive=Predictive(enabled=True, min_history=86400))  # fmt: skip
    svc.set_policy("production", pol, "tester")
    minutes = int(1.2 * 1440)
    start = NOW // 60 * 60 - 60 * minutes
    daily = [[start + 60 * i, 50 + 40 * math.sin(2 * math.pi * i / 1440)] for i in range(minutes)]
    svc.history.extend(daily)
    had_sklearn = "sklearn" in sys.modules
    await svc._train(NOW)
    assert svc.model is not None, svc.train_status
    assert svc.model.rows > 100 and svc.model.horizon >= 2
    assert ("sklearn" in sys.modules) is had_sklearn  # fitted in the worker, not here
    load(store, 0.5, 50.0)
    d = (await svc.tick(NOW))["production"]
    assert d.forecast_status == "used", d.message
    fc = svc.status()["environments"]["production"]["forecast"]
    assert fc["peak"] > 0 and fc["capacity"] == 10
    assert d.proposals["forecast"] == math.ceil(fc["peak"] / 10 - 1e-9)
