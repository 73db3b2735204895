"""HTTP API of the fleet: ``/api/fleet`` (who is in it, who leads), ``/api/fleet/claims``
(the latest notification claims) and ``/api/keda`` (KEDA's metrics-api scaler)."""

from __future__ import annotations

import math
import time
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from fastmango.agent.fleet import keda
from fastmango.agent.fleet.errors import FleetUnavailable
from fastmango.agent.fleet.rollups import FleetSignal, aggregate, bucketize
from fastmango.agent.settings import parse_duration
from fastmango.series import Sample

#: a leader's shared scaler view older than this many heartbeats is not answered
SHARED_FRESH_HEARTBEATS = 3


def _fleet(agent: Any) -> Any:
    return agent.services.get("fleet")


def mount(app: FastAPI, agent: Any) -> None:
    """Add this part's routes to the agent's app."""

    @app.get("/api/fleet", summary="The fleet: this agent, who leads, every instance's health")
    async def fleet() -> dict[str, Any]:
        svc = _fleet(agent)
        if svc is None:
            return {
                "mode": "off",
                "instance": None,
                "is_leader": True,
                "leader": None,
                "connected": True,
                "instances": [],
                "detail": "fleet.enabled is false: this agent acts alone",
            }
        out: dict[str, Any] = svc.status()
        try:
            out["instances"] = await svc.instances()
        except FleetUnavailable as exc:
            out["instances"] = svc.cached_instances()
            out["last_error"] = str(exc)
        out["leader"] = svc.leader_id
        out["instances_up"] = sum(1 for r in out["instances"] if r["state"] == "up")
        return out

    @app.get(
        "/api/fleet/claims",
        summary="The latest notification claims, newest first",
        responses={503: {"description": "The fleet's PostgreSQL cannot be reached"}},
    )
    async def claims(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
        svc = _fleet(agent)
        if svc is None:
            return []
        try:
            result: list[dict[str, Any]] = await svc.claims(limit)
        except FleetUnavailable as exc:
            raise HTTPException(503, str(exc)) from None
        return result

    @app.get(
        "/api/keda",
        summary="Load, desired replicas and forecast for KEDA's metrics-api scaler",
        description=keda.__doc__,
    )
    async def keda_view(
        window: Annotated[
            str, Query(max_length=20, description="Load averaged over this long, e.g. 60s or 5m")
        ] = "60s",
        env: Annotated[
            str | None, Query(max_length=64, description="Environment the scaler scales")
        ] = None,
    ) -> dict[str, Any]:
        try:
            seconds = float(parse_duration(window))
        except ValueError as exc:
            raise HTTPException(400, f"window: {exc}") from None
        if not 10 <= seconds <= 3600:
            raise HTTPException(400, "window must be between 10s and 1h")
        svc = _fleet(agent)
        now = time.time()
        load: FleetSignal | None = None
        instances, leader = 1, None
        if svc is None:
            load, source = await run_in_threadpool(_store_load, agent, seconds), "local"
        else:
            leader = svc.leader_id
            instances = max(1, sum(1 for r in svc.cached_instances() if r["state"] == "up"))
            source = "fleet" if svc.mode == "postgres" else "local"
            try:
                got = await svc.fleet_signals([keda.LOAD_SIGNAL], seconds)
            except FleetUnavailable:
                got = svc.local_signals([keda.LOAD_SIGNAL], seconds)
                source = "local (fleet database unreachable)"
            load = got.get(keda.LOAD_SIGNAL)
        views, scaling_source = await _scaling(agent, svc)
        try:
            name, view = keda.pick(views, env)
        except KeyError:
            known = ", ".join(sorted(views)) or "none yet"
            raise HTTPException(
                404, f"the scaler has no environment {env!r} (known: {known})"
            ) from None
        return keda.answer(load, source, instances, leader, view, scaling_source, seconds, now,
                           env=name, environments=list(views))  # fmt: skip


async def _scaling(agent: Any, svc: Any) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The scaler's offer per environment: this agent's when it leads (or acts alone),
    else the one the leader last shared, if fresh."""
    scaler = agent.services.get("scaling")
    if svc is None or svc.is_leader:
        views = keda.scaling_views(scaler)
        where = "this agent" if svc is None else f"leader {svc.instance_id}"
        return views, (where if scaler is not None else None)
    try:
        shared = await svc.get_shared("scaling")
    except FleetUnavailable:
        shared = None
    if shared is None:
        return {}, None
    value, age, by = shared
    if age > SHARED_FRESH_HEARTBEATS * svc.cfg.heartbeat_interval + svc.cfg.check_interval:
        return {}, f"leader {by} (stale: {age:.0f}s old)"
    views = value.get("environments")
    return (views if isinstance(views, dict) else {}), f"leader {by}"


def _store_load(agent: Any, window: float) -> FleetSignal | None:
    """Without a fleet service: this agent's load over the window, from its store."""
    if keda.LOAD_SIGNAL not in agent.specs:
        return None
    now = agent.clock()
    found = agent.store.query(keda.LOAD_SIGNAL, [], now - window, now, window)
    samples = [Sample(keda.LOAD_SIGNAL, (), float(v), float(t))
               for s in found["series"] for t, v in s["points"] if math.isfinite(v)]  # fmt: skip
    got = aggregate((("self", b) for b in bucketize(samples, window)), [keda.LOAD_SIGNAL])
    return got.get(keda.LOAD_SIGNAL)
