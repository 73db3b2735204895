"""``fastmango secrets``: encrypted environment variables of the app's environments."""

from __future__ import annotations

import sys
from typing import Any

import click

from fastmango.commands.common import fail, load


def _vault(ctx: click.Context) -> tuple[Any, Any]:
    import os

    from fastmango.agent.secrets import SecretsError, Vault, master_key_text

    settings = load(ctx).settings
    path = settings.state_dir / "secrets.json"
    try:
        return Vault(path, master_key_text(os.environ, path)), settings
    except SecretsError as exc:
        fail(str(exc))


def _audit(settings: Any, action: str, target: str, result: str, **details: Any) -> None:
    from fastmango.agent.audit import os_user, record
    from fastmango.agent.store import Store

    store = Store(settings.store_path)
    store.open()
    try:
        record(store, who=f"os:{os_user()}", action=action, target=target, result=result,
               **details)  # fmt: skip
    finally:
        store.close()


@click.group()
def secrets() -> None:
    """Encrypted secrets, pushed to the platform on deploy; values are never printed.

    The master key comes from FASTMANGO_MASTER_KEY (or the OS keyring where the keyring
    package is installed); `fastmango secrets keygen` prints a new one.
    """


@secrets.command("keygen")
def keygen() -> None:
    """Print a new random master key (keep it in FASTMANGO_MASTER_KEY or a secret store)."""
    from fastmango.agent.secrets import new_key

    click.echo(new_key())


@secrets.command("set")
@click.argument("name")
@click.option("--env", "env", default="*", show_default=True,
              help="Environment it is for; * = every environment.")  # fmt: skip
@click.option("--from-stdin", is_flag=True,
              help="Read the value from standard input (default on a pipe).")  # fmt: skip
@click.pass_context
def set_(ctx: click.Context, name: str, env: str, from_stdin: bool) -> None:
    """Set NAME; the value is asked for (hidden) on a terminal, else read from stdin."""
    from fastmango.agent.secrets import SecretsError

    vault, settings = _vault(ctx)
    if from_stdin or not sys.stdin.isatty():
        value = sys.stdin.read().rstrip("\n")
    else:
        value = click.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True)
    if not value:
        fail("an empty value; use `fastmango secrets unset` to remove a secret")
    import time

    from fastmango.agent.audit import os_user

    try:
        entry = vault.set(env, name, value, f"os:{os_user()}", time.time())
    except SecretsError as exc:
        _audit(settings, "secrets.set", f"{env}/{name}", "refused", reason=str(exc))
        fail(str(exc))
    _audit(settings, "secrets.set", f"{env}/{name}", "ok", fingerprint=entry.fingerprint)
    click.echo(f"set {name} for {'every environment' if env == '*' else env} "
               f"(fingerprint {entry.fingerprint})")  # fmt: skip


@secrets.command("unset")
@click.argument("name")
@click.option("--env", "env", default="*", show_default=True)
@click.pass_context
def unset(ctx: click.Context, name: str, env: str) -> None:
    """Remove NAME from an environment (or from every-environment secrets)."""
    vault, settings = _vault(ctx)
    removed = vault.unset(env, name)
    _audit(settings, "secrets.unset", f"{env}/{name}", "ok" if removed else "not found")
    if not removed:
        fail(f"no secret {name} for {env}")
    click.echo(f"removed {name} ({env})")


@secrets.command("list")
@click.option("--env", "env", default=None, help="Only what this environment gets.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx: click.Context, env: str | None, as_json: bool) -> None:
    """Names, environments and fingerprints (never values)."""
    import datetime as dt
    import json

    vault, _settings = _vault(ctx)
    rows = vault.entries(env)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    if not rows:
        click.echo("no secrets")
        return
    click.echo(f"{'ENV':<12} {'NAME':<32} {'FINGERPRINT':<17} UPDATED")
    for r in rows:
        when = dt.datetime.fromtimestamp(r.updated_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
        click.echo(f"{r.env:<12} {r.name:<32} {r.fingerprint:<17} {when} by {r.updated_by}")


COMMANDS: list[click.Command] = [secrets]
