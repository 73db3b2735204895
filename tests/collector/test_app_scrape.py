"""AppCollector: fetch (httpx.MockTransport, then a real app) and what it publishes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Response

from fastmango.agent.daemon import Agent, bind, default_collectors
from fastmango.agent.settings import Settings
from fastmango.collector.app import FastmangoMiddleware, record_tokens, track_inference
from fastmango.collector.app_scrape import SPECS, AppCollector, names_for, url_label
from fastmango.collector.app_workers import ProcessMetrics
from fastmango.collector.base import AsyncCollector
from fastmango.errors import CollectorError
from fastmango.series import Sample
from tests.exposition import assert_in_catalogue

FIXTURES = Path(__file__).parent.parent / "fixtures" / "app"
A = "http://127.0.0.1:8000/metrics"
B = "http://user:secret@127.0.0.1:8001/metrics?x=1"


def values(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, s.labels): s.value for s in samples}


class Ticks:
    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def served(pages: dict[str, list[str | int]]) -> httpx.AsyncClient:
    """A client whose URLs answer the given bodies (or status codes) in turn."""

    def handle(request: httpx.Request) -> httpx.Response:
        page = pages[str(request.url)].pop(0)
        if isinstance(page, int):
            return httpx.Response(page)
        return httpx.Response(200, text=page)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text()


async def test_first_scrape_sets_the_baseline_then_rates_follow() -> None:
    pages: dict[str, list[str | int]] = {A: [fixture("fastmango_0"), fixture("fastmango_1")]}
    c = AppCollector([A], client=served(pages), monotonic=Ticks(100.0, 110.0))
    assert isinstance(c, AsyncCollector)
    await c.start()
    first = values(await c.collect())
    assert ("http_requests_per_second", ()) not in first  # no previous scrape: no rate
    assert first["http_server_active_requests", ()] == 0
    second = values(await c.collect())
    assert second["http_requests_per_second", ()] == pytest.approx(13.1)
    assert second["http_route_requests_per_second", (("route", "/slow"),)] == 10.0
    assert second["ai_tokens_per_second", (("model", "m1"), ("type", "output"))] == 11.0
    assert second["fastmango_app_scrape_up", (("url", A),)] == 1
    await c.close()


async def test_one_failing_url_is_counted_all_failing_raise() -> None:
    pages: dict[str, list[str | int]] = {
        A: [fixture("fastmango_0"), fixture("fastmango_1"), 503],
        B: [500, fixture("fastmango_0"), 500],
    }
    c = AppCollector([A, B], client=served(pages), monotonic=Ticks(0.0, 10.0, 10.0))
    await c.collect()
    got = values(await c.collect())
    b = url_label(B)
    assert b == "http://127.0.0.1:8001/metrics"  # no credentials, no query in a label
    assert got["fastmango_app_scrape_errors_total", (("url", b),)] == 1
    assert got["fastmango_app_scrape_up", (("url", b),)] == 1
    assert got["http_requests_per_second", ()] == pytest.approx(13.1)  # from A alone
    with pytest.raises(CollectorError, match="every app metrics URL failed") as err:
        await c.collect()
    assert "secret" not in str(err.value)


async def test_a_garbled_exposition_counts_as_a_failed_url() -> None:
    pages: dict[str, list[str | int]] = {A: ["garbage { here\n"]}
    c = AppCollector([A], client=served(pages))
    with pytest.raises(CollectorError):
        await c.collect()


async def test_preset_names_from_settings_reach_the_collector(tmp_path: Path) -> None:
    settings = Settings.model_validate({
        "state_dir": str(tmp_path),
        "collectors": {"app": {"metrics_urls": [A], "preset": "starlette_exporter",
                               "requests_metric": "shop_requests_total", "top_routes": 5}},
    })  # fmt: skip
    apps = [c for c in default_collectors(settings) if isinstance(c, AppCollector)]
    assert len(apps) == 1
    assert apps[0].names == names_for("starlette_exporter", requests="shop_requests_total")
    assert apps[0].top_routes == 5
    none = Settings.model_validate({"state_dir": str(tmp_path)})
    assert not any(isinstance(c, AppCollector) for c in default_collectors(none))


# -- a real app, the real agent: every series it exposes is in the catalogue ---------------
def _app(process: ProcessMetrics) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/fail")
    async def fail() -> Response:
        return Response(status_code=500)

    @app.post("/chat")
    async def chat() -> dict[str, str]:
        async with track_inference(model="tiny", process=process) as call:
            await asyncio.sleep(0.01)
            call.first_token()
        record_tokens("tiny", input=3, output=4, process=process)
        return {}

    app.add_middleware(FastmangoMiddleware, process=process)
    return app


@pytest.fixture
def process(tmp_path: Path) -> Iterator[ProcessMetrics]:
    p = ProcessMetrics()
    p.bind(tmp_path / "app-metrics", check_owner=False)
    yield p
    p.close()


async def test_agent_exposes_the_derived_series_as_catalogued(
    tmp_path: Path, process: ProcessMetrics
) -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_app(process), log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    base = f"http://127.0.0.1:{port}"
    settings = Settings.model_validate({
        "state_dir": str(tmp_path / "agent"),
        "collectors": {"interval": 1, "host": {"enabled": False},
                       "container": {"enabled": False}, "gpu": {"enabled": False},
                       "app": {"metrics_urls": [base + "/metrics"]}},
    })  # fmt: skip
    agent = Agent(settings, collectors=[AppCollector([base + "/metrics"])])
    running = asyncio.create_task(agent.serve(bind("127.0.0.1", 0)))
    try:
        await agent.ready.wait()
        async with httpx.AsyncClient(base_url=base) as c:
            wanted = {s.name for s in SPECS}
            for _ in range(20):  # traffic in each collection interval until all are derived
                await asyncio.gather(*(c.get(f"/items/{i}") for i in range(20)),
                                     c.get("/fail"), c.post("/chat"))  # fmt: skip
                await asyncio.sleep(0.8)
                text = (await c.get(agent.url + "/metrics")).text
                if all(f"\n{name}" in text for name in wanted):
                    break
    finally:
        agent.request_exit()
        await running
        server.should_exit = True
        await serving
    seen = assert_in_catalogue(text)
    assert {s.name for s in SPECS} <= seen, {s.name for s in SPECS} - seen
