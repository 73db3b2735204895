"""Dashboard fixtures: an agent app in-process, history in a store, and real Chromium."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmango.agent.api import create_app
from fastmango.agent.daemon import Agent
from fastmango.agent.settings import Settings
from fastmango.agent.store import Retention, Store
from fastmango.dashboard.history import backfill, default_tracks
from fastmango.series import labels_of

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def settings_for(tmp_path: Path, **server: object) -> Settings:
    return Settings.model_validate(
        {"state_dir": str(tmp_path / "state"), "collectors": {"interval": 1}, "server": server}
    )


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[tuple[Agent, httpx.AsyncClient]]:
    """The agent's app (no collectors running) behind httpx's ASGI transport."""
    agent = Agent(settings_for(tmp_path), collectors=[])
    agent.store.open()
    transport = httpx.ASGITransport(app=create_app(agent))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9871") as c:
        yield agent, c
    agent.store.close()


def fill_history(state_dir: Path, days: float, every: float = 60.0) -> int:
    """Synthetic history up to a minute ago in ``state_dir/state.db`` (closed after).

    Its counters carry an extra label, so an agent's own counters of the same names
    (far higher values) stay separate series instead of making one rate spike."""
    tracks = [
        replace(t, labels=labels_of(dict(t.labels), history="1")) if t.kind == "counter" else t
        for t in default_tracks()
    ]
    store = Store(state_dir / "state.db", Retention())
    store.open()
    try:
        now = time.time()
        return backfill(store, now - days * 86400, now - 60, tracks, every=every)
    finally:
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (see scripts/test.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def shoot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
