"""One catalogue lists every series; /metrics is held to it, and so is docs/metrics.md."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from fastmango.agent import catalogue
from fastmango.agent.daemon import Agent, bind
from fastmango.agent.settings import Settings
from tests.exposition import assert_in_catalogue

ROOT = Path(__file__).resolve().parents[2]


def test_every_exposed_series_is_in_the_catalogue_with_its_type_and_labels(
    tmp_path: Path,
) -> None:
    async def scrape() -> str:
        settings = Settings.model_validate(
            {"state_dir": str(tmp_path), "collectors": {"interval": 1}}
        )
        agent = Agent(settings)
        task = asyncio.create_task(agent.serve(bind("127.0.0.1", 0)))
        await agent.ready.wait()
        await asyncio.sleep(2.3)  # two rounds: rates need a previous reading
        async with httpx.AsyncClient() as c:
            text = (await c.get(agent.url + "/metrics")).text
        agent.request_exit()
        await task
        return text

    text = asyncio.run(scrape())
    seen = assert_in_catalogue(text)
    # the families every Linux host has are really there
    for name in ("node_cpu_seconds_total", "node_memory_MemTotal_bytes", "node_load1",
                 "node_network_receive_bytes_total", "node_filesystem_avail_bytes",
                 "container_memory_usage_bytes", "fastmango_collector_up",
                 "fastmango_process_resident_memory_bytes"):  # fmt: skip
        assert name in seen, name


def test_docs_metrics_md_is_generated_from_the_catalogue() -> None:
    doc = ROOT / "docs" / "metrics.md"
    assert doc.read_text() == catalogue.markdown(), (
        "docs/metrics.md is stale: run `fastmango metrics catalogue > docs/metrics.md`"
    )
