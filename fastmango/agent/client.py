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
            raise AgentNotRunning(AgentNotRunning.hint(base, exc)) from None
    except AgentNotRunning as exc:
        click.echo(f"fastmango: {exc}", err=True)
        raise SystemExit(1) from None
    if resp.status_code != 200:
        click.echo(f"fastmango: {base}{path} answered {resp.status_code}: {resp.text}", err=True)
        raise SystemExit(1)
    return resp.json()


def agent_address(
    ctx: click.Context, url: str | None, load: Callable[[click.Context], Any]
) -> tuple[str, dict[str, str]]:
    """The agent's base URL and the headers that authenticate (bearer token if set)."""
    settings = load(ctx).settings
    base = (url or settings.server.url).rstrip("/")
    headers = {}
    if settings.server.token is not None:
        headers["Authorization"] = f"Bearer {settings.server.token.get_secret_value()}"
    return base, headers


def agent_request(
    ctx: click.Context,
    method: str,
    path: str,
    url: str | None,
    load: Callable[[click.Context], Any],
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> Any:
    """Send one request to the agent and return its JSON. Exits 1 with a clear message
    when no agent runs or it refuses (its ``detail`` is printed)."""
    import httpx

    base, headers = agent_address(ctx, url, load)
    try:
        resp = httpx.request(method, base + path, headers=headers, json=json, params=params,
                             timeout=timeout)  # fmt: skip
    except httpx.TransportError as exc:
        click.echo(f"fastmango: {AgentNotRunning.hint(base, exc)}", err=True)
        raise SystemExit(1) from None
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        click.echo(f"fastmango: {method} {path} answered {resp.status_code}: {detail}", err=True)
        raise SystemExit(1)
    return resp.json() if resp.content else None
