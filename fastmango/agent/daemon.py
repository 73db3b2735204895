"""The agent daemon: startup, main loop, graceful shutdown (uvicorn's lifecycle).

One asyncio loop runs everything: uvicorn's ``Server`` for the HTTP side, one
:class:`~fastmango.agent.scheduler.Runner` per collector, and the task that renders the
exposition when a snapshot changes. SIGTERM or SIGINT stops it gracefully within
``shutdown_timeout``; a second SIGINT forces the exit. Handlers are restored afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn

from fastmango import __version__
from fastmango.agent import catalogue
from fastmango.agent.exporter import Exporter
from fastmango.agent.front import ASGIApp, Front
from fastmango.agent.scheduler import CollectorState, Runner
from fastmango.agent.selfmetrics import SOURCE, SelfMetrics
from fastmango.agent.services import Service, default_services, start_all, stop_all
from fastmango.agent.settings import Settings
from fastmango.agent.store import Retention, Store
from fastmango.collector.base import AnyCollector
from fastmango.series import MetricSpec, Sample

log = logging.getLogger("fastmango.agent")


def default_collectors(settings: Settings) -> list[AnyCollector]:
    from fastmango.collector.container import ContainerCollector
    from fastmango.collector.gpu import GpuCollector
    from fastmango.collector.host import HostCollector

    out: list[AnyCollector] = []
    if settings.collectors.host.enabled:
        out.append(HostCollector())
    if settings.collectors.container.enabled:
        out.append(ContainerCollector())
    if settings.collectors.gpu.enabled:
        out.append(GpuCollector())
    pg = settings.collectors.postgres
    urls = [settings.database_url] if settings.database_url is not None else []
    if pg.enabled and urls + pg.extra_urls:
        from fastmango.collector.postgres import PostgresCollector

        # one collector for every server (label server=host:port/db); its own budget stays
        # under the agent's timeout so a hung server reads pg_up 0 rather than a failure
        out.append(PostgresCollector([u.get_secret_value() for u in urls + pg.extra_urls],
                                     statement_timeout=pg.statement_timeout,
                                     timeout=0.8 * settings.collectors.timeout,
                                     top_queries=pg.top_queries))  # fmt: skip
    app = settings.collectors.app
    if app.enabled and app.metrics_urls:
        from fastmango.collector.app_scrape import AppCollector, names_for

        names = names_for(app.preset, duration=app.duration_metric,
                          whole_duration=app.whole_duration_metric,
                          requests=app.requests_metric, active=app.active_metric,
                          route_label=app.route_label, status_label=app.status_label)  # fmt: skip
        out.append(AppCollector(app.metrics_urls, names, top_routes=app.top_routes,
                                timeout=min(app.scrape_timeout,
                                            0.8 * settings.collectors.timeout)))  # fmt: skip
    return out


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: the agent owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a clear error naming the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=256)
        # accepted sockets inherit it; asyncio sets it only where proto == IPPROTO_TCP, and
        # create_server's is 0: without it a small response written in two parts waits
        # ~40 ms for the client's delayed ACK on every keep-alive request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    except OSError as exc:
        hint = " (is another agent running here?)" if exc.errno == 98 else ""
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None


class Agent:
    """The sidecar agent. ``await Agent(settings).serve()`` runs it until stopped."""

    def __init__(
        self,
        settings: Settings,
        collectors: list[AnyCollector] | None = None,
        clock: Callable[[], float] = time.time,
        services: dict[str, Service] | None = None,
        child: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.collectors = default_collectors(settings) if collectors is None else collectors
        #: long-running parts beside the collectors (logs, alerts, scaling, deploys, cost)
        self.services: dict[str, Service] = (
            default_services(settings) if services is None else services
        )
        self.specs: dict[str, MetricSpec] = catalogue.index(self.collectors)
        self._kinds = {name: spec.kind for name, spec in self.specs.items()}
        st = settings.store
        self.store = Store(
            settings.store_path,
            Retention(st.raw_retention, st.rollup_retention, st.max_size, st.prune_interval),
            clock=clock,
        )
        self.exporter = Exporter(self.specs)
        self.states = {
            c.name: CollectorState(
                c.name, settings.collectors.interval_of(c.name), settings.collectors.timeout
            )
            for c in self.collectors
        }
        self.started_at = clock()
        self.url = settings.server.url
        self.selfmetrics = SelfMetrics(self.store, self.started_at)
        self._exit = asyncio.Event()
        self._changed = asyncio.Event()
        self.ready = asyncio.Event()
        self._signals: list[int] = []
        self._subscribers: set[asyncio.Queue[tuple[str, float]]] = set()
        self._self_stored_at = float("-inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._runners: list[Runner] = []
        self.server: _Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        #: the app the agent runs (``fastmango agent -- CMD``): see fastmango.agent.logs.child
        self.child_argv = child
        self.child: Any = None

    # -- state for the API -----------------------------------------------------------
    def status(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "version": __version__,
            "pid": os.getpid(),
            "url": self.url,
            "started_at": self.started_at,
            "uptime_seconds": now - self.started_at,
            "state_dir": str(self.settings.state_dir),
            "store": {
                "path": str(self.store.path),
                "size_bytes": self.store.size_bytes(),
                "max_bytes": self.store.retention.max_bytes,
                "written_samples": self.store.written_samples,
                "dropped_samples": self.store.dropped_samples,
                "last_error": self.store.last_error,
            },
            "collectors": [s.as_dict() for s in self.states.values()],
        }

    def collector_details(self, name: str) -> dict[str, Any] | None:
        """A collector's state, plus its ``details()`` (lock chains, top queries…) if any."""
        state = self.states.get(name)
        if state is None:
            return None
        out = state.as_dict()
        collector = next(c for c in self.collectors if c.name == name)
        details = getattr(collector, "details", None)
        out["details"] = details() if callable(details) and state.started else None
        return out

    def subscribe(self) -> asyncio.Queue[tuple[str, float]]:
        """A queue that receives (source, time) each time a collector publishes."""
        q: asyncio.Queue[tuple[str, float]] = asyncio.Queue(maxsize=256)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[tuple[str, float]]) -> None:
        self._subscribers.discard(q)

    def publish(self, source: str, samples: list[Sample] | None) -> None:
        """A collector finished: update its snapshot, store it, refresh self-metrics."""
        if samples is None:
            self.exporter.drop(source)
        else:
            self.exporter.update(source, samples)
            self.store.append(samples, self._kinds)
        self._publish_self()
        now = self.clock()
        for q in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a slow reader misses a tick
                q.put_nowait((source, now))

    def _publish_self(self) -> None:
        """Refresh the self-metrics after every collection (so /metrics shows current
        health), but store them once per collection interval, not once per collector."""
        now = self.clock()
        own = self.selfmetrics.samples(self.states.values(), now).samples
        self.exporter.update(SOURCE, own)
        if now - self._self_stored_at >= self.settings.collectors.interval:
            self._self_stored_at = now
            self.store.append(own, self._kinds)
        self._changed.set()

    # -- lifecycle -------------------------------------------------------------------
    def request_exit(self) -> None:
        self._exit.set()

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self._exit.is_set() and sig == signal.SIGINT:
            sys.stderr.write("fastmango: second interrupt, exiting now\n")
            os._exit(130)
        self._signals.append(sig)
        if self.child is not None:
            self.child.forward(sig)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._exit.set)

    @contextlib.contextmanager
    def _captured_signals(self) -> Iterator[None]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    async def serve(self, sock: socket.socket | None = None) -> int:
        """Run until a signal or :meth:`request_exit`; return the exit code."""
        self._loop = asyncio.get_running_loop()
        with self._captured_signals():
            await self._startup(sock)
            try:
                await self._exit.wait()
            finally:
                code = await self._shutdown()
        if self.child is not None and self.child.code is not None:
            return int(self.child.code)
        return code

    async def _startup(self, sock: socket.socket | None) -> None:
        cfg = self.settings.server
        self.store.open()
        sock = sock or bind(cfg.host, cfg.port)
        _host, port = sock.getsockname()[:2]
        self.url = cfg.model_copy(update={"port": port}).url
        # collection starts first, so the first snapshot is ready as soon as possible
        self._runners = [Runner(c, self.states[c.name], self.publish, self.clock)
                         for c in self.collectors]  # fmt: skip
        self._tasks = [asyncio.create_task(r.run(), name=f"collector-{r.state.name}")
                       for r in self._runners]  # fmt: skip
        self._tasks.append(asyncio.create_task(self._render_loop(), name="render"))
        self._publish_self()  # self-metrics are there from the first scrape
        await start_all(self.services, self)
        if self.child_argv:
            from fastmango.agent.logs.child import Child

            self.child = await Child.start(self, self.child_argv)
        token = cfg.token.get_secret_value() if cfg.token else None
        self.front = Front(self.exporter, self._build_api, token, cfg.public_metrics)
        server = self.server = _Server(
            uvicorn.Config(
                self.front,
                interface="asgi3",
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=1,
                server_header=False,
            )
        )
        server_task = self._server_task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if server_task.done():
                server_task.result()
                raise RuntimeError("the HTTP server stopped during startup")
            await asyncio.sleep(0.005)
        self.ready.set()
        log.info("fastmango agent %s serving %s", __version__, self.url)

    def _build_api(self) -> ASGIApp:
        """The FastAPI app (API, dashboard, login): imported and built on first use."""
        from fastmango.agent.api import create_app

        app: ASGIApp = create_app(self)
        return app

    async def _render_loop(self) -> None:
        first = True
        while True:
            await self._changed.wait()
            if not first:
                await asyncio.sleep(0.02)  # coalesce collectors finishing together
            first = False
            self._changed.clear()
            await asyncio.to_thread(self.exporter.render_pending)

    async def _shutdown(self) -> int:
        deadline = self.settings.shutdown_timeout
        try:
            await asyncio.wait_for(self._stop(), deadline)
        except TimeoutError:
            log.error("graceful stop took over %gs; exiting anyway", deadline)
            return 1
        return 0

    async def _stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None and self._server_task is not None:
            self.server.should_exit = True
            await asyncio.gather(self._server_task, return_exceptions=True)
        await asyncio.gather(*(r.close() for r in self._runners))
        if self.child is not None:
            await self.child.stop(self.settings.shutdown_timeout)
        await stop_all(self.services)
        await asyncio.to_thread(self.store.close)
