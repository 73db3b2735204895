"""The deploys service of the agent: the health gate after each rollout.

It follows the ``release`` events in the state store (written by ``fastmango deploy``
in any process, or by the agent itself). For a new live release of a deploy it watches
the app for ``deploy.gate.duration``: every ``deploy.gate.interval`` it compares the
new release's ``http_error_ratio`` and ``http_request_duration_p95_seconds`` (since it
went live) with the previous release's (the ``deploy.gate.baseline`` before the deploy).
``deploy.gate.threshold`` failed checks in a row roll the environment back by itself
(same lock, same audit as a manual rollback), record why (a ``gate`` event) and alert
through the alerts service when there is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from typing import TYPE_CHECKING, Any

from fastmango.agent.services import Service
from fastmango.agent.settings import Settings

if TYPE_CHECKING:
    from fastmango.agent.services import Host

log = logging.getLogger("fastmango.deploys")

ERRORS = "http_error_ratio"
P95 = "http_request_duration_p95_seconds"


def create(settings: Settings) -> Service | None:
    """The service for these settings, or None when they leave it off."""
    if not settings.environments:
        return None
    return DeploysService(settings)


class DeploysService:
    name = "deploys"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host: Host | None = None
        self._task: asyncio.Task[None] | None = None
        self.gates: dict[str, asyncio.Task[None]] = {}  # env → running gate
        self.state: dict[str, dict[str, Any]] = {}  # env → the latest verdict (live view)
        self.busy: dict[str, str] = {}  # env → what the agent itself is doing there

    async def start(self, host: Host) -> None:
        self.host = host
        self._since = host.clock()
        self._seen: set[int] = set()
        self._task = asyncio.create_task(self._follow(), name="deploys-follow")

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self.gates.values()] if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # -- following the release events -------------------------------------------------
    async def _follow(self) -> None:
        gate = self.settings.deploy.gate
        every = min(2.0, gate.interval)
        while True:
            try:
                self._check_new_releases()
            except Exception as exc:  # the store may be busy; try again next round
                log.warning("deploys: reading release events failed: %s", exc)
            await asyncio.sleep(every)

    def _check_new_releases(self) -> None:
        assert self.host is not None
        gate = self.settings.deploy.gate
        events = self.host.store.events("release", since=self._since - 1, limit=50)
        for ev in reversed(events):
            if ev["id"] in self._seen:
                continue
            self._seen.add(ev["id"])
            d = ev["data"]
            env = d.get("env", "")
            if d.get("state") != "live" or d.get("action") != "deploy":
                manual = d.get("who") != "agent:health-gate" and env not in self.busy
                if d.get("action") == "rollback" and env in self.gates and manual:
                    self.gates.pop(env).cancel()  # someone rolled back: stop watching
                    self._verdict(env, "cancelled", ["rolled back by " + str(d.get("who"))])
                continue
            if not gate.enabled or (gate.environments and env not in gate.environments):
                continue
            if env in self.gates:
                self.gates.pop(env).cancel()
            self.gates[env] = asyncio.create_task(self._gate(ev), name=f"gate-{env}")

    # -- the gate ------------------------------------------------------------------------
    def _window(self, name: str, start: float, end: float) -> list[list[float]]:
        """[[t, v]] of ``name`` (averaged over its series) over [start, end]."""
        assert self.host is not None
        if end <= start:
            return []
        res = self.host.store.query(name, [], start, end, step=1.0)
        by_t: dict[float, list[float]] = {}
        for s in res["series"]:
            for t, v in s["points"]:
                by_t.setdefault(t, []).append(v)
        return [[t, statistics.fmean(vs)] for t, vs in sorted(by_t.items())]

    async def _gate(self, ev: dict[str, Any]) -> None:
        from fastmango.deployer.gate import GateState, Thresholds, check

        assert self.host is not None
        g = self.settings.deploy.gate
        d = ev["data"]
        env = d["env"]
        live_at = float(ev["ts"])
        started = float(d.get("started") or live_at - float(d.get("duration_seconds") or 0))
        base0 = started - g.baseline
        t = Thresholds(
            g.max_error_ratio,
            g.max_error_ratio_increase,
            g.max_p95_ratio,
            g.min_p95_increase,
            g.min_samples,
        )
        state = GateState(g.threshold)
        view = {
            "env": env,
            "version": d.get("version"),
            "release_id": d.get("release_id"),
            "image": d.get("image"),
            "previous": d.get("previous"),
            "started": started,
            "live_at": live_at,
            "baseline_start": base0,
            "ends": live_at + g.duration,
            "verdict": "running",
            "reasons": [],
            "checks": 0,
            "failed": 0,
            "figures": {},
        }
        self.state[env] = view
        try:
            while True:
                await asyncio.sleep(g.interval)
                now = self.host.clock()
                c = await asyncio.to_thread(self._evaluate, check, t, base0, started, live_at, now)
                tripped = state.add(c)
                view.update(
                    checks=state.checks,
                    failed=state.failed,
                    reasons=list(c.reasons),
                    figures=c.figures,
                    last_check=now,
                    last=c.verdict,
                )
                if tripped:
                    await self._roll_back(view, d, c.reasons)
                    return
                if now >= live_at + g.duration:
                    verdict = "fail" if c.verdict == "fail" else c.verdict
                    self._verdict(env, verdict, list(c.reasons))
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("deploys: health gate of %s failed: %s", env, exc, exc_info=exc)
            self._verdict(env, "error", [f"{type(exc).__name__}: {exc}"])
        finally:
            if self.gates.get(env) is asyncio.current_task():
                self.gates.pop(env, None)

    def _evaluate(
        self, check: Any, t: Any, base0: float, started: float, live_at: float, now: float
    ) -> Any:
        before_e = [v for _, v in self._window(ERRORS, base0, started)]
        before_p = [v for _, v in self._window(P95, base0, started)]
        after_e = [v for _, v in self._window(ERRORS, live_at, now)]
        after_p = [v for _, v in self._window(P95, live_at, now)]
        return check(before_e, after_e, before_p, after_p, t)

    def _verdict(self, env: str, verdict: str, reasons: list[str], **more: Any) -> None:
        assert self.host is not None
        view = self.state.setdefault(env, {"env": env})
        view.update(verdict=verdict, reasons=reasons, decided=self.host.clock(), **more)
        self.host.store.append_event("gate", {k: v for k, v in view.items()})

    async def _roll_back(
        self, view: dict[str, Any], d: dict[str, Any], reasons: tuple[str, ...]
    ) -> None:
        from fastmango.agent.deploys import actions
        from fastmango.errors import FastmangoError

        assert self.host is not None
        env = d["env"]
        why = "health gate: " + "; ".join(reasons)
        log.warning("deploys: %s %s regressed (%s); rolling back", env, d.get("version"), why)
        self.busy[env] = "rollback"
        result, message, to = "rolled_back", "", None
        try:
            out = await actions.rollback(
                self.settings,
                env,
                who="agent:health-gate",
                reason=why,
                store=self.host.store,
                bad_release=d,
            )
            to, message = out.to_version, out.message
        except FastmangoError as exc:
            result, message = "rollback_failed", str(exc)
            log.error("deploys: automatic rollback of %s failed: %s", env, exc)
        finally:
            self.busy.pop(env, None)
        self._verdict(env, result, list(reasons), rollback=message, rollback_release=to)
        await self._alert(env, d, result, why, message)

    async def _alert(
        self, env: str, d: dict[str, Any], result: str, why: str, message: str
    ) -> None:
        assert self.host is not None
        alerts: Any = self.host.services.get("alerts")
        send = getattr(alerts, "send_event", None)
        if send is None:
            return
        ok = result == "rolled_back"
        title = (
            f"{env}: {d.get('version')} rolled back automatically"
            if ok
            else f"{env}: {d.get('version')} regressed and the rollback FAILED"
        )
        try:
            await send(
                title=title,
                text=f"{why}\n{message}",
                severity="warning" if ok else "critical",
                labels={"env": env, "version": str(d.get("version")), "source": "health-gate"},
            )
        except Exception as exc:
            log.error("deploys: alert about %s failed: %s", env, exc)

    # -- what the API shows -------------------------------------------------------------
    def gate_state(self, env: str) -> dict[str, Any] | None:
        return self.state.get(env)
