"""``fastmango scale``: set an environment's scaling policy; ``fastmango scale status``.

    fastmango scale --env=production --min=2 --max=10 --cpu=70% [--rps=150] [--p95=200ms]
        [--gpu=80%] [--schedule 'Mon-Fri 08:00-20:00 Europe/Berlin min=1; otherwise 0']
        [--predictive/--no-predictive] [--dry-run/--no-dry-run]
    fastmango scale status [--env=production] [--json]

The options given change the environment's policy; the rest of it stays as it was
(``fastmango scale --min 3`` keeps the targets; ``--rps off`` drops one). With no
option at all, ``fastmango scale`` shows the status. The policy is stored in the
running agent's state (through its API, audited).
"""

from __future__ import annotations

import json as _json
from typing import Any

import click

from fastmango.commands.common import fail, load


def _policy(opts: dict[str, Any], production: bool) -> dict[str, Any]:
    from fastmango.scaler import hpa
    from fastmango.scaler.policy import (
        Policy,
        PolicyError,
        Predictive,
        Targets,
        parse_latency,
        parse_percent,
    )

    opts = {k: (None if _is_off(v) else v) for k, v in opts.items()}
    try:
        targets = Targets(
            cpu=parse_percent(opts["cpu"], "--cpu") if opts["cpu"] else None,
            rps=float(opts["rps"]) if opts["rps"] else None,
            p95=parse_latency(opts["p95"], "--p95") if opts["p95"] else None,
            gpu=parse_percent(opts["gpu"], "--gpu") if opts["gpu"] else None,
        )
        if targets.rps is not None and targets.rps <= 0:
            raise PolicyError("--rps must be above 0")
        predictive = opts["predictive"] if opts["predictive"] is not None else production
        up = hpa.Rules(0.0, "Max", (hpa.RatePolicy("Pods", opts["up_pods"], 15.0),
                                    hpa.RatePolicy("Percent", opts["up_percent"], 15.0)),
                       opts["tolerance"])  # fmt: skip
        window = opts["down_window"]
        if window is None:  # the HPA's, forecast or not: the forecast only raises capacity
            window = hpa.DOWNSCALE_STABILIZATION
        down = hpa.Rules(window, "Max", (hpa.RatePolicy("Percent", 100, 15.0),),
                         opts["tolerance"])  # fmt: skip
        policy = Policy(
            min=opts["min"], max=opts["max"], targets=targets, schedule=opts["schedule"],
            behavior=hpa.Behavior(up, down), dry_run=opts["dry_run"], startup=opts["startup"],
            predictive=Predictive(enabled=predictive, utilization=0.9 if predictive else None),
        )  # fmt: skip
    except (PolicyError, ValueError) as exc:
        fail(str(exc), 2)
    return policy.to_dict()


def _is_off(v: Any) -> bool:
    return isinstance(v, str) and v.strip().lower() in ("off", "none")


#: the options that make up a policy (a parameter's name as click passes it)
POLICY_OPTS = ("min_", "max_", "cpu", "rps", "p95", "gpu", "schedule", "predictive", "dry_run",
               "startup", "down_window", "up_pods", "up_percent", "tolerance")  # fmt: skip


def _given(ctx: click.Context) -> set[str]:
    """The policy options the user gave (on the command line or in the environment)."""
    from click.core import ParameterSource

    said = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return {n for n in POLICY_OPTS if ctx.get_parameter_source(n) in said}


def _opts_of(p: dict[str, Any]) -> dict[str, Any]:
    """The options that give policy ``p`` (what :func:`_policy` reads): the base a change
    of some of them applies to."""
    t, b = p["targets"], p["behavior"]
    up = {r["type"]: r["value"] for r in b["scale_up"]["policies"]}
    return {
        "min_": p["min"],
        "max_": p["max"],
        "cpu": None if t.get("cpu") is None else f"{t['cpu']:g}%",
        "rps": None if t.get("rps") is None else f"{t['rps']:g}",
        "p95": None if t.get("p95") is None else f"{t['p95'] * 1000:g}ms",
        "gpu": None if t.get("gpu") is None else f"{t['gpu']:g}%",
        "schedule": p.get("schedule"),
        "predictive": p["predictive"]["enabled"],
        "dry_run": p.get("dry_run", False),
        "startup": p.get("startup", 60.0),
        "down_window": b["scale_down"]["stabilization"],
        "up_pods": up.get("Pods", 4),
        "up_percent": up.get("Percent", 100),
        "tolerance": b["scale_up"]["tolerance"],
    }


def _duration(ctx: click.Context, param: click.Parameter, value: Any) -> float | None:
    from fastmango.agent.settings_base import parse_duration

    if value is None:
        return None
    try:
        return float(parse_duration(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group("scale", invoke_without_command=True)
@click.option("--env", "env", default="production", show_default=True, help="Environment.")
@click.option("--min", "min_", type=click.IntRange(0), default=1, show_default=True)
@click.option("--max", "max_", type=click.IntRange(1), default=10, show_default=True)
@click.option("--cpu", help="Target CPU utilization per instance, e.g. 70%.")
@click.option("--rps", help="Target requests per second per instance, e.g. 150.")
@click.option("--p95", help="Target p95 latency, e.g. 200ms.")
@click.option("--gpu", help="Target GPU utilization per instance, e.g. 80%.")
@click.option("--schedule", help="e.g. 'Mon-Fri 08:00-20:00 Europe/Berlin min=1; otherwise 0'.")
@click.option("--predictive/--no-predictive", default=None,
              help="Forecast the coming peak (default: on for production).")  # fmt: skip
@click.option("--dry-run/--no-dry-run", default=False,
              help="Record decisions, never apply them.")  # fmt: skip
@click.option("--startup", default="60s", callback=_duration, show_default=True,
              help="Time from a scale call to a serving instance.")  # fmt: skip
@click.option("--scale-down-window", "down_window", default=None, callback=_duration,
              help="Scale-down stabilization window (default 300s, the HPA's, also "
                   "with --predictive: the forecast only raises capacity).")  # fmt: skip
@click.option("--scale-up-pods", "up_pods", type=click.IntRange(0), default=4, show_default=True,
              help="Scale-up policy: at most this many more instances per 15 s…")  # fmt: skip
@click.option("--scale-up-percent", "up_percent", type=click.IntRange(0), default=100,
              show_default=True, help="…or this percent more, whichever is larger.")  # fmt: skip
@click.option("--tolerance", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--reason", default="", help="Why (kept in the audit log).")
@click.option("--remove", is_flag=True, help="Remove the environment's policy.")
@click.option("--url", help="The agent's URL (default: from the settings).")
@click.pass_context
def scale(ctx: click.Context, /, env: str, min_: int, max_: int, remove: bool, url: str | None,
          reason: str, **opts: Any) -> None:  # fmt: skip
    """Set the scaling policy of an environment: the options given change it, the rest
    stays (with none, show the status, as `fastmango scale status`). A target, or the
    schedule, set to `off` is dropped."""
    if ctx.invoked_subcommand is not None:
        return
    from fastmango.agent.client import agent_request

    if remove:
        agent_request(ctx, "DELETE", f"/api/scaling/policy/{env}", url, load)
        click.echo(f"removed the scaling policy of {env}")
        return
    from click.core import ParameterSource

    given = _given(ctx)
    if not given:  # nothing to change: what is it now?
        named = ctx.get_parameter_source("env") == ParameterSource.COMMANDLINE
        ctx.invoke(status, env=env if named else None, as_json=False, url=url)
        return
    settings = load(ctx).settings
    cfg = settings.environments.get(env)
    production = cfg.is_production(env) if cfg is not None else env.startswith("prod")
    now = agent_request(ctx, "GET", "/api/scaling", url, load)["environments"].get(env)
    base = _opts_of(now["policy"]) if now else {}
    mine = {"min_": min_, "max_": max_, **opts}
    merged = {k: (mine[k] if k in given or k not in base else base[k]) for k in mine}
    merged["min"], merged["max"] = merged.pop("min_"), merged.pop("max_")
    body = _policy(merged, production)
    body["reason"] = reason
    answer = agent_request(ctx, "PUT", f"/api/scaling/policy/{env}", url, load, json=body)
    click.echo(f"{env}: {_describe(answer['policy'])}")
    if answer.get("dry_run_reason"):
        click.echo(f"dry-run: {answer['dry_run_reason']}")


def _describe(p: dict[str, Any]) -> str:
    t = p["targets"]
    parts = [f"min {p['min']}, max {p['max']}"]
    if t.get("cpu") is not None:
        parts.append(f"cpu {t['cpu']:g}%")
    if t.get("rps") is not None:
        parts.append(f"{t['rps']:g} req/s per instance")
    if t.get("p95") is not None:
        parts.append(f"p95 {t['p95'] * 1000:g}ms")
    if t.get("gpu") is not None:
        parts.append(f"gpu {t['gpu']:g}%")
    if not any(t.get(k) is not None for k in ("cpu", "rps", "p95", "gpu")):
        parts.append("cpu 80% (default)")
    if p.get("schedule"):
        parts.append(f"schedule {p['schedule']!r}")
    parts.append("predictive" if p["predictive"]["enabled"] else "reactive")
    if p.get("dry_run"):
        parts.append("dry-run")
    return ", ".join(parts)


def _fmt(v: Any, unit: str = "", scale: float = 1.0, digits: int = 1) -> str:
    return "-" if v is None else f"{v * scale:.{digits}f}{unit}"


@scale.command("status")
@click.option("--env", "env", default=None, help="Only this environment.")
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON.")
@click.option("--url", help="The agent's URL (default: from the settings).")
@click.pass_context
def status(ctx: click.Context, env: str | None, as_json: bool, url: str | None) -> None:
    """Current and desired replicas, the reason, the inputs and the next forecast."""
    from fastmango.agent.client import agent_request

    answer = agent_request(ctx, "GET", "/api/scaling", url, load)
    envs = answer["environments"]
    if env is not None:
        if env not in envs:
            fail(f"no scaling policy for {env!r} (set one with: fastmango scale --env={env} ...)")
        envs = {env: envs[env]}
    if as_json:
        click.echo(_json.dumps({**answer, "environments": envs}, indent=2))
        return
    if not envs:
        click.echo("no scaling policy set (fastmango scale --env=production --cpu=70% ...)")
    for name, e in envs.items():
        mode = f"dry-run ({e['dry_run_reason']})" if e["dry_run"] else "applied"
        click.echo(f"{name}: current {_fmt(e['current'], digits=0)}, "
                   f"desired {_fmt(e['desired'], digits=0)} — {e['reason'] or 'not decided yet'}"
                   f" [{mode}]")  # fmt: skip
        click.echo(f"  policy: {_describe(e['policy'])}")
        if e["message"]:
            click.echo(f"  why: {e['message']}")
        i = e["inputs"] or {}
        click.echo(f"  inputs: cpu {_fmt(i.get('cpu'), '%')}, gpu {_fmt(i.get('gpu'), '%')}, "
                   f"{_fmt(i.get('rps'))} req/s, p95 {_fmt(i.get('p95'), 'ms', 1000, 0)}, "
                   f"ready {_fmt(i.get('ready'), digits=0)}")  # fmt: skip
        f = e["forecast"]
        if f is None:
            click.echo("  forecast: off (reactive only)")
        elif f["status"] == "used" or f.get("peak") is not None:
            n = f.get("replicas")
            click.echo(
                f"  forecast: peak {_fmt(f.get('peak'))} req/s within "
                f"{_fmt(f.get('horizon_seconds'), 's', digits=0)} (median {_fmt(f.get('low'))}), "
                f"{_fmt(f.get('capacity'))} req/s per instance → {'-' if n is None else n}; "
                f"recent error {_fmt(f.get('error'), '%', 100, 0)} [{f['status']}]"
            )
        else:
            click.echo(f"  forecast: not used ({f['status']}; "
                       f"{_fmt(f.get('history_seconds'), 'h', 1 / 3600)} of history)")  # fmt: skip
        if e.get("error"):
            click.echo(f"  error: {e['error']}")
    fc = answer["forecaster"]
    click.echo(f"forecaster: {fc['status']}")


COMMANDS: list[click.Command] = [scale]
