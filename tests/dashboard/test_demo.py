"""`fastmango demo`: the sample app, its traffic, and the whole demo as a real process."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmango.agent.settings import Settings
from fastmango.dashboard.demo import DAY, Traffic, demo_settings
from fastmango.dashboard.demo_app import Chaos, SQLiteItems, create_app
from tests.conftest import free_port

from .conftest import shoot
from .test_browser import PLOT_PIXELS_JS, charts


def test_traffic_follows_a_compressed_day_and_mixes_routes() -> None:
    t = Traffic("http://127.0.0.1:1")
    hour = DAY / 24  # real seconds per simulated hour
    at = {h: t.rate((h - t.start_hour) % 24 * hour) for h in range(24)}
    assert at[13] == max(at.values()) and at[13] == pytest.approx(t.peak, rel=0.01)
    assert at[4] < 0.15 * t.peak  # the night trough
    assert at[8] < at[10]  # the morning ramp
    routes = Counter(t.pick()[1].split("?")[0].rsplit("/", 1)[0] for _ in range(4000))
    assert routes["/api"] > 0.4 * 4000  # /api/items, /api/checkout, /api/chat
    assert routes["/api/items"] > 0.3 * 4000  # /api/items/{id}


def test_demo_settings_scrape_the_app_every_second(tmp_path: Path) -> None:
    user = Settings.model_validate({"server": {"host": "0.0.0.0", "token": "t" * 20}})
    s = demo_settings(user, tmp_path, "http://127.0.0.1:5555")
    assert s.server.host == "127.0.0.1" and s.server.token is None
    assert s.collectors.interval == 1.0 and s.state_dir == tmp_path
    assert s.collectors.app.metrics_urls == ["http://127.0.0.1:5555/metrics"]
    assert s.logs.enabled and s.logs.paths == [str(tmp_path / "shop.log")]


async def test_sample_app_routes_errors_and_metrics(tmp_path: Path) -> None:
    items = SQLiteItems(tmp_path / "shop.sqlite3")
    always = Chaos(slow=0.0, checkout_errors=1.0, chat_errors=0.0)
    transport = httpx.ASGITransport(app=create_app(items, always))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as c:
            listed = (await c.get("/api/items?limit=5")).json()
            assert [i["id"] for i in listed] == [1, 2, 3, 4, 5]
            assert (await c.get("/api/items/3")).json()["id"] == 3
            assert (await c.get("/api/items/9999")).status_code == 404
            failed = await c.post("/api/checkout", json={"item_id": 3, "qty": 1})
            assert failed.status_code == 500
            chat = await c.post("/api/chat", json={"prompt": "which mango is ripest"})
            assert chat.status_code == 200 and chat.json()["tokens"] >= 20
            metrics = (await c.get("/metrics")).text
        assert 'http_route="/api/items/{item_id}"' in metrics
        assert re.search(r'http_response_status_code="500"', metrics)
        assert 'gen_ai_request_model="demo-llm"' in metrics
        assert 'gen_ai_request_model="demo-embed"' in metrics
    finally:
        await items.close()
    never = Chaos(slow=0.0, checkout_errors=0.0, chat_errors=0.0)
    items = SQLiteItems(tmp_path / "shop.sqlite3")
    transport = httpx.ASGITransport(app=create_app(items, never))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as c:
            before = (await c.get("/api/items/7")).json()["stock"]
            ok = (await c.post("/api/checkout", json={"item_id": 7, "qty": 2})).json()
            assert ok["stock_left"] in (before - 2, 100)  # restocked when it ran out
    finally:
        await items.close()


def series(url: str, name: str) -> list[list[float]]:
    resp = httpx.get(url + "/api/series", params={"name": name, "start": "2m"}, timeout=5)
    if resp.status_code != 200:
        return []
    return [p for s in resp.json()["series"] for p in s["points"]]


@pytest.mark.integration
async def test_sample_app_on_postgresql_when_database_url_is_set() -> None:
    from fastmango.dashboard.demo_app import PostgresItems
    from tests.realservers import Postgres

    pg = Postgres()
    try:
        pg.start()
        items = await PostgresItems.connect(pg.dsn)
        never = Chaos(slow=0.0, checkout_errors=0.0, chat_errors=0.0)
        transport = httpx.ASGITransport(app=create_app(items, never))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://demo") as c:
                assert len((await c.get("/api/items?limit=7")).json()) == 7
                before = (await c.get("/api/items/5")).json()["stock"]
                ok = (await c.post("/api/checkout", json={"item_id": 5, "qty": 1})).json()
                assert ok["stock_left"] in (before - 1, 100)
                assert (await c.post("/api/checkout", json={"item_id": 999})).status_code == 404
        finally:
            await items.close()
        assert "200" in pg.psql("SELECT count(*) FROM fastmango_demo_items")
    finally:
        pg.cleanup()


# Playwright's sync API holds the thread's event loop while its module-scoped browser
# lives, so the asyncio tests of this module come before the browser one.
@pytest.mark.browser
def test_demo_shows_live_app_metrics_within_a_minute(
    browser: Any, tmp_path: Path, agent_env: dict[str, str]
) -> None:
    port = free_port()
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastmango.cli", "demo", "--no-browser", "--duration", "50",
         "--port", str(port)],
        cwd=tmp_path, env=agent_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        rps: list[list[float]] = []
        errors: list[list[float]] = []
        while time.monotonic() - began < 60:
            try:
                rps = series(url, "http_requests_per_second")
                errors = series(url, "http_error_ratio")
            except httpx.TransportError:
                pass
            if len(rps) >= 3 and errors:
                break
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.5)
        assert rps and errors, "no app metrics within 60 s"
        assert max(v for _, v in rps) > 1.0  # synthetic traffic is flowing
        # the Logs page's data: the app's log file, followed and redacted
        logs = httpx.get(url + "/api/logs/search", params={"q": "GET", "limit": 5}).json()
        assert len(logs["lines"]) == 5 and "fastmango.demo.shop" in logs["lines"][0]["text"]
        leaked = httpx.get(url + "/api/logs/search", params={"q": "example.com"}).json()
        assert leaked["lines"] == []  # customers' e-mail addresses never stored
        failed = httpx.get(url + "/api/logs/search", params={"q": "level:error"}).json()
        for line in failed["lines"]:  # a failed checkout: one event, traceback joined
            assert "[REDACTED EMAIL]" in line["text"] and "TimeoutError" in line["text"]
        # the Scaling page's data: the demo environment's dry-run policy decides
        decided: dict[str, Any] = {}
        while time.monotonic() - began < 75 and not decided.get("reason"):
            time.sleep(1)
            envs = httpx.get(url + "/api/scaling").json()["environments"]
            decided = envs.get("demo") or {}
        assert decided.get("reason") and decided["dry_run"], decided
        assert decided["inputs"]["rps"] > 0 and decided["desired"] >= 1
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.goto(f"{url}/#/overview?range=15m")
            page.wait_for_function(
                "() => Number(document.querySelector('.chart[data-chart=requests]')"
                "?.dataset.points || 0) > 8",
                timeout=15_000,
            )
            drawn = charts(page)
            assert drawn["requests"]["points"] > 1 and drawn["latency"]["points"] > 1
            assert page.evaluate(PLOT_PIXELS_JS, "requests") > 50
            page.wait_for_function(
                "() => document.querySelector('[data-stat=requests]').dataset.value !== ''"
            )
            assert float(page.locator('[data-stat="requests"]').get_attribute("data-value")) > 0
            shoot(page, "demo-overview")
        finally:
            context.close()
        out, _ = proc.communicate(timeout=50)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
    assert proc.returncode == 0, out
    assert f"fastmango demo: dashboard {url}/" in out
    stopped = re.search(r"stopped after (\d+) requests \((\d+) server errors\)", out)
    assert stopped and int(stopped.group(1)) > 100, out
    state = re.search(r"state (\S+) \(removed at exit\)", out)
    assert state and not Path(state.group(1)).exists()
    assert "Traceback" not in out
