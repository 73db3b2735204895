"""Settings of the scale section (`[scale]` in fastmango.toml, `FASTMANGO_SCALE__*`).

Policies themselves are set per environment with ``fastmango scale`` and kept in the
agent's state; these settings say how the loop runs.
"""

from __future__ import annotations

from pydantic import Field

from fastmango.agent.settings_base import Duration, Model


class ScaleSettings(Model):
    """The scale section."""

    enabled: bool = Field(
        True, description="Run the scaling loop (decisions are dry-run without a platform)."
    )
    interval: Duration = Field(
        15.0, gt=0, description="How often the loop decides, like the HPA's sync period."
    )
    dry_run: bool = Field(
        False, description="Record decisions without applying them, for every environment."
    )
    startup: Duration = Field(
        60.0,
        gt=0,
        description="Seconds from a scale call to a serving instance, used when the "
        "platform has not measured it; the forecast looks at least this far ahead.",
    )
    retrain: Duration = Field(
        21600.0, ge=60, description="How often the forecaster is refitted (in a worker process)."
    )
    history: Duration = Field(
        28 * 86400.0, ge=86400, description="How much stored history the forecaster learns from."
    )
    min_history: Duration = Field(
        86400.0, ge=0, description="History needed before the forecast is trusted."
    )
    max_forecast_error: float = Field(
        0.5,
        gt=0,
        description="Recent relative error of the forecast above which the loop falls "
        "back to reactive scaling.",
    )
    train_timeout: Duration = Field(
        600.0, gt=0, description="Longest a forecaster fit may run before it is stopped."
    )
    record_every: Duration = Field(
        300.0,
        ge=0,
        description="A decision that changes nothing is recorded at most this often "
        "(changes are always recorded).",
    )
