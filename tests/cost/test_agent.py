"""The cost part inside the agent: the service publishes the gauges the budget alert
reads, the API answers from a seeded state store, config errors name key and file."""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmango.agent import config
from fastmango.agent.api import create_app
from fastmango.agent.daemon import Agent
from fastmango.agent.settings import Settings
from fastmango.errors import ConfigError

from .seed import CONFIG, seed


def settings_for(state: Path, extra: dict[str, Any] | None = None) -> Settings:
    data = tomllib.loads(CONFIG)
    data["state_dir"] = str(state)
    data.update(extra or {})
    return Settings.model_validate(data)


@pytest.fixture
async def agent(seeded_state: Path) -> AsyncIterator[Agent]:
    a = Agent(settings_for(seeded_state), collectors=[])
    a.store.open()
    yield a
    for svc in a.services.values():
        await svc.stop()
    a.store.close()


@pytest.fixture
async def client(agent: Agent) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(agent))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9871") as c:
        yield c


async def test_service_publishes_the_gauges_the_budget_alert_compares(agent: Agent) -> None:
    svc = agent.services["cost"]
    await svc.start(agent)
    for _ in range(200):
        if getattr(svc, "latest", None) is not None:
            break
        await asyncio.sleep(0.02)
    agent.exporter.render_pending()
    text = agent.exporter.body()[0].decode()
    rows = {r["env"]: r for r in svc.latest["environments"]}  # type: ignore[attr-defined]
    prod = rows["production"]
    assert (
        f'fastmango_cost_month_to_date_dollars{{env="production"}} {prod["known_month_to_date"]}'
        in text
    )
    assert (
        f'fastmango_cost_month_projected_dollars{{env="production"}} {prod["known_projected"]}'
        in text
    )
    assert 'fastmango_cost_budget_dollars{env="production"} 60.0' in text
    assert 'fastmango_cost_budget_dollars{env="staging"} 10.0' in text
    # preview has no history: unknown, so no figure at all (never a zero)
    assert 'env="preview"' not in text
    assert rows["preview"]["month_to_date"] is None


async def test_cost_api(agent: Agent, client: httpx.AsyncClient) -> None:
    r = await client.get("/api/cost")
    assert r.status_code == 200, r.text
    doc = r.json()
    rows = {row["env"]: row for row in doc["environments"]}
    assert set(rows) == {"production", "staging", "preview"}
    prod = rows["production"]
    assert prod["platform"] == "render" and prod["replicas"] == 3 and prod["service"] == "shop"
    # 2 instances of $25/month until 2 days ago, 3 since: between 2 and 3 instance-months
    month_days = (doc["month_end"] - doc["month_start"]) / 86400
    elapsed = (doc["generated_at"] - doc["month_start"]) / 86400
    lo, hi = 2 * 25 * elapsed / month_days, 3 * 25 * elapsed / month_days
    assert lo - 0.01 <= prod["month_to_date"] <= hi + 0.01
    assert prod["month_to_date"] <= prod["projected"] <= 3 * 25 + 0.01
    egress = next(ln for ln in prod["lines"] if ln["item"] == "egress")
    assert egress["quantity_month_to_date"] > 0  # measured (eth0, not lo) ...
    assert "render/egress_gb" in egress["unknown"]  # ... but Render's price is unknown
    assert rows["staging"]["lines"][1]["unknown"].startswith("egress of staging is not measured")
    assert any(e["key"] == "render/size/standard" for e in doc["stale_prices"])
    one = (await client.get("/api/cost", params={"env": "staging"})).json()
    assert [row["env"] for row in one["environments"]] == ["staging"]
    missing = await client.get("/api/cost", params={"env": "nope"})
    assert missing.status_code == 404 and "production" in missing.json()["detail"]


async def test_savings_api(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/cost/savings")
    assert r.status_code == 200, r.text
    doc = r.json()
    kinds = {(s["kind"], s["env"]) for s in doc["savings"]}
    assert ("rightsize", "production") in kinds
    assert ("idle-schedule", "staging") in kinds
    assert ("platform", "production") in kinds
    assert ("predictive", "production") in kinds
    for s in doc["savings"]:
        assert s["dollars_per_month"] > 0 and s["evidence"] and s["action"]
    idle = next(s for s in doc["savings"] if s["kind"] == "idle-schedule")
    assert idle["evidence"]["schedule"] == "Mon-Fri 08:00-20:00 UTC min=1; otherwise 0"
    right = next(s for s in doc["savings"] if s["kind"] == "rightsize")
    # the seeded instance peaks at 0.25 cores and 260 MiB
    assert 0.2 <= right["evidence"]["cpu_p95_cores"] <= 0.26
    assert right["evidence"]["recommended"]["size"] == "starter"
    pred = next(s for s in doc["savings"] if s["kind"] == "predictive")
    # seeded: 60 req/s per instance at the daily peak, 2 instances, 3 in the last 2 days
    assert 100 <= pred["evidence"]["peak_rps"] <= 180.01
    assert pred["evidence"]["minutes_replayed"] >= 3 * 1440 - 2
    assert {"env": "preview", "kind": "all", "reason": "no replicas events: usage unknown"} in doc[
        "skipped"
    ]
    best = {}
    for s in doc["savings"]:
        best[s["env"]] = max(best.get(s["env"], 0.0), s["dollars_per_month"])
    assert doc["total_dollars_per_month"] == pytest.approx(sum(best.values()), abs=0.02)


async def test_prices_api(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/cost/prices")).json()
    by_key = {e["key"]: e for e in doc["entries"]}
    assert by_key["render/size/standard"]["stale"] is True
    assert by_key["railway/vcpu_minute"]["stale"] is False
    assert by_key["fly/gpu/a10"]["deprecated"] is True
    assert doc["stale_after_days"] == 180


async def test_overrides_reach_the_bill(tmp_path: Path) -> None:
    state = tmp_path / "state"
    seed(state, time.time(), series=False)
    a = Agent(settings_for(state, {"cost": {"prices": {"render/size/standard": 0.0},
                                            "environment": "production"}}),
              collectors=[])  # fmt: skip
    a.store.open()
    try:
        transport = httpx.ASGITransport(app=create_app(a))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            doc = (await c.get("/api/cost", params={"env": "production"})).json()
    finally:
        a.store.close()
    prod = doc["environments"][0]
    assert prod["month_to_date"] == 0.0  # the user's price, not an unknown
    assert prod["complete"] is False  # egress series absent: unknown, not zero
    assert not any(e["key"] == "render/size/standard" for e in doc["stale_prices"])


@pytest.mark.parametrize(
    ("toml", "key", "message"),
    [
        ('[cost.prices]\n"railway/vcpu_minute" = -1\n', "cost.prices", "0 or more"),
        ('[cost.prices]\n"nonsense" = 1\n', "cost.prices", "not a price key"),
        ("[cost]\nbudgets = { production = -5 }\n", "cost.budgets", "0 or more"),
        ("[cost]\ntarget_utilization = 1.5\n", "cost.target_utilization", "1"),
        ("[cost.environments.production]\ncloudrun_billing = 'free'\n",
         "cost.environments.production.cloudrun_billing", "instance"),
    ],
)  # fmt: skip
def test_config_errors_name_key_and_file(tmp_path: Path, toml: str, key: str, message: str) -> None:
    path = tmp_path / "fastmango.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        config.load(cwd=tmp_path, environ={})
    text = str(err.value)
    assert str(path) in text and key in text and message in text, text
