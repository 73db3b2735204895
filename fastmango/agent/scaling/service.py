"""The scaling service: every ``scale.interval`` (15 s) it builds observations from the
store, runs :func:`fastmango.scaler.decide.decide` per environment with a policy,
records the decision as a ``scaling`` event, and applies it through an injected
``apply(env, replicas, who, reason)`` coroutine, or records it as dry-run.

Dry-run when: no apply callable is wired (until the deployer provides one), the
environment has no platform, the policy or ``scale.dry_run`` asks for it. The current
count comes from the environment's platform when one is wired, else 1 (single instance).

The forecaster is fitted in a worker process that exits (``trainer.py``); the resident
loop evaluates the exported trees in plain Python and never imports scikit-learn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastmango.agent import audit
from fastmango.agent.services import Host, Service
from fastmango.agent.settings import Settings
from fastmango.scaler import features, hpa
from fastmango.scaler.calibrate import Calibrator
from fastmango.scaler.compiled import Compiled
from fastmango.scaler.decide import Decision, Forecast, Observations, State, decide
from fastmango.scaler.policy import Policy, PolicyError
from fastmango.series import Sample, labels_of

if TYPE_CHECKING:
    from fastmango.deployer.platform import Platform

log = logging.getLogger("fastmango.scaling")
SOURCE = "scaling"
POLICY_KIND = "scaling_policy"
WHO = "fastmango-scaler"
LOAD = "http_requests_per_second"
CHUNK = 900  # minutes per store query (the store answers at most 1000 points)

ApplyFn = Callable[[str, int, str, str], Awaitable[None]]
PlatformFn = Callable[[str], "Platform | None"]


def create(settings: Settings) -> Service | None:
    """The service for these settings, or None when they leave it off. Decisions apply
    through the deployer (its adapters, per-environment lock, audit and ``replicas``
    events) wherever an environment names a platform."""
    if not settings.scale.enabled:
        return None
    svc = ScalingService(settings, platforms=Platforms(settings))

    async def apply(env: str, replicas: int, who: str, reason: str) -> None:
        from fastmango.agent.deploys.actions import apply_scale

        store = svc.host.store if svc.host is not None else None
        await apply_scale(store, settings, env, replicas, who, reason)

    svc.apply = apply
    return svc


class Platforms:
    """One adapter per managed environment, made on first use and closed with the service
    (the current count and the instances come from the platform each tick)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._open: dict[str, Any] = {}

    def __call__(self, env: str) -> Platform | None:
        cfg = self.settings.environments.get(env)
        if cfg is None or cfg.platform == "none":
            return None
        if env not in self._open:
            from fastmango.agent.deploys.actions import target_of
            from fastmango.deployer.platforms import connect

            self._open[env] = connect(target_of(self.settings, env))
        platform: Platform = self._open[env]
        return platform

    async def aclose(self) -> None:
        for adapter in self._open.values():
            with contextlib.suppress(Exception):
                await adapter.aclose()
        self._open.clear()


@dataclass
class EnvLoop:
    """What the loop keeps per environment."""

    policy: Policy
    state: State = field(default_factory=State)
    decision: Decision | None = None
    dry_run: bool = True
    dry_run_why: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    forecast: dict[str, Any] | None = None
    recorded_at: float = -math.inf
    recorded_key: tuple[Any, ...] = ()
    capacity_per_pct: float | None = None  # req/s one instance serves per % of CPU
    error: str | None = None
    applied_at: float | None = None


class History:
    """Per-minute load, oldest first, kept in memory for the forecaster's features."""

    def __init__(self, keep_minutes: int) -> None:
        self.start = 0.0
        self.values: list[float] = []
        self.keep = keep_minutes

    @property
    def end(self) -> float:
        return self.start + 60 * len(self.values)

    @property
    def seconds(self) -> float:
        return 60.0 * len(self.values)

    def extend(self, points: list[list[float]]) -> None:
        pts = [(float(t) // 60 * 60, float(v)) for t, v in points if t >= self.end - 1]
        if not pts:
            return
        if not self.values:
            self.start = pts[0][0]
        for ts, v in pts:
            idx = int((ts - self.start) // 60)
            if idx < len(self.values):
                self.values[idx] = v
                continue
            while len(self.values) < idx:
                self.values.append(self.values[-1] if self.values else v)
            self.values.append(v)
        drop = len(self.values) - self.keep
        if drop > 0:
            del self.values[:drop]
            self.start += 60 * drop


@dataclass
class Model:
    compiled: Compiled
    horizon: int  # minutes
    trained_at: float
    history_seconds: float
    rows: int
    fit_seconds: float
    calibrator: Calibrator = field(default_factory=Calibrator)
    #: (minute, median, peak) forecasts whose window has not closed yet
    issued: deque[tuple[int, float, float]] = field(default_factory=deque)


class ScalingService:
    name = "scaling"

    def __init__(
        self,
        settings: Settings,
        apply: ApplyFn | None = None,
        platforms: PlatformFn | None = None,
    ) -> None:
        self.settings = settings
        #: the deployer's apply (with its per-environment lock); None = dry-run everywhere
        self.apply = apply
        #: the environment's Platform (for the current count and instances), or None
        self.platforms = platforms
        self.envs: dict[str, EnvLoop] = {}
        self.host: Host | None = None
        self.history = History(int(settings.scale.history // 60))
        self.model: Model | None = None
        self.model_error: str | None = None
        self.train_status = "not started"
        self.last_train_try = -math.inf
        self._task: asyncio.Task[None] | None = None
        self._train_task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.follower = False  # True while another agent of the fleet leads
        self._loaded_at = -math.inf

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, host: Host) -> None:
        self.host = host
        for ev in reversed(host.store.events(POLICY_KIND, limit=1000)):
            data = ev["data"]
            try:
                if data.get("policy") is None:
                    self.envs.pop(data["env"], None)
                else:
                    self.envs[data["env"]] = EnvLoop(Policy.from_dict(data["policy"]))
            except (PolicyError, KeyError, TypeError) as exc:
                log.error("ignoring a stored scaling policy that no longer reads: %s", exc)
        self._task = asyncio.create_task(self._loop(), name="fastmango-scaling")

    async def stop(self) -> None:
        for task in (self._task, self._train_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._train_task = None
        close = getattr(self.platforms, "aclose", None)
        if close is not None:
            await close()

    async def _loop(self) -> None:
        assert self.host is not None
        interval = self.settings.scale.interval
        while True:
            try:
                await self.tick(self.host.clock())
            except Exception as exc:  # the loop must survive anything one tick does
                log.error("scaling tick failed: %s", exc, exc_info=exc)
            await asyncio.sleep(interval)

    # -- policies ----------------------------------------------------------------------
    def set_policy(self, env: str, policy: Policy | None, who: str) -> None:
        """Set (or with None remove) an environment's policy; kept in the store."""
        assert self.host is not None
        self.host.store.append_event(
            POLICY_KIND, {"env": env, "policy": None if policy is None else policy.to_dict(),
                          "who": who})  # fmt: skip
        if policy is None:
            self.envs.pop(env, None)
        elif env in self.envs:
            self.envs[env].policy = policy
        else:
            self.envs[env] = EnvLoop(policy)

    def dry_run_reason(self, env: str, policy: Policy) -> str:
        """Why decisions for ``env`` are not applied ("" when they are)."""
        cfg = self.settings.environments.get(env)
        if policy.dry_run:
            return "the policy asks for dry-run"
        if self.settings.scale.dry_run:
            return "scale.dry_run is set"
        if cfg is None or cfg.platform == "none":
            return f"no platform is configured for environment {env!r}"
        if self.apply is None:
            return "the deployer is not wired to the scaler yet"
        return ""

    # -- observations --------------------------------------------------------------------
    def _latest(self, name: str, now: float, matchers: str = "") -> list[float]:
        assert self.host is not None
        from fastmango.agent.store import parse_match

        m = parse_match(matchers) if matchers else []
        found = self.host.store.query(name, m, start=now - 90, end=now)
        return [float(s["points"][-1][1]) for s in found["series"] if s["points"]]

    def _cpu(self, now: float) -> float | None:
        vals = self._latest("fastmango_container_cpu_utilization_ratio", now)
        if vals:
            return 100.0 * vals[0]
        assert self.host is not None
        from fastmango.agent.store import parse_match

        idle = self.host.store.query("node_cpu_seconds_total", parse_match('mode="idle"'),
                                     start=now - 90, end=now, rate=True)  # fmt: skip
        rates = [float(s["points"][-1][1]) for s in idle["series"] if s["points"]]
        if not rates:
            return None
        return max(0.0, min(100.0, 100.0 * (1 - sum(rates) / len(rates))))

    async def _fleet_load(self) -> tuple[list[float], list[float]] | None:
        """The whole app's req/s (sum over the fleet) and p95 (mean over the fleet), when
        agents share PostgreSQL; None to use this agent's own figures."""
        assert self.host is not None
        fleet: Any = self.host.services.get("fleet")
        if fleet is None or not getattr(fleet, "shared", False):
            return None
        p95_name = "http_request_duration_p95_seconds"
        got = await fleet.fleet_signals([LOAD, p95_name], window=60.0)
        rps = [got[LOAD].sum] if LOAD in got else []
        p95 = [got[p95_name].avg] if p95_name in got else []
        return rps, p95

    async def observe(self, env: str, loop: EnvLoop, now: float) -> Observations:
        cpu = self._cpu(now)
        gpus = self._latest("DCGM_FI_DEV_GPU_UTIL", now)
        shared = await self._fleet_load()
        if shared is not None:
            rps, p95 = shared
        else:
            rps = self._latest(LOAD, now)
            p95 = self._latest("http_request_duration_p95_seconds", now)
        metrics: dict[str, float] = {}
        if cpu is not None:
            metrics["cpu"] = cpu
        if gpus:
            metrics["gpu"] = sum(gpus) / len(gpus)
        platform = self.platforms(env) if self.platforms is not None else None
        if platform is not None:
            status = await platform.status()
            replicas = status.desired
            pods = tuple(
                hpa.Pod(name=i.id, phase="Running" if i.ready else "Pending", ready=i.ready,
                        started_at=i.started_at or 0.0, ready_changed_at=i.started_at or 0.0,
                        metrics=metrics if i.ready else {}, sampled_at=now)
                for i in status.instances
            )  # fmt: skip
        else:
            replicas = 1
            pods = (hpa.Pod("self", metrics=metrics, sampled_at=now),)
        obs = Observations(replicas, pods, rps=rps[0] if rps else None,
                           p95=p95[0] if p95 else None)  # fmt: skip
        return obs

    def _capacity(self, loop: EnvLoop, obs: Observations) -> float | None:
        """Requests per second one instance serves at the target (for the forecast)."""
        pol = loop.policy
        targets = pol.effective_targets
        if targets.rps is not None and pol.predictive.utilization is None:
            return targets.rps
        ready = hpa.ready_pod_count(obs.pods) or 1
        cpus = [p.metrics["cpu"] for p in obs.pods if "cpu" in p.metrics]
        if obs.rps and cpus and sum(cpus) / len(cpus) >= 5.0:
            per_pct = obs.rps / ready / (sum(cpus) / len(cpus))
            prev = loop.capacity_per_pct
            loop.capacity_per_pct = per_pct if prev is None else 0.8 * prev + 0.2 * per_pct
        if loop.capacity_per_pct is None:
            return None
        share = 100.0 * (pol.predictive.utilization or (targets.cpu or 80.0) / 100)
        return loop.capacity_per_pct * share

    def _forecast(self, loop: EnvLoop, obs: Observations, now: float) -> Forecast | None:
        pol = loop.policy
        if not pol.predictive.enabled:
            return None
        capacity = self._capacity(loop, obs)
        model = self.model
        history = self.history.seconds
        if model is None or history < pol.predictive.min_history or not self.history.values:
            return Forecast(0.0, pol.horizon(), capacity, history)
        low, peak = self._predict(model)
        f = model.calibrator.factor()
        return Forecast(peak * f, model.horizon * 60.0, capacity, history, low=low,
                        high=peak * f, error=model.calibrator.error())  # fmt: skip

    def _predict(self, model: Model) -> tuple[float, float]:
        """(median, quantile) of the peak over the minutes after the last complete one,
        computed once per minute; closed windows feed the calibrator."""
        vals = self.history.values
        first = int(self.history.start // 60)
        minute = first + len(vals) - 1
        if model.issued and model.issued[-1][0] == minute:
            return model.issued[-1][1], model.issued[-1][2]
        while model.issued and model.issued[0][0] + model.horizon <= minute:
            m0, low0, peak0 = model.issued.popleft()
            i = m0 - first
            if i >= 0:
                model.calibrator.add(low0, peak0, max(vals[i + 1 : i + 1 + model.horizon]))
        offset = max(0, len(vals) - (features.WEEK + 120))
        window = vals[offset:]
        rows, bases = features.rows(window, self.history.start + 60 * offset, model.horizon,
                                    [len(window) - 1])  # fmt: skip
        med, q = model.compiled.predict_row(rows[0])
        low, peak = features.to_load(med, bases[0]), features.to_load(q, bases[0])
        low, peak = min(low, peak), max(low, peak)
        model.issued.append((minute, low, peak))
        return low, peak

    # -- one tick ------------------------------------------------------------------------
    async def tick(self, now: float) -> dict[str, Decision]:
        """Decide (and apply or record) once for every environment with a policy."""
        assert self.host is not None
        self.ticks += 1
        out: dict[str, Decision] = {}
        fleet: Any = self.host.services.get("fleet")
        if fleet is not None and not getattr(fleet, "is_leader", True):
            self.follower = True  # in a fleet only the leader decides and applies
            return out
        self.follower = False
        if any(e.policy.predictive.enabled for e in self.envs.values()):
            await self._refresh_history(now)
            self._maybe_train(now)
        samples: list[Sample] = []
        for env, loop in list(self.envs.items()):
            try:
                decision = await self._tick_env(env, loop, now, samples)
            except Exception as exc:
                loop.error = f"{type(exc).__name__}: {exc}"
                log.error("scaling %s failed: %s", env, loop.error)
                continue
            out[env] = decision
        self.host.publish(SOURCE, samples)
        return out

    async def _tick_env(self, env: str, loop: EnvLoop, now: float,
                        samples: list[Sample]) -> Decision:  # fmt: skip
        assert self.host is not None
        obs = await self.observe(env, loop, now)
        fc = self._forecast(loop, obs, now)
        obs = Observations(obs.replicas, obs.pods, obs.rps, obs.p95, fc)
        decision = decide(loop.state, obs, loop.policy, now)
        loop.state, loop.decision, loop.error = decision.state, decision, None
        loop.dry_run_why = self.dry_run_reason(env, loop.policy)
        loop.dry_run = bool(loop.dry_run_why)
        loop.inputs = obs.inputs()
        loop.forecast = None if fc is None else {
            "status": decision.forecast_status, "peak": fc.high, "low": fc.low,
            "horizon_seconds": fc.horizon, "capacity": fc.capacity, "error": fc.error,
            "history_seconds": fc.history,
            "replicas": decision.proposals.get("forecast"),
        }  # fmt: skip
        applied = False
        changed = decision.replicas != decision.current
        if changed and not loop.dry_run:
            applied = await self._apply(env, loop, decision)
        key = (decision.replicas, decision.current, decision.reason, loop.dry_run)
        if (
            changed
            or key != loop.recorded_key
            or (now - loop.recorded_at >= self.settings.scale.record_every)
        ):
            self.host.store.append_event("scaling", {
                "env": env, "current": decision.current, "desired": decision.replicas,
                "applied": applied, "dry_run": loop.dry_run, "reason": decision.reason,
                "message": decision.message, "inputs": loop.inputs, "forecast": loop.forecast,
                "proposals": decision.proposals, "dry_run_reason": loop.dry_run_why,
            }, ts=now)  # fmt: skip
            loop.recorded_at, loop.recorded_key = now, key
        lab = labels_of(env=env)
        samples += [
            Sample("fastmango_scaling_current_replicas", lab, float(decision.current), now),
            Sample("fastmango_scaling_desired_replicas", lab, float(decision.replicas), now),
            Sample("fastmango_scaling_dry_run", lab, float(loop.dry_run), now),
        ]
        if obs.rps is not None:
            samples.append(Sample("fastmango_scaling_load_requests_per_second", lab, obs.rps, now))
        if fc is not None and fc.capacity:
            ready = hpa.ready_pod_count(obs.pods) or decision.current
            samples.append(Sample("fastmango_scaling_capacity_requests_per_second", lab,
                                  fc.capacity * ready, now))  # fmt: skip
        if fc is not None and fc.high is not None and fc.low is not None:
            for bound, v in (("low", fc.low), ("high", fc.high)):
                samples.append(Sample("fastmango_scaling_forecast_requests_per_second",
                                      labels_of(env=env, bound=bound), v, now))  # fmt: skip
            if fc.error is not None:
                samples.append(Sample("fastmango_scaling_forecast_error_ratio", lab, fc.error,
                                      now))  # fmt: skip
        return decision

    async def _apply(self, env: str, loop: EnvLoop, decision: Decision) -> bool:
        assert self.host is not None and self.apply is not None
        reason = f"{decision.reason}: {decision.message}"
        result, error = "error", ""
        try:
            await self.apply(env, decision.replicas, WHO, reason)
            result = "ok"
            loop.applied_at = self.host.clock()
            cfg = self.settings.environments.get(env)
            self.host.store.append_event("replicas", {
                "env": env, "platform": cfg.platform if cfg else "none",
                "replicas": decision.replicas, "size": cfg.size if cfg else "",
                "source": "scaler"})  # fmt: skip
            return True
        except Exception as exc:  # recorded, the loop goes on
            error = f"{type(exc).__name__}: {exc}"
            loop.error = error
            log.error("applying %d replicas to %s failed: %s", decision.replicas, env, error)
            return False
        finally:
            audit.record(self.host.store, who=WHO, action="scale", target=env, result=result,
                         reason=reason, replicas=decision.replicas,
                         previous=decision.current, error=error)  # fmt: skip

    # -- the forecaster's history and training ------------------------------------------------
    def _query_minutes(self, start: float, end: float) -> list[list[float]]:
        assert self.host is not None
        points: list[list[float]] = []
        t = start
        while t < end:
            hi = min(end, t + CHUNK * 60)
            found = self.host.store.query(LOAD, start=t, end=hi, step=60)
            for s in found["series"]:
                points += s["points"]
            t = hi
        points.sort()
        return points

    async def _refresh_history(self, now: float) -> None:
        complete = now // 60 * 60  # the minute in progress is not complete
        if self.history.values and self.history.end >= complete:
            return
        if not self.history.values:  # a full load (28 days): at most every 10 minutes
            if now - self._loaded_at < 600:
                return
            self._loaded_at = now
        start = self.history.end if self.history.values else now - self.settings.scale.history
        points = await asyncio.to_thread(self._query_minutes, start, complete)
        self.history.extend([p for p in points if p[0] < complete])

    def _maybe_train(self, now: float) -> None:
        if self._train_task is not None and not self._train_task.done():
            return
        due = self.model is None or now - self.model.trained_at >= self.settings.scale.retrain
        retry = 3600.0 if self.model is None else self.settings.scale.retrain
        if not due or now - self.last_train_try < min(retry, self.settings.scale.retrain):
            return
        min_history = min((e.policy.predictive.min_history for e in self.envs.values()
                           if e.policy.predictive.enabled), default=86400.0)  # fmt: skip
        if self.history.seconds < min_history:
            self.train_status = (f"waiting for history: {self.history.seconds / 3600:.1f} h "
                                 f"of {min_history / 3600:.0f} h")  # fmt: skip
            return
        self.last_train_try = now
        self._train_task = asyncio.create_task(self._train(now), name="fastmango-scaling-fit")

    def horizon_minutes(self) -> int:
        horizons = [e.policy.horizon(self.settings.scale.interval) for e in self.envs.values()
                    if e.policy.predictive.enabled]  # fmt: skip
        return max(1, math.ceil(max(horizons, default=180.0) / 60))

    async def _train(self, now: float) -> None:
        from fastmango.agent.scaling import trainer

        quantiles = [e.policy.predictive.quantile for e in self.envs.values()
                     if e.policy.predictive.enabled]  # fmt: skip
        job = {
            "start": self.history.start, "values": list(self.history.values),
            "horizon": self.horizon_minutes(), "quantile": max(quantiles, default=0.9),
        }  # fmt: skip
        self.train_status = f"fitting on {self.history.seconds / 86400:.1f} days"
        t0 = time.perf_counter()
        try:
            result = await trainer.train(job, self.settings.scale.train_timeout)
        except trainer.TrainError as exc:
            self.model_error = str(exc)
            self.train_status = f"failed: {exc}"
            log.error("scaling: %s", exc)
            return
        self.model = Model(Compiled(result["model"]), int(result["horizon"]), now,
                           float(result["history_seconds"]), int(result["rows"]),
                           float(result["fit_seconds"]),
                           Calibrator(float(result["model"]["quantile"])))  # fmt: skip
        self.model_error = None
        self.train_status = (f"fitted {result['rows']} rows in {result['fit_seconds']:.1f}s "
                             f"(worker {time.perf_counter() - t0:.1f}s)")  # fmt: skip
        log.info("scaling: forecaster %s", self.train_status)

    def retrain_now(self) -> bool:
        """Ask for a fit at the next tick; False when one is already running."""
        if self._train_task is not None and not self._train_task.done():
            return False
        self.last_train_try = -math.inf
        if self.model is not None:
            self.model.trained_at = -math.inf
        return True

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        envs = {}
        for env, loop in self.envs.items():
            d = loop.decision
            # asked now, not at the last tick: right after a policy is set it says why
            why = self.dry_run_reason(env, loop.policy)
            envs[env] = {
                "policy": loop.policy.to_dict(),
                "current": d.current if d else None,
                "desired": d.replicas if d else None,
                "reason": d.reason if d else None,
                "message": d.message if d else None,
                "proposals": d.proposals if d else {},
                "dry_run": bool(why),
                "dry_run_reason": why,
                "inputs": loop.inputs,
                "forecast": loop.forecast,
                "error": loop.error,
            }
        m = self.model
        return {
            "interval": self.settings.scale.interval,
            "follower": self.follower,  # another agent of the fleet decides meanwhile
            "environments": envs,
            "forecaster": {
                "status": self.train_status,
                "trained_at": m.trained_at if m and math.isfinite(m.trained_at) else None,
                "history_seconds": self.history.seconds,
                "horizon_minutes": m.horizon if m else None,
                "rows": m.rows if m else None,
                "fit_seconds": m.fit_seconds if m else None,
                "calibration": m.calibrator.factor() if m else None,
                "error": self.model_error,
            },
        }
