"""Settings of the alerts section (`[alerts]` in fastmango.toml, `FASTMANGO_ALERTS__*`)."""

from __future__ import annotations

from fastmango.agent.settings_base import Model


class AlertsSettings(Model):
    """The alerts section."""
