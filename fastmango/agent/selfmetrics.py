"""The agent's own series (``fastmango_*``): collector health, process, store.

Computed from in-memory state each time a collector finishes, so ``/metrics`` always
shows current collector health without doing work at scrape time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import psutil

from fastmango import __version__
from fastmango.agent.scheduler import CollectorState
from fastmango.agent.store import Store
from fastmango.series import MetricSpec, SampleBuilder, spec_index

SOURCE = "fastmango"

SPECS = [
    MetricSpec("fastmango_build_info", "gauge", "Always 1; labels give the agent's version.",
               ("version",)),
    MetricSpec("fastmango_start_time_seconds", "gauge", "When the agent started (Unix time).",
               unit="seconds"),
    MetricSpec("fastmango_collector_up", "gauge",
               "1 if the collector's last run succeeded, 0 if it failed or timed out.",
               ("collector",)),
    MetricSpec("fastmango_collector_runs_total", "counter", "Collections attempted.",
               ("collector",)),
    MetricSpec("fastmango_collector_errors_total", "counter",
               "Collections that raised or timed out.", ("collector",)),
    MetricSpec("fastmango_collector_duration_seconds", "gauge",
               "Duration of the collector's last run.", ("collector",), unit="seconds"),
    MetricSpec("fastmango_collector_last_success_timestamp_seconds", "gauge",
               "When the collector last succeeded (Unix time; 0 = never).", ("collector",),
               unit="seconds"),
    MetricSpec("fastmango_collector_series", "gauge",
               "Samples returned by the collector's last successful run.", ("collector",)),
    MetricSpec("fastmango_process_cpu_seconds_total", "counter",
               "CPU time (user + system) used by the agent process.", unit="seconds"),
    MetricSpec("fastmango_process_resident_memory_bytes", "gauge",
               "Resident memory of the agent process.", unit="bytes"),
    MetricSpec("fastmango_process_threads", "gauge", "Threads of the agent process."),
    MetricSpec("fastmango_store_size_bytes", "gauge",
               "Size on disk of the state store (database and WAL).", unit="bytes"),
    MetricSpec("fastmango_store_written_samples_total", "counter",
               "Samples committed to the state store since start."),
    MetricSpec("fastmango_store_dropped_samples_total", "counter",
               "Samples dropped because the store's writer fell behind."),
]  # fmt: skip
INDEX = spec_index(SPECS)


class SelfMetrics:
    """Builds the ``fastmango_*`` samples from the agent's state."""

    def __init__(self, store: Store | None, started_at: float) -> None:
        self.store = store
        self.started_at = started_at
        self._proc = psutil.Process(os.getpid())

    def samples(self, states: Iterable[CollectorState], now: float) -> SampleBuilder:
        b = SampleBuilder(INDEX, now)
        b.add("fastmango_build_info", 1, version=__version__)
        b.add("fastmango_start_time_seconds", self.started_at)
        for st in states:
            c = st.name
            b.add("fastmango_collector_up", 1 if st.up else 0, collector=c)
            b.add("fastmango_collector_runs_total", st.runs_total, collector=c)
            b.add("fastmango_collector_errors_total", st.errors_total, collector=c)
            b.add("fastmango_collector_duration_seconds", st.last_duration, collector=c)
            b.add("fastmango_collector_last_success_timestamp_seconds", st.last_success or 0,
                  collector=c)  # fmt: skip
            b.add("fastmango_collector_series", st.series, collector=c)
        with self._proc.oneshot():
            cpu = self._proc.cpu_times()
            b.add("fastmango_process_cpu_seconds_total", cpu.user + cpu.system)
            b.add("fastmango_process_resident_memory_bytes", self._proc.memory_info().rss)
            b.add("fastmango_process_threads", self._proc.num_threads())
        if self.store is not None:
            b.add("fastmango_store_size_bytes", self.store.size_bytes())
            b.add("fastmango_store_written_samples_total", self.store.written_samples)
            b.add("fastmango_store_dropped_samples_total", self.store.dropped_samples)
        return b
