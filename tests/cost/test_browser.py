"""The Cost page in real headless Chromium against a real `fastmango agent` process over a
seeded store. A screenshot lands in test-artifacts/dashboard/cost.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.conftest import browser, shoot

from .seed import CONFIG
from .test_cli import QUIET

__all__ = ["browser"]  # the module-scoped Chromium fixture
pytestmark = pytest.mark.browser

#: the chart's points and painted pixels of the plot area
CHART_JS = """() => {
  const el = document.querySelector('.chart[data-chart="cost-month"]');
  const c = el.querySelector('canvas');
  const u = el.querySelector('.u-over');
  const r = c.getBoundingClientRect(), o = u.getBoundingClientRect();
  const k = c.width / r.width;
  const d = c.getContext('2d').getImageData(Math.round((o.left - r.left) * k),
    Math.round((o.top - r.top) * k), Math.round(o.width * k), Math.round(o.height * k)).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
  return {points: Number(el.dataset.points || 0), painted: n,
          legend: [...el.querySelectorAll('.u-legend .u-label')].map((x) => x.textContent)};
}"""


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    pg = context.new_page()
    crashes: list[str] = []
    errors: list[str] = []
    pg.on("pageerror", lambda e: crashes.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield pg
    failed = list(errors)  # before closing: closing cuts the event stream short
    context.close()
    assert not crashes, crashes
    assert not failed, failed


def test_cost_page_shows_bars_chart_and_savings(
    page: Any, start_agent: Any, seeded_state: Path
) -> None:
    app = seeded_state.parent
    (app / "fastmango.toml").write_text(CONFIG + QUIET)
    agent = start_agent(app_dir=app)
    page.goto(f"{agent.url}/#/cost")
    page.wait_for_selector('[data-env="production"] [data-role="bar"]', timeout=20_000)
    page.wait_for_selector('[data-saving="rightsize"]', timeout=20_000)

    # a bar per environment: spent ≤ projected, the budget marked
    prod = page.locator('[data-card="environments"] [data-env="production"]')
    widths = {
        part: float(
            prod.locator(f'[data-part="{part}"]').evaluate("e => parseFloat(e.style.width)")
        )
        for part in ("spent", "projected")
    }
    assert 0 < widths["spent"] <= widths["projected"] <= 100
    assert prod.locator('[data-part="budget"]').count() == 1
    assert prod.locator('[data-figure="budget"]').inner_text() == "$60.00"
    assert prod.locator('[data-figure="mtd"]').inner_text().startswith("$")
    preview = page.locator('[data-card="environments"] [data-env="preview"]')
    assert preview.locator('[data-figure="mtd"]').inner_text() == "unknown"
    assert "no replicas events" in preview.locator("[data-unknown]").first.inner_text()

    # spend over the month: actual and projected lines drawn, budgets as lines
    page.wait_for_function(
        "() => Number(document.querySelector('.chart[data-chart=\"cost-month\"]')"
        ".dataset.points) > 10"
    )
    chart = page.evaluate(CHART_JS)
    assert chart["points"] > 10 and chart["painted"] > 500, chart
    assert {"production spent", "production projected", "production budget"} <= set(chart["legend"])

    # savings with their evidence and dollars per month
    right = page.locator('[data-saving="rightsize"]')
    assert "Right-size production from standard to starter" in right.inner_text()
    assert "/month" in right.inner_text()
    assert "cpu p95 cores" in right.locator("[data-evidence]").inner_text()
    idle = page.locator('[data-saving="idle-schedule"]')
    assert "Mon-Fri 08:00-20:00 UTC min=1; otherwise 0" in idle.inner_text()
    assert page.locator('[data-stale="render/size/standard"]').count() == 1
    shoot(page, "cost")
