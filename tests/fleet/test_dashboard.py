"""The Fleet page in real headless Chromium over two real agents sharing PostgreSQL:
the instances table with heartbeat ages and the leader mark, and a failover shown live."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.dashboard.conftest import browser, shoot  # noqa: F401  (browser: a fixture)
from tests.fleet.conftest import fleet_of, wait_for
from tests.fleet.test_election import one_leader

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    crashes: list[str] = []
    pg.on("pageerror", lambda e: crashes.append(str(e)))
    yield pg
    context.close()
    assert not crashes, crashes


def test_fleet_page_shows_instances_heartbeats_and_the_leader(page: Any, start_fleet: Any) -> None:
    agents = start_fleet(2)
    leader = wait_for("one leader", lambda: one_leader(agents), 10)
    leader_id = fleet_of(leader)["instance"]
    follower = next(a for a in agents if a is not leader)
    wait_for("2 up", lambda: fleet_of(follower)["instances_up"] == 2, 10)

    page.goto(f"{follower.url}/#/fleet")
    page.wait_for_selector('#page[data-page="fleet"] tr[data-instance]')
    page.wait_for_function("() => document.querySelectorAll('tr[data-state=up]').length === 2")
    rows = page.locator("tr[data-instance]")
    assert rows.count() == 2
    marked = page.locator('tr[data-leader="true"]')
    assert marked.count() == 1 and marked.get_attribute("data-instance") == leader_id
    assert marked.locator('[data-testid="leader-mark"]').inner_text() == "leader"
    assert page.locator('[data-testid="leader"]').inner_text() == leader_id
    for age in page.locator("td[data-age]").all():
        assert 0 <= float(age.get_attribute("data-age") or "nan") < 3
    assert "(this agent)" in page.locator('tr[data-self="true"]').inner_text()
    shoot(page, "fleet")

    # kill -9 the leader: the page (not reloaded) shows it down and another leading
    os.kill(leader.proc.pid, signal.SIGKILL)
    leader.proc.wait()
    page.wait_for_function(
        '(old) => { const r = document.querySelector(`tr[data-instance="${old}"]`);'
        " const l = document.querySelector('tr[data-leader=true]');"
        " return r && r.dataset.state === 'down' && l && l.dataset.instance !== old; }",
        arg=leader_id,
        timeout=15_000,
    )
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    shoot(page, "fleet-failover")
