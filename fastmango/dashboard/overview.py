"""The Overview page's data: every chart and headline number in one JSON document.

The panels are data (:data:`PANELS`): each names the series it draws, how they are
combined (summed, grouped by a label, turned into per-second rates) and what setting
enables them. :func:`overview` runs every query through the store's ``query`` (one
call per line, all in the caller's thread), aligns the answers on one time grid of at
most :data:`MAX_POINTS` points, and says per panel whether it has data, has none yet
(with the hint that enables it), or is left out because its series are not in the
catalogue. Ranges of a day and more come from the 1-minute roll-ups (the store picks
them for anything older than its raw retention), so a 7-day chart reads ~340 points per
series instead of 600,000 samples.

Pure apart from the ``query`` callable: no clock, no I/O of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fastmango.agent.store import Matcher, parse_match

RANGES: dict[str, float] = {"15m": 900.0, "1h": 3600.0, "24h": 86400.0, "7d": 604800.0}
MAX_POINTS = 500
MIN_POINTS = 20  # the fewest buckets a chart shows when the data is younger than its range
NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 14400)
Unit = Literal["percent", "ratio", "seconds", "bytes", "bytes/s", "req/s", "count"]
QueryFn = Callable[..., dict[str, Any]]

APP_HINT = "No app metrics yet — set collectors.app.metrics_urls"
GPU_HINT = "No GPU data — no NVIDIA GPU or driver was found; see collectors.gpu"
PG_HINT = "No PostgreSQL data yet — set database_url (FASTMANGO_DATABASE_URL)"


@dataclass(frozen=True)
class Line:
    """One drawn line: the sum of the matching series of ``name`` (times ``scale``), or
    one line per value of ``group_by`` (``label`` may name it: ``"{mode}"``)."""

    label: str
    name: str
    match: str = ""
    rate: bool = False
    group_by: str | None = None
    per: str | None = None  # divide by the number of distinct values of this label
    scale: float = 1.0
    reduce: Literal["sum", "max"] = "sum"
    dash: bool = False
    axis: Literal["left", "right"] = "left"

    @property
    def matchers(self) -> list[Matcher]:
        return parse_match(self.match)


@dataclass(frozen=True)
class Panel:
    id: str
    title: str
    unit: Unit
    section: str
    lines: tuple[Line, ...]
    hint: str = ""
    thresholds: tuple[tuple[str, float], ...] = ()
    right_unit: Unit | None = None
    description: str = ""
    now: str = "first"  # the corner figure: the first line's, "sum" of all, or a label

    @property
    def names(self) -> set[str]:
        return {line.name for line in self.lines}


PANELS: tuple[Panel, ...] = (
    Panel(
        "requests", "Requests", "req/s", "app",
        (Line("requests/s", "http_requests_per_second"),),
        APP_HINT, description="Requests per second the app served.",
    ),
    Panel(
        "latency", "Latency", "seconds", "app",
        (Line("p50", "http_request_duration_p50_seconds", reduce="max"),
         Line("p95", "http_request_duration_p95_seconds", reduce="max"),
         Line("p99", "http_request_duration_p99_seconds", reduce="max")),
        APP_HINT, (("SLO 200 ms", 0.2),), description="Request duration percentiles.",
        now="p95",
    ),
    Panel(
        "errors", "Error ratio", "percent", "app",
        (Line("5xx share", "http_error_ratio", scale=100.0, reduce="max"),),
        APP_HINT, description="Share of requests answered with a server error.",
    ),
    Panel(
        "cpu", "Container CPU", "percent", "system",
        (Line("used", "fastmango_container_cpu_utilization_ratio", scale=100.0),),
        thresholds=(("limit", 100.0),),
        description="CPU used by the container, % of its limit (quota, else its CPUs).",
    ),
    Panel(
        "host_cpu", "Host CPU by mode", "percent", "system",
        (Line("{mode}", "node_cpu_seconds_total", 'mode!="idle"', rate=True,
              group_by="mode", per="cpu", scale=100.0),),
        description="Busy time of all the host's CPUs together, by mode (idle left out).",
        now="sum",
    ),
    Panel(
        "memory", "Memory", "bytes", "system",
        (Line("working set", "container_memory_working_set_bytes"),
         Line("limit", "fastmango_container_memory_limit_bytes", dash=True),
         Line("host available", "node_memory_MemAvailable_bytes")),
        description="The container's working set against its limit; host memory available.",
    ),
    Panel(
        "network", "Network", "bytes/s", "system",
        (Line("received", "node_network_receive_bytes_total", 'device!="lo"', rate=True),
         Line("sent", "node_network_transmit_bytes_total", 'device!="lo"', rate=True)),
        description="All interfaces but loopback.",
    ),
    Panel(
        "disk", "Disk", "bytes/s", "system",
        (Line("read", "node_disk_read_bytes_total", rate=True),
         Line("written", "node_disk_written_bytes_total", rate=True)),
        description="All block devices.",
    ),
    Panel(
        "gpu", "GPU utilisation", "percent", "gpu",
        (Line("GPU {gpu}", "DCGM_FI_DEV_GPU_UTIL", group_by="gpu"),),
        GPU_HINT, description="Per device, as dcgm-exporter reports it.",
    ),
    Panel(
        "gpu_memory", "GPU memory", "bytes", "gpu",
        (Line("GPU {gpu} used", "DCGM_FI_DEV_FB_USED", group_by="gpu", scale=2.0**20),
         Line("total", "DCGM_FI_DEV_FB_TOTAL", scale=2.0**20, dash=True)),
        GPU_HINT, description="Framebuffer memory used per device.",
    ),
    Panel(
        "pg_connections", "PostgreSQL connections", "count", "postgres",
        (Line("{state}", "pg_stat_activity_count", group_by="state"),
         Line("max_connections", "pg_settings_max_connections", reduce="max", dash=True)),
        PG_HINT, description="Backends by state against max_connections.", now="sum",
    ),
    Panel(
        "pg_locks", "PostgreSQL lock waits", "count", "postgres",
        (Line("waiting backends", "pg_lock_waiting_backends"),
         Line("longest wait", "pg_lock_wait_longest_seconds", reduce="max", axis="right")),
        PG_HINT, right_unit="seconds",
        description="Backends waiting for a lock, and the longest wait.",
    ),
)  # fmt: skip

#: headline figures: (key, line, unit), read from the latest samples
HEADLINE: tuple[tuple[str, Line, Unit], ...] = (
    ("requests", Line("req/s", "http_requests_per_second"), "req/s"),
    ("p95", Line("p95", "http_request_duration_p95_seconds", reduce="max"), "seconds"),
    ("errors", Line("errors", "http_error_ratio", reduce="max"), "ratio"),
    ("cpu", Line("CPU", "fastmango_container_cpu_utilization_ratio"), "ratio"),
    ("memory", Line("memory", "fastmango_container_memory_utilization_ratio"), "ratio"),
)


@dataclass
class Grid:
    start: float
    end: float
    step: float
    x: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, span: float, now: float, interval: float) -> Grid:
        want = max(span / MAX_POINTS, interval)
        step = float(next((s for s in NICE_STEPS if s >= want), NICE_STEPS[-1]))
        start = math.floor((now - span) / step) * step
        n = int((now - start) // step) + 1
        return cls(start, now, step, [start + i * step for i in range(n)])


def _round(v: float | None) -> float | None:
    return None if v is None else float(f"{v:.4g}")


def line_values(
    line: Line, answer: Mapping[str, Any], grid: Grid, now: float
) -> list[tuple[str, list[float | None]]]:
    """The drawn line(s) of ``line`` from a store answer, on ``grid``."""
    n = len(grid.x)
    groups: dict[str, list[float | None]] = {}
    per_values: set[str] = set()
    summing = line.reduce == "sum"
    last_complete = now - grid.step  # a rate's last bucket is still filling: it would dip
    for s in answer["series"]:
        labels = s["labels"]
        key = labels.get(line.group_by, "") if line.group_by else ""
        acc = groups.get(key)
        if acc is None:
            acc = groups[key] = [None] * n
        for t, v in s["points"]:
            if line.rate and t > last_complete:
                continue
            i = round((t - grid.start) / grid.step)
            if 0 <= i < n and math.isfinite(v):
                old = acc[i]
                acc[i] = v if old is None else (old + v if summing else max(old, v))
        if line.per:
            per_values.add(labels.get(line.per, ""))
    factor = line.scale / (max(1, len(per_values)) if line.per else 1)
    out = []
    for key in sorted(groups, key=_natural):
        values = [None if v is None else _round(v * factor) for v in groups[key]]
        label = line.label.replace("{" + (line.group_by or "") + "}", key or "—")
        out.append((label, values))
    return out


def _last(values: Sequence[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


def _natural(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (1 << 30, text)


def overview(
    query: QueryFn,
    catalogue: Collection[str],
    now: float,
    range_key: str = "1h",
    interval: float = 10.0,
    panels: Sequence[Panel] = PANELS,
) -> dict[str, Any]:
    """The Overview document for ``range_key`` (one of :data:`RANGES`)."""
    span = RANGES[range_key]
    grid = Grid.of(span, now, interval)
    source = "raw"
    out_panels = []
    for panel in panels:
        if not panel.names <= set(catalogue):
            continue  # its collector is not part of this agent
        lines: list[dict[str, Any]] = []
        for line in panel.lines:
            answer = query(line.name, line.matchers, grid.start, now, grid.step, line.rate)
            source = answer.get("source", source) if answer["series"] else source
            for label, values in line_values(line, answer, grid, now):
                lines.append({"label": label, "values": values, "dash": line.dash,
                              "axis": line.axis})  # fmt: skip
        has_data = any(v is not None for ln in lines if not ln["dash"] for v in ln["values"])
        drawn = [ln for ln in lines if not ln["dash"] and ln["axis"] == "left"]
        latest = {ln["label"]: _last(ln["values"]) for ln in drawn}
        present = [v for v in latest.values() if v is not None]
        if panel.now == "sum":
            now_value = sum(present) if present else None
        elif panel.now in latest:
            now_value = latest[panel.now]
        else:
            now_value = _last(drawn[0]["values"]) if drawn else None
        out_panels.append({
            "id": panel.id, "title": panel.title, "unit": panel.unit,
            "right_unit": panel.right_unit, "section": panel.section,
            "description": panel.description,
            "state": "ok" if has_data else "nodata",
            "hint": "" if has_data else (panel.hint or "No data yet in this range."),
            "thresholds": [{"label": k, "value": v} for k, v in panel.thresholds],
            "lines": lines if has_data else [],
            "now": _round(now_value) if has_data else None,
        })  # fmt: skip
    first = _trim(out_panels, len(grid.x))
    return {
        "range": range_key,
        "start": grid.x[first] if grid.x else grid.start,
        "end": now,
        "step": grid.step,
        "source": source,
        "x": [int(t) if t.is_integer() else t for t in grid.x[first:]] if panels else [],
        "headline": headline(query, catalogue, now, interval),
        "panels": out_panels,
    }


def _trim(panels: list[dict[str, Any]], n: int) -> int:
    """Cut the leading buckets where no panel has data (a young agent's range would
    squeeze its minutes against the right edge), keeping at least MIN_POINTS; returns
    the first bucket kept."""
    first = n
    for p in panels:
        for line in p["lines"]:
            if not line["dash"]:
                i = next((i for i, v in enumerate(line["values"]) if v is not None), n)
                first = min(first, i)
    first = max(0, min(first, n - MIN_POINTS))
    if first:
        for p in panels:
            for line in p["lines"]:
                line["values"] = line["values"][first:]
    return first


def headline(
    query: QueryFn, catalogue: Collection[str], now: float, interval: float
) -> dict[str, Any]:
    """The latest value of each headline figure (None when it has no recent sample)."""
    window = max(3 * interval, 30.0)
    out: dict[str, Any] = {}
    for key, line, unit in HEADLINE:
        value = None
        if line.name in catalogue:
            answer = query(line.name, line.matchers, now - window, now, interval, False)
            latest = [s["points"][-1] for s in answer["series"] if s["points"]]
            if latest:
                newest = max(p[0] for p in latest)
                current = [p[1] for p in latest if p[0] >= newest - interval]
                value = _round(sum(current) if line.reduce == "sum" else max(current))
        out[key] = {"value": value, "unit": unit, "available": line.name in catalogue}
    return out
