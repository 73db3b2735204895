"""Routing with Alertmanager's semantics, as pure functions of the alerts and the time.

* **Grouping**: alerts sharing the ``group_by`` label values (per channel) form a group.
  A new group waits ``group_wait`` before its first notification; later changes go out
  at most every ``group_interval``; an unchanged firing group is re-sent after
  ``repeat_interval``. A group whose alerts have all resolved is notified at once.
  An alert resolved before its group was ever notified sends nothing.
* **Inhibition**: a firing alert of the source severity mutes the target severity's
  alerts with the same ``equal`` labels (default: every label but severity).
* **Silences**: matcher sets with a start, an end, an author and a reason.

What was last sent per group (its notification log) lives in :class:`Group`; the caller
persists it, so a restart neither re-sends nor forgets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from fastmango.agent.store import Matcher


@dataclass(frozen=True)
class Alert:
    fingerprint: str
    rule: str
    labels: dict[str, str]
    status: str  # firing | resolved
    value: float | None = None
    threshold: float | None = None
    summary: str = ""
    description: str = ""
    starts_at: float = 0.0
    ends_at: float | None = None
    channels: tuple[str, ...] = ()
    expr: str = ""

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "warning")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["channels"] = list(self.channels)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["channels"] = tuple(fields.get("channels", ()))
        return cls(**fields)


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id of an alert's label set (what Alertmanager calls the fingerprint)."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    author: str
    reason: str
    created_at: float

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return bool(self.matchers) and all(m.matches(labels) for m in self.matchers)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["matchers"] = [asdict(m) for m in self.matchers]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Silence:
        return cls(
            id=data["id"],
            matchers=tuple(Matcher(**m) for m in data["matchers"]),
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            author=data["author"],
            reason=data["reason"],
            created_at=data["created_at"],
        )


@dataclass(frozen=True)
class Inhibit:
    source_severity: str = "critical"
    target_severity: str = "warning"
    equal: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Timers:
    group_by: tuple[str, ...] = ("alertname",)
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 14400.0
    send_resolved: bool = True


def silenced_by(labels: Mapping[str, str], silences: Iterable[Silence], now: float) -> str | None:
    for s in silences:
        if s.active(now) and s.matches(labels):
            return s.id
    return None


def inhibited_by(alert: Alert, firing: Iterable[Alert], rules: Iterable[Inhibit]) -> str | None:
    """The fingerprint of a firing alert that mutes this one, if any."""
    for rule in rules:
        if alert.severity != rule.target_severity:
            continue
        for src in firing:
            if src.fingerprint == alert.fingerprint or src.severity != rule.source_severity:
                continue
            if src.status != "firing":
                continue
            keys = (
                rule.equal
                if rule.equal is not None
                else tuple(k for k in alert.labels if k != "severity")
            )
            if all(src.labels.get(k) == alert.labels.get(k) for k in keys):
                return src.fingerprint
    return None


def muted(
    alert: Alert,
    alerts: list[Alert],
    silences: Iterable[Silence],
    inhibit: Iterable[Inhibit],
    now: float,
) -> str | None:
    """Why an alert is not notified now (``silenced by …``/``inhibited by …``), or None."""
    sid = silenced_by(alert.labels, silences, now)
    if sid is not None:
        return f"silenced by {sid}"
    fp = inhibited_by(alert, alerts, inhibit)
    if fp is not None:
        return f"inhibited by {fp}"
    return None


@dataclass(frozen=True)
class Group:
    key: str
    channel: str
    labels: dict[str, str]
    created_at: float
    next_flush: float
    last_sent_at: float | None = None
    #: fingerprint → status of what the last delivered notification held
    sent: dict[str, str] = field(default_factory=dict)
    #: the channel's handle on the group's message (Slack ts, email Message-ID)
    ref: dict[str, str] = field(default_factory=dict)
    inflight: bool = False

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("inflight")
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Group:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Notification:
    group: str
    channel: str
    group_labels: dict[str, str]
    alerts: tuple[Alert, ...]
    ref: dict[str, str]
    repeat: bool = False

    @property
    def status(self) -> str:
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "resolved"]


def group_key(channel: str, labels: Mapping[str, str]) -> str:
    return channel + ":" + json.dumps(sorted(labels.items()), separators=(",", ":"))


def plan(
    alerts: list[Alert],
    groups: Mapping[str, Group],
    timers: Timers,
    silences: Iterable[Silence],
    inhibit: Iterable[Inhibit],
    now: float,
) -> tuple[list[Notification], dict[str, Group]]:
    """The notifications due now and the groups afterwards (the caller marks each
    notification's delivery with :func:`delivered`)."""
    silences, inhibit = list(silences), list(inhibit)
    firing = [a for a in alerts if a.status == "firing"]
    buckets: dict[str, tuple[str, dict[str, str], list[Alert]]] = {}
    for a in alerts:
        if a.status == "firing" and muted(a, firing, silences, inhibit, now) is not None:
            continue
        if a.status == "resolved" and silenced_by(a.labels, silences, now) is not None:
            continue
        glabels = {k: a.labels[k] for k in timers.group_by if k in a.labels}
        for ch in a.channels:
            key = group_key(ch, glabels)
            buckets.setdefault(key, (ch, glabels, []))[2].append(a)
    out: dict[str, Group] = {}
    notes: list[Notification] = []
    for key in sorted(set(groups) | set(buckets)):
        g = groups.get(key)
        ch, glabels, members = buckets.get(key, ("", {}, []))
        now_firing = {a.fingerprint for a in members if a.status == "firing"}
        if g is None:
            if not now_firing:
                continue  # resolved before it was ever notified
            g = Group(key, ch, glabels, created_at=now, next_flush=now + timers.group_wait)
        if g.inflight:
            out[key] = g
            continue
        if not members:
            continue  # its alerts are gone (dropped or silenced): nothing left to say
        was_firing = any(s == "firing" for s in g.sent.values())
        if not now_firing and not was_firing:
            continue  # done: the resolve went out, or nothing ever did
        to_send = [
            a
            for a in members
            if a.status == "firing" or (timers.send_resolved and a.fingerprint in g.sent)
        ]
        whole_resolved = not now_firing and was_firing
        if whole_resolved and not timers.send_resolved:
            continue
        if now >= g.next_flush or whole_resolved:
            state = {a.fingerprint: a.status for a in to_send}
            changed = state != g.sent
            repeat = (
                bool(now_firing)
                and g.last_sent_at is not None
                and now - g.last_sent_at >= timers.repeat_interval
            )
            if to_send and (changed or repeat):
                notes.append(
                    Notification(
                        key,
                        g.channel,
                        dict(g.labels),
                        tuple(to_send),
                        dict(g.ref),
                        repeat=repeat and not changed,
                    )
                )
                g = replace(g, inflight=True)
            g = replace(g, next_flush=now + timers.group_interval)
        out[key] = g
    return notes, out


def delivered(
    group: Group, note: Notification, ok: bool, ref: Mapping[str, str] | None, now: float
) -> Group:
    """The group after a delivery attempt: on success it remembers what was sent."""
    if not ok:
        return replace(group, inflight=False)
    return replace(
        group,
        inflight=False,
        last_sent_at=now,
        sent={a.fingerprint: a.status for a in note.alerts},
        ref={**group.ref, **(ref or {})},
    )
