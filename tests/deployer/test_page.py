"""The Deploys page and its API on a real agent process: the rollback endpoint needs an
actor and is audited on every path; in real Chromium the page shows environments,
releases and the health gate's charts, and rolls back from the UI after a confirm."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmango.agent.store import Store
from tests.dashboard.conftest import browser as browser  # the module-scoped Chromium
from tests.dashboard.conftest import shoot
from tests.deployer.conftest import events, wait_for, write_app, write_samples
from tests.fakes.render import FakeRender

TOKEN = "d3ploys-t0ken-for-tests"


def agent_for(
    tmp_path: Path, render: FakeRender, start_agent: Any, agent_env: dict[str, str]
) -> tuple[Any, Path]:
    app = write_app(tmp_path / "app", {"production": render}, token_in_file=True)
    agent_env["FASTMANGO_SERVER__TOKEN"] = TOKEN
    return start_agent("--interval", "1", app_dir=app), app


def test_rollback_api_needs_an_actor_and_is_audited(
    tmp_path: Path, render: FakeRender, start_agent: Any, agent_env: dict[str, str]
) -> None:
    agent, app = agent_for(tmp_path, render, start_agent, agent_env)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = agent.url + "/api/deploys/production/rollback"
    assert httpx.post(url, json={}).status_code == 401
    assert not render.calls("POST")
    bad = httpx.post(url, json={"version": "v99"}, headers=auth, timeout=30)
    assert bad.status_code == 400 and "no release v99" in bad.json()["detail"]
    ok = httpx.post(url, json={"version": "v1", "reason": "bad config"}, headers=auth, timeout=30)
    assert ok.status_code == 200, ok.text
    assert (ok.json()["from_version"], ok.json()["to_version"]) == ("v3", "v4")
    assert (
        httpx.post(agent.url + "/api/deploys/nope/rollback", json={}, headers=auth).status_code
        == 404
    )
    audit = wait_for(
        lambda: (lambda r: r if len(r) == 3 else None)(  # the agent's writer
            [a for a in events(app, "audit") if a["action"] == "rollback"]
        ),
        10,
        "3 audit records",
    )
    assert [(a["target"], a["result"]) for a in audit] == [
        ("production", "error"),
        ("production", "ok"),
        ("nope", "error"),
    ]
    assert audit[1]["reason"] == "bad config" and audit[1]["who"] != ""
    overview = httpx.get(agent.url + "/api/deploys", headers=auth).json()
    env = overview["environments"][0]
    assert env["name"] == "production" and env["platform"] == "render" and env["lock"] is None
    assert env["releases"][0]["version"] == "v4"
    rels = httpx.get(agent.url + "/api/deploys/production/releases", headers=auth).json()
    assert [r["version"] for r in rels[:2]] == ["v4", "v3"] and rels[0]["who"] == audit[1]["who"]


@pytest.mark.browser
def test_page_shows_gate_charts_and_rolls_back(
    tmp_path: Path, render: FakeRender, start_agent: Any, agent_env: dict[str, str], browser: Any
) -> None:
    app = write_app(tmp_path / "app", {"production": render}, token_in_file=True)
    now = time.time()
    started, live = now - 60, now - 55
    write_samples(
        app,
        [(now - 120 + i, 0.002, 0.12) for i in range(60)]
        + [(live + i, 0.2, 0.5) for i in range(50)],
    )
    store = Store(app / ".fastmango" / "state.db")
    store.open()
    store.append_event(
        "gate",
        {
            "env": "production",
            "version": "v3",
            "release_id": render.live()["id"],  # type: ignore[index]
            "image": "registry.example.com/shop:1.2",
            "previous": "v2",
            "verdict": "rolled_back",
            "reasons": ["error ratio 20.00% > 5.00% (previous release 0.20%)"],
            "checks": 2,
            "failed": 2,
            "started": started,
            "live_at": live,
            "baseline_start": now - 120,
            "ends": now + 240,
            "decided": now - 5,
            "rollback": "rolled back to v2",
            "rollback_release": "v4",
            "figures": {},
        },
        ts=now - 5,
    )
    store.flush()
    store.close()
    agent_env["FASTMANGO_SERVER__TOKEN"] = TOKEN
    agent = start_agent("--interval", "1", app_dir=app)

    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    crashes: list[str] = []
    page.on("pageerror", lambda e: crashes.append(str(e)))
    page.on("console", lambda m: crashes.append(m.text) if m.type == "error" else None)
    try:
        page.goto(agent.url + "/#/deploys")
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector('#page[data-page="overview"]')
        page.goto(agent.url + "/#/deploys")
        try:
            page.wait_for_selector('[data-releases="production"] tr[data-release="v3"]')
        except Exception:
            shoot(page, "deploys-failed")
            raise AssertionError(page.inner_text("body")[:2000] + str(crashes)) from None
        assert page.locator('tr[data-release="v3"] .pill').inner_text() == "live"
        gate = page.locator('[data-gate="v3"]')
        assert gate.get_attribute("data-verdict") == "rolled_back"
        assert "error ratio 20.00%" in gate.inner_text()
        for name in ("http_error_ratio", "http_request_duration_p95_seconds"):
            chart = gate.locator(f'[data-chart="{name}"]')
            chart.locator("canvas").wait_for()
            assert int(chart.get_attribute("data-points") or 0) > 10  # the "before" line
        shoot(page, "deploys")

        page.click('tr[data-release="v2"] [data-action="rollback-to"]')
        dialog = page.locator('[role="alertdialog"]')
        assert "Roll back production to v2?" in dialog.inner_text()
        page.click('[data-action="cancel"]')
        assert page.locator('[role="alertdialog"]').count() == 0
        assert not render.calls("POST")  # cancelled: nothing sent

        page.click('tr[data-release="v2"] [data-action="rollback-to"]')
        page.click('[data-action="confirm"]')
        done = page.wait_for_selector('[data-rollback="ok"]', timeout=30000)
        assert "v3 → v4" in done.inner_text()
        page.wait_for_selector('tr[data-release="v4"]')
        shoot(page, "deploys-rolled-back")
    finally:
        context.close()
    assert not crashes, crashes
    assert render.live()["image"]["ref"] == "registry.example.com/shop:1.1"  # type: ignore[index]
    audit = wait_for(
        lambda: [a for a in events(app, "audit") if a["action"] == "rollback"],
        10,
        "the audit record",
    )
    assert audit[-1]["result"] == "ok" and audit[-1]["who"].startswith("dashboard")
