"""Alert rules: the built-in set, merging the user's rules over it, and the templates of
summaries and descriptions (``{{ $value }}``, ``{{ $labels.route }}``, ``{{ $threshold }}``
and Prometheus's ``humanize``, ``humanizePercentage``, ``humanizeDuration``)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastmango.agent.alerts import expr as E

if TYPE_CHECKING:
    from fastmango.agent.settings_alerts import AlertsSettings

#: name → the settings of each built-in rule (series names as in docs/metrics.md)
BUILTIN: dict[str, dict[str, Any]] = {
    "HighErrorRatio": {
        "expr": "http_error_ratio > 0.05",
        "for": 120,
        "keep_firing_for": 60,
        "clear": 0.02,
        "severity": "critical",
        "summary": "{{ $value | humanizePercentage }} of requests fail (over "
        "{{ $threshold | humanizePercentage }})",
        "description": "The share of 5xx answers is over the threshold; it clears under 2 %.",
    },
    "SlowResponses": {
        "expr": "http_request_duration_p95_seconds > 0.2",
        "for": 300,
        "severity": "warning",
        "summary": "p95 latency {{ $value | humanizeDuration }} (SLO "
        "{{ $threshold | humanizeDuration }})",
        "description": "95th percentile of request duration over the 200 ms objective.",
    },
    "MemoryNearLimit": {
        "expr": "container_memory_working_set_bytes / fastmango_container_memory_limit_bytes > 0.9",
        "for": 300,
        "clear": 0.85,
        "severity": "warning",
        "summary": "Memory at {{ $value | humanizePercentage }} of the limit",
        "description": "Working set over 90 % of the container's memory limit; the OOM "
        "killer acts at 100 %.",
    },
    "DiskNearFull": {
        "expr": 'node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs"}'
        " / node_filesystem_size_bytes < 0.1",
        "for": 600,
        "clear": 0.12,
        "severity": "warning",
        "summary": "{{ $labels.mountpoint }}: {{ $value | humanizePercentage }} free",
        "description": "Less than 10 % of the filesystem is available.",
    },
    "DiskFull": {
        "expr": 'node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs"}'
        " / node_filesystem_size_bytes < 0.03",
        "for": 60,
        "severity": "critical",
        "alertname": "DiskNearFull",
        "summary": "{{ $labels.mountpoint }}: only {{ $value | humanizePercentage }} free",
        "description": "Under 3 % available: writes will fail soon.",
    },
    "PostgresConnectionsNearMax": {
        "expr": "sum by (server) (pg_stat_activity_count) / pg_settings_max_connections > 0.8",
        "for": 300,
        "clear": 0.7,
        "severity": "warning",
        "summary": "{{ $labels.server }}: {{ $value | humanizePercentage }} of "
        "max_connections in use",
        "description": "New connections will be refused at max_connections.",
    },
    "PostgresLockWaits": {
        "expr": "pg_lock_wait_longest_seconds > 30",
        "for": 60,
        "severity": "warning",
        "summary": "{{ $labels.server }} {{ $labels.datname }}: a lock wait of "
        "{{ $value | humanizeDuration }}",
        "description": "A backend has waited over 30 s for a lock; see the blocker chain "
        "on the PostgreSQL page.",
    },
    "GpuTemperatureHigh": {
        "expr": "DCGM_FI_DEV_GPU_TEMP > 85",
        "for": 300,
        "clear": 80,
        "severity": "warning",
        "summary": "GPU {{ $labels.gpu }} at {{ $value }} °C",
        "description": "GPU temperature over 85 °C; clocks throttle soon.",
    },
    "CostOverBudget": {
        "expr": "fastmango_cost_month_projected_dollars > fastmango_cost_budget_dollars",
        "for": 900,
        "severity": "warning",
        "summary": "{{ $labels.env }}: projected ${{ $value | humanize }} this month "
        "(budget ${{ $threshold | humanize }})",
        "description": "The month's projected cost is over the budget.",
    },
    "ErrorLogs": {
        "expr": 'log_lines_per_minute{level="error"} > 10',
        "for": 300,
        "severity": "warning",
        "summary": "{{ $value | humanize }} error lines per minute",
        "description": "The app logs over 10 errors a minute.",
    },
    "LogsBehind": {
        "expr": "fastmango_log_behind_bytes > 100000000",
        "for": 600,
        "severity": "warning",
        "summary": "{{ $value | humanize }}B of the app's logs not indexed yet",
        "description": "The app writes its log files faster than the agent indexes them "
        "(one core takes some 38,000 lines a second): nothing is lost, but searches, the "
        "live tail and log alerts lag behind. Give the sidecar more CPU, or log less.",
    },
}

DEFAULTS: dict[str, Any] = {
    "for": 0.0,
    "keep_firing_for": 0.0,
    "clear": None,
    "severity": "warning",
    "alertname": None,
    "labels": {},
    "summary": "",
    "description": "",
    "channels": None,
    "no_data": "show",
}


@dataclass(frozen=True)
class Rule:
    name: str
    expr: str
    condition: E.Condition
    for_seconds: float = 0.0
    keep_firing_for: float = 0.0
    clear: float | None = None
    severity: str = "warning"
    alertname: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    description: str = ""
    channels: tuple[str, ...] = ()
    no_data: str = "show"
    builtin: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alertname": self.alertname,
            "expr": self.expr,
            "for": self.for_seconds,
            "keep_firing_for": self.keep_firing_for,
            "clear": self.clear,
            "severity": self.severity,
            "labels": self.labels,
            "summary": self.summary,
            "description": self.description,
            "channels": list(self.channels),
            "no_data": self.no_data,
            "builtin": self.builtin,
        }


def build(spec: Mapping[str, Any], name: str, channels: list[str], builtin: bool) -> Rule:
    values = {**DEFAULTS, **{k: v for k, v in spec.items() if v is not None}}
    text = values["expr"]
    return Rule(
        name=name,
        expr=text,
        condition=E.condition(E.parse(text)),
        for_seconds=float(values["for"]),
        keep_firing_for=float(values["keep_firing_for"]),
        clear=values["clear"],
        severity=values["severity"],
        alertname=values["alertname"] or name,
        labels=dict(values["labels"]),
        summary=values["summary"],
        description=values["description"],
        channels=tuple(values["channels"] if values["channels"] is not None else channels),
        no_data=values["no_data"],
        builtin=builtin,
    )


def load(settings: AlertsSettings) -> list[Rule]:
    """The effective rules: built-ins (unless off) with the user's rules over them."""
    channels = settings.channels()
    user = {r.name: r for r in settings.rules}
    out: list[Rule] = []
    if settings.builtin_rules:
        for name, spec in BUILTIN.items():
            over = user.pop(name, None)
            if over is not None and not over.enabled:
                continue
            merged = dict(spec)
            if over is not None:
                merged.update(
                    over.model_dump(by_alias=True, exclude_none=True, exclude={"name", "enabled"})
                )
            out.append(build(merged, name, channels, builtin=True))
    for name, r in user.items():
        if r.enabled and r.expr is not None:
            spec = r.model_dump(by_alias=True, exclude={"name", "enabled"})
            out.append(build(spec, name, channels, builtin=False))
    return out


# -- templates -----------------------------------------------------------------------
_TEMPLATE = re.compile(r"\{\{\s*(\$[a-zA-Z_.]+)\s*(?:\|\s*([a-zA-Z]+)\s*)?\}\}")


def humanize(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.4g}{unit}"
    return f"{v:.4g}"


def humanize_duration(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    if abs(v) < 1:
        return f"{v * 1000:.4g}ms"
    parts, rest = [], int(v)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    if rest or not parts:
        parts.append(f"{rest + (v - int(v)):.4g}s" if not parts else f"{rest}s")
    return " ".join(parts)


def render(
    template: str, labels: Mapping[str, str], value: float | None, threshold: float | None
) -> str:
    """Fill a template; an unknown placeholder stays as written."""

    def sub(m: re.Match[str]) -> str:
        var, fn = m.group(1), m.group(2)
        x: Any
        if var == "$value":
            x = value
        elif var == "$threshold":
            x = threshold
        elif var.startswith("$labels."):
            return labels.get(var.removeprefix("$labels."), "")
        else:
            return m.group(0)
        if x is None:
            return "no data"
        if fn == "humanize":
            return humanize(x)
        if fn == "humanizePercentage":
            return f"{x * 100:.4g}%"
        if fn == "humanizeDuration":
            return humanize_duration(x)
        return f"{x:.6g}"

    return _TEMPLATE.sub(sub, template)
