"""The deploys service of the agent (placeholder until its issue lands)."""

from __future__ import annotations

from fastmango.agent.services import Service
from fastmango.agent.settings import Settings


def create(settings: Settings) -> Service | None:
    """The service for these settings, or None when they leave it off."""
    return None
