"""``fastmango audit``: check and export the hash-chained audit trail."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

import click

from fastmango.commands.common import fail, load

if TYPE_CHECKING:
    from fastmango.agent.store import Store


def _store(ctx: click.Context) -> Store:
    from fastmango.agent.store import Store

    path = load(ctx).settings.store_path
    if not path.exists():
        fail(f"no state store at {path}; run this in the app's folder (or pass --config)")
    return Store(path)


@click.group()
def audit() -> None:
    """The audit trail: every action, who did it, and the result (append-only, chained)."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """Check that no audit record was edited, removed or inserted; exit 1 if one was."""
    import json

    from fastmango.agent import audit_chain

    store = _store(ctx)
    verdict = audit_chain.verify(store.audit_records(), store.audit_head())
    if as_json:
        click.echo(json.dumps(verdict.as_dict()))
    elif verdict.ok:
        click.echo(f"audit trail intact: {verdict.records} records, head {verdict.head}")
    else:
        click.echo(f"audit trail TAMPERED: {verdict.problem}", err=True)
    raise SystemExit(0 if verdict.ok else 1)


@audit.command("export")
@click.option("-o", "--output", type=click.File("w"), default="-", help="File (default stdout).")
@click.option("--since", help="Only records after this (Unix seconds, or 7d = that long ago).")
@click.pass_context
def export(ctx: click.Context, output: TextIO, since: str | None) -> None:
    """Write every record as JSON lines (id, time, who, action, target, result, chain)."""
    import datetime as dt
    import json
    import time

    from fastmango.agent.api import parse_time

    try:
        t0 = parse_time(since, time.time())
    except ValueError as exc:
        fail(str(exc))
    store = _store(ctx)
    for rid, ts, text in store.audit_records():
        if t0 is not None and ts < t0:
            continue
        when = dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()
        output.write(json.dumps({"id": rid, "ts": ts, "time": when, **json.loads(text)}) + "\n")


COMMANDS: list[click.Command] = [audit]
