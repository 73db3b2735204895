"""Settings of the logs section (`[logs]` in fastmango.toml, `FASTMANGO_LOGS__*`)."""

from __future__ import annotations

from fastmango.agent.settings_base import Model


class LogsSettings(Model):
    """The logs section."""
