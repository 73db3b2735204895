"""Settings of the logs section (`[logs]` in fastmango.toml, `FASTMANGO_LOGS__*`)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from fastmango.agent.settings_base import Duration, Model, Size


class LogsSettings(Model):
    """The logs section: which files to follow, how to read them, what to redact, and
    how much of them the index keeps."""

    enabled: bool = Field(
        True,
        description="Follow and index logs (the files in logs.paths, and the app's "
        "output when the agent runs it: fastmango agent -- CMD).",
    )
    paths: list[str] = Field(
        default_factory=list,
        description="Globs of the app's log files, e.g. /var/log/app/*.log "
        "(FASTMANGO_LOGS__PATHS='[\"/var/log/app/*.log\"]', or comma-separated: "
        "FASTMANGO_LOGS__PATHS=/var/log/app/*.log,/tmp/worker.log). Rotated files "
        "(app.log.1) may be included: they are recognised by their head and not read twice.",
    )
    format: Literal["auto", "raw", "docker", "cri"] = Field(
        "auto",
        description="How each file wraps its lines: auto (detected from the first "
        "line), raw text, Docker json-file, or CRI (containerd, CRI-O).",
    )
    multiline: bool = Field(
        True,
        description="Join tracebacks and stack traces (indented or 'Traceback', "
        "'Caused by:' lines) to the event before them.",
    )
    multiline_timeout: Duration = Field(
        0.25, gt=0, le=10, description="How long the last event waits for more of its lines."
    )
    retention: Duration = Field(
        7 * 86400, gt=0, description="Drop indexed logs older than this (whole segments)."
    )
    max_size: Size = Field(
        500 * 10**6,
        ge=10**6,
        description="Bytes on disk the log index may use (logs.db); the oldest segments go first.",
    )
    segment_lines: int = Field(
        2_000_000, ge=1000, description="Lines per index segment (the unit retention drops)."
    )
    echo: Literal["redacted", "raw", "off"] = Field(
        "redacted",
        description="How the app's output is copied to the agent's own stdout and "
        "stderr when the agent runs it (fastmango agent -- CMD), so docker logs and the "
        "platform's log still show it: redacted (as the index stores it: secrets and "
        "personal data stay out of the container log too; each event once it is whole), "
        "raw (byte for byte, at once), or off.",
    )
    redact_ip_addresses: bool = Field(
        False, description="Also replace IPv4 addresses with [REDACTED IP]."
    )
    redact_patterns: list[str] = Field(
        default_factory=list,
        description="Extra regular expressions to redact before "
        "storage; a named group (?P<keep>...) is kept, the rest replaced.",
    )
    query_timeout: Duration = Field(
        5.0,
        gt=0,
        le=600,
        description="How long one search may check lines one by one (a /regex/, a field "
        "comparison such as status>=500) before it answers with what it found, marked "
        "partial (its count then a lower bound).",
    )
    poll_interval: Duration = Field(
        1.0,
        gt=0,
        le=60,
        description="Rescan period for the globs (changes are seen at once "
        "through inotify; this catches new folders and missed events).",
    )

    @field_validator("paths", mode="before")
    @classmethod
    def _comma_separated(cls, v: object) -> object:
        """A plain string (as an environment variable is easiest to write) is a list of
        globs separated by commas."""
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("redact_patterns")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"{p!r} is not a valid regular expression: {exc}") from None
        return v
