"""``fastmango dashboard``: find the running agent, check it answers, open its UI."""

from __future__ import annotations

import webbrowser
from collections.abc import Callable

import click
import httpx


def login_required(base: str, timeout: float = 3.0) -> bool:
    """Whether the agent's UI asks for its token (it sends a browser to /login)."""
    try:
        resp = httpx.get(base + "/", timeout=timeout, follow_redirects=False)
    except httpx.HTTPError:
        return False
    return resp.status_code in (302, 303, 307) and "/login" in resp.headers.get("location", "")


def open_dashboard(
    base: str,
    *,
    browser: bool = True,
    opener: Callable[[str], bool] = webbrowser.open,
    timeout: float = 3.0,
) -> int:
    """Print the dashboard's URL and open it; 1 with a clear message if no agent answers."""
    base = base.rstrip("/")
    try:
        resp = httpx.get(base + "/healthz", timeout=timeout)
        ok = resp.status_code == 200 and resp.json().get("status") == "ok"
    except (httpx.HTTPError, ValueError):
        ok = False
    if not ok:
        click.echo(f"fastmango: no agent answers at {base}; start one with `fastmango agent`",
                   err=True)  # fmt: skip
        return 1
    url = base + "/"
    click.echo(f"fastmango dashboard: {url}")
    if login_required(base, timeout):
        click.echo("  sign in with the agent's token (server.token, e.g. FASTMANGO_SERVER__TOKEN)")
    if browser and not opener(url):
        click.echo(f"  no browser found here: open {url} in your browser")
    return 0
