"""/api/stream over a real socket: events on publish, keep-alives, unsubscribe on close."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import fastapi.routing
import httpx
import pytest

from fastmango.agent.daemon import Agent, bind

from .conftest import settings_for


async def next_event(lines: AsyncIterator[str]) -> dict[str, str]:
    """The next SSE frame's fields (comments are returned as {"comment": ...})."""
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if fields:
                return fields
            continue
        key, _, value = line.partition(":")
        if key == "":
            return {"comment": value.strip()}
        fields[key] = value.strip()
    raise AssertionError("the stream ended")


async def test_stream_events_keepalive_and_unsubscribe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.3)
    agent = Agent(settings_for(tmp_path), collectors=[])
    task = asyncio.create_task(agent.serve(bind("127.0.0.1", 0)))
    await asyncio.wait_for(agent.ready.wait(), 10)
    try:
        async with (
            httpx.AsyncClient(base_url=agent.url, timeout=5) as c,
            c.stream("GET", "/api/stream") as resp,
        ):
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers["cache-control"] == "no-cache"
            lines = resp.aiter_lines()
            hello = await asyncio.wait_for(next_event(lines), 5)
            assert hello["event"] == "hello" and hello["retry"] == "2000"
            assert len(agent._subscribers) == 1
            agent.publish("host", [])
            agent.publish("container", [])  # a burst is coalesced into one event
            got = await asyncio.wait_for(next_event(lines), 5)
            assert got["event"] == "collect"
            assert json.loads(got["data"])["sources"] == ["container", "host"]
            ping = await asyncio.wait_for(next_event(lines), 5)  # nothing published: keep-alive
            assert "comment" in ping
        for _ in range(100):  # the client went away: the queue is dropped
            if not agent._subscribers:
                break
            await asyncio.sleep(0.05)
        assert not agent._subscribers
    finally:
        agent.request_exit()
        assert await asyncio.wait_for(task, 10) == 0
