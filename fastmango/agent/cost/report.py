"""The cost figures from the agent's settings and store (I/O here, math in
:mod:`fastmango.scaler.cost`)."""

from __future__ import annotations

from typing import Any

from fastmango.agent.cost import inputs
from fastmango.agent.settings import Settings
from fastmango.agent.store import Store
from fastmango.scaler.cost.bill import bill
from fastmango.scaler.cost.pricing import Catalogue


def catalogue(settings: Settings) -> Catalogue:
    return Catalogue.load(settings.cost.prices or {}, stale_days=settings.cost.stale_after / 86400)


def compute_bill(settings: Settings, store: Store, now: float) -> dict[str, Any]:
    """The month's bill for every environment (see :func:`fastmango.scaler.cost.bill.bill`)."""
    envs = inputs.env_inputs(settings, store, now)
    out = bill(envs, catalogue(settings), now)
    out["own_environment"] = inputs.own_environment(settings)
    known = set(settings.environments)
    out["warnings"] = [
        f"cost.budgets names {name!r}, which is not in [environments]"
        for name in settings.cost.budgets or {}
        if known and name not in known
    ]
    if out["own_environment"] is None and len(settings.environments) > 1:
        out["warnings"].append(
            "set cost.environment to the environment this agent runs in, so its egress and "
            "load are counted"
        )
    return out


def prices(settings: Settings, now: float) -> dict[str, Any]:
    cat = catalogue(settings)
    return {
        "generated_at": now,
        "stale_after_days": cat.stale_days,
        "platforms": cat.platforms,
        "entries": cat.as_list(now),
    }
