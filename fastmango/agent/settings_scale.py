"""Settings of the scale section (`[scale]` in fastmango.toml, `FASTMANGO_SCALE__*`)."""

from __future__ import annotations

from fastmango.agent.settings_base import Model


class ScaleSettings(Model):
    """The scale section."""
