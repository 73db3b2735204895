"""The budget alert's expression over the agent's real exposition, evaluated by a real
Prometheus: projected spend over budget selects exactly the environment that is over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastmango.agent.alerts.rules import BUILTIN
from tests.conftest import free_port
from tests.realservers import Prometheus

from .seed import CONFIG
from .test_cli import QUIET

pytestmark = pytest.mark.integration
EXPR = "fastmango_cost_month_projected_dollars > fastmango_cost_budget_dollars"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        p = Prometheus(tmp_path / "prom", free_port(), [target])
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def test_projected_over_budget_fires_for_that_environment_only(
    start_agent: Any, seeded_state: Path, prometheus: Any
) -> None:
    assert BUILTIN["CostOverBudget"]["expr"] == EXPR  # the alerts part's built-in rule
    app = seeded_state.parent
    # production projects about $50 (2-3 Render standard instances): a $40 budget is over
    config = CONFIG.replace("production = 60", "production = 40") + QUIET
    (app / "fastmango.toml").write_text(config)
    agent = start_agent(app_dir=app)
    prom = prometheus(agent.url.removeprefix("http://"))
    over = prom.query_until(EXPR)
    assert [r["metric"]["env"] for r in over] == ["production"]
    projected = float(over[0]["value"][1])
    assert 40 < projected <= 75.01
    budgets = prom.query_until("fastmango_cost_budget_dollars")
    assert {r["metric"]["env"]: float(r["value"][1]) for r in budgets} == {
        "production": 40.0, "staging": 10.0}  # fmt: skip
