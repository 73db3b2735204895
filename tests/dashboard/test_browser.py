"""The dashboard in real headless Chromium against a real `fastmango agent` process.

Screenshots of every page land in test-artifacts/dashboard/.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

from .conftest import fill_history, shoot

pytestmark = pytest.mark.browser

#: per chart: points drawn, and how many sampled canvas pixels are painted
CHARTS_JS = """() => [...document.querySelectorAll('.chart')].map((el) => {
  const c = el.querySelector('canvas');
  let painted = 0;
  if (c) {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4 * 7) if (d[i]) painted++;
  }
  return {id: el.dataset.chart, points: Number(el.dataset.points || 0), painted,
          lastX: Number(el.dataset.lastX || 0), canvas: !!c};
})"""
#: painted pixels of the plot area only (no axes): data lines and fills
PLOT_PIXELS_JS = """(id) => {
  const el = document.querySelector(`.chart[data-chart="${id}"]`);
  const u = el.querySelector('.u-over');
  const c = el.querySelector('canvas');
  const r = c.getBoundingClientRect(), o = u.getBoundingClientRect();
  const k = c.width / r.width;
  const x = Math.round((o.left - r.left) * k), y = Math.round((o.top - r.top) * k);
  const w = Math.round(o.width * k), h = Math.round(o.height * k);
  const d = c.getContext('2d').getImageData(x, y, w, h).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
  return n;
}"""


@pytest.fixture
def console() -> list[str]:
    """Errors the page logged to its console (failed requests among them)."""
    return []


@pytest.fixture
def page(browser: Any, console: list[str]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    crashes: list[str] = []
    pg.on("pageerror", lambda e: crashes.append(str(e)))
    pg.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    yield pg
    context.close()
    assert not crashes, crashes  # no uncaught exception in the page's scripts


@pytest.fixture
def history_agent(start_agent: Any, tmp_path: Path) -> Any:
    """An agent at a 1 s interval over a store that already holds two days of 1-minute
    history (so every range has data from the first second)."""
    app = tmp_path / "app"
    fill_history(app / ".fastmango", days=2)
    agent = start_agent("--interval", "1", app_dir=app)
    httpx.get(agent.url + "/api/status").raise_for_status()
    return agent


def charts(page: Any) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in page.evaluate(CHARTS_JS)}


def test_overview_draws_every_chart_live_and_switches_ranges(
    page: Any, history_agent: Any, console: list[str]
) -> None:
    url = history_agent.url
    page.goto(f"{url}/#/overview?range=15m")
    page.wait_for_selector('#page[data-page="overview"][data-loads]')
    page.wait_for_selector('.chart[data-chart="cpu"] canvas')
    # function source (not an expression): the page's CSP forbids eval
    page.wait_for_function(
        "() => document.querySelector('[data-stat=cpu]').dataset.value !== ''", timeout=10_000
    )
    # headline numbers show the container's real CPU and memory
    for key in ("cpu", "memory"):
        stat = page.locator(f'[data-stat="{key}"]')
        assert float(stat.get_attribute("data-value") or "nan") >= 0
        assert stat.locator(".value").inner_text().strip().endswith("%")
    # every panel with data draws; the others say what enables them
    page.wait_for_function(
        "() => Number(document.querySelector('.chart[data-chart=cpu]').dataset.points) > 1",
        timeout=10_000,
    )
    drawn = charts(page)
    states = {
        p.get_attribute("data-panel"): p.get_attribute("data-state")
        for p in page.locator("[data-panel]").all()
    }
    assert {"cpu", "host_cpu", "memory", "network", "disk"} <= {
        k for k, v in states.items() if v == "ok"
    }
    for panel, state in states.items():
        if state == "ok":
            c = drawn[panel]
            assert c["canvas"] and c["points"] > 1 and c["painted"] > 100, c
            assert page.evaluate(PLOT_PIXELS_JS, panel) > 50, f"{panel}: blank plot"
        else:
            hint = page.locator(f'[data-panel="{panel}"] .empty').inner_text()
            assert "No " in hint and ("set " in hint or "see " in hint), hint
    page.wait_for_selector('#live[data-state="live"]', timeout=10_000)  # the stream is open
    shoot(page, "overview-15m")

    # live: the chart moves on without a reload (SSE → refresh)
    loads = int(page.locator("#page").get_attribute("data-loads") or 0)
    last_x = drawn["cpu"]["lastX"]
    page.wait_for_function(
        "([x, n]) => Number(document.querySelector('.chart[data-chart=cpu]').dataset.lastX) > x"
        " && Number(document.querySelector('#page').dataset.loads) > n",
        arg=[last_x, loads],
        timeout=15_000,
    )
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1

    # 7 days: from the roll-ups, the two days of history drawn
    page.click('#ranges button[data-range="7d"]')
    page.wait_for_selector('#page[data-range="7d"][data-source="rollup_1m"]')
    assert page.locator('#ranges button[data-range="7d"]').get_attribute("aria-pressed") == "true"
    assert "range=7d" in page.url
    wide = charts(page)
    assert wide["cpu"]["points"] > 50 and wide["network"]["points"] > 50
    assert page.evaluate(PLOT_PIXELS_JS, "cpu") > 50
    shoot(page, "overview-7d")
    page.click('#ranges button[data-range="24h"]')
    page.wait_for_selector('#page[data-range="24h"]')
    assert charts(page)["cpu"]["points"] > 50
    assert not console, console


def test_agent_page_lists_collectors_in_dark_mode(
    browser: Any, start_agent: Any, agent_env: dict[str, str]
) -> None:
    # an app whose metrics nobody serves: its collector is down, with the reason
    agent_env["FASTMANGO_COLLECTORS__APP__METRICS_URLS"] = f'["http://127.0.0.1:{free_port()}/m"]'
    agent = start_agent("--interval", "1")
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="dark")
    try:
        page = context.new_page()
        page.goto(f"{agent.url}/#/agent")
        page.wait_for_selector('tr[data-collector="host"][data-up="true"]', timeout=10_000)
        assert page.locator('tr[data-collector="container"] .pill').inner_text() == "up"
        down = page.locator('tr[data-collector="app"][data-up="false"]')
        down.wait_for(timeout=10_000)
        assert down.locator(".pill").inner_text() == "down"
        assert "every app metrics URL failed" in down.locator(".err").inner_text()
        assert "State store" in page.locator('[data-card="store"]').inner_text()
        assert page.locator("nav a").all_inner_texts() == [
            "Overview", "Logs", "Alerts", "Scaling", "Deploys", "Cost", "Fleet", "Agent"
        ]  # fmt: skip
        # only the open page's code was loaded
        loaded = page.evaluate("[...document.scripts].map((s) => s.src).filter((s) => s)")
        assert [u.split("/static/")[1].split("?")[0] for u in loaded] == [
            "vendor/uPlot.iife.min.js", "app.js", "pages/agent.js"
        ]  # fmt: skip
        assert page.locator('nav a[aria-current="page"]').inner_text() == "Agent"
        assert page.locator("#ranges").is_hidden()
        bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert bg == "rgb(14, 17, 23)"  # the dark palette
        shoot(page, "agent-dark")
    finally:
        context.close()


TOKEN = "d4shboard-t0ken-for-tests"


def test_login_csrf_and_api_token_off_loopback(
    page: Any, start_agent: Any, agent_env: dict[str, str]
) -> None:
    agent_env["FASTMANGO_SERVER__TOKEN"] = TOKEN
    agent = start_agent("--interval", "1", "--host", "0.0.0.0")
    url = agent.url  # 127.0.0.1 reaches the 0.0.0.0 bind
    assert httpx.get(url + "/api/status").status_code == 401
    assert httpx.get(url + "/api/status", headers={"Authorization": f"Bearer {TOKEN}"}).is_success

    page.goto(url + "/#/agent")
    page.wait_for_selector("form.login-card")
    assert "/login?next=" in page.url
    shoot(page, "login")
    page.fill("#token", "wrong-token")
    page.click("button[type=submit]")
    page.wait_for_selector("p.error")
    assert "not right" in page.locator("p.error").inner_text()
    shoot(page, "login-refused")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector('#page[data-page="overview"][data-loads]')
    cookie = next(c for c in page.context.cookies() if c["name"] == "fastmango_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.locator("#logout").is_visible()

    # CSRF: the session's cookie alone cannot change state; with the page's token it can
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    refused = page.evaluate("fetch('/logout', {method: 'POST'}).then((r) => r.status)")
    assert refused == 403
    bare = page.context.request.post(url + "/logout")
    assert bare.status == 403  # cookie only, no header
    assert page.evaluate("FM.post('/logout').then((r) => r.logged_out)") is True
    assert page.context.request.get(url + "/api/status").status == 401  # signed out
    assert csrf

    events = httpx.get(url + "/api/events?kind=audit",
                       headers={"Authorization": f"Bearer {TOKEN}"}).json()  # fmt: skip
    seen = [(e["data"]["action"], e["data"]["result"]) for e in reversed(events)]
    assert seen == [("login", "failure"), ("login", "success"), ("logout", "success")]


class _Foreign(http.server.BaseHTTPRequestHandler):
    """Another origin whose page posts a form to the agent."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}/logout"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_page_on_another_origin_cannot_post(page: Any, start_agent: Any) -> None:
    agent = start_agent("--interval", "1")
    page.goto(agent.url + "/#/agent")  # a session cookie now exists for the agent
    page.wait_for_selector('tr[data-collector="host"]')
    handler = type("Foreign", (_Foreign,), {"target": agent.url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        foreign = f"http://127.0.0.1:{server.server_address[1]}/"
        with page.expect_navigation(url=agent.url + "/logout"):
            page.goto(foreign)
        assert "cross-origin request refused" in page.content()
    finally:
        server.shutdown()
        server.server_close()
    events = httpx.get(agent.url + "/api/events?kind=audit").json()
    assert not [e for e in events if e["data"]["action"] == "logout"]
