"""HTTP API of the agent's alerts part, mounted by :func:`fastmango.agent.api.create_app`.

* ``GET /api/alerts``: alerts (pending, firing, resolved, muted), rules with their state
  (ok, nodata, error), active silences, channel health.
* ``GET /api/alerts/history``: state changes, deliveries, silences, newest first.
* ``POST /api/alerts/silences``, ``DELETE /api/alerts/silences/{id}``: state-changing,
  so they take the acting user (token or session + CSRF) and write an audit record.
* ``POST /api/alerts/test``: a test message to each channel (audited too).
* ``GET /api/alerts/export?format=prometheus``: the rules as Prometheus alerting rules.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from fastmango.agent import audit
from fastmango.agent.auth import require_actor

HISTORY_TYPES = ("state", "notification", "silence", "unsilence", "event", "test", "rule")


class SilenceIn(BaseModel):
    rule: str | None = Field(None, max_length=200, description="Silence every alert of a rule.")
    match: list[str] = Field(
        default_factory=list, max_length=20, description='Matchers: label=value, label=~"re"'
    )
    duration: str = Field("2h", max_length=20, description="How long: 30m, 2h, 1d.")
    reason: str = Field(..., min_length=1, max_length=1000, description="Why (kept in audit).")


def parse_matchers(rule: str | None, match: list[str]) -> list[Any]:
    """``label=value`` strings (quotes optional) and/or a rule name → matchers."""
    from fastmango.agent.store import Matcher, parse_match

    out = []
    if rule:
        out.append(Matcher("alertname", "=", rule))
    for item in match:
        text = item.strip()
        for op in ("=~", "!~", "!=", "="):
            label, sep, value = text.partition(op)
            if sep:
                break
        if not sep or not label.strip():
            raise ValueError(f"bad matcher {item!r}: expected label=value")
        value = value.strip()
        if not (value.startswith('"') and value.endswith('"') and len(value) >= 2):
            value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.extend(parse_match(f"{label.strip()}{op}{value}"))
    return out


def mount(app: FastAPI, agent: Any) -> None:
    """Add this part's routes to the agent's app."""

    def service() -> Any:
        svc = agent.services.get("alerts")
        if svc is None:
            raise HTTPException(404, "alerts are off (alerts.enabled = false)")
        return svc

    async def ready() -> Any:
        """The service once its state is read back (just after a start it may not be)."""
        svc = service()
        try:
            await asyncio.wait_for(svc.ready(), 10.0)
        except TimeoutError:
            raise HTTPException(503, "the alert state is still being read back") from None
        return svc

    @app.get("/api/alerts", summary="Alerts, rules, silences and channel health")
    async def alerts() -> dict[str, Any]:
        return dict((await ready()).snapshot())

    @app.get("/api/alerts/history", summary="Alert state changes and deliveries, newest first")
    async def history(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        since: Annotated[str | None, Query(max_length=40)] = None,
    ) -> list[dict[str, Any]]:
        from fastmango.agent.api import parse_time

        try:
            t0 = parse_time(since, time.time())
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        rows = await run_in_threadpool(agent.store.events, "alert", t0, limit * 4)
        return [r for r in rows if r["data"].get("type") in HISTORY_TYPES][:limit]

    @app.post("/api/alerts/silences", summary="Silence alerts by rule or label matchers")
    async def silence(
        body: Annotated[SilenceIn, Body()],
        actor: Annotated[str, Depends(require_actor)],
    ) -> dict[str, Any]:
        from fastmango.agent.settings_base import parse_duration

        svc = await ready()
        target = body.rule or ",".join(body.match)

        def audited(result: str, **extra: Any) -> None:
            audit.record(agent.store, who=actor, action="alerts.silence", target=target,
                         result=result, reason=body.reason, **extra)  # fmt: skip

        try:
            matchers = parse_matchers(body.rule, body.match)
            seconds = float(parse_duration(body.duration))
            names = {r.alertname for r in svc.rules} | {r.name for r in svc.rules}
            if body.rule and body.rule not in names:
                raise ValueError(f"no rule named {body.rule!r}")
            s = svc.add_silence(matchers, seconds, actor, body.reason)
        except ValueError as exc:
            audited("refused", error=str(exc))
            raise HTTPException(400, str(exc)) from None
        except Exception as exc:
            audited("error", error=type(exc).__name__)
            raise
        audited("ok", silence=s.id, until=s.ends_at)
        return dict(s.as_dict())

    @app.delete("/api/alerts/silences/{sid}", summary="End a silence now")
    async def unsilence(
        sid: Annotated[str, Path(max_length=64)],
        actor: Annotated[str, Depends(require_actor)],
    ) -> dict[str, Any]:
        try:
            s = (await ready()).remove_silence(sid, actor)
        except Exception as exc:
            audit.record(
                agent.store,
                who=actor,
                action="alerts.unsilence",
                target=sid,
                result="error",
                error=type(exc).__name__,
            )
            raise
        if s is None:
            audit.record(
                agent.store, who=actor, action="alerts.unsilence", target=sid, result="not found"
            )
            raise HTTPException(404, f"no active silence {sid!r}")
        audit.record(agent.store, who=actor, action="alerts.unsilence", target=sid, result="ok")
        return dict(s.as_dict())

    @app.post("/api/alerts/test", summary="Send a test message to each configured channel")
    async def test(actor: Annotated[str, Depends(require_actor)]) -> dict[str, Any]:
        svc = service()
        try:
            results = await svc.test_channels()
        except Exception as exc:
            audit.record(
                agent.store,
                who=actor,
                action="alerts.test",
                target="channels",
                result="error",
                error=type(exc).__name__,
            )
            raise
        ok = all(r["ok"] for r in results.values())
        audit.record(
            agent.store,
            who=actor,
            action="alerts.test",
            target="channels",
            result="ok" if ok and results else "failed",
            channels={c: r["ok"] for c, r in results.items()},
        )
        return {"channels": results}

    @app.get(
        "/api/alerts/export",
        summary="The rules as Prometheus alerting rules (YAML)",
        response_class=Response,
        responses={200: {"content": {"application/yaml": {}}}},
    )
    async def export(fmt: Annotated[str, Query(alias="format")] = "prometheus") -> Response:
        from fastmango.agent.alerts.export import prometheus_rules

        if fmt != "prometheus":
            raise HTTPException(400, "format must be prometheus")
        return Response(prometheus_rules(service().rules), media_type="application/yaml")
