"""The Logs page in real headless Chromium against a real agent following a real file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.conftest import browser, shoot  # noqa: F401 - the module's browser
from tests.logs.conftest import count, wait_for, write_config

pytestmark = pytest.mark.browser

LINES = [
    "2024-01-02 10:00:00,000 INFO app.web: GET /orders status=200",
    "2024-01-02 10:00:01,000 ERROR app.db: connection reset by peer",
    "2024-01-02 10:00:02,000 WARNING app.db.pool: pool exhausted",
]


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    crashes: list[str] = []
    pg.on("pageerror", lambda e: crashes.append(str(e)))
    yield pg
    context.close()
    assert not crashes, crashes


def test_logs_page_search_levels_tail_chart(page: Any, start_agent: Any, tmp_path: Path) -> None:
    app = tmp_path / "app"
    log = app / "app.log"
    app.mkdir()
    log.write_text("\n".join(LINES) + "\n")
    write_config(app, [str(log)], multiline_timeout=0.1)
    agent = start_agent("--state-dir", str(app / "state"), "--interval", "1", app_dir=app)
    wait_for(lambda: count(agent.url, "") >= 3, 20, "lines indexed")
    page.goto(agent.url + "/#/logs")
    rows = page.locator("[data-card=log-results] tbody tr[data-level]")
    rows.first.wait_for(timeout=15000)
    assert rows.count() == 3
    assert page.locator("tr[data-level=error] .lv-error").inner_text() == "ERROR"
    # the index at a glance
    page.wait_for_function(
        "() => document.querySelector('[data-info=index]').innerText.includes('following 1 file')"
    )
    assert page.inner_text("[data-info=index]").startswith("Index: 3 lines")
    assert page.locator("[data-info=behind]").count() == 0  # it keeps up
    # levels are coloured: error red, warn amber
    colour = page.eval_on_selector("tr[data-level=error] .lv", "e => getComputedStyle(e).color")
    assert colour not in ("rgb(0, 0, 0)", "")
    # a search
    page.fill("input.search", "level:error")
    page.click("button[type=submit]")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-card=log-results] tbody tr[data-level]').length === 1"  # noqa: E501
    )
    assert "1 matching" in page.inner_text("[data-info=results]")
    # a malformed query shows the position and the problem
    page.fill("input.search", "level:error (")
    page.click("button[type=submit]")
    err = page.locator("[data-error=query]")
    err.wait_for(state="visible", timeout=10000)
    assert "position" in err.inner_text() and "unclosed" in err.inner_text()
    # live tail: a new line appears without reloading
    page.fill("input.search", "")
    page.click("[data-action=tail]")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-card=log-results] tbody tr[data-level]').length >= 3"  # noqa: E501
    )
    with log.open("a") as f:
        f.write("2024-01-02 10:00:09,000 ERROR app.jobs: live line arrives\n")
    page.wait_for_function(
        "() => document.querySelector('[data-card=log-results] tbody').innerText.includes('live line arrives')",  # noqa: E501
        timeout=10000,
    )
    # the lines-per-level chart draws once the series has points
    page.wait_for_function(
        "() => Number((document.querySelector('[data-chart=log-lines]') || {dataset: {}}).dataset.points || 0) > 0",  # noqa: E501
        timeout=20000,
    )
    shoot(page, "logs")


def test_a_search_that_runs_out_of_time_says_so(
    page: Any, start_agent: Any, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    log = app / "app.log"
    app.mkdir()
    log.write_text("\n".join(LINES) + "\n")
    # a budget no scan fits in: a regex must be checked line by line, so it stops at once
    write_config(app, [str(log)], multiline_timeout=0.1, query_timeout=1e-6)
    agent = start_agent("--state-dir", str(app / "state"), app_dir=app)
    wait_for(lambda: count(agent.url, "") >= 3, 20, "lines indexed")  # exact: no scan
    page.goto(agent.url + "/#/logs")
    page.fill("input.search", "/connection reset/")
    page.click("button[type=submit]")
    info = page.locator("[data-info=results]")
    page.wait_for_function(
        "() => document.querySelector('[data-info=results]').innerText.includes('stopped')"
    )
    assert "0+ matching" in info.inner_text() and "narrow the time range" in info.inner_text()
    body = page.inner_text("[data-card=log-results] tbody")
    assert "before the search stopped" in body
    # the CLI says so too
    from tests.logs.test_api_cli import cli

    p = cli(app, "--url", agent.url, "--search", "/connection reset/")
    assert p.returncode == 0 and "stopped early" in p.stderr and p.stdout == ""


def test_logs_page_says_when_the_agent_falls_behind(
    page: Any, start_agent: Any, tmp_path: Path
) -> None:
    """The app writes its log faster than the agent indexes it: the page says how much of
    the file is not indexed yet; then the agent catches up, and no line is lost."""
    import httpx

    app = tmp_path / "app"
    log = app / "app.log"
    app.mkdir()
    log.write_text("\n".join(LINES) + "\n")
    write_config(app, [str(log)], multiline_timeout=0.1)
    agent = start_agent("--state-dir", str(app / "state"), app_dir=app)
    wait_for(lambda: count(agent.url, "") >= 3, 20, "lines indexed")
    burst = 500_000  # ~80 MB at once: seconds of work for the agent, under one for us
    pad = "x" * 100
    with log.open("a") as f:
        for k in range(0, burst, 10_000):
            f.write("".join(
                f"2024-01-02 10:01:00,000 INFO app.web: GET /orders/{i} status=200 {pad}\n"
                for i in range(k, k + 10_000)
            ))  # fmt: skip
    page.goto(agent.url + "/#/logs")
    behind = page.locator("[data-info=behind]")
    behind.wait_for(timeout=20000)
    assert "not indexed yet" in behind.inner_text() and "MiB" in behind.inner_text()

    def caught_up() -> bool:
        return (
            int(httpx.get(agent.url + "/api/logs/status", timeout=10).json()["behind_bytes"]) == 0
        )

    wait_for(caught_up, 240, "the agent caught up")
    assert count(agent.url, "") == 3 + burst
