"""``fastmango demo``: the agent beside a sample app under synthetic traffic, on loopback.

Everything runs in one process and one event loop: the agent (collectors every second,
state in a temporary folder unless ``--state-dir``), the sample shop of
:mod:`fastmango.dashboard.demo_app` under uvicorn on a free port (the agent scrapes its
``/metrics``), and :class:`Traffic`, whose request rate follows a day compressed into
ten minutes (night trough, morning ramp, lunch peak, evening decline; it starts at
08:30) with about 1–2 % server errors and the odd slow request. The app's log file
(``shop.log`` in the state folder) is what the agent's logs service follows, and the
environment ``demo`` gets a dry-run scaling policy (unless the state has one), so the
Logs and Scaling pages are alive too. Ctrl-C (or ``--duration``) stops all of it: the
agent owns the signals, the rest follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import tempfile
import time
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from fastmango.agent.daemon import Agent, bind
from fastmango.agent.settings import Settings
from fastmango.dashboard.demo_app import (
    ITEMS,
    Items,
    PostgresItems,
    SQLiteItems,
    create_app,
)
from fastmango.dashboard.demo_app import log as shop_log
from fastmango.dashboard.history import backfill, daily_shape, default_tracks

log = logging.getLogger("fastmango.demo")

DAY = 600.0  # seconds per simulated day
START_HOUR = 8.5  # the simulated time the demo starts at
PEAK = 30.0  # requests per second at the lunch peak
DEMO_ENV = "demo"  # the environment the demo's scaling policy decides for (dry-run)
LOG_FILE = "shop.log"  # the sample app's log, in the state folder
PROMPTS = ("which mango is ripest", "recommend a fruit for a smoothie",
           "is durian really that smelly", "gift ideas under 20 dollars")  # fmt: skip


@dataclass
class Traffic:
    """Synthetic visitors of the sample app: a daily shape, a route mix, now and then a
    404 (unknown item); the app adds its own errors and slow answers."""

    base_url: str
    peak: float = PEAK
    day: float = DAY
    start_hour: float = START_HOUR
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    sent: int = 0
    server_errors: int = 0
    failures: int = 0  # no answer at all

    def rate(self, elapsed: float) -> float:
        """Requests per second ``elapsed`` real seconds after the start."""
        simulated = self.start_hour * 3600 + elapsed * 86400 / self.day
        return self.peak * daily_shape(simulated)

    def pick(self) -> tuple[str, str, dict[str, Any] | None]:
        r = self.rng.random()
        if r < 0.45:
            return "GET", f"/api/items?limit={self.rng.choice((10, 20, 50))}", None
        if r < 0.80:
            item = self.rng.randint(1, ITEMS + ITEMS // 30)  # a few unknown ids: 404
            return "GET", f"/api/items/{item}", None
        if r < 0.95:
            order = {"item_id": self.rng.randint(1, ITEMS), "qty": self.rng.randint(1, 3)}
            return "POST", "/api/checkout", order
        return "POST", "/api/chat", {"prompt": self.rng.choice(PROMPTS)}

    async def _one(self, client: httpx.AsyncClient, limit: asyncio.Semaphore) -> None:
        method, path, body = self.pick()
        async with limit:
            try:
                resp = await client.request(method, path, json=body)
            except httpx.HTTPError:
                self.failures += 1
                return
        self.sent += 1
        if resp.status_code >= 500:
            self.server_errors += 1

    async def run(self, tick: float = 0.05) -> None:
        """Send requests until cancelled."""
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(64)
        pending: set[asyncio.Task[None]] = set()
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10, limits=limits) as c:
            began = loop.time()
            owed = 0.0
            try:
                while True:
                    owed += self.rate(loop.time() - began) * tick
                    n = int(owed) + (1 if self.rng.random() < owed % 1 else 0)
                    owed -= n
                    for _ in range(max(0, n)):
                        task = asyncio.create_task(self._one(c, limit))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                    await asyncio.sleep(tick)
            finally:
                for task in list(pending):
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)


class _Server(uvicorn.Server):
    """The sample app's server: the agent owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def demo_settings(settings: Settings, state_dir: Path, app_url: str) -> Settings:
    """The user's settings, with the demo's: loopback, no token, 1 s, the app scraped,
    its log file followed."""
    data = settings.model_dump()
    data["state_dir"] = state_dir
    data["store"]["path"] = None
    data["server"].update(host="127.0.0.1", token=None)
    data["collectors"]["interval"] = 1.0
    data["collectors"]["app"].update(enabled=True, metrics_urls=[app_url + "/metrics"])
    data["logs"].update(enabled=True, paths=[str(state_dir / LOG_FILE)])
    return Settings.model_validate(data)


@contextlib.contextmanager
def shop_log_file(path: Path) -> Iterator[None]:
    """The sample app's log lines go to ``path`` (Python logging's usual format), not to
    the console, while the demo runs."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    shop_log.addHandler(handler)
    shop_log.setLevel(logging.INFO)
    shop_log.propagate = False
    try:
        yield
    finally:
        shop_log.removeHandler(handler)
        shop_log.propagate = True
        handler.close()


def demo_policy(agent: Agent) -> None:
    """A dry-run policy for the environment ``demo`` (unless the state already holds
    one): one instance per a quarter of the peak load, forecast on, so the Scaling page
    decides and explains from the first minute."""
    from fastmango.agent.scaling.service import ScalingService
    from fastmango.scaler.policy import Policy, Predictive, Targets

    svc = agent.services.get("scaling")
    if not isinstance(svc, ScalingService) or DEMO_ENV in svc.envs:
        return
    policy = Policy(min=1, max=8, targets=Targets(rps=PEAK / 4),
                    predictive=Predictive(enabled=True), dry_run=True)  # fmt: skip
    svc.set_policy(DEMO_ENV, policy, who="fastmango demo")


async def _items(settings: Settings, state_dir: Path) -> tuple[Items, str]:
    if settings.database_url is not None:
        dsn = settings.database_url.get_secret_value()
        return await PostgresItems.connect(dsn), "PostgreSQL (database_url)"
    return SQLiteItems(state_dir / "demo-shop.sqlite3"), "SQLite"


def _history(settings: Settings, peak: float) -> int:
    """A week of synthetic history of the app's series (the sample app is synthetic; the
    host, container, GPU and PostgreSQL series stay real, from now on)."""
    from fastmango.agent.store import Retention, Store

    st = settings.store
    store = Store(settings.store_path, Retention(st.raw_retention, st.rollup_retention,
                                                 st.max_size, st.prune_interval))  # fmt: skip
    tracks = [t for t in default_tracks(gpus=0, rps_peak=peak) if t.name.startswith("http_")]
    store.open()
    try:
        now = time.time()
        return backfill(store, now - 7 * 86400, now - 60, tracks, every=120)
    finally:
        store.close()


async def run_demo(
    settings: Settings,
    *,
    port: int = 0,
    state_dir: Path | None = None,
    duration: float | None = None,
    open_browser: bool = True,
    history: bool = False,
    echo: Callable[[str], None] = print,
) -> int:
    """Run the demo until Ctrl-C, SIGTERM or ``duration`` seconds; the agent's exit code."""
    own_dir = state_dir is None
    folder = Path(tempfile.mkdtemp(prefix="fastmango-demo-")) if state_dir is None else state_dir
    folder.mkdir(parents=True, exist_ok=True)
    app_sock = bind("127.0.0.1", 0)
    app_url = f"http://127.0.0.1:{app_sock.getsockname()[1]}"
    agent_sock = bind("127.0.0.1", port)
    tasks: list[asyncio.Task[Any]] = []
    items: Items | None = None
    server: _Server | None = None
    logging_to = contextlib.ExitStack()
    try:
        demo = demo_settings(settings, folder, app_url)
        logging_to.enter_context(shop_log_file(folder / LOG_FILE))
        items, engine = await _items(demo, folder)
        if history:
            echo("writing a week of synthetic history of the app's series…")
            await asyncio.to_thread(_history, demo, PEAK)
        server = _Server(uvicorn.Config(create_app(items), log_level="warning",
                                        access_log=False, lifespan="off"))  # fmt: skip
        tasks.append(asyncio.create_task(server.serve(sockets=[app_sock])))
        agent = Agent(demo)
        agent_task = asyncio.create_task(agent.serve(agent_sock))
        ready = asyncio.create_task(agent.ready.wait())
        await asyncio.wait({agent_task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not agent.ready.is_set():
            ready.cancel()
            return await agent_task
        demo_policy(agent)
        traffic = Traffic(app_url)
        tasks.append(asyncio.create_task(traffic.run()))
        url = agent.url + "/"
        echo(f"fastmango demo: dashboard {url}")
        echo(f"  sample app {app_url} ({engine}), synthetic traffic up to {PEAK:g} req/s, "
             f"one day every {DAY / 60:g} min")  # fmt: skip
        echo(f"  state {folder}{' (removed at exit)' if own_dir else ''}; Ctrl-C stops it all")
        if open_browser and not await asyncio.to_thread(webbrowser.open, url):
            echo(f"  no browser found here: open {url} in your browser")
        waiting: set[asyncio.Task[Any]] = {agent_task}
        if duration is not None:
            waiting.add(asyncio.create_task(asyncio.sleep(duration)))
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if agent_task not in done:
            agent.request_exit()
        code = await agent_task
        echo(f"fastmango demo: stopped after {traffic.sent} requests "
             f"({traffic.server_errors} server errors)")  # fmt: skip
        return code
    finally:
        for task in tasks[1:]:
            task.cancel()
        if server is not None:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        if items is not None:
            await items.close()
        logging_to.close()
        app_sock.close()
        agent_sock.close()
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)
