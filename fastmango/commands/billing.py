"""``fastmango billing``: this month's spend per environment (to date, projected, budget)
as a table with a bar per environment; ``--optimize`` lists savings with their evidence;
``--prices`` the price catalogue with stale entries flagged; ``--json`` for scripts.
Figures come from the running agent (``/api/cost``)."""

from __future__ import annotations

import json as jsonlib
from datetime import UTC, datetime
from typing import Any

import click

from fastmango.commands.common import load

BAR = 32


def _money(v: float | None) -> str:
    return "unknown" if v is None else f"${v:,.2f}"


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%d %b %H:%M")


def bar(mtd: float | None, projected: float | None, budget: float | None, scale: float) -> str:
    """``█`` spent so far, ``░`` the rest of the projection, ``|`` the budget."""
    if scale <= 0:
        return " " * BAR
    cells = [" "] * BAR
    spent = 0 if mtd is None else min(BAR, round(mtd / scale * BAR))
    proj = 0 if projected is None else min(BAR, round(projected / scale * BAR))
    for i in range(BAR):
        if i < spent:
            cells[i] = "█"
        elif i < proj:
            cells[i] = "░"
    if budget is not None:
        cells[min(BAR - 1, max(0, round(budget / scale * BAR) - 1))] = "|"
    return "".join(cells)


def render_table(doc: dict[str, Any]) -> str:
    rows = doc["environments"]
    out = [f"Billing {doc['month']} (UTC): to date {_day(doc['generated_at'])}, "
           f"projected to {_day(doc['month_end'])}"]  # fmt: skip
    if not rows:
        out.append("No environments: add [environments.<name>] to fastmango.toml.")
        return "\n".join(out)
    scale = max([v for r in rows for v in (r["known_projected"], r["budget"] or 0.0)] + [0.0])
    head = (f"{'ENV':<14}{'PLATFORM':<10}{'SIZE':<22}{'N':>3}  {'TO DATE':>11} {'PROJECTED':>11} "
            f"{'BUDGET':>10}  {'':{BAR}}")  # fmt: skip
    out += ["", head.rstrip()]
    for r in rows:
        state = ""
        if r["over_budget"]:
            state = "  OVER BUDGET"
        elif not r["complete"] and r["month_to_date"] is not None:
            state = "  partial"
        n = "?" if r["replicas"] is None else str(r["replicas"])
        out.append(
            f"{r['env'][:13]:<14}{r['platform'][:9]:<10}{(r['size'] or '-')[:21]:<22}{n:>3}  "
            f"{_money(r['month_to_date']):>11} {_money(r['projected']):>11} "
            f"{_money(r['budget']) if r['budget'] is not None else '-':>10}  "
            f"{bar(r['month_to_date'], r['projected'], r['budget'], scale)}{state}"
        )
    t = doc["total"]
    budget = _money(t["budget"]) if t["budget"] is not None else "-"
    out.append(
        f"{'total (known)':<49}{_money(t['month_to_date']):>11} "
        f"{_money(t['projected']):>11} {budget:>10}"
    )
    out.append("\n█ to date  ░ projected to month end  | budget")
    details = []
    for r in rows:
        for line in r["lines"]:
            if line["unknown"]:
                details.append(f"  {r['env']}: {line['item']} unknown: {line['unknown']}")
        for note in r["notes"]:
            details.append(f"  {r['env']}: {note}")
        if r["projection"]:
            details.append(f"  {r['env']}: projection: {r['projection']}")
    if details:
        out += ["", "Notes:", *details]
    if doc["stale_prices"]:
        out += ["", f"Stale prices (read over {doc['stale_after_days']:g} days ago; "
                    "override under [cost.prices]):"]  # fmt: skip
        for e in doc["stale_prices"]:
            out.append(f"  {e['key']} = {e['value']:g} as of {e['as_of']} "
                       f"({e['age_days']:.0f} days) {e['source']}")  # fmt: skip
    for w in doc.get("warnings", []):
        out.append(f"warning: {w}")
    return "\n".join(out)


def _evidence(kind: str, ev: dict[str, Any]) -> list[str]:
    if kind == "rightsize":
        cur, rec = ev["current"], ev["recommended"]
        return [
            f"p95 CPU {ev['cpu_p95_cores']:g} cores and memory {ev['memory_p95_gb']:.3g} GB over "
            f"{ev['window_hours']:g} h ({ev['samples']} samples) on {cur['vcpu']:g} vCPU / "
            f"{cur['memory_gb']:g} GB: efficiency CPU {ev['cpu_efficiency']:.0%}, memory "
            f"{ev['memory_efficiency']:.0%}",
            f"at {ev['target_utilization']:.0%} target: needs {ev['recommended_request']['vcpu']:g}"
            f" vCPU / {ev['recommended_request']['memory_gb']:.3g} GB → {rec['size']} "
            f"(${rec['dollars_per_month']:.2f} vs ${cur['dollars_per_month']:.2f} per instance, "
            f"× {ev['replicas']:g} instances)",
        ]
    if kind == "idle-schedule":
        return [
            f"{ev['idle_hours_per_week']} hours a week under {ev['threshold_rps']:g} req/s in "
            f"every one of {ev['weeks_observed']:g} weeks (peak then "
            f"{ev['peak_rps_in_idle_hours']:g} req/s); "
            f"{ev['instance_hours_saved_per_week']:g} instance-hours a week at "
            f"${ev['hourly_price']:g}/h",
        ]
    if kind == "predictive":
        st, pr = ev["static"], ev["predictive"]
        return [
            f"replayed {ev['minutes_replayed']} minutes of the app's load (peak "
            f"{ev['peak_rps']:g} req/s, {ev['capacity_rps_per_instance']:g} req/s per instance)",
            f"static {st['replicas']} instances: {st['replica_hours']:g} instance-hours, SLO risk "
            f"{st['slo_risk_pct']:g}%; predictive: {pr['replica_hours']:g} instance-hours, SLO "
            f"risk {pr['slo_risk_pct']:g}%, {pr['actions_per_day']:g} actions a day"
            + (
                f"; actual {ev['actual_replica_hours']:g}" if ev.get("actual_replica_hours") else ""
            ),
        ]
    if kind == "platform":
        opts = ", ".join(f"{o['platform']} {o['size']} ${o['dollars_per_month']:.2f}"
                         for o in ev["options"][:5])  # fmt: skip
        return [
            f"needs {ev['needed']['vcpu']:g} vCPU / {ev['needed']['memory_gb']:.3g} GB per "
            f"instance (p95 at {ev['target_utilization']:.0%}) × {ev['replicas']:g}; now "
            f"${ev['current']['dollars_per_month']:.2f}/month on {ev['current']['platform']}",
            f"options: {opts}",
        ]
    return [jsonlib.dumps(ev)]


def render_savings(doc: dict[str, Any]) -> str:
    items = doc["savings"]
    out = [
        f"Savings over the last {doc['window_hours']:g} h: "
        f"${doc['total_dollars_per_month']:,.2f} per month or more in {len(items)} "
        "suggestion(s) (one environment's savings overlap: the total takes the largest of each)"
    ]
    for i, s in enumerate(items, 1):
        out += ["", f"{i}. ${s['dollars_per_month']:,.2f}/month  {s['title']}  [{s['kind']}]"]
        out += [f"   evidence: {line}" for line in _evidence(s["kind"], s["evidence"])]
        out.append(f"   do: {s['action']}")
    if doc["skipped"]:
        out += ["", "Checked without a saving:"]
        out += [f"  {x['env']} {x['kind']}: {x['reason']}" for x in doc["skipped"]]
    return "\n".join(out)


def render_prices(doc: dict[str, Any]) -> str:
    out = [f"{'KEY':<36} {'PRICE':>12}  {'AS OF':<10}  SOURCE"]
    for e in doc["entries"]:
        flag = " STALE" if e["stale"] else ""
        flag += " unverified" if e["unverified"] else ""
        flag += " deprecated" if e.get("deprecated") else ""
        flag += " (config)" if e["overridden"] else ""
        out.append(f"{e['key']:<36} {e['value']:>12g}  {e['as_of'] or '-':<10}  "
                   f"{e['source']}{flag}")  # fmt: skip
    return "\n".join(out)


@click.command("billing")
@click.option("--optimize", is_flag=True, help="List savings with their evidence, $ per month.")
@click.option("--prices", "show_prices", is_flag=True, help="Show the price catalogue.")
@click.option("--env", "env", default=None, help="Only this environment.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.option("--fresh", is_flag=True, help="Recompute now instead of the last minute's figures.")
@click.option("--url", default=None, help="The agent's URL (default: from the settings).")
@click.pass_context
def billing(
    ctx: click.Context,
    optimize: bool,
    show_prices: bool,
    env: str | None,
    as_json: bool,
    fresh: bool,
    url: str | None,
) -> None:
    """This month's spend per environment: to date, projected to month end, and budget.

    Usage comes from the agent's replica history (replicas × size × time), GPU time and
    measured egress; prices from the catalogue shipped with fastmango (override under
    [cost.prices]). A missing price or history shows as "unknown", never as zero.
    """
    from fastmango.agent.client import agent_request

    params: dict[str, Any] = {}
    if env:
        params["env"] = env
    if fresh:
        params["fresh"] = "true"
    if show_prices:
        doc = agent_request(ctx, "GET", "/api/cost/prices", url, load)
        click.echo(jsonlib.dumps(doc, indent=2) if as_json else render_prices(doc))
        return
    path = "/api/cost/savings" if optimize else "/api/cost"
    doc = agent_request(ctx, "GET", path, url, load, params=params, timeout=120.0)
    if as_json:
        click.echo(jsonlib.dumps(doc, indent=2))
    else:
        click.echo(render_savings(doc) if optimize else render_table(doc))


COMMANDS: list[click.Command] = [billing]
