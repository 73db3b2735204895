"""The ``fastmango`` command line.

Only :mod:`click` is imported at start, so ``fastmango --help`` stays fast; each
command imports what it needs (FastAPI, uvicorn, pydantic…) when it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fastmango.commands import alerts as _alerts
from fastmango.commands import audit as _audit
from fastmango.commands import billing as _billing
from fastmango.commands import deploy as _deploy
from fastmango.commands import generate as _generate
from fastmango.commands import init as _init
from fastmango.commands import logs as _logs
from fastmango.commands import scale as _scale
from fastmango.commands import secrets as _secrets
from fastmango.commands.common import CONFIG_EXIT
from fastmango.commands.common import fail as _fail
from fastmango.commands.common import load as _load

__all__ = ["CONFIG_EXIT", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Settings file (default: fastmango.toml, then [tool.fastmango] in pyproject.toml).",
)
@click.version_option(package_name="fastmango")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None) -> None:
    """fastmango: watch, decide and act for a Python web app.

    Run the commands in the app's folder: they read its settings from
    [tool.fastmango] in pyproject.toml, fastmango.toml and FASTMANGO_* variables.
    """
    ctx.ensure_object(dict)
    ctx.obj["config"] = config_file


@main.command()
@click.option("--host", help="Address to bind (default 127.0.0.1; others need a token).")
@click.option("--port", type=int, help="Port of /metrics, /healthz, the API and dashboard.")
@click.option("--interval", help="Seconds between collections (e.g. 10, 1s).")
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def agent(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    interval: str | None,
    state_dir: Path | None,
    log_level: str | None,
    command: tuple[str, ...],
) -> None:
    """Run the sidecar agent in the foreground until SIGTERM or Ctrl-C.

    With a COMMAND after `--` (`fastmango agent -- uvicorn app:app`) the agent runs the
    app as its child: the app's stdout and stderr become a log source, signals are
    passed on, and the agent exits with the app's exit code."""
    loaded = _load(
        ctx,
        {
            "server.host": host,
            "server.port": port,
            "collectors.interval": interval,
            "state_dir": state_dir,
            "log_level": log_level,
        },
    )
    import asyncio
    import logging

    from fastmango.agent.daemon import Agent
    from fastmango.errors import FastmangoError

    settings = loaded.settings
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    async def run() -> int:
        agent = Agent(settings, child=list(command) or None)
        task = asyncio.create_task(agent.serve())
        ready = asyncio.create_task(agent.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if agent.ready.is_set():
            click.echo(f"fastmango agent serving {agent.url}", err=False)
            click.echo(
                f"  dashboard {agent.url}/ · metrics {agent.url}/metrics · "
                f"state {settings.store_path}"
            )
            sys.stdout.flush()
        ready.cancel()
        return await task

    try:
        code = asyncio.run(run())
    except (OSError, FastmangoError) as exc:
        _fail(str(exc))
    sys.exit(code)


@main.group()
def config() -> None:
    """Show or initialise the settings."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (value and source per key).")
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective settings and where each value came from."""
    from fastmango.agent import config as cfg

    loaded = _load(ctx)
    if as_json:
        import json

        from pydantic import SecretStr

        out = {
            k: {"value": "**********" if isinstance(v, SecretStr) else v,
                "source": loaded.source_of(k)}
            for k, v in cfg.flatten(loaded.settings).items()
        }  # fmt: skip
        click.echo(json.dumps(out, indent=2, default=str))
    else:
        click.echo(cfg.show(loaded))


@config.command("init")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("fastmango.toml"),
    show_default=True,
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def config_init(output: Path, force: bool) -> None:
    """Write a commented sample config generated from the settings model."""
    from fastmango.agent import config as cfg

    if output.exists() and not force:
        _fail(f"{output} exists; use --force to overwrite it")
    output.write_text(cfg.sample_toml())
    click.echo(f"wrote {output}")


@main.group()
def metrics() -> None:
    """The metrics the agent exposes."""


@metrics.command("catalogue")
def metrics_catalogue() -> None:
    """Print the catalogue of every series (Markdown)."""
    from fastmango.agent import catalogue

    click.echo(catalogue.markdown(), nl=False)


@main.command()
@click.option("--url", help="Agent URL (default: from the settings).")
@click.pass_context
def status(ctx: click.Context, url: str | None) -> None:
    """Show the running agent's collectors and store."""
    from fastmango.agent.client import agent_get

    data = agent_get(ctx, "/api/status", url, _load)
    click.echo(f"agent {data['version']} at {data['url']} (pid {data['pid']}), "
               f"up {data['uptime_seconds']:.0f}s")  # fmt: skip
    store = data["store"]
    click.echo(f"store {store['path']}: {store['size_bytes'] / 1e6:.1f} MB "
               f"of {store['max_bytes'] / 1e6:.0f} MB")  # fmt: skip
    for c in data["collectors"]:
        mark = "up  " if c["up"] else "DOWN"
        err = f"  {c['last_error']}" if c["last_error"] and not c["up"] else ""
        click.echo(f"  {mark} {c['name']:<12} every {c['interval']:g}s, "
                   f"{c['last_duration'] * 1000:.1f} ms, {c['series']} series{err}")  # fmt: skip


@main.command()
@click.option("--url", help="Agent URL (default: from the settings).")
@click.option("--no-browser", is_flag=True, help="Print the URL without opening a browser.")
@click.pass_context
def dashboard(ctx: click.Context, url: str | None, no_browser: bool) -> None:
    """Open the running agent's dashboard in the browser."""
    from fastmango.dashboard.launch import open_dashboard

    base = url or _load(ctx).settings.server.url
    sys.exit(open_dashboard(base, browser=not no_browser))


@main.command()
@click.option("--port", type=int, default=0, help="Port of the demo agent (default: a free one).")
@click.option("--no-browser", is_flag=True, help="Print the URL without opening a browser.")
@click.option("--duration", type=float, help="Stop after this many seconds (default: Ctrl-C).")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the demo's state here (default: a temporary folder, removed at exit).",
)
@click.option("--history", is_flag=True, help="Add a week of synthetic history (24h, 7d ranges).")
@click.pass_context
def demo(
    ctx: click.Context,
    port: int,
    no_browser: bool,
    duration: float | None,
    state_dir: Path | None,
    history: bool,
) -> None:
    """Run the agent beside an instrumented sample app under synthetic traffic."""
    loaded = _load(ctx)
    import asyncio
    import logging

    from fastmango.dashboard.demo import run_demo
    from fastmango.errors import FastmangoError

    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = asyncio.run(run_demo(loaded.settings, port=port, state_dir=state_dir,
                                    duration=duration, open_browser=not no_browser,
                                    history=history, echo=click.echo))  # fmt: skip
    except (OSError, FastmangoError) as exc:
        _fail(str(exc))
    sys.exit(code)


for _part in (_logs, _alerts, _scale, _deploy, _billing, _generate, _secrets, _audit, _init):
    for _command in _part.COMMANDS:
        main.add_command(_command)

if __name__ == "__main__":
    main()
