"""HTTP API of the agent's logs part, mounted by :func:`fastmango.agent.api.create_app`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def mount(app: FastAPI, agent: Any) -> None:
    """Add this part's routes to the agent's app."""
