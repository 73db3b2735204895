"""Reads what the cost figures need from the state store: the replica history
(``replicas`` events), per-environment load (``scaling`` events' ``inputs.rps``, and the
agent's own ``http_requests_per_second``), egress (``node_network_transmit_bytes_total``)
and per-instance CPU and memory. The figures themselves are computed in
:mod:`fastmango.scaler.cost` (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastmango.agent.settings import Settings
from fastmango.agent.store import Matcher, Store
from fastmango.scaler.cost.bill import HISTORY, EnvInput
from fastmango.scaler.cost.usage import (
    HOUR,
    changes_from_events,
    counter_increase,
    month_bounds,
    sum_hourly,
)

EVENTS_LIMIT = 200_000
_NOT_LO = [Matcher("device", "!=", "lo")]


def own_environment(settings: Settings) -> str | None:
    """The environment this agent runs in: cost.environment, else the only one."""
    if settings.cost.environment:
        return settings.cost.environment
    envs = list(settings.environments)
    return envs[0] if len(envs) == 1 else None


def _events(store: Store, kind: str, since: float | None = None) -> list[dict[str, Any]]:
    """Events of ``kind`` (after ``since``), oldest first."""
    return list(reversed(store.events(kind, since, EVENTS_LIMIT)))


def env_inputs(settings: Settings, store: Store, now: float) -> list[EnvInput]:
    """One :class:`EnvInput` per environment in the settings or in the history."""
    defaults = {n: (e.platform, e.size) for n, e in settings.environments.items()}
    changes = changes_from_events(_events(store, "replicas"), defaults)
    names = list(settings.environments) + sorted(set(changes) - set(settings.environments))
    names += sorted(set(settings.cost.budgets or {}) - set(names))
    own = own_environment(settings)
    start = min(month_bounds(now)[0], now - HISTORY)
    egress = _egress(store, start, now) if own else None
    own_requests = _own_requests(store, start, now) if own else None
    loads = scaling_loads(_events(store, "scaling", start), start)
    out = []
    for name in names:
        env = settings.environments.get(name)
        extra = settings.cost.environments.get(name)
        hist = changes.get(name, [])
        platform = env.platform if env else (hist[-1].platform if hist else "none")
        requests = own_requests if name == own else _hourly_requests(loads.get(name))
        out.append(EnvInput(
            name=name,
            platform=platform,
            size=env.size if env else (hist[-1].size if hist else ""),
            service=(extra.service if extra and extra.service else (env.app if env else "")),
            production=env.is_production(name) if env else name.startswith("prod"),
            changes=tuple(hist),
            budget=(settings.cost.budgets or {}).get(name),
            gpu=extra.gpu if extra else None,
            gpus=extra.gpus if extra else 0,
            billing=extra.cloudrun_billing if extra else "instance",
            egress=tuple(egress) if name == own and egress is not None else None,
            requests=tuple(requests) if requests else None,
            gpus_seen=_gpus_seen(store, now) if name == own else 0,
        ))  # fmt: skip
    return out


def _gpus_seen(store: Store, now: float) -> int:
    """GPUs with a utilisation reading in the last hour (the GPU collector, NVML)."""
    res = store.query("DCGM_FI_DEV_GPU_UTIL", (), now - HOUR, now, 60.0)
    return sum(1 for s in res["series"] if s["points"])


def _egress(store: Store, start: float, end: float) -> list[tuple[float, float]] | None:
    """Bytes sent per hour over [start, end) from the network counters (loopback left
    out); None when the series was never collected."""
    res = store.query("node_network_transmit_bytes_total", _NOT_LO, start, end, HOUR)
    if not res["series"]:
        return None
    return sum_hourly(counter_increase(s["points"]) for s in res["series"])


def _own_requests(store: Store, start: float, end: float) -> list[tuple[float, float]] | None:
    res = store.query("http_requests_per_second", (), start, end, HOUR)
    if not res["series"]:
        return None
    return [(t, v * HOUR) for t, v in res["series"][0]["points"]]


def scaling_loads(
    events: Iterable[dict[str, Any]], since: float
) -> dict[str, list[tuple[float, float]]]:
    """Per environment, (time, requests per second) from ``scaling`` events' inputs."""
    out: dict[str, list[tuple[float, float]]] = {}
    for ev in events:
        if ev["ts"] < since:
            continue
        d = ev.get("data") or {}
        rps = (d.get("inputs") or {}).get("rps")
        if d.get("env") and isinstance(rps, int | float):
            out.setdefault(d["env"], []).append((float(ev["ts"]), float(rps)))
    return out


def hourly_mean(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    acc: dict[float, list[float]] = {}
    for t, v in points:
        acc.setdefault(t // HOUR * HOUR, []).append(v)
    return [(h, sum(v) / len(v)) for h, v in sorted(acc.items())]


def _hourly_requests(points: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
    if not points:
        return None
    return [(h, rps * HOUR) for h, rps in hourly_mean(points)]


SCALER_LOAD = "fastmango_scaling_load_requests_per_second"


def load_history(
    settings: Settings, store: Store, env: str, start: float, end: float
) -> list[tuple[float, float]]:
    """Hourly mean requests per second of ``env`` over [start, end): the scaler's load
    series for it, else (this agent's environment) the app's own rate, else the ``rps``
    the scaler's decisions recorded."""
    res = store.query(SCALER_LOAD, [Matcher("env", "=", env)], start, end, HOUR)
    if res["series"] and res["series"][0]["points"]:
        return [(t, v) for t, v in res["series"][0]["points"]]
    if env == own_environment(settings):
        res = store.query("http_requests_per_second", (), start, end, HOUR)
        if res["series"]:
            return [(t, v) for t, v in res["series"][0]["points"]]
    return hourly_mean(scaling_loads(_events(store, "scaling", start), start).get(env, []))


def scaling_policy(store: Store, env: str) -> dict[str, Any] | None:
    """The environment's stored scaling policy (``scaling_policy`` events), if any."""
    for ev in store.events("scaling_policy", None, 1000):
        d = ev.get("data") or {}
        if d.get("env") == env:
            policy = d.get("policy")
            return policy if isinstance(policy, dict) else None
    return None


def minute_values(
    store: Store, name: str, matchers: list[Matcher], start: float, end: float, rate: bool
) -> list[tuple[float, float]]:
    """1-minute values of a series (summed over its series per minute), read in chunks so
    the 1000-point cap of a query never coarsens them."""
    per_series: dict[str, dict[float, float]] = {}
    t = start // 60 * 60
    while t < end:
        t1 = min(end, t + 900 * 60)
        res = store.query(name, matchers, t, t1 - 0.001, 60.0, rate)  # [t, t1)
        for s in res["series"]:
            pts = per_series.setdefault(repr(sorted(s["labels"].items())), {})
            for ts, v in s["points"]:
                if start <= ts < end:
                    pts[ts] = v  # a minute two chunks both return counts once
        t = t1
    acc: dict[float, float] = {}
    for pts in per_series.values():
        for ts, v in pts.items():
            acc[ts] = acc.get(ts, 0.0) + v
    return sorted(acc.items())


def instance_usage(store: Store, start: float, end: float) -> dict[str, Any]:
    """Per-minute CPU (cores) and memory (bytes) of this instance: the container's
    series, else the host's."""
    cpu = minute_values(store, "container_cpu_usage_seconds_total", [], start, end, True)
    cpu_src = "container_cpu_usage_seconds_total (rate)"
    if not cpu:
        idle = [Matcher("mode", "!=", "idle"), Matcher("mode", "!=", "iowait")]
        cpu = minute_values(store, "node_cpu_seconds_total", idle, start, end, True)
        cpu_src = 'node_cpu_seconds_total{mode!~"idle|iowait"} (rate)'
    mem = minute_values(store, "container_memory_working_set_bytes", [], start, end, False)
    mem_src = "container_memory_working_set_bytes"
    if not mem:
        total = dict(minute_values(store, "node_memory_MemTotal_bytes", [], start, end, False))
        avail = minute_values(store, "node_memory_MemAvailable_bytes", [], start, end, False)
        mem = [(t, total[t] - v) for t, v in avail if t in total]
        mem_src = "node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes"
    return {"cpu": cpu, "cpu_source": cpu_src, "memory": mem, "memory_source": mem_src}
