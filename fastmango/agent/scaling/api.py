"""HTTP API of the agent's scaling part, mounted by :func:`fastmango.agent.api.create_app`.

* ``GET /api/scaling``: per environment the policy, current and desired replicas, the
  reason and message, the inputs, the forecast; the forecaster's state.
* ``GET /api/scaling/decisions?env=&limit=``: recorded decisions, newest first.
* ``GET /api/scaling/chart?env=&range=6h``: load, forecast band, capacity, current and
  desired replicas over time (for the dashboard's charts).
* ``PUT /api/scaling/policy/{env}``, ``DELETE /api/scaling/policy/{env}``,
  ``POST /api/scaling/retrain``: state-changing, so they take the acting user (token or
  session + CSRF) and write an audit record on every path.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query
from starlette.concurrency import run_in_threadpool

from fastmango.agent import audit
from fastmango.agent.auth import require_actor

ENV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
CHART = {
    "load": "fastmango_scaling_load_requests_per_second",
    "capacity": "fastmango_scaling_capacity_requests_per_second",
    "current": "fastmango_scaling_current_replicas",
    "desired": "fastmango_scaling_desired_replicas",
}
FORECAST = "fastmango_scaling_forecast_requests_per_second"


def mount(app: FastAPI, agent: Any) -> None:
    """Add this part's routes to the agent's app."""

    def service() -> Any:
        svc = agent.services.get("scaling")
        if svc is None:
            raise HTTPException(404, "scaling is off (scale.enabled = false)")
        return svc

    def check_env(env: str) -> str:
        if not ENV.match(env):
            raise HTTPException(400, f"bad environment name {env!r}")
        return env

    @app.get("/api/scaling", summary="Scaling policies, decisions and forecasts per environment")
    async def status() -> dict[str, Any]:
        return dict(service().status())

    @app.get("/api/scaling/decisions", summary="Recorded scaling decisions, newest first")
    async def decisions(
        env: Annotated[str | None, Query(max_length=63)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        service()
        if env is not None:
            check_env(env)
        rows = await run_in_threadpool(agent.store.events, "scaling", None,
                                       limit if env is None else 5000)  # fmt: skip
        out = [r for r in rows if env is None or r["data"].get("env") == env]
        return out[:limit]

    @app.get("/api/scaling/chart", summary="Load, forecast band, capacity and replicas over time")
    async def chart(
        env: Annotated[str, Query(max_length=63)],
        range: Annotated[str, Query(max_length=10)] = "6h",
    ) -> dict[str, Any]:
        from fastmango.agent.settings import parse_duration
        from fastmango.agent.store import Matcher

        service()
        check_env(env)
        try:
            span = float(parse_duration(range))
        except ValueError as exc:
            raise HTTPException(400, f"range: {exc}") from None
        if not 60 <= span <= 28 * 86400:
            raise HTTPException(400, "range must be between 1m and 28d")
        now = time.time()
        match = [Matcher("env", "=", env)]

        def run() -> dict[str, Any]:
            out: dict[str, Any] = {"env": env, "start": now - span, "end": now}
            for key, name in CHART.items():
                found = agent.store.query(name, match, start=now - span, end=now)
                out[key] = found["series"][0]["points"] if found["series"] else []
            found = agent.store.query(FORECAST, match, start=now - span, end=now)
            for s in found["series"]:
                out["forecast_" + s["labels"].get("bound", "")] = s["points"]
            return out

        return await run_in_threadpool(run)

    @app.put("/api/scaling/policy/{env}", summary="Set an environment's scaling policy")
    async def put_policy(
        env: Annotated[str, Path(max_length=63)],
        body: Annotated[dict[str, Any], Body()],
        who: Annotated[str, Depends(require_actor)],
    ) -> dict[str, Any]:
        from fastmango.scaler.policy import Policy, PolicyError

        svc = service()
        check_env(env)
        reason = str(body.pop("reason", "") or "")[:1000]
        result, detail = "error", ""
        try:
            try:
                policy = Policy.from_dict(body)
            except (PolicyError, ValueError, TypeError) as exc:
                detail = str(exc)
                result = "rejected"
                raise HTTPException(400, detail) from None
            svc.set_policy(env, policy, who)
            result = "ok"
            return {"env": env, "policy": policy.to_dict(),
                    "dry_run_reason": svc.dry_run_reason(env, policy)}  # fmt: skip
        finally:
            audit.record(agent.store, who=who, action="scale.policy", target=env, result=result,
                         reason=reason, policy=body, error=detail)  # fmt: skip

    @app.delete("/api/scaling/policy/{env}", summary="Remove an environment's scaling policy")
    async def delete_policy(
        env: Annotated[str, Path(max_length=63)],
        who: Annotated[str, Depends(require_actor)],
    ) -> dict[str, Any]:
        svc = service()
        check_env(env)
        result = "error"
        try:
            if env not in svc.envs:
                result = "not_found"
                raise HTTPException(404, f"no scaling policy for {env!r}")
            svc.set_policy(env, None, who)
            result = "ok"
            return {"env": env, "removed": True}
        finally:
            audit.record(agent.store, who=who, action="scale.policy.remove", target=env,
                         result=result)  # fmt: skip

    @app.post("/api/scaling/retrain", summary="Refit the forecaster at the next tick")
    async def retrain(who: Annotated[str, Depends(require_actor)]) -> dict[str, Any]:
        svc = service()
        result = "error"
        try:
            started = svc.retrain_now()
            result = "ok" if started else "busy"
            return {"scheduled": started, "status": svc.status()["forecaster"]}
        finally:
            audit.record(agent.store, who=who, action="scale.retrain", target="forecaster",
                         result=result)  # fmt: skip
