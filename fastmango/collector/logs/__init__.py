"""Log sources: following files through rotation (:mod:`.tail`), container formats
(:mod:`.formats`), whole events from lines (:mod:`.multiline`) and parsing
(:mod:`.parse`). The agent's logs service (:mod:`fastmango.agent.logs`) indexes them.

The series derived from logs are declared here, with the rest of the catalogue.
"""

from __future__ import annotations

from fastmango.series import MetricSpec

SPECS: list[MetricSpec] = [
    MetricSpec(
        "log_lines_per_minute",
        "gauge",
        "Log lines read in the last 60 seconds, by level (unknown: none found).",
        ("level",),
    ),
    MetricSpec(
        "fastmango_log_lines_total",
        "counter",
        "Log lines indexed since the agent started, by level.",
        ("level",),
    ),
    MetricSpec(
        "fastmango_log_redactions_total",
        "counter",
        "Secrets and personal data replaced before storage, by redaction rule.",
        ("rule",),
    ),
    MetricSpec(
        "fastmango_log_index_bytes",
        "gauge",
        "Bytes on disk of the log index (logs.db).",
        unit="bytes",
    ),
    MetricSpec("fastmango_log_files", "gauge", "Log files being followed."),
    MetricSpec(
        "fastmango_log_behind_bytes",
        "gauge",
        "Bytes the app has written to the followed log files that are not indexed yet: "
        "zero while the agent keeps up, growing while the app logs faster than it reads.",
        unit="bytes",
    ),
]
