"""HTTP API of the agent's cost part, mounted by :func:`fastmango.agent.api.create_app`.

* ``GET /api/cost``: the month's bill per environment: month-to-date, projected to month
  end, budget, each line (compute, GPU, egress, requests) with its usage, the prices it
  rests on (stale ones flagged) and what is unknown; the spend-over-the-month series.
* ``GET /api/cost/savings``: ``--optimize``: savings with their evidence, dollars/month.
* ``GET /api/cost/prices``: the price catalogue with overrides, ages and stale flags.

All read-only. ``?env=`` keeps one environment; ``?fresh=true`` recomputes now.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from starlette.concurrency import run_in_threadpool


def _service(agent: Any) -> Any:
    svc = agent.services.get("cost")
    if svc is None and not agent.settings.cost.enabled:
        raise HTTPException(404, "cost figures are off (cost.enabled = false)")
    return svc if svc is not None and getattr(svc, "host", None) is not None else None


def _only(doc: dict[str, Any], env: str | None, key: str) -> dict[str, Any]:
    if env is None:
        return doc
    rows = [r for r in doc[key] if r.get("env") == env]
    if not rows and key == "environments":
        known = ", ".join(r["env"] for r in doc[key]) or "none"
        raise HTTPException(404, f"no environment named {env!r} (known: {known})")
    return {**doc, key: rows}


Env = Annotated[str | None, Query(max_length=100, description="Keep one environment")]
Fresh = Annotated[bool, Query(description="Recompute now instead of reusing recent figures")]


def mount(app: FastAPI, agent: Any) -> None:
    """Add this part's routes to the agent's app."""

    async def bill_doc(fresh: bool) -> dict[str, Any]:
        svc = _service(agent)
        if svc is not None:
            return await (svc.refresh() if fresh else svc.report())  # type: ignore[no-any-return]
        from fastmango.agent.cost.report import compute_bill

        return await run_in_threadpool(compute_bill, agent.settings, agent.store, agent.clock())

    @app.get("/api/cost", summary="The month's spend per environment: to date, projected, budget")
    async def cost(env: Env = None, fresh: Fresh = False) -> dict[str, Any]:
        return _only(await bill_doc(fresh), env, "environments")

    @app.get("/api/cost/savings", summary="Savings with their evidence, in dollars per month")
    async def savings(env: Env = None, fresh: Fresh = False) -> dict[str, Any]:
        svc = _service(agent)
        if svc is not None:
            doc = await svc.savings(0.0 if fresh else 120.0)
        else:
            from fastmango.agent.cost.optimize import compute_savings

            now = agent.clock()
            doc = await run_in_threadpool(
                compute_savings, agent.settings, agent.store, now, await bill_doc(fresh)
            )
        return _only(doc, env, "savings")

    @app.get("/api/cost/prices", summary="The price catalogue: sources, dates, stale flags")
    async def prices() -> dict[str, Any]:
        from fastmango.agent.cost.report import prices as catalogue

        _service(agent)
        return catalogue(agent.settings, agent.clock())
