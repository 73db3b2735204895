"""The answer of ``/api/keda`` for KEDA's ``metrics-api`` scaler (pure).

KEDA calls the URL, picks one value out of the JSON with the trigger's ``valueLocation``
(a GJSON path) and feeds it to the HPA; a string there is read as a Kubernetes quantity
(``"12.5"``, ``"4"``), so every figure is a plain decimal string. A figure the agent
does not know yet is left out (KEDA then reports the trigger as failing and keeps the
replica count, or applies the ScaledObject's ``fallback``) rather than answered as 0,
which would scale the app in. ``missing`` names what was left out and why.

Fields (``valueLocation``):

- ``load.requests_per_second``: the fleet's requests per second (sum over the agents'
  roll-ups of ``http_requests_per_second`` in the window); use ``metricType:
  AverageValue`` and ``targetValue`` = requests per second one replica should take;
- ``desired.replicas``: the replicas the leader's scaler wants; use ``targetValue: "1"``
  (with AverageValue KEDA asks for ceil(value / 1) replicas);
- ``forecast.requests_per_second`` / ``forecast.replicas``: the scaler's forecast, when
  it makes one;
- ``fleet.instances``: agents alive in the fleet.

With several environments scaled, ``?env=NAME`` picks one (default: the first by name);
``environments`` lists them.
"""

from __future__ import annotations

import math
from typing import Any

from fastmango.agent.fleet.rollups import FleetSignal

LOAD_SIGNAL = "http_requests_per_second"


def quantity(value: float) -> str:
    """A float as a Kubernetes quantity KEDA parses: plain decimal, at most 3 decimals."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value}")
    if float(value).is_integer():
        return str(int(value))
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def answer(
    load: FleetSignal | None,
    load_source: str,
    instances: int,
    leader: str | None,
    scaling: dict[str, Any] | None,
    scaling_source: str | None,
    window: float,
    now: float,
    env: str | None = None,
    environments: list[str] | None = None,
) -> dict[str, Any]:
    """The JSON document ``/api/keda`` answers; ``scaling`` is one environment's view
    (see :func:`scaling_views`), ``env`` its name."""
    out: dict[str, Any] = {}
    missing: dict[str, str] = {}
    if load is not None:
        out["load"] = {
            "requests_per_second": quantity(load.sum),
            "per_instance": quantity(load.sum / max(load.instances, 1)),
            "instances_reporting": str(load.instances),
        }
    else:
        missing["load"] = f"no {LOAD_SIGNAL} roll-ups in the last {window:g}s"
    scaling = scaling or {}
    desired = scaling.get("desired_replicas")
    if isinstance(desired, int | float) and math.isfinite(desired):
        out["desired"] = {"replicas": quantity(math.ceil(desired))}
    else:
        missing["desired"] = (
            "the scaler offers no desired replicas" if scaling_source else "no scaler runs"
        )
    forecast = {}
    for key, field in (("forecast_requests_per_second", "requests_per_second"),
                       ("forecast_replicas", "replicas"),
                       ("forecast_horizon_seconds", "horizon_seconds")):  # fmt: skip
        v = scaling.get(key)
        if isinstance(v, int | float) and math.isfinite(v):
            forecast[field] = quantity(math.ceil(v) if field == "replicas" else v)
    if forecast:
        out["forecast"] = forecast
    else:
        missing["forecast"] = (
            "the scaler offers no forecast" if scaling_source else "no scaler runs"
        )
    out["fleet"] = {"instances": str(max(instances, 1)), "leader": leader or ""}
    out["env"] = env or ""
    out["environments"] = sorted(environments or [])
    out["source"] = {"load": load_source, "scaling": scaling_source or ""}
    out["window_seconds"] = quantity(window)
    out["time"] = now
    if missing:
        out["missing"] = missing
    return out


#: the scaler's forecast fields (status()["environments"][env]["forecast"]) → ours
_FORECAST = {
    "peak": "forecast_requests_per_second",
    "replicas": "forecast_replicas",
    "horizon_seconds": "forecast_horizon_seconds",
}


def scaling_views(service: Any) -> dict[str, dict[str, Any]]:
    """Per environment, what the scaling service offers KEDA: ``desired_replicas``,
    ``forecast_requests_per_second`` (the forecast's upper bound), ``forecast_replicas``,
    ``forecast_horizon_seconds``; read from its ``status()`` (environments with neither a
    decision nor a forecast yet are left out)."""
    status = getattr(service, "status", None)
    if service is None or not callable(status):
        return {}
    doc = status()
    envs = doc.get("environments") if isinstance(doc, dict) else None
    if not isinstance(envs, dict):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for env, e in envs.items():
        if not isinstance(e, dict):
            continue
        view: dict[str, Any] = {}
        desired = e.get("desired")
        if isinstance(desired, int | float) and not isinstance(desired, bool):
            view["desired_replicas"] = desired
        fc = e.get("forecast")
        if isinstance(fc, dict):
            for theirs, ours in _FORECAST.items():
                v = fc.get(theirs)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    view[ours] = v
        if view:
            out[str(env)] = view
    return out


def pick(views: dict[str, dict[str, Any]], env: str | None) -> tuple[str | None, dict[str, Any]]:
    """The view of ``env``, or with none named the only (or first by name) environment.
    Raises KeyError for an environment the scaler does not know."""
    if env:
        return env, views[env]
    if not views:
        return None, {}
    name = sorted(views)[0]
    return name, views[name]
