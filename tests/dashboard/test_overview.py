"""The Overview document: grid, combining, states, headline; fast over 7 days of data."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmango.agent.api import create_app
from fastmango.agent.daemon import Agent
from fastmango.agent.store import Matcher
from fastmango.dashboard import overview as ov
from fastmango.dashboard.history import daily_shape, default_tracks
from fastmango.series import MetricSpec

from .conftest import fill_history, settings_for

NOW = 1_800_000_000.0


def fake_query(
    answers: dict[str, list[dict[str, Any]]], calls: list[tuple[Any, ...]] | None = None
):  # type: ignore[no-untyped-def]
    def query(name, matchers, start, end, step, rate):  # type: ignore[no-untyped-def]
        if calls is not None:
            calls.append((name, tuple(matchers), start, end, step, rate))
        series = [s for s in answers.get(name, []) if all(m.matches(s["labels"]) for m in matchers)]
        return {"name": name, "source": "raw", "series": series}

    return query


def test_grid_steps_are_nice_and_bounded() -> None:
    for key, span in ov.RANGES.items():
        for interval in (1.0, 10.0, 60.0):
            g = ov.Grid.of(span, NOW, interval)
            assert len(g.x) <= ov.MAX_POINTS + 2, key
            assert g.step >= interval and g.step in ov.NICE_STEPS
            assert g.x[0] <= NOW - span < g.x[0] + g.step and g.x[-1] <= NOW
    assert ov.Grid.of(ov.RANGES["7d"], NOW, 10).step == 1800  # 337 points from roll-ups
    assert ov.Grid.of(ov.RANGES["15m"], NOW, 1).step == 2


def test_lines_group_sum_and_divide_per_cpu() -> None:
    grid = ov.Grid.of(900, NOW, 10)
    t = grid.x[-3]
    answer = {
        "series": [
            {"labels": {"cpu": "0", "mode": "user"}, "points": [[t, 0.5]]},
            {"labels": {"cpu": "1", "mode": "user"}, "points": [[t, 0.3]]},
            {"labels": {"cpu": "0", "mode": "system"}, "points": [[t, 0.1]]},
            {"labels": {"cpu": "1", "mode": "system"}, "points": [[t, 0.1], [NOW, 9.0]]},
        ]
    }
    line = ov.Line("{mode}", "node_cpu_seconds_total", rate=True, group_by="mode", per="cpu",
                   scale=100.0)  # fmt: skip
    out = dict(ov.line_values(line, answer, grid, NOW))
    assert set(out) == {"system", "user"}
    assert out["user"][-3] == 40.0  # (0.5 + 0.3) / 2 CPUs, in %
    assert out["system"][-3] == 10.0
    assert out["system"][-1] is None  # a rate's unfinished last bucket is left out


def test_panels_states_hints_and_headline() -> None:
    t = NOW - 5
    answers = {
        "fastmango_container_cpu_utilization_ratio": [{"labels": {}, "points": [[t, 0.25]]}],
        "http_requests_per_second": [
            {"labels": {"route": "/a"}, "points": [[t, 10.0]]},
            {"labels": {"route": "/b"}, "points": [[t, 5.0]]},
        ],
    }
    catalogue = set(answers) | {"http_request_duration_p95_seconds", "pg_stat_activity_count",
                                "pg_settings_max_connections"}  # fmt: skip
    calls: list[tuple[Any, ...]] = []
    doc = ov.overview(fake_query(answers, calls), catalogue, NOW, "15m", 1.0)
    panels = {p["id"]: p for p in doc["panels"]}
    # only panels whose series are all in the catalogue appear
    assert set(panels) == {"requests", "cpu", "pg_connections"}
    assert panels["requests"]["state"] == "ok" and panels["requests"]["now"] == 15.0
    assert panels["cpu"]["lines"][0]["values"][-3] == 25.0 and panels["cpu"]["now"] == 25.0
    assert panels["cpu"]["thresholds"] == [{"label": "limit", "value": 100.0}]
    pg = panels["pg_connections"]
    assert pg["state"] == "nodata" and "database_url" in pg["hint"] and pg["lines"] == []
    hl = doc["headline"]
    assert hl["requests"]["value"] == 15.0 and hl["cpu"]["value"] == 0.25
    assert hl["p95"] == {"value": None, "unit": "seconds", "available": True}
    assert hl["memory"]["available"] is False
    assert len(doc["x"]) == len(panels["cpu"]["lines"][0]["values"])
    # a young agent's data is not squeezed against the right edge of the range
    assert len(doc["x"]) == ov.MIN_POINTS and doc["start"] == doc["x"][0] > NOW - 900
    host_cpu = [c for c in calls if c[0] == "node_cpu_seconds_total"]
    assert host_cpu == []  # not in this catalogue: never queried
    json.dumps(doc, allow_nan=False)


def test_headline_only_document_has_no_panels() -> None:
    doc = ov.overview(fake_query({}), {"http_requests_per_second"}, NOW, "1h", 10.0, ())
    assert doc["panels"] == [] and doc["x"] == []
    assert doc["headline"]["requests"]["value"] is None


def test_every_panel_parses_its_matchers() -> None:
    for panel in ov.PANELS:
        for line in panel.lines:
            assert all(isinstance(m, Matcher) for m in line.matchers)
        assert panel.section in {"app", "system", "gpu", "postgres"}


def test_daily_shape_has_a_night_trough_and_a_lunch_peak() -> None:
    at = {h: daily_shape(h * 3600) for h in range(24)}
    assert at[4] < 0.15 and at[13] > 0.9
    assert min(at.values()) >= 0.1 and max(at.values()) <= 1.0
    assert daily_shape(600, day=1200) == pytest.approx(daily_shape(43200))


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state folder holding 7 days of 1-minute data for ~60 series."""
    root = tmp_path_factory.mktemp("week")
    n = fill_history(root / "state", days=7)
    assert n >= 60 * 7 * 1440 * 0.99
    yield root


@pytest.mark.parametrize("range_key", ["15m", "1h", "24h", "7d"])
async def test_overview_endpoint_over_a_week_is_fast(week: Path, range_key: str) -> None:
    agent = Agent(settings_for(week), collectors=[])
    # the catalogue of an agent with every collector (app, GPU, PostgreSQL) configured
    for t in default_tracks():
        agent.specs.setdefault(t.name, MetricSpec(t.name, t.kind, "test", tuple(dict(t.labels))))
    agent.store.open()
    transport = httpx.ASGITransport(app=create_app(agent))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            url = f"/api/dashboard/overview?range={range_key}"
            await c.get(url)  # warm-up (imports, page cache)
            began = time.perf_counter()
            resp = await c.get(url, headers={"Cache-Control": "no-cache"})
            took = time.perf_counter() - began
            assert resp.status_code == 200
            assert 'desc="computed"' in resp.headers["server-timing"]
            doc = resp.json()
            cached = await c.get(url)
            assert 'desc="cached"' in cached.headers["server-timing"]
    finally:
        agent.store.close()
    assert took < 1.0, f"{range_key}: {took * 1000:.0f} ms"
    panels = {p["id"]: p for p in doc["panels"]}
    assert len(panels) == len(ov.PANELS)
    assert all(p["state"] == "ok" for p in panels.values()), [
        p["id"] for p in panels.values() if p["state"] != "ok"
    ]
    assert len(doc["x"]) <= ov.MAX_POINTS + 2
    if range_key in ("24h", "7d"):
        assert doc["source"] == "rollup_1m"
        values = panels["requests"]["lines"][0]["values"]
        filled = [v for v in values if v is not None]
        assert len(filled) > 0.9 * len(values)  # the whole range, from the roll-ups
        assert max(filled) > 3 * min(filled)  # the daily shape shows
    p95 = next(ln for ln in panels["latency"]["lines"] if ln["label"] == "p95")["values"]
    assert panels["latency"]["now"] == next(v for v in reversed(p95) if v is not None)
    cpus = {ln["label"] for ln in panels["host_cpu"]["lines"]}
    assert cpus == {"user", "system", "iowait", "irq", "softirq", "steal", "nice"}
    assert doc["headline"]["cpu"]["available"]
