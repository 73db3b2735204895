"""``fastmango alerts``: firing and pending alerts, history, silences, channel tests,
and the rules exported as Prometheus alerting rules."""

from __future__ import annotations

import time
from typing import Any

import click

from fastmango.commands.common import fail, load

URL = click.option("--url", help="Agent URL (default: from the settings).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _ago(ts: float | None, now: float) -> str:
    if not ts:
        return "—"
    s = max(0, int(now - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def _labels(labels: dict[str, str]) -> str:
    inner = ",".join(
        f'{k}="{v}"' for k, v in sorted(labels.items()) if k not in ("alertname", "severity")
    )
    return "{" + inner + "}" if inner else ""


def _value(v: Any) -> str:
    return "—" if v is None else f"{v:.4g}"


@click.group("alerts", invoke_without_command=True)
@URL
@JSON
@click.option("--all", "show_all", is_flag=True, help="Also resolved alerts and every rule.")
@click.pass_context
def alerts(ctx: click.Context, url: str | None, as_json: bool, show_all: bool) -> None:
    """Firing and pending alerts of the running agent (and rules without data)."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from fastmango.agent.client import agent_request

    data = agent_request(ctx, "GET", "/api/alerts", url, load)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    now = data.get("now") or time.time()
    rows = [a for a in data["alerts"] if show_all or a["state"] in ("firing", "pending")]
    if not rows:
        click.echo("No alerts firing or pending.")
    else:
        click.echo(
            f"{'STATE':<9} {'SEVERITY':<9} {'ALERT':<40} {'VALUE':>9} {'THRESHOLD':>9}  SINCE"
        )
        for a in rows:
            since = a["fired_at"] if a["state"] == "firing" else a["active_at"]
            name = a["labels"].get("alertname", a["rule"]) + _labels(a["labels"])
            muted = f"  ({a['muted']})" if a.get("muted") else ""
            click.echo(
                f"{a['state']:<9} {a.get('severity') or '':<9} {name:<40} "
                f"{_value(a['value']):>9} {_value(a['threshold']):>9}  "
                f"{_ago(since, now)}{muted}"
            )
            if a.get("summary"):
                click.echo(f"          {a['summary']}")
    odd = [r for r in data["rules"] if r.get("state") in ("nodata", "error")]
    if odd and show_all:
        click.echo("")
        for r in odd:
            extra = f": {r['error']}" if r.get("error") else ""
            click.echo(f"rule {r['name']}: {r['state']} since {_ago(r.get('since'), now)}{extra}")
    elif odd:
        names = ", ".join(r["name"] for r in odd)
        click.echo(
            f"\n{len(odd)} rule{'s' if len(odd) > 1 else ''} without data or failing: "
            f"{names} (--all for details)"
        )
    if data["silences"]:
        n = len(data["silences"])
        click.echo(f"{n} active silence{'s' if n > 1 else ''} (fastmango alerts silences)")
    for ch in data["channels"]:
        if ch.get("up") is False:
            click.echo(f"channel {ch['channel']} is failing: {ch.get('last_error')}", err=True)


@alerts.command("history")
@URL
@JSON
@click.option("--since", default=None, help="Unix seconds or a duration (1h, 7d).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.pass_context
def history(
    ctx: click.Context, url: str | None, as_json: bool, since: str | None, limit: int
) -> None:
    """Alert state changes, notifications and silences, newest first."""
    import datetime as dt
    import json

    from fastmango.agent.client import agent_request

    params: dict[str, Any] = {"limit": limit}
    if since:
        params["since"] = since
    rows = agent_request(ctx, "GET", "/api/alerts/history", url, load, params=params)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No alert history yet.")
    for r in rows:
        d = r["data"]
        when = dt.datetime.fromtimestamp(r["ts"]).strftime("%Y-%m-%d %H:%M:%S")
        kind = d.get("type")
        if kind == "state":
            what = (
                f"{d.get('alertname')}{_labels(d.get('labels', {}))} {d['from']} → {d['to']}"
                f" (value {_value(d.get('value'))})"
            )
        elif kind == "notification":
            names = sorted({a["alertname"] for a in d["alerts"]})
            what = f"{d['channel']}: {d['status']} {', '.join(names)} → {d['result']}" + (
                f" ({d['error']})" if d.get("error") else ""
            )
        elif kind == "silence":
            s = d["silence"]
            what = f"silence {s['id']} by {s['author']}: {s['reason']}"
        elif kind == "unsilence":
            what = f"silence {d['id']} ended by {d['by']}"
        elif kind == "rule":
            what = f"rule {d['rule']}: {d['state']}" + (
                f" ({d['error']})" if d.get("error") else ""
            )
        else:
            what = json.dumps(d)[:160]
        click.echo(f"{when}  {kind:<12} {what}")


@alerts.command("silence")
@click.argument("rule", required=False)
@click.option("--match", "matchers", multiple=True, help="label=value (repeatable).")
@click.option("--for", "duration", default="2h", show_default=True, help="30m, 2h, 1d…")
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@URL
@click.pass_context
def silence(
    ctx: click.Context,
    rule: str | None,
    matchers: tuple[str, ...],
    duration: str,
    reason: str,
    url: str | None,
) -> None:
    """Silence a rule's alerts, or those matching labels, for a while."""
    from fastmango.agent.client import agent_request

    if not rule and not matchers:
        fail("name a RULE or give --match label=value")
    s = agent_request(
        ctx,
        "POST",
        "/api/alerts/silences",
        url,
        load,
        json={"rule": rule, "match": list(matchers), "duration": duration, "reason": reason},
    )
    import datetime as dt

    until = dt.datetime.fromtimestamp(s["ends_at"]).strftime("%Y-%m-%d %H:%M:%S")
    what = ", ".join(f"{m['label']}{m['op']}{m['value']}" for m in s["matchers"])
    click.echo(f"silence {s['id']} ({what}) until {until}")


@alerts.command("unsilence")
@click.argument("sid", metavar="ID")
@URL
@click.pass_context
def unsilence(ctx: click.Context, sid: str, url: str | None) -> None:
    """End a silence now."""
    from fastmango.agent.client import agent_request

    agent_request(ctx, "DELETE", f"/api/alerts/silences/{sid}", url, load)
    click.echo(f"silence {sid} ended")


@alerts.command("silences")
@URL
@click.pass_context
def silences(ctx: click.Context, url: str | None) -> None:
    """Active silences."""
    import datetime as dt

    from fastmango.agent.client import agent_request

    data = agent_request(ctx, "GET", "/api/alerts", url, load)
    if not data["silences"]:
        click.echo("No active silences.")
    for s in data["silences"]:
        what = ", ".join(f"{m['label']}{m['op']}{m['value']}" for m in s["matchers"])
        until = dt.datetime.fromtimestamp(s["ends_at"]).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{s['id']}  {what}  until {until}  by {s['author']}: {s['reason']}")


@alerts.command("test")
@URL
@click.pass_context
def test(ctx: click.Context, url: str | None) -> None:
    """Send a test message to each configured channel and report each result."""
    from fastmango.agent.client import agent_request

    out = agent_request(ctx, "POST", "/api/alerts/test", url, load, timeout=120.0)
    results = out["channels"]
    if not results:
        fail("no channel is configured ([alerts.slack], [alerts.discord], [alerts.email])")
    bad = 0
    for ch, r in results.items():
        if r["ok"]:
            click.echo(f"{ch}: ok ({r['seconds']:.2f} s)")
        else:
            bad += 1
            click.echo(f"{ch}: FAILED after {r['attempts']} attempts: {r['error']}")
    if bad:
        raise SystemExit(1)


@alerts.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["prometheus"]), default="prometheus", show_default=True
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file.")
@click.pass_context
def export(ctx: click.Context, fmt: str, output: str | None) -> None:
    """Write the rules as Prometheus alerting rules (for promtool / Prometheus)."""
    from fastmango.agent.alerts.export import prometheus_rules
    from fastmango.agent.alerts.rules import load as load_rules

    text = prometheus_rules(load_rules(load(ctx).settings.alerts))
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


COMMANDS: list[click.Command] = [alerts]
