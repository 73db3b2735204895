"""Series the fleet service publishes (listed in the catalogue)."""

from __future__ import annotations

from fastmango.series import MetricSpec

SPECS: list[MetricSpec] = [
    MetricSpec(
        "fastmango_fleet_leader",
        "gauge",
        "1 while this agent leads its fleet (runs the scaler, sends notifications), else 0.",
    ),
    MetricSpec(
        "fastmango_fleet_instances",
        "gauge",
        "Agents of the fleet with a fresh heartbeat (1 without a shared database).",
    ),
]
