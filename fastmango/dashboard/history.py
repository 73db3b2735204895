"""Synthetic history: days of plausible 1-minute data for the dashboard's series.

The benchmark and the tests fill a state store with it to measure and check the
7-day views, and ``fastmango demo --history`` back-fills a week so the longer ranges
have something to show. Everything is written through :meth:`Store.append` and rolled
up by the store's own maintenance, exactly as collected data would be.

:func:`daily_shape` is the load curve (night trough, morning ramp, lunch peak, evening
decline) that the demo's traffic generator follows too.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from fastmango.agent.store import Store
from fastmango.series import Kind, Labels, Sample, labels_of


def daily_shape(t: float, day: float = 86400.0) -> float:
    """Load between ~0.1 (04:00) and 1.0 (lunch) at time ``t`` of a ``day``-long cycle."""
    h = (t % day) / day * 24.0
    morning = math.exp(-(((h - 10.0) / 2.5) ** 2)) * 0.75
    lunch = math.exp(-(((h - 13.0) / 1.5) ** 2)) * 0.75
    evening = math.exp(-(((h - 19.0) / 3.0) ** 2)) * 0.45
    return min(1.0, 0.1 + morning + lunch + evening)


@dataclass(frozen=True)
class Track:
    """One synthetic series: a value per minute from the load (0–1) and a random source."""

    name: str
    labels: Labels
    kind: Kind
    value: Callable[[float, random.Random], float]


def _gauge(name: str, fn: Callable[[float, random.Random], float], **labels: str) -> Track:
    return Track(name, labels_of(**labels), "gauge", fn)


def _counter(name: str, per_second: Callable[[float, random.Random], float],
             **labels: str) -> Track:  # fmt: skip
    total = [0.0]

    def step(load: float, rng: random.Random) -> float:
        total[0] += max(0.0, per_second(load, rng)) * 60.0
        return total[0]

    return Track(name, labels_of(**labels), "counter", step)


def _noisy(scale: float, spread: float = 0.2) -> Callable[[float, random.Random], float]:
    """``scale × load``, give or take ``spread``."""
    return lambda load, rng: scale * load * rng.uniform(1 - spread, 1 + spread)


def _connections(share: float) -> Callable[[float, random.Random], float]:
    return lambda load, rng: float(round(share * (10 + 60 * load)))


def default_tracks(cpus: int = 4, gpus: int = 1, rps_peak: float = 300.0) -> list[Track]:
    """About 60 series: host, container, app, GPU and PostgreSQL, following one load;
    ``gpus=0`` leaves the GPU out."""
    mem_limit = 2 * 2**30
    tracks: list[Track] = []
    modes = {"user": 0.45, "system": 0.15, "iowait": 0.03, "irq": 0.005, "softirq": 0.01,
             "steal": 0.002, "nice": 0.001}  # fmt: skip
    for cpu in range(cpus):
        for mode, share in modes.items():
            tracks.append(_counter("node_cpu_seconds_total", _noisy(share), cpu=str(cpu),
                                   mode=mode))  # fmt: skip
        tracks.append(_counter("node_cpu_seconds_total", lambda load, r: 1 - 0.65 * load,
                               cpu=str(cpu), mode="idle"))  # fmt: skip
    tracks += [
        _gauge("fastmango_container_cpu_utilization_ratio",
               lambda load, r: min(1.0, 0.05 + 0.7 * load * r.uniform(0.85, 1.15))),
        _gauge("fastmango_container_memory_utilization_ratio",
               lambda load, r: 0.3 + 0.35 * load),
        _gauge("container_memory_working_set_bytes",
               lambda load, r: mem_limit * (0.3 + 0.35 * load)),
        _gauge("fastmango_container_memory_limit_bytes", lambda load, r: float(mem_limit)),
        _gauge("fastmango_container_cpu_limit_cores", lambda load, r: 2.0),
        _gauge("node_memory_MemAvailable_bytes",
               lambda load, r: 8 * 2**30 * (0.7 - 0.3 * load)),
        _gauge("node_memory_MemTotal_bytes", lambda load, r: 16.0 * 2**30),
    ]  # fmt: skip
    for dev, scale in (("eth0", 1.0), ("lo", 0.2)):
        tracks += [
            _counter("node_network_receive_bytes_total", _noisy(scale * 4e6, 0.3), device=dev),
            _counter("node_network_transmit_bytes_total", _noisy(scale * 9e6, 0.3), device=dev),
        ]  # fmt: skip
    for dev in ("sda", "sdb"):
        tracks += [
            _counter("node_disk_read_bytes_total",
                     lambda load, r: 2e5 + 3e6 * load * r.random(), device=dev),
            _counter("node_disk_written_bytes_total",
                     lambda load, r: 5e5 + 6e6 * load * r.random(), device=dev),
        ]  # fmt: skip
    tracks += [
        _gauge("http_requests_per_second",
               lambda load, r: rps_peak * load * r.uniform(0.9, 1.1)),
        _gauge("http_request_duration_p50_seconds", lambda load, r: 0.02 + 0.03 * load),
        _gauge("http_request_duration_p95_seconds",
               lambda load, r: 0.06 + 0.12 * load * r.uniform(0.8, 1.3)),
        _gauge("http_request_duration_p99_seconds",
               lambda load, r: 0.12 + 0.3 * load * r.uniform(0.7, 1.6)),
        _gauge("http_error_ratio", lambda load, r: 0.01 + (0.05 if r.random() < 0.01 else 0)),
    ]  # fmt: skip
    for gpu in range(gpus):
        tracks += [
            _gauge("DCGM_FI_DEV_GPU_UTIL", lambda load, r: round(90 * load * r.uniform(0.8, 1)),
                   gpu=str(gpu)),
            _gauge("DCGM_FI_DEV_FB_USED", lambda load, r: 20000 + 40000 * load, gpu=str(gpu)),
            _gauge("DCGM_FI_DEV_FB_TOTAL", lambda load, r: 81559.0, gpu=str(gpu)),
        ]  # fmt: skip
    for state, share in (("active", 0.5), ("idle", 0.4), ("idle in transaction", 0.1)):
        tracks.append(_gauge("pg_stat_activity_count", _connections(share), datname="app",
                             state=state))  # fmt: skip
    tracks += [
        _gauge("pg_settings_max_connections", lambda load, r: 100.0),
        _gauge("pg_lock_waiting_backends", lambda load, r: float(r.random() < 0.03 * load)),
        _gauge("pg_lock_wait_longest_seconds", lambda load, r: r.random() * 2 * load),
    ]  # fmt: skip
    return tracks


def backfill(
    store: Store,
    start: float,
    end: float,
    tracks: list[Track] | None = None,
    every: float = 60.0,
    seed: int = 1,
) -> int:
    """Write one sample per ``every`` seconds of each track over [start, end), then roll
    up. The store must be open, and nothing else may write to it meanwhile: while this
    runs the store's clock follows the written time, so its own roll-up and pruning see
    the history arrive as it would have. Returns the number of samples written."""
    tracks = default_tracks() if tracks is None else tracks
    kinds = {t.name: t.kind for t in tracks}
    rng = random.Random(seed)
    written = 0
    batch: list[Sample] = []
    t = start // every * every
    real_clock = store.clock
    written_until = [t]
    store.clock = lambda: written_until[0]
    try:
        while t < end:
            load = daily_shape(t)
            batch.extend(Sample(tr.name, tr.labels, tr.value(load, rng), t) for tr in tracks)
            if len(batch) >= 20_000:
                written += _write(store, batch, kinds)
                written_until[0] = t
                batch = []
            t += every
        written += _write(store, batch, kinds)
        store.flush(timeout=300)
        written_until[0] = t
        store.maintain_now(timeout=600)
    finally:
        store.clock = real_clock
    store.maintain_now(timeout=600)
    return written


def _write(store: Store, batch: list[Sample], kinds: dict[str, Kind]) -> int:
    if batch:
        store.flush(timeout=300)  # the writer's queue drops batches when it is full
        store.append(batch, kinds)
    return len(batch)
