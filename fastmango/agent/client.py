"""How CLI commands reach the running agent: its URL and token come from the same
settings the agent uses (run the command in the app's folder), or ``--url``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from fastmango.errors import AgentNotRunning


def agent_get(
    ctx: click.Context, path: str, url: str | None, load: Callable[[click.Context], Any]
) -> Any:
    """GET ``path`` from the agent and return its JSON; exit 1 with a clear message if none
    is running."""
    import httpx

    settings = load(ctx).settings
    base = (url or settings.server.url).rstrip("/")
    headers = {}
    if settings.server.token is not None:
        headers["Authorization"] = f"Bearer {settings.server.token.get_secret_value()}"
    try:
        try:
            resp = httpx.get(base + path, headers=headers, timeout=5.0)
        except httpx.TransportError as exc:
            raise AgentNotRunning(
                f"no agent answers at {base} ({type(exc).__name__}); start one with "
                "`fastmango agent` in the app's folder, or pass --url"
            ) from None
    except AgentNotRunning as exc:
        click.echo(f"fastmango: {exc}", err=True)
        raise SystemExit(1) from None
    if resp.status_code != 200:
        click.echo(f"fastmango: {base}{path} answered {resp.status_code}: {resp.text}", err=True)
        raise SystemExit(1)
    return resp.json()
