"""The alerts service: evaluates the rules over the agent's latest series, steps the
state machine, routes, and delivers through the configured channels.

Everything it must not forget is written to the store as ``alert`` events: each state
change (``type: state``), each delivery (``notification``), each group's notification
log (``group``), silences, and a periodic ``checkpoint`` of the whole state. On start it
reads back to the newest checkpoint and replays what came after, so a restart neither
re-sends a notification nor loses a resolve. Deliveries run as their own tasks with a
deadline: a channel that is down never blocks evaluation nor collection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fastmango.agent.services import Host, Service
from fastmango.agent.settings import Settings

if TYPE_CHECKING:
    from fastmango.agent.alerts.notify import Notifier, Result
    from fastmango.agent.alerts.routing import Alert, Group, Notification, Silence
    from fastmango.agent.alerts.rules import Rule
    from fastmango.agent.alerts.state import Instance

log = logging.getLogger("fastmango.alerts")
SOURCE = "alerts"
KIND = "alert"
RESOLVED_KEEP = 900.0  # resolved instances stay listed (and routable) this long
CHECKPOINT_EVERY = 500  # events between checkpoints
RESTORE_LIMIT = 20000


def create(settings: Settings) -> Service | None:
    """The service for these settings, or None when they leave it off."""
    if not settings.alerts.enabled:
        return None
    return AlertsService(settings)


class Tracked:
    """One alert instance: its rule, labels and state."""

    __slots__ = ("fingerprint", "inst", "labels", "rule")

    def __init__(self, fingerprint: str, rule: str, labels: dict[str, str], inst: Instance) -> None:
        self.fingerprint, self.rule, self.labels, self.inst = fingerprint, rule, labels, inst

    def as_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "rule": self.rule,
            "labels": self.labels,
            "instance": self.inst.as_dict(),
        }


class AlertsService:
    name = "alerts"

    def __init__(self, settings: Settings, notifiers: dict[str, Notifier] | None = None) -> None:
        from fastmango.agent.alerts import routing, rules

        self.settings = settings
        self.cfg = settings.alerts
        self.rules: list[Rule] = rules.load(self.cfg)
        self.by_name = {r.name: r for r in self.rules}
        self.timers = routing.Timers(
            tuple(self.cfg.group_by),
            self.cfg.group_wait,
            self.cfg.group_interval,
            self.cfg.repeat_interval,
            self.cfg.send_resolved,
        )
        self.inhibit = [
            routing.Inhibit(
                i.source_severity,
                i.target_severity,
                tuple(i.equal) if i.equal is not None else None,
            )
            for i in self.cfg.inhibit_rules()
        ]
        self.tracked: dict[str, Tracked] = {}
        self.rule_status: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, Group] = {}
        self.silences: dict[str, Silence] = {}
        self.notifiers: dict[str, Notifier] = notifiers if notifiers is not None else {}
        self._own_notifiers = notifiers is None
        self.health: dict[str, dict[str, Any]] = {}
        self.counts: Counter[tuple[str, str]] = Counter()
        self.rule_errors: Counter[str] = Counter()
        self.host: Host | None = None
        self.clock: Callable[[], float] = time.time
        self._task: asyncio.Task[None] | None = None
        self._restoring: asyncio.Task[None] | None = None
        self._restored = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()
        self._since_checkpoint = 0
        self._ids: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str, dict[str, str]]] = {}
        self.evaluations = 0
        self.last_evaluation: float | None = None

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, host: Host) -> None:
        self.host = host
        self.clock = host.clock
        if self._own_notifiers:
            self.notifiers = build_notifiers(self.settings)
        for ch in self.notifiers:
            self.health[ch] = {
                "channel": ch,
                "up": None,
                "ok": 0,
                "failed": 0,
                "last_error": "",
                "last_ok_at": None,
                "last_failure_at": None,
            }
        # read back the persisted state off the start-up path (the agent serves at once);
        # evaluation waits for it
        self._restoring = asyncio.create_task(
            asyncio.to_thread(self.restore), name="alerts-restore"
        )
        self._restoring.add_done_callback(lambda _t: self._restored.set())
        self._task = asyncio.create_task(self._loop(), name="alerts")

    async def ready(self) -> None:
        """Wait until the persisted state has been read back (at once after that)."""
        await self._restored.wait()

    async def _await_restore(self) -> None:
        task, self._restoring = self._restoring, None
        if task is None:
            return
        try:
            await task
        except Exception as exc:  # evaluate anyway, from a clean state
            log.error("could not read the alert state back: %s", exc, exc_info=exc)
        finally:
            self._restored.set()

    async def stop(self) -> None:
        await self._await_restore()  # a checkpoint must not overwrite what was not read yet
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sends:  # let deliveries in flight finish briefly, so they are recorded
            _done, pending = await asyncio.wait(self._sends, timeout=2.0)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.host is not None:
            self.checkpoint()
        for n in self.notifiers.values():
            close = getattr(n, "close", None)
            if close is not None:
                await close()

    async def _loop(self) -> None:
        # the collectors' first runs finish (or time out) before the first evaluation, so a
        # start does not read as "no data" for every rule
        await asyncio.sleep(
            min(self.cfg.evaluation_interval, self.settings.collectors.timeout + 0.5)
        )
        while True:
            started = time.monotonic()
            try:
                await self.tick()
            except Exception as exc:  # keep evaluating; the agent shows the error
                log.error("alert evaluation failed: %s", exc, exc_info=exc)
            await asyncio.sleep(
                max(0.05, self.cfg.evaluation_interval - (time.monotonic() - started))
            )

    async def tick(self) -> None:
        if self._restoring is not None:
            await self._await_restore()
        now = self.clock()
        self.evaluate(self._fetcher(), now)
        self.route(now)
        self._publish()

    # -- evaluation ------------------------------------------------------------------
    def _fetcher(self) -> Callable[[str], list[tuple[Mapping[str, str], float]]]:
        latest: dict[str, list[tuple[Mapping[str, str], float]]] = {}
        assert self.host is not None
        for metric in self.host.exporter.collect():
            for s in metric.samples:
                latest.setdefault(s.name, []).append((s.labels, s.value))
        return lambda name: latest.get(name, [])

    def evaluate(
        self, fetch: Callable[[str], Iterable[tuple[Mapping[str, str], float]]], now: float
    ) -> None:
        """One evaluation of every rule at ``now``."""
        from fastmango.agent.alerts import expr
        from fastmango.agent.alerts.routing import fingerprint
        from fastmango.agent.alerts.state import Observation, State, Timing, observation, step

        self.evaluations += 1
        self.last_evaluation = now
        for rule in self.rules:
            timing = Timing(rule.for_seconds, rule.keep_firing_for)
            mine = {fp: t for fp, t in self.tracked.items() if t.rule == rule.name}
            status = self.rule_status.setdefault(rule.name, {"state": "unknown", "since": now})
            try:
                points = expr.observe(rule.condition, fetch)
            except (expr.ExprError, ValueError, ZeroDivisionError) as exc:
                self.rule_errors[rule.name] += 1
                self._rule_state(rule, status, "error", now, str(exc))
                continue
            points = [p for p in points if not math.isnan(p.value)]
            seen: set[str] = set()
            if not points:
                self._rule_state(rule, status, "nodata", now)
                if rule.no_data != "alert":
                    continue  # every instance keeps its state: no data is not a resolve
                labels = {
                    **rule.labels,
                    "alertname": rule.alertname,
                    "severity": rule.severity,
                    "alertstate": "nodata",
                }
                fp = fingerprint(labels)
                seen.add(fp)
                self._advance(
                    rule, fp, labels, Observation(math.nan, math.nan, True, True), timing, now
                )
            else:
                self._rule_state(rule, status, "ok", now)
                for p in points:
                    fp, labels = self._identity(rule, p.labels)
                    if fp not in mine and not expr.holds(rule.condition.op, p.value, p.threshold):
                        continue  # the common case: healthy and not tracked, nothing to do
                    seen.add(fp)
                    obs = observation(rule.condition.op, p.value, p.threshold, rule.clear)
                    self._advance(rule, fp, labels, obs, timing, now)
            for fp, t in mine.items():
                if fp in seen:
                    continue
                new = step(t.inst, None, timing, now)
                self._set(t, new, now)
        # forget what is over
        for fp, t in list(self.tracked.items()):
            if (
                t.inst.state is State.INACTIVE
                or t.rule not in self.by_name
                or (
                    t.inst.state is State.RESOLVED
                    and now - (t.inst.resolved_at or now)
                    > max(RESOLVED_KEEP, 2 * self.cfg.group_interval)
                )
            ):
                del self.tracked[fp]

    def _identity(
        self, rule: Rule, series: tuple[tuple[str, str], ...]
    ) -> tuple[str, dict[str, str]]:
        """An alert's fingerprint and labels for a series of a rule (cached: hashing every
        series on every tick would cost more than the evaluation)."""
        from fastmango.agent.alerts.routing import fingerprint

        key = (rule.name, series)
        hit = self._ids.get(key)
        if hit is None:
            labels = {**dict(series), **rule.labels, "alertname": rule.alertname,
                      "severity": rule.severity}  # fmt: skip
            if len(self._ids) > 50_000:
                self._ids.clear()
            hit = self._ids[key] = (fingerprint(labels), labels)
        return hit

    def _advance(
        self, rule: Rule, fp: str, labels: dict[str, str], obs: Any, timing: Any, now: float
    ) -> None:
        from fastmango.agent.alerts.state import step

        t = self.tracked.get(fp)
        if t is None:
            from fastmango.agent.alerts.state import INACTIVE

            t = self.tracked[fp] = Tracked(fp, rule.name, labels, INACTIVE)
        self._set(t, step(t.inst, obs, timing, now), now)

    def _set(self, t: Tracked, new: Instance, now: float) -> None:
        old = t.inst
        t.inst = new
        if new.state != old.state:
            rule = self.by_name.get(t.rule)
            self._event(
                {
                    "type": "state",
                    "fingerprint": t.fingerprint,
                    "rule": t.rule,
                    "alertname": t.labels.get("alertname", t.rule),
                    "labels": t.labels,
                    "from": str(old.state),
                    "to": str(new.state),
                    "value": new.value,
                    "threshold": new.threshold,
                    "instance": new.as_dict(),
                    "summary": self._render(rule, t, "summary") if rule else "",
                },
                now,
            )
            if str(new.state) in ("firing", "resolved"):
                log.info("alert %s %s %s", t.labels.get("alertname"), new.state, t.labels)

    def _rule_state(
        self, rule: Rule, status: dict[str, Any], state: str, now: float, error: str = ""
    ) -> None:
        if status["state"] != state:
            status.update(state=state, since=now)
            if state in ("nodata", "error") or status.get("logged"):
                self._event(
                    {"type": "rule", "rule": rule.name, "state": state, "error": error}, now
                )
                status["logged"] = True
        status["error"] = error

    def _render(self, rule: Rule | None, t: Tracked, what: str) -> str:
        from fastmango.agent.alerts.rules import render

        if rule is None:
            return ""
        return render(getattr(rule, what), t.labels, t.inst.value, t.inst.threshold)

    def alerts(self) -> list[Alert]:
        """Firing and resolved instances as routable alerts."""
        from fastmango.agent.alerts.routing import Alert

        out = []
        for t in self.tracked.values():
            state = str(t.inst.state)
            if state not in ("firing", "resolved"):
                continue
            rule = self.by_name.get(t.rule)
            out.append(
                Alert(
                    fingerprint=t.fingerprint,
                    rule=t.rule,
                    labels=t.labels,
                    status=state,
                    value=_finite(t.inst.value),
                    threshold=_finite(t.inst.threshold),
                    summary=self._render(rule, t, "summary"),
                    description=self._render(rule, t, "description"),
                    starts_at=t.inst.fired_at or t.inst.active_at or 0.0,
                    ends_at=t.inst.resolved_at if state == "resolved" else None,
                    channels=tuple(
                        c for c in (rule.channels if rule else ()) if c in self.notifiers
                    ),
                    expr=rule.expr if rule else "",
                )
            )
        return out

    # -- routing and delivery --------------------------------------------------------
    def route(self, now: float) -> None:
        from fastmango.agent.alerts import routing

        for sid, s in list(self.silences.items()):
            if s.ends_at <= now:
                del self.silences[sid]
        fleet = self.host.services.get("fleet") if self.host is not None else None
        if fleet is not None and not getattr(fleet, "is_leader", True):
            return  # in a fleet only the leader notifies; the others keep evaluating
        notes, self.groups = routing.plan(
            self.alerts(), self.groups, self.timers, self.silences.values(), self.inhibit, now
        )
        for note in notes:
            task = asyncio.create_task(self._deliver(note), name=f"alert-send-{note.channel}")
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    def link(self) -> str:
        if self.cfg.dashboard_url:
            return self.cfg.dashboard_url
        return (self.host.url if self.host is not None else "") + "/#/alerts"

    async def _send(self, notifier: Notifier, note: Notification) -> Result:
        from fastmango.agent.alerts.notify import Result

        deadline = max(5.0, min(self.cfg.group_interval, 120.0))
        try:
            return await asyncio.wait_for(notifier.send(note, self.link()), deadline)
        except TimeoutError:
            return Result(False, error=f"no answer within {deadline:g} s")
        except Exception as exc:  # a notifier bug must not stop the loop
            from fastmango.redact import redact_secrets

            return Result(False, error=redact_secrets(f"{type(exc).__name__}: {exc}"))

    async def _fleet_turn(self, note: Notification) -> tuple[bool, Notification]:
        """In a fleet sharing PostgreSQL, whether this agent sends ``note`` (no agent sent
        the same already), with the message handles of whoever sent the group's last one."""
        import dataclasses

        fleet: Any = self.host.services.get("fleet") if self.host is not None else None
        if fleet is None or not getattr(fleet, "shared", False):
            return True, note
        alerts = ",".join(sorted(f"{a.fingerprint}:{a.status}" for a in note.alerts))
        won, ref = await fleet.notify_turn(
            note.group, note.status, alerts, repeat_after=self.cfg.repeat_interval
        )
        return won, dataclasses.replace(note, ref={**ref, **note.ref})

    async def _deliver(self, note: Notification) -> None:
        from fastmango.agent.alerts import routing

        fleet: Any = self.host.services.get("fleet") if self.host is not None else None
        try:
            mine, note = await self._fleet_turn(note)
        except Exception as exc:  # the fleet's database is away: try at the next evaluation
            log.warning("alert %s not sent: the fleet cannot be asked (%s)", note.group, exc)
            return
        if not mine:  # another agent of the fleet sent it: take its state, send nothing
            group = self.groups.get(note.group)
            if group is not None:
                self.groups[note.group] = routing.delivered(
                    group, note, True, note.ref, self.clock()
                )
            return
        result = await self._send(self.notifiers[note.channel], note)
        if fleet is not None and getattr(fleet, "shared", False):
            try:
                await fleet.notify_done(note.group, result.ok, result.ref)
            except Exception as exc:
                log.warning("could not record alert %s in the fleet: %s", note.group, exc)
        now = self.clock()
        self._count(note.channel, result, now)
        group = self.groups.get(note.group)
        if group is not None:
            group = self.groups[note.group] = routing.delivered(
                group, note, result.ok, result.ref, now
            )
        self._event(
            {
                "type": "notification",
                "group": note.group,
                "channel": note.channel,
                "status": note.status,
                "repeat": note.repeat,
                "alerts": [
                    {
                        "fingerprint": a.fingerprint,
                        "status": a.status,
                        "alertname": a.labels.get("alertname", a.rule),
                    }
                    for a in note.alerts
                ],
                "result": "ok" if result.ok else "failed",
                "error": result.error,
                "attempts": result.attempts,
                "ref": result.ref,
            },
            now,
        )
        if group is not None and result.ok:
            self._event({"type": "group", "group": group.as_dict()}, now)
        self._publish()

    def _count(self, channel: str, result: Result, now: float) -> None:
        self.counts[(channel, "ok" if result.ok else "failed")] += 1
        h = self.health.setdefault(channel, {"channel": channel, "ok": 0, "failed": 0})
        if result.ok:
            h.update(up=True, ok=h.get("ok", 0) + 1, last_ok_at=now)
        else:
            h.update(
                up=False,
                failed=h.get("failed", 0) + 1,
                last_failure_at=now,
                last_error=result.error,
            )
            log.warning("alert delivery to %s failed: %s", channel, result.error)

    async def send_event(
        self, *, title: str, text: str, severity: str, labels: dict[str, str]
    ) -> None:
        """A one-off notification through every configured channel (a rollback, …)."""
        from fastmango.agent.alerts.routing import Alert, Notification, fingerprint

        now = self.clock()
        full = {**labels, "alertname": title, "severity": severity}
        alert = Alert(
            fingerprint=fingerprint({**full, "event": uuid.uuid4().hex}),
            rule="event",
            labels=full,
            status="firing",
            summary=text,
            starts_at=now,
            channels=tuple(self.notifiers),
        )
        results = await asyncio.gather(
            *(
                self._send(
                    n,
                    Notification(
                        f"event:{alert.fingerprint}", ch, {"alertname": title}, (alert,), {}
                    ),
                )
                for ch, n in self.notifiers.items()
            )
        )
        now = self.clock()
        for ch, r in zip(self.notifiers, results, strict=True):
            self._count(ch, r, now)
        self._event(
            {
                "type": "event",
                "title": title,
                "text": text,
                "severity": severity,
                "labels": labels,
                "results": {
                    ch: "ok" if r.ok else r.error
                    for ch, r in zip(self.notifiers, results, strict=True)
                },
            },
            now,
        )
        self._publish()

    async def test_channels(self) -> dict[str, dict[str, Any]]:
        """Send a test message to each configured channel; each one's result."""
        from fastmango.agent.alerts.routing import Alert, Notification

        now = self.clock()
        alert = Alert(
            fingerprint="test" + uuid.uuid4().hex[:12],
            rule="test",
            labels={"alertname": "FastmangoTest", "severity": "info"},
            status="firing",
            summary="A test message from fastmango: this channel works.",
            starts_at=now,
            channels=tuple(self.notifiers),
        )
        out: dict[str, dict[str, Any]] = {}
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                self._send(n, Notification(f"test:{alert.fingerprint}", ch, {}, (alert,), {}))
                for ch, n in self.notifiers.items()
            )
        )
        now = self.clock()
        for ch, r in zip(self.notifiers, results, strict=True):
            self._count(ch, r, now)
            out[ch] = {
                "ok": r.ok,
                "error": r.error,
                "attempts": r.attempts,
                "seconds": round(time.monotonic() - started, 3),
            }
        self._event({"type": "test", "results": {ch: r["ok"] for ch, r in out.items()}}, now)
        self._publish()
        return out

    # -- silences --------------------------------------------------------------------
    def add_silence(
        self,
        matchers: list[Any],
        duration: float,
        author: str,
        reason: str,
        starts_at: float | None = None,
    ) -> Silence:
        from fastmango.agent.alerts.routing import Silence

        if not matchers:
            raise ValueError("a silence needs at least one matcher")
        if duration <= 0:
            raise ValueError("a silence needs a positive duration")
        if not reason.strip():
            raise ValueError("a silence needs a reason")
        now = self.clock()
        start = now if starts_at is None else starts_at
        s = Silence(
            uuid.uuid4().hex[:12],
            tuple(matchers),
            start,
            start + duration,
            author,
            reason.strip(),
            now,
        )
        self.silences[s.id] = s
        self._event({"type": "silence", "silence": s.as_dict()}, now)
        self._publish()
        return s

    def remove_silence(self, sid: str, author: str) -> Silence | None:
        s = self.silences.pop(sid, None)
        if s is not None:
            self._event({"type": "unsilence", "id": sid, "by": author}, self.clock())
            self._publish()
        return s

    # -- what the API shows ----------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        from fastmango.agent.alerts import routing

        now = self.clock()
        firing = [a for a in self.alerts() if a.status == "firing"]
        rows = []
        for t in sorted(self.tracked.values(), key=lambda t: (str(t.inst.state), t.rule)):
            rule = self.by_name.get(t.rule)
            alert = next((a for a in firing if a.fingerprint == t.fingerprint), None)
            why = (
                routing.muted(alert, firing, self.silences.values(), self.inhibit, now)
                if alert is not None
                else routing.silenced_by(t.labels, self.silences.values(), now)
            )
            if why is not None and not why.startswith(("silenced", "inhibited")):
                why = f"silenced by {why}"
            rows.append(
                {
                    "fingerprint": t.fingerprint,
                    "rule": t.rule,
                    "labels": t.labels,
                    "state": str(t.inst.state),
                    "value": _finite(t.inst.value),
                    "threshold": _finite(t.inst.threshold),
                    "active_at": t.inst.active_at,
                    "fired_at": t.inst.fired_at,
                    "resolved_at": t.inst.resolved_at,
                    "severity": t.labels.get("severity"),
                    "muted": why,
                    "summary": self._render(rule, t, "summary"),
                    "rule_status": self.rule_status.get(t.rule, {}).get("state"),
                }
            )
        return {
            "alerts": rows,
            "rules": [
                {
                    **r.as_dict(),
                    **{
                        k: v
                        for k, v in self.rule_status.get(r.name, {}).items()
                        if k in ("state", "since", "error")
                    },
                }
                for r in self.rules
            ],
            "silences": [
                s.as_dict() for s in sorted(self.silences.values(), key=lambda s: s.ends_at)
            ],
            "channels": [self.health[c] for c in self.notifiers if c in self.health],
            "groups": len(self.groups),
            "evaluations": self.evaluations,
            "last_evaluation": self.last_evaluation,
            "now": now,
        }

    # -- persistence -----------------------------------------------------------------
    def _event(self, data: dict[str, Any], now: float) -> None:
        if self.host is None:
            return
        self.host.store.append_event(KIND, data, ts=now)
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY and data.get("type") != "checkpoint":
            self.checkpoint()

    def checkpoint(self) -> None:
        """Write the whole state as one event (restore reads back to the newest one)."""
        self._since_checkpoint = 0
        self._event(
            {
                "type": "checkpoint",
                "instances": [t.as_dict() for t in self.tracked.values()],
                "groups": [g.as_dict() for g in self.groups.values()],
                "silences": [s.as_dict() for s in self.silences.values()],
                "rules": {
                    k: {"state": v["state"], "since": v["since"]}
                    for k, v in self.rule_status.items()
                },
            },
            self.clock(),
        )
        self._since_checkpoint = 0

    def restore(self) -> None:
        """Rebuild the state from the store: the newest checkpoint, then later events."""
        from fastmango.agent.alerts.routing import Group, Silence
        from fastmango.agent.alerts.state import Instance, State

        assert self.host is not None
        newer: list[dict[str, Any]] = []
        base: dict[str, Any] | None = None
        for ev in self.host.store.events(KIND, limit=RESTORE_LIMIT):
            if ev["data"].get("type") == "checkpoint":
                base = ev["data"]
                break
            newer.append(ev["data"])
        if base is not None:
            for d in base.get("instances", []):
                self.tracked[d["fingerprint"]] = Tracked(
                    d["fingerprint"], d["rule"], d["labels"], Instance.from_dict(d["instance"])
                )
            for d in base.get("groups", []):
                self.groups[d["key"]] = Group.from_dict(d)
            for d in base.get("silences", []):
                self.silences[d["id"]] = Silence.from_dict(d)
            for k, v in base.get("rules", {}).items():
                self.rule_status[k] = dict(v)
        for d in reversed(newer):
            kind = d.get("type")
            if kind == "state":
                inst = Instance.from_dict(d["instance"])
                self.tracked[d["fingerprint"]] = Tracked(
                    d["fingerprint"], d["rule"], d["labels"], inst
                )
            elif kind == "group":
                g = Group.from_dict(d["group"])
                self.groups[g.key] = g
            elif kind == "silence":
                s = Silence.from_dict(d["silence"])
                self.silences[s.id] = s
            elif kind == "unsilence":
                self.silences.pop(d["id"], None)
        now = self.clock()
        for t in self.tracked.values():
            if t.inst.state is State.FIRING:  # not held since the restart: count from now
                t.inst = replace(t.inst, last_holding_at=max(t.inst.last_holding_at or 0, now))
        for key, g in list(self.groups.items()):
            if not any(s == "firing" for s in g.sent.values()):
                del self.groups[key]  # its resolve went out before the restart
        if base is not None or newer:
            log.info(
                "alerts restored: %d instances, %d groups, %d silences",
                len(self.tracked),
                len(self.groups),
                len(self.silences),
            )

    # -- self-metrics ----------------------------------------------------------------
    def _publish(self) -> None:
        from fastmango.series import Sample, labels_of

        if self.host is None:
            return
        now = self.clock()
        out: list[Sample] = []
        states: Counter[tuple[str, str]] = Counter()
        for t in self.tracked.values():
            if str(t.inst.state) != "inactive":
                states[(t.labels.get("alertname", t.rule), str(t.inst.state))] += 1
        for (name, st), n in sorted(states.items()):
            out.append(Sample("fastmango_alerts", labels_of(alertname=name, alertstate=st), n, now))
        for r in self.rules:
            nodata = self.rule_status.get(r.name, {}).get("state") == "nodata"
            out.append(
                Sample(
                    "fastmango_alert_rule_nodata",
                    labels_of(rule=r.name),
                    1.0 if nodata else 0.0,
                    now,
                )
            )
        for name, n in sorted(self.rule_errors.items()):
            out.append(Sample("fastmango_alert_rule_errors_total", labels_of(rule=name), n, now))
        for ch in self.notifiers:
            for res in ("ok", "failed"):
                out.append(
                    Sample(
                        "fastmango_alert_notifications_total",
                        labels_of(channel=ch, result=res),
                        self.counts[(ch, res)],
                        now,
                    )
                )
            up = self.health.get(ch, {}).get("up")
            if up is not None:
                out.append(
                    Sample(
                        "fastmango_alert_channel_up", labels_of(channel=ch), 1.0 if up else 0.0, now
                    )
                )
        active = sum(1 for s in self.silences.values() if s.active(now))
        out.append(Sample("fastmango_alert_silences", (), active, now))
        self.host.publish(SOURCE, out)


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    """A notifier per configured channel; a channel that cannot be built is logged."""
    cfg = settings.alerts
    out: dict[str, Notifier] = {}
    try:
        if cfg.slack.configured:
            from fastmango.agent.alerts.notify.slack import SlackNotifier

            s = cfg.slack
            out["slack"] = SlackNotifier(
                webhook_url=s.webhook_url.get_secret_value() if s.webhook_url else None,
                token=s.token.get_secret_value() if s.token else None,
                channel=s.channel,
                api_url=s.api_url,
                timeout=s.timeout,
                retries=cfg.retries,
            )
        if cfg.discord.configured:
            from fastmango.agent.alerts.notify.discord import DiscordNotifier

            d = cfg.discord
            assert d.webhook_url is not None
            out["discord"] = DiscordNotifier(
                d.webhook_url.get_secret_value(),
                username=d.username,
                timeout=d.timeout,
                retries=cfg.retries,
            )
        if cfg.email.configured:
            import ssl

            from fastmango.agent.alerts.notify.email import EmailNotifier

            e = cfg.email
            assert e.host is not None
            ctx = ssl.create_default_context(cafile=str(e.ca_file) if e.ca_file else None)
            out["email"] = EmailNotifier(
                host=e.host,
                port=e.port,
                starttls=e.starttls,
                require_tls=e.require_tls,
                username=e.username,
                password=e.password.get_secret_value() if e.password else None,
                sender=e.sender,
                to=list(e.to),
                timeout=e.timeout,
                retries=cfg.retries,
                tls_context=ctx,
            )
    except Exception as exc:
        from fastmango.redact import redact_secrets

        log.error("alert channel setup failed: %s", redact_secrets(str(exc)))
    return out
