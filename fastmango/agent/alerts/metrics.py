"""The series the alerts part publishes (listed in the catalogue)."""

from __future__ import annotations

from fastmango.series import MetricSpec

SPECS = [
    MetricSpec(
        "fastmango_alerts",
        "gauge",
        "Alert instances by rule name and state (pending, firing, resolved).",
        ("alertname", "alertstate"),
    ),
    MetricSpec(
        "fastmango_alert_rule_nodata",
        "gauge",
        "1 while the rule reads no series at all (no data is not OK), else 0.",
        ("rule",),
    ),
    MetricSpec(
        "fastmango_alert_rule_errors_total",
        "counter",
        "Evaluations of the rule that failed (bad matching, …).",
        ("rule",),
    ),
    MetricSpec(
        "fastmango_alert_notifications_total",
        "counter",
        "Notifications attempted, by channel and result (ok, failed).",
        ("channel", "result"),
    ),
    MetricSpec(
        "fastmango_alert_channel_up",
        "gauge",
        "1 if the channel's last delivery succeeded, 0 if it failed.",
        ("channel",),
    ),
    MetricSpec("fastmango_alert_silences", "gauge", "Active silences."),
]
