"""``fastmango deploy``, ``rollback``, ``releases`` and ``migrate``.

Deploys and rollbacks run in this process (no agent needed): they take the
environment's lock in the state folder, call the platform, wait for health with a
progress bar and write the release events and the audit record, which the agent (its
health gate, the dashboard) reads from the same state store.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from fastmango.commands.common import fail, load


def _settings(ctx: click.Context, lock_wait: float | None = None) -> Any:
    settings = load(ctx).settings
    if lock_wait is not None:
        deploy = settings.deploy.model_copy(update={"lock_wait": lock_wait})
        settings = settings.model_copy(update={"deploy": deploy})
    return settings


def _env(settings: Any, env: str | None) -> str:
    if env:
        return env
    names = sorted(settings.environments)
    if len(names) == 1:
        return str(names[0])
    fail(
        "say which environment: --env "
        + (
            "|".join(names)
            if names
            else "<name> (none is configured: add [environments.<name>] to the settings)"
        )
    )


class Bar:
    """A progress bar on stderr (one line redrawn on a terminal, else a line per change)."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()
        self.quiet = quiet
        self.last = ""

    def __call__(self, rollout: Any, elapsed: float) -> None:
        if self.quiet:
            return
        desired = max(rollout.desired, 1)
        done = 1.0 if rollout.state == "live" else min(rollout.ready / desired, 0.99)
        fill = int(done * 24)
        line = (
            f"{self.label} [{'#' * fill}{'.' * (24 - fill)}] {rollout.ready}/"
            f"{rollout.desired} ready · {elapsed:4.0f}s · {rollout.message}"
        )
        if self.tty:
            click.echo("\r" + line[:160].ljust(160), nl=False, err=True)
            if rollout.state != "in_progress":
                click.echo("", err=True)
        elif line.split("·")[-1] != self.last:
            click.echo(line, err=True)
        self.last = line.split("·")[-1]


def _who() -> str:
    from fastmango.agent.audit import os_user

    return f"cli:{os_user()}"


def _run(coro: Any) -> Any:
    import asyncio

    from fastmango.errors import FastmangoError

    try:
        return asyncio.run(coro)
    except FastmangoError as exc:
        fail(str(exc))


def _approve(env: str, what: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{what} on {env} needs an approval: no terminal to ask on, so pass --yes")
    if not click.confirm(f"{what} on {env}?", default=False, err=True):
        fail("not approved; nothing changed")


@click.command()
@click.argument(
    "platform",
    type=click.Choice(["fly", "railway", "render", "kubernetes", "cloudrun", "ecs", "azure"]),
)
@click.option("--env", "env", required=True, help="Environment from [environments.<name>].")
@click.option("--image", default="", help="Image to deploy (Railway/Render: empty = source).")
@click.option("--regions", default="", help="Comma-separated regions (Fly, Railway, Cloud Run).")
@click.option(
    "--gpu",
    type=click.Choice(["t4", "l4", "a10", "a100"]),
    help="GPU per instance, mapped to the platform's offering (Cloud Run: l4).",
)
@click.option("--wait-for-tests", is_flag=True, help="Run deploy.test_command first.")
@click.option("--skip-migrations", is_flag=True, help="Do not run deploy.migrate_command.")
@click.option("--backup-first", is_flag=True, help="pg_dump the database before migrating.")
@click.option("--dry-run", is_flag=True, help="Show what would happen; change nothing.")
@click.option("--approval-required", is_flag=True, help="Ask before deploying (or --yes).")
@click.option("--yes", is_flag=True, help="The approval, where no terminal can ask.")
@click.option("--lock-wait", type=float, help="Seconds to wait for a running deploy.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def deploy(
    ctx: click.Context,
    platform: str,
    env: str,
    image: str,
    regions: str,
    wait_for_tests: bool,
    skip_migrations: bool,
    backup_first: bool,
    dry_run: bool,
    approval_required: bool,
    yes: bool,
    lock_wait: float | None,
    as_json: bool,
    gpu: str | None = None,
) -> None:
    """Deploy to an environment, then wait until it is healthy.

    Order: tests (--wait-for-tests), backup (--backup-first), migrations
    (deploy.migrate_command), the rollout with a progress bar, then the agent's health
    gate watches the new release and rolls back by itself on a regression.
    """
    settings = _settings(ctx, lock_wait)
    e = settings.environments.get(env)
    if e is None:
        fail(
            f"no environment {env!r} ([environments.{env}]); known: "
            + (", ".join(sorted(settings.environments)) or "none")
        )
    if e.platform != platform:
        fail(f"environment {env} runs on {e.platform}, not {platform}")
    region_list = tuple(r.strip() for r in regions.split(",") if r.strip())
    if region_list and platform not in ("fly", "railway"):
        fail(f"--regions: {platform} has no regions to choose per deploy (fly and railway do)")
    from fastmango.agent.deploys import actions, hooks

    if dry_run:
        _dry_run(settings, env, image, region_list, backup_first, skip_migrations)
        return
    if approval_required or env in settings.deploy.approval_required:
        _approve(env, f"deploy {image or 'the latest source'}", yes)
    from fastmango.errors import FastmangoError

    try:
        if wait_for_tests:
            click.echo("running the tests…", err=True)
            hooks.run_tests(settings)
        if backup_first:
            click.echo(f"backup: {hooks.backup(settings, env)}", err=True)
        if not skip_migrations and settings.deploy.migrate_command:
            click.echo("migrating…", err=True)
            hooks.migrate(settings, env, dry_run=False)
    except FastmangoError as exc:
        fail(f"{exc}; nothing deployed")
    bar = Bar(f"deploy {env}", quiet=as_json)
    from fastmango.deployer.placement import gpu_options

    options = gpu_options(platform, gpu, fail)
    out = _run(actions.deploy(settings, env, image, who=_who(), regions=region_list, progress=bar,
                              client_options=options))  # fmt: skip
    _print(out, as_json)
    _gate_hint(settings, env, out.to_version)


def _gate_hint(settings: Any, env: str, version: str | None) -> None:
    """Say whether an agent's health gate now watches the new release."""
    gate = settings.deploy.gate
    if not gate.enabled or (gate.environments and env not in gate.environments):
        return
    import httpx

    url = settings.server.url
    try:
        httpx.get(url + "/healthz", timeout=0.5)
    except httpx.HTTPError:
        click.echo(
            f"health gate: no agent answers at {url}, so nobody watches {version}; "
            "run `fastmango agent` beside the app",
            err=True,
        )
        return
    click.echo(
        f"health gate: the agent at {url} watches {version} for {gate.duration:g}s "
        "and rolls back by itself on a regression",
        err=True,
    )


def _dry_run(
    settings: Any,
    env: str,
    image: str,
    regions: tuple[str, ...],
    backup_first: bool,
    skip_migrations: bool,
) -> None:
    from fastmango.agent.deploys import actions, hooks
    from fastmango.deployer.flow import current_release
    from fastmango.deployer.platforms import connect

    async def look() -> Any:
        platform = connect(actions.target_of(settings, env))
        try:
            return current_release(await platform.releases(limit=5))
        finally:
            await platform.aclose()

    current = _run(look())
    click.echo(
        f"dry run: would deploy {image or 'the latest source'} to {env} "
        f"({settings.environments[env].platform}) replacing "
        f"{current.version + ' ' + str(current.image) if current else 'nothing'}"
        + (f" in {', '.join(regions)}" if regions else "")
    )
    if backup_first:
        click.echo("dry run: would pg_dump the database first")
    if not skip_migrations and (
        settings.deploy.migrate_command or settings.deploy.migrate_dry_run_command
    ):
        click.echo("dry run: migrations that would run:")
        from fastmango.errors import FastmangoError

        try:
            hooks.migrate(settings, env, dry_run=True)
        except FastmangoError as exc:
            fail(str(exc))


def _print(out: Any, as_json: bool) -> None:
    import json

    if as_json:
        click.echo(json.dumps(out.as_dict(), default=str))
        return
    click.echo(
        f"{out.action} {out.env}: {out.from_version or '-'} → {out.to_version} "
        f"({out.image}) {out.result} in {out.duration:.1f}s "
        f"({out.platform_seconds:.1f}s waiting on {out.platform})"
    )
    pushed = out.extra.get("secrets") or []
    if pushed:  # names and fingerprints only, never values
        names = ", ".join(f"{s['name']} ({s['fingerprint']})" for s in pushed)
        click.echo(f"secrets pushed to {out.platform}: {names}")


@click.command()
@click.option("--env", "env", help="Environment (default: the only one).")
@click.option(
    "--version", "version", help="Release to roll back to (v12); default: the previous healthy one."
)
@click.option("--reason", default="", help="Why, for the audit log.")
@click.option("--lock-wait", type=float, help="Seconds to wait for a running deploy.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def rollback(
    ctx: click.Context,
    env: str | None,
    version: str | None,
    reason: str,
    lock_wait: float | None,
    as_json: bool,
) -> None:
    """Roll back to the previous healthy release, or to --version; never rebuilds."""
    settings = _settings(ctx, lock_wait)
    name = _env(settings, env)
    from fastmango.agent.deploys import actions

    out = _run(
        actions.rollback(
            settings,
            name,
            who=_who(),
            version=version,
            reason=reason,
            progress=Bar(f"rollback {name}", quiet=as_json),
        )
    )
    _print(out, as_json)


@click.command()
@click.option("--env", "env", help="Environment (default: the only one).")
@click.option("--limit", default=20, show_default=True, help="Releases to list.")
@click.option("--local", is_flag=True, help="Only what was recorded here; don't ask the platform.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def releases(ctx: click.Context, env: str | None, limit: int, local: bool, as_json: bool) -> None:
    """The release history: the platform's releases with who deployed them and how it went."""
    import json
    import time

    settings = _settings(ctx)
    name = _env(settings, env)
    from fastmango.agent.deploys import actions

    recorded = actions.history(settings, name, limit=500)
    by_id: dict[str, dict[str, Any]] = {}
    for r in reversed(recorded):  # newest wins
        if r.get("release_id"):
            by_id[r["release_id"]] = r
    rows: list[dict[str, Any]] = []
    if not local:
        from fastmango.deployer.platforms import connect

        async def fetch() -> Any:
            platform = connect(actions.target_of(settings, name))
            try:
                return await platform.releases(limit=limit)
            finally:
                await platform.aclose()

        for rel in _run(fetch()):
            mine = by_id.get(rel.id, {})
            rows.append(
                {
                    "version": rel.version,
                    "state": rel.state,
                    "image": rel.image,
                    "created_at": rel.created_at,
                    "release_id": rel.id,
                    "who": mine.get("who"),
                    "recorded": mine.get("state"),
                    "message": rel.message,
                }
            )
    else:
        for r in recorded[:limit]:
            rows.append(
                {
                    "version": r.get("version"),
                    "state": r.get("state"),
                    "image": r.get("image"),
                    "created_at": r.get("ts"),
                    "release_id": r.get("release_id"),
                    "who": r.get("who"),
                    "recorded": r.get("state"),
                    "message": r.get("reason") or "",
                }
            )
    if as_json:
        click.echo(json.dumps(rows, default=str))
        return
    if not rows:
        click.echo(f"no releases of {name}")
        return
    click.echo(f"{'VERSION':<9} {'STATE':<12} {'WHEN (UTC)':<17} {'WHO':<20} {'NOTE':<12} IMAGE")
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["created_at"] or 0))
        note = r["recorded"] if r["recorded"] in ("rolled_back", "failed") else ""
        click.echo(
            f"{r['version'] or '-':<9} {r['state'] or '-':<12} {when:<17} "
            f"{(r['who'] or '-')[:20]:<20} {note:<12} {r['image'] or '-'}"
        )


@click.command()
@click.option("--env", "env", help="Environment whose database to migrate.")
@click.option("--dry-run", is_flag=True, help="Show the migrations; run nothing.")
@click.option("--backup-first", is_flag=True, help="pg_dump the database first.")
@click.pass_context
def migrate(ctx: click.Context, env: str | None, dry_run: bool, backup_first: bool) -> None:
    """Run the database migrations (deploy.migrate_command) of an environment."""
    settings = _settings(ctx)
    name = _env(settings, env)
    from fastmango.agent import audit
    from fastmango.agent.deploys import hooks
    from fastmango.errors import FastmangoError

    try:
        if dry_run:
            if not hooks.migrate(settings, name, dry_run=True):
                fail("no migrations configured (deploy.migrate_command)")
            return
        if backup_first:
            click.echo(f"backup: {hooks.backup(settings, name)}", err=True)
        if not settings.deploy.migrate_command:
            fail("no migrations configured (deploy.migrate_command)")
        result = "error"
        try:
            hooks.migrate(settings, name, dry_run=False)
            result = "ok"
        finally:
            from fastmango.agent.store import Store

            store = Store(settings.store_path)
            store.open()
            audit.record(
                store, who=_who(), action="migrate", target=name, result=result, backup=backup_first
            )
            store.flush()
            store.close()
    except FastmangoError as exc:
        fail(str(exc))
    click.echo(f"migrated {name}")


COMMANDS: list[click.Command] = [deploy, rollback, releases, migrate]
