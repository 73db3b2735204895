"""The daemon in-process: fault isolation, the series API, auth, and self-metrics."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fastmango.agent.daemon import Agent, bind
from fastmango.agent.settings import Settings
from fastmango.collector.base import Collector
from fastmango.series import MetricSpec, Sample, SampleBuilder, spec_index

SPEC = MetricSpec("fastmango_test_value", "gauge", "A test value.", ("who",))
INDEX = spec_index([SPEC])


class Good:
    name: ClassVar[str] = "good"
    specs: ClassVar[list[MetricSpec]] = [SPEC]

    def __init__(self) -> None:
        self.n = 0

    def start(self) -> None:
        pass

    def collect(self) -> list[Sample]:
        self.n += 1
        b = SampleBuilder(INDEX, time.time())
        b.add("fastmango_test_value", self.n, who="good")
        return b.samples

    def close(self) -> None:
        pass


class Raising(Good):
    name: ClassVar[str] = "raising"

    def collect(self) -> list[Sample]:
        raise RuntimeError("cannot read postgresql://app:hunter2@db/app")


class Hanging(Good):
    name: ClassVar[str] = "hanging"
    release = threading.Event()

    def collect(self) -> list[Sample]:
        self.release.wait(60)
        return []


def settings_for(tmp_path: Path, **server: object) -> Settings:
    return Settings.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "collectors": {"interval": 1, "timeout": 0.3},
            "server": server,
        }
    )


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Agent, httpx.AsyncClient]]:
    collectors: list[Collector] = [Good(), Raising(), Hanging()]
    agent = Agent(settings_for(tmp_path), collectors=collectors)
    task = asyncio.create_task(agent.serve(bind("127.0.0.1", 0)))
    await asyncio.wait_for(agent.ready.wait(), 10)
    async with httpx.AsyncClient(base_url=agent.url) as client:
        yield agent, client
    agent.request_exit()
    assert await asyncio.wait_for(task, 10) == 0
    Hanging.release.set()


def families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


async def test_failing_and_hanging_collectors_are_contained(
    running: tuple[Agent, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    _agent, client = running
    await asyncio.sleep(2.5)  # a few rounds: the hanging one times out, then stays busy
    began = time.perf_counter()
    resp = await client.get("/metrics")
    elapsed = time.perf_counter() - began
    assert resp.status_code == 200
    assert elapsed < 0.1, f"/metrics took {elapsed * 1000:.0f} ms with a hung collector"
    fams = families(resp.text)
    up = {labels["collector"]: v for labels, v in fams["fastmango_collector_up"]}
    assert up == {"good": 1.0, "raising": 0.0, "hanging": 0.0}
    errors = {labels["collector"]: v for labels, v in fams["fastmango_collector_errors_total"]}
    assert errors["raising"] >= 1 and errors["hanging"] >= 1 and errors["good"] == 0
    assert fams["fastmango_test_value"][0][1] >= 2  # the good one kept collecting
    status = (await client.get("/api/status")).json()
    by_name = {c["name"]: c for c in status["collectors"]}
    assert "hunter2" not in by_name["raising"]["last_error"]
    assert (
        "timed out" in by_name["hanging"]["last_error"]
        or "still running" in (by_name["hanging"]["last_error"])
    )
    # logged once per failure streak, without the password
    records = caplog.get_records("setup") + caplog.get_records("call")
    warnings = [r for r in records if "raising failed" in r.getMessage()]
    assert len(warnings) == 1
    assert "hunter2" not in caplog.text


async def test_series_api_serves_what_was_collected(
    running: tuple[Agent, httpx.AsyncClient],
) -> None:
    agent, client = running
    await asyncio.sleep(2.2)
    await asyncio.to_thread(agent.store.flush)
    resp = await client.get(
        "/api/series",
        params={"name": "fastmango_test_value", "match": 'who="good"', "start": "5m"},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    [series] = body["series"]
    assert series["labels"] == {"who": "good"}
    assert len(series["points"]) >= 2
    values = [v for _, v in series["points"]]
    assert values == sorted(values)
    bad = await client.get("/api/series", params={"name": "fastmango_test_value",
                                                   "match": "who=good"})  # fmt: skip
    assert bad.status_code == 400 and "label matcher" in bad.json()["detail"]
    unknown = await client.get("/api/series", params={"name": "nope"})
    assert unknown.status_code == 404
    not_counter = await client.get(
        "/api/series", params={"name": "fastmango_test_value", "rate": "true"}
    )
    assert not_counter.status_code == 400


async def test_openmetrics_and_gzip_on_request(running: tuple[Agent, httpx.AsyncClient]) -> None:
    _, client = running
    om = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "content-encoding" not in plain.headers
    zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "fastmango_build_info" in zipped.text  # httpx decodes it


async def test_token_is_required_off_loopback_and_compared(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"requires server\.token"):
        settings_for(tmp_path, host="0.0.0.0")
    settings = settings_for(tmp_path, host="0.0.0.0", token="s3cret-token")
    agent = Agent(settings, collectors=[Good()])
    task = asyncio.create_task(agent.serve(bind("127.0.0.1", 0)))
    await asyncio.wait_for(agent.ready.wait(), 10)
    try:
        async with httpx.AsyncClient(base_url=agent.url) as c:
            assert (await c.get("/healthz")).status_code == 200
            assert (await c.get("/metrics")).status_code == 401
            assert (await c.get("/api/status")).status_code == 401
            wrong = {"Authorization": "Bearer s3cret-tokeX"}
            assert (await c.get("/api/status", headers=wrong)).status_code == 401
            right = {"Authorization": "Bearer s3cret-token"}
            assert (await c.get("/api/status", headers=right)).status_code == 200
            assert (await c.get("/metrics", headers=right)).status_code == 200
    finally:
        agent.request_exit()
        await asyncio.wait_for(task, 10)


class AsyncGood:
    name: ClassVar[str] = "async_good"
    specs: ClassVar[list[MetricSpec]] = [SPEC]

    def __init__(self) -> None:
        self.closed = False

    async def start(self) -> None:
        await asyncio.sleep(0)

    async def collect(self) -> list[Sample]:
        b = SampleBuilder(INDEX, time.time())
        b.add("fastmango_test_value", 7, who="async")
        return b.samples

    async def close(self) -> None:
        self.closed = True


class AsyncHanging(AsyncGood):
    name: ClassVar[str] = "async_hanging"

    async def collect(self) -> list[Sample]:
        await asyncio.sleep(3600)
        return []


async def test_async_collectors_run_on_the_loop_and_are_cancelled_at_timeout(
    tmp_path: Path,
) -> None:
    good, hanging = AsyncGood(), AsyncHanging()
    agent = Agent(settings_for(tmp_path), collectors=[good, hanging])
    task = asyncio.create_task(agent.serve(bind("127.0.0.1", 0)))
    await asyncio.wait_for(agent.ready.wait(), 10)
    await asyncio.sleep(1.5)
    async with httpx.AsyncClient(base_url=agent.url) as c:
        fams = families((await c.get("/metrics")).text)
    up = {labels["collector"]: v for labels, v in fams["fastmango_collector_up"]}
    assert up == {"async_good": 1.0, "async_hanging": 0.0}
    assert agent.states["async_hanging"].last_error == "TimeoutError: timed out after 0.3s"
    agent.request_exit()
    assert await asyncio.wait_for(task, 10) == 0
    assert good.closed
