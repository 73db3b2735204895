"""A seeded state store for the cost tests: replica history (``replicas`` events as the
deployer and scaler write them), per-environment load (``scaling`` events, 8 days) and
four days of this instance's CPU, memory, egress and request series."""

from __future__ import annotations

import math
import random
from pathlib import Path

from fastmango.agent.store import Retention, Store
from fastmango.dashboard.history import Track, backfill
from fastmango.series import labels_of

HOUR = 3600.0
DAY = 86400.0


def _counter(name: str, per_second: float, scale_load: float, **labels: str) -> Track:
    total = [0.0]

    def step(load: float, rng: random.Random) -> float:
        total[0] += (per_second + scale_load * load) * 60.0
        return total[0]

    return Track(name, labels_of(**labels), "counter", step)


def _gauge(name: str, base: float, scale_load: float) -> Track:
    return Track(name, (), "gauge", lambda load, rng: base + scale_load * load)


#: this instance: 0.05-0.25 cores, 180-260 MiB, 20 kB/s-220 kB/s out, 0-60 req/s
TRACKS = [
    _counter("container_cpu_usage_seconds_total", 0.05, 0.2),
    _gauge("container_memory_working_set_bytes", 180 * 2**20, 80 * 2**20),
    _counter("node_network_transmit_bytes_total", 20_000.0, 200_000.0, device="eth0"),
    _counter("node_network_transmit_bytes_total", 1e9, 0.0, device="lo"),  # never egress
    _gauge("http_requests_per_second", 0.0, 60.0),
]


def office_hours(t: float) -> bool:
    """Weekdays 08:00-20:00 UTC (the epoch was a Thursday)."""
    day = (int(t // DAY) + 3) % 7
    hour = (t % DAY) / HOUR
    return day < 5 and 8 <= hour < 20


def seed(
    state_dir: Path, now: float, days: float = 8.0, series: bool = True, series_days: float = 4.0
) -> None:
    """production: render/standard, 2 instances from 40 days ago, 3 from 2 days ago;
    staging: fly shared-cpu-1x-1gb, 1 instance, busy only in office hours;
    preview: in [environments] but never deployed (no history: unknown)."""
    store = Store(state_dir / "state.db", Retention())
    store.open()
    try:
        ev = store.append_event
        ev("replicas", {"env": "production", "platform": "render", "replicas": 2,
                        "size": "standard", "source": "deploy"}, ts=now - 40 * DAY)  # fmt: skip
        ev("replicas", {"env": "production", "platform": "render", "replicas": 3,
                        "size": "standard", "source": "scaler"}, ts=now - 2 * DAY)  # fmt: skip
        staging = {"env": "staging", "platform": "fly", "replicas": 1,
                   "size": "shared-cpu-1x-1gb", "source": "deploy"}  # fmt: skip
        ev("replicas", staging, ts=now - 40 * DAY)
        t = (now - days * DAY) // HOUR * HOUR
        while t < now:
            rps = 4.0 * (1 + math.sin(t / DAY * 2 * math.pi)) + 1 if office_hours(t) else 0.0
            ev("scaling", {"env": "staging", "current": 1, "desired": 1, "applied": False,
                           "dry_run": False, "reason": "Stable", "message": "",
                           "inputs": {"replicas": 1, "rps": rps, "p95": None},
                           "forecast": None}, ts=t + 60)  # fmt: skip
            t += HOUR
        store.flush()
        if series:
            backfill(store, now - series_days * DAY, now - 60, TRACKS, every=60.0)
    finally:
        store.close()


CONFIG = """
[environments.production]
platform = "render"
app = "shop"
size = "standard"

[environments.staging]
platform = "fly"
app = "shop-staging"
size = "shared-cpu-1x-1gb"

[environments.preview]
platform = "railway"
size = "1cpu-1gb"

[cost]
environment = "production"
budgets = { production = 60, staging = 10 }
"""
