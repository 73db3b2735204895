"""HTTP API of the agent's deploys part, mounted by :func:`fastmango.agent.api.create_app`.

* ``GET /api/deploys``: every environment with its lock, the health gate's state and the
  recorded releases.
* ``GET /api/deploys/{env}/releases``: the platform's releases (asks the platform), with
  who deployed each and how it went.
* ``GET /api/deploys/{env}/gates``: the health gate's verdicts with the error ratio and
  p95 before and after each rollout (chart series).
* ``POST /api/deploys/{env}/rollback`` ``{"version"?: "v12", "reason"?: "…"}``: roll
  back (authenticated, CSRF-checked, audited on every path).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException
from starlette.concurrency import run_in_threadpool

from fastmango.agent.auth import require_actor


def mount(app: FastAPI, agent: Any) -> None:
    """Add this part's routes to the agent's app."""

    def service() -> Any:
        return agent.services.get("deploys")

    def known(env: str) -> Any:
        e = agent.settings.environments.get(env)
        if e is None:
            raise HTTPException(404, f"no environment {env!r} in the settings")
        return e

    @app.get("/api/deploys")
    async def overview() -> dict[str, Any]:
        from fastmango.agent.deploys import actions
        from fastmango.agent.deploys.lock import all_locks

        settings = agent.settings
        now = agent.clock()
        locks = {h.env: h for h in await run_in_threadpool(all_locks, actions.lock_path(settings))}
        svc = service()
        gates = await run_in_threadpool(agent.store.events, "gate", None, 200)
        envs = []
        for name, e in sorted(settings.environments.items()):
            held = locks.get(name)
            live_gate = svc.gate_state(name) if svc is not None else None
            last_gate = next((g["data"] for g in gates if g["data"].get("env") == name), None)
            history = await run_in_threadpool(actions.history, settings, name, agent.store, 50)
            envs.append(
                {
                    "name": name,
                    "platform": e.platform,
                    "app": e.app,
                    "regions": e.regions,
                    "size": e.size,
                    "production": e.is_production(name),
                    "lock": None
                    if held is None or held.expires <= now
                    else {
                        "action": held.action,
                        "who": held.who,
                        "pid": held.pid,
                        "host": held.host,
                        "since": held.taken,
                        "expires": held.expires,
                    },
                    "gate": live_gate or last_gate,
                    "releases": history,
                }
            )
        return {"environments": envs, "gate_settings": settings.deploy.gate.model_dump()}

    @app.get("/api/deploys/{env}/releases")
    async def platform_releases(env: str, limit: int = 20) -> list[dict[str, Any]]:
        from fastmango.agent.deploys import actions
        from fastmango.deployer.platforms import connect
        from fastmango.errors import FastmangoError

        known(env)
        recorded = await run_in_threadpool(actions.history, agent.settings, env, agent.store, 500)
        by_id = {r["release_id"]: r for r in reversed(recorded) if r.get("release_id")}
        try:
            platform = connect(actions.target_of(agent.settings, env))
            try:
                rels = await platform.releases(limit=min(max(limit, 1), 100))
            finally:
                await platform.aclose()
        except FastmangoError as exc:
            raise HTTPException(502, str(exc)) from None
        return [
            {
                "version": r.version,
                "state": r.state,
                "image": r.image,
                "id": r.id,
                "created_at": r.created_at,
                "message": r.message,
                "who": by_id.get(r.id, {}).get("who"),
                "recorded": by_id.get(r.id, {}).get("state"),
            }
            for r in rels
        ]

    @app.get("/api/deploys/{env}/gates")
    async def gates(env: str, limit: int = 5) -> list[dict[str, Any]]:
        known(env)
        svc = service()
        rows = [
            g["data"]
            for g in await run_in_threadpool(agent.store.events, "gate", None, 500)
            if g["data"].get("env") == env
        ][: max(1, min(limit, 20))]
        live = svc.gate_state(env) if svc is not None else None
        if live is not None and live.get("verdict") == "running":
            rows.insert(0, dict(live))
        return [await run_in_threadpool(_with_series, agent, r) for r in rows]

    @app.post("/api/deploys/{env}/rollback")
    async def rollback(
        env: str,
        actor: Annotated[str, Depends(require_actor)],
        body: Annotated[dict[str, Any] | None, Body()] = None,
    ) -> dict[str, Any]:
        from fastmango.agent import audit
        from fastmango.agent.deploys import actions
        from fastmango.deployer.errors import LockBusy, NoSuchRelease
        from fastmango.errors import FastmangoError

        body = body or {}
        version = body.get("version") or None
        reason = str(body.get("reason") or "from the dashboard")
        if version is not None and not isinstance(version, str):
            raise HTTPException(400, "version must be a string such as v12")
        if env not in agent.settings.environments:
            audit.record(
                agent.store,
                who=actor,
                action="rollback",
                target=env,
                result="error",
                reason=f"no environment {env!r}",
            )
            raise HTTPException(404, f"no environment {env!r} in the settings")
        try:
            out = await actions.rollback(
                agent.settings, env, who=actor, version=version, reason=reason, store=agent.store
            )
        except LockBusy as exc:
            raise HTTPException(409, str(exc)) from None
        except NoSuchRelease as exc:
            raise HTTPException(400, str(exc)) from None
        except FastmangoError as exc:
            raise HTTPException(502, str(exc)) from None
        return out.as_dict()


def _with_series(agent: Any, gate: dict[str, Any]) -> dict[str, Any]:
    """The gate verdict plus its charts: error ratio and p95 from the baseline's start to
    the end of the watch (or now)."""
    from fastmango.agent.deploys.service import ERRORS, P95

    start = gate.get("baseline_start")
    end = min(agent.clock(), float(gate.get("ends") or agent.clock()))
    if gate.get("decided"):
        end = min(end, float(gate["decided"]) + 1)
    series: dict[str, list[list[float]]] = {}
    if start is not None and end > float(start):
        for name in (ERRORS, P95):
            res = agent.store.query(name, [], float(start), end)
            pts: dict[float, list[float]] = {}
            for s in res["series"]:
                for t, v in s["points"]:
                    pts.setdefault(t, []).append(v)
            series[name] = [[t, sum(vs) / len(vs)] for t, vs in sorted(pts.items())]
    return {**gate, "series": series}
