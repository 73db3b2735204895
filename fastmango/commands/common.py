"""What every command shares: loading the settings, failing with a clear message."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

CONFIG_EXIT = 2


def load(ctx: click.Context, flags: dict[str, Any] | None = None) -> Any:
    """Load settings from the app's folder; on error print every problem and exit 2."""
    from fastmango.agent import config
    from fastmango.errors import ConfigError

    try:
        return config.load(config_file=ctx.find_root().obj.get("config"), flags=flags)
    except ConfigError as exc:
        fail(str(exc), CONFIG_EXIT)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"fastmango: {message}", err=True)
    sys.exit(code)
