"""Settings of the fleet section (`[fleet]` in fastmango.toml, `FASTMANGO_FLEET__*`).

A fleet is every sidecar of one app sharing the app's PostgreSQL (``database_url``):
they register there, elect one leader (the one that scales and sends alerts), share
10-second roll-ups of the signals the scaler and alerts read, and claim notifications so
each is sent once. Without ``database_url`` an agent is a fleet of one.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from fastmango.agent.settings_base import Duration, Model

#: the signals every agent rolls up for the leader (gauges; a counter is rolled up as a rate)
DEFAULT_SIGNALS = [
    "http_requests_per_second",
    "http_request_duration_p95_seconds",
    "http_error_ratio",
    "fastmango_container_cpu_utilization_ratio",
]


class FleetSettings(Model):
    """The fleet section."""

    enabled: bool | None = Field(
        None,
        description="Join the fleet through database_url's PostgreSQL (schema fastmango); "
        "empty = on when database_url is set. Off or without database_url the agent is a "
        "fleet of one and always leads.",
    )
    instance_id: str = Field(
        "",
        max_length=120,
        description="This agent's name in the fleet; empty = <hostname>:<port> (the pod "
        "name on Kubernetes).",
    )
    advertise_url: str = Field(
        "",
        max_length=300,
        description="URL peers reach this agent at (e.g. http://$(POD_IP):9871); empty = the "
        "agent's own URL, with the host's address when it binds 0.0.0.0.",
    )
    heartbeat_interval: Duration = Field(
        5.0, gt=0, le=300, description="Seconds between heartbeats in the instance registry."
    )
    check_interval: Duration = Field(
        1.0,
        gt=0,
        le=5,
        description="Seconds between checks of the leader connection (and tries to take the "
        "lock by the others): failover takes about this plus PostgreSQL noticing the loss.",
    )
    stale_after: Duration = Field(
        20.0, gt=0, description="Heartbeat age after which an instance counts as down."
    )
    forget_after: Duration = Field(
        86400.0, gt=0, description="The leader removes instances silent this long."
    )
    rollup_interval: Duration = Field(
        10.0, ge=1, le=300, description="Width of the shared roll-ups, in seconds."
    )
    rollup_retention: Duration = Field(
        2 * 86400.0, ge=60, description="How long the leader keeps shared roll-ups."
    )
    claim_retention: Duration = Field(
        30 * 86400.0, ge=3600, description="How long the leader keeps notification claims."
    )
    signals: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SIGNALS),
        description="Series every agent rolls up into the fleet's shared roll-ups.",
    )
    connect_timeout: Duration = Field(
        5.0, gt=0, le=60, description="Timeout of each connection attempt to PostgreSQL."
    )
    reconnect_max: Duration = Field(
        5.0, gt=0, le=300, description="Longest wait between reconnection attempts (backoff)."
    )

    @model_validator(mode="after")
    def _stale_after_heartbeat(self) -> FleetSettings:
        if self.stale_after <= self.heartbeat_interval:
            raise ValueError(
                f"stale_after ({self.stale_after:g}s) must be longer than heartbeat_interval "
                f"({self.heartbeat_interval:g}s)"
            )
        return self
