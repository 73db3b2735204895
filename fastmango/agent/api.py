"""The agent's HTTP side: ``/metrics``, ``/healthz`` and the JSON API under ``/api``.

The app reads the running agent through a small :class:`AgentView` protocol, so the
dashboard (and tests) can mount it over any agent. Who may call what (bearer token,
browser sessions, CSRF) is decided in one place, :mod:`fastmango.agent.auth`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from fastmango import __version__, dashboard
from fastmango.agent import auth
from fastmango.agent.exporter import Exporter
from fastmango.agent.limits import LimitsMiddleware, RateLimiter
from fastmango.agent.services import Service
from fastmango.agent.settings import Settings, parse_duration
from fastmango.agent.store import Store, parse_match
from fastmango.series import MetricSpec


class AgentView(Protocol):
    settings: Settings
    exporter: Exporter
    store: Store
    specs: dict[str, MetricSpec]
    services: dict[str, Service]
    clock: Callable[[], float]
    url: str

    def status(self) -> dict[str, Any]: ...

    def collector_details(self, name: str) -> dict[str, Any] | None: ...

    def subscribe(self) -> asyncio.Queue[tuple[str, float]]: ...

    def unsubscribe(self, q: asyncio.Queue[tuple[str, float]]) -> None: ...


def parse_time(value: str | None, now: float) -> float | None:
    """Unix seconds, or a duration meaning that long ago (``15m``, ``7d``)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return now - float(parse_duration(value))
    except ValueError:
        raise ValueError(f"{value!r} is neither Unix seconds nor a duration like 15m") from None


class Problem(BaseModel):
    """Every refusal: the status code says what kind, ``detail`` says why."""

    detail: Any


#: refusals any route may answer (documented once, for the whole API)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Bad input; detail names what and why"},
    401: {"model": Problem, "description": "A valid bearer token or session is required"},
    403: {"model": Problem, "description": "Refused (host not allowed, cross-site, CSRF)"},
    404: {"model": Problem, "description": "No such thing"},
    409: {"model": Problem, "description": "Conflicts with the current state (e.g. a lock)"},
    413: {"model": Problem, "description": "Request body over server.max_body"},
    429: {"model": Problem, "description": "Too many requests; see Retry-After"},
}


def create_app(agent: AgentView) -> FastAPI:
    app = FastAPI(
        title="fastmango agent",
        version=__version__,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        responses=ERRORS,
    )
    server = agent.settings.server
    auth.install(
        app,
        server.token.get_secret_value() if server.token else None,
        agent.store,
        public_metrics=server.public_metrics,
        bind_host=server.host,
    )

    @app.get("/healthz", summary="Liveness: the agent is running")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get(
        "/metrics",
        summary="Prometheus exposition of the latest snapshot",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}, "application/openmetrics-text": {}}}},
    )
    async def metrics(request: Request) -> Response:
        body, content_type, gz = agent.exporter.body(
            request.headers.get("accept", ""), request.headers.get("accept-encoding", "")
        )
        headers = {"Vary": "Accept, Accept-Encoding"}
        if gz:
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=content_type, headers=headers)

    @app.get("/api/status", summary="Agent, collectors and store status")
    async def status() -> dict[str, Any]:
        return agent.status()

    @app.get("/api/collectors/{name}", summary="One collector's health and latest details")
    async def collector(name: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
        out = agent.collector_details(name)
        if out is None:
            raise HTTPException(404, f"no collector named {name!r}")
        return out

    @app.get("/api/events", summary="Recorded events (audit, alerts, decisions), newest first")
    async def events(
        kind: Annotated[str | None, Query(max_length=40)] = None,
        since: Annotated[str | None, Query(max_length=40, description="Unix seconds or 1h")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        try:
            t0 = parse_time(since, time.time())
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return await run_in_threadpool(agent.store.events, kind, t0, limit)

    @app.get("/api/catalogue", summary="Every series the agent may expose")
    async def catalogue() -> list[dict[str, Any]]:
        return [
            {"name": s.name, "type": s.kind, "unit": s.unit, "help": s.help,
             "labels": list(s.labels)}
            for s in sorted(agent.specs.values(), key=lambda s: s.name)
        ]  # fmt: skip

    @app.get("/api/series", summary="A stored series, downsampled to at most 1000 points")
    async def series(
        name: Annotated[str, Query(min_length=1, max_length=200, description="Series name")],
        match: Annotated[
            str, Query(max_length=2000, description='Label matchers: mode="idle",cpu=~"0|1"')
        ] = "",
        start: Annotated[
            str | None, Query(max_length=40, description="Unix seconds, or 15m = that long ago")
        ] = None,
        end: Annotated[str | None, Query(max_length=40, description="Unix seconds or 15m")] = None,
        step: Annotated[
            str | None, Query(max_length=40, description="Seconds per point, e.g. 60 or 5m")
        ] = None,
        rate: Annotated[bool, Query(description="Per-second rate of a counter")] = False,
    ) -> dict[str, Any]:
        now = time.time()
        try:
            matchers = parse_match(match)
            t0, t1 = parse_time(start, now), parse_time(end, now)
            step_s = float(parse_duration(step)) if step else None
            if step_s is not None and step_s <= 0:
                raise ValueError("step must be positive")
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        spec = agent.specs.get(name)
        if spec is None:
            raise HTTPException(404, f"no series named {name!r}; see /api/catalogue")
        if rate and spec.kind != "counter":
            raise HTTPException(400, f"rate needs a counter; {name} is a {spec.kind}")
        try:
            return await run_in_threadpool(agent.store.query, name, matchers, t0, t1, step_s, rate)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    # outermost: refuse floods and oversized bodies before any other work
    app.add_middleware(
        LimitsMiddleware,
        max_body=server.max_body,
        limiter=RateLimiter(server.rate_limit, server.rate_burst) if server.rate_limit else None,
    )
    dashboard.mount(app, agent)
    from fastmango.agent.alerts import api as alerts_api
    from fastmango.agent.cost import api as cost_api
    from fastmango.agent.deploys import api as deploys_api
    from fastmango.agent.fleet import api as fleet_api
    from fastmango.agent.logs import api as logs_api
    from fastmango.agent.scaling import api as scaling_api

    for part in (logs_api, alerts_api, scaling_api, deploys_api, cost_api, fleet_api):
        part.mount(app, agent)
    return app
