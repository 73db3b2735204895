"""Settings of the cost section (`[cost]` in fastmango.toml, `FASTMANGO_COST__*`)."""

from __future__ import annotations

from fastmango.agent.settings_base import Model


class CostSettings(Model):
    """The cost section."""
