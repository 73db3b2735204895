"""Routing with Alertmanager's timers, inhibition and silences, as pure functions."""

from __future__ import annotations

from fastmango.agent.alerts.routing import (
    Alert,
    Group,
    Inhibit,
    Notification,
    Silence,
    Timers,
    delivered,
    fingerprint,
    plan,
)
from fastmango.agent.store import Matcher

T = Timers(("alertname",), group_wait=30, group_interval=300, repeat_interval=3600)


def alert(name: str, status: str = "firing", sev: str = "warning", **labels: str) -> Alert:
    full = {"alertname": name, "severity": sev, **labels}
    return Alert(fingerprint(full), name, full, status, 1.0, 0.5, channels=("slack",))


def run(
    steps: list[tuple[float, list[Alert]]],
    timers: Timers = T,
    silences: list[Silence] = (),
    inhibit: list[Inhibit] = (),  # type: ignore[assignment]
    fail: set[float] = frozenset(),
) -> list[tuple[float, str, list[str]]]:  # type: ignore[assignment]
    """Plan at each time; deliver every notification (failing at the times in ``fail``);
    return (time, status, [fingerprint:status]) of each notification."""
    groups: dict[str, Group] = {}
    out = []
    for now, alerts in steps:
        notes, groups = plan(alerts, groups, timers, silences, inhibit, now)
        for n in notes:
            out.append(
                (now, n.status, sorted(f"{a.labels.get('x', '')}:{a.status}" for a in n.alerts))
            )
            ok = now not in fail
            groups[n.group] = delivered(groups[n.group], n, ok, {"slack_ts": "1.1"}, now)
    return out


def test_group_wait_then_one_notification() -> None:
    a = alert("A", x="1")
    assert run([(0, [a]), (29, [a]), (30, [a]), (60, [a]), (330, [a])]) == [
        (30, "firing", ["1:firing"])
    ]


def test_new_alert_in_group_waits_for_group_interval() -> None:
    a, b = alert("A", x="1"), alert("A", x="2")
    got = run([(0, [a]), (30, [a]), (100, [a, b]), (329, [a, b]), (330, [a, b])])
    assert got == [(30, "firing", ["1:firing"]), (330, "firing", ["1:firing", "2:firing"])]


def test_whole_group_resolved_is_sent_at_once() -> None:
    a = alert("A", x="1")
    r = alert("A", "resolved", x="1")
    got = run([(0, [a]), (30, [a]), (40, [r]), (41, [r]), (400, [r])])
    assert got == [(30, "firing", ["1:firing"]), (40, "resolved", ["1:resolved"])]


def test_partial_resolve_waits_for_group_interval() -> None:
    a, b = alert("A", x="1"), alert("A", x="2")
    rb = alert("A", "resolved", x="2")
    got = run([(0, [a, b]), (30, [a, b]), (60, [a, rb]), (330, [a, rb])])
    assert got == [
        (30, "firing", ["1:firing", "2:firing"]),
        (330, "firing", ["1:firing", "2:resolved"]),
    ]


def test_resolved_before_group_wait_sends_nothing() -> None:
    a = alert("A", x="1")
    r = alert("A", "resolved", x="1")
    assert run([(0, [a]), (10, [r]), (30, [r]), (400, [r])]) == []


def test_repeat_interval() -> None:
    a = alert("A", x="1")
    steps = [(t, [a]) for t in (0, 30, 330, 3629, 3630, 3631, 3930)]
    got = run(steps)
    # a flush at 3629 is 1 s short of the repeat; the next flush (+group_interval) sends
    assert [t for t, *_ in got] == [30, 3930]


def test_no_resolved_when_send_resolved_is_off() -> None:
    a = alert("A", x="1")
    r = alert("A", "resolved", x="1")
    t = Timers(("alertname",), 30, 300, 3600, send_resolved=False)
    assert run([(0, [a]), (30, [a]), (40, [r]), (400, [r])], t) == [(30, "firing", ["1:firing"])]


def test_failed_delivery_is_retried_at_the_next_interval() -> None:
    a = alert("A", x="1")
    got = run([(0, [a]), (30, [a]), (100, [a]), (330, [a]), (700, [a])], fail={30})
    assert [t for t, *_ in got] == [30, 330]


def test_groups_by_label() -> None:
    t = Timers(("alertname", "x"), 0, 300, 3600)
    got = run([(0, [alert("A", x="1"), alert("A", x="2")])], t)
    assert len(got) == 2


def test_inhibition_critical_mutes_warning_with_same_labels() -> None:
    warn = alert("DiskNearFull", mountpoint="/")
    crit = alert("DiskNearFull", sev="critical", mountpoint="/")
    other = alert("DiskNearFull", mountpoint="/data")
    t = Timers(("alertname", "severity"), 0, 300, 3600)
    got = run([(0, [warn, crit, other])], t, inhibit=[Inhibit()])
    sent = sorted((s, len(a)) for _, s, a in got)
    assert sent == [("firing", 1), ("firing", 1)]  # the critical, and /data's warning
    groups: dict[str, Group] = {}
    notes, _ = plan([warn, crit, other], groups, t, [], [Inhibit()], 0)
    names = sorted((a.labels["severity"], a.labels["mountpoint"]) for n in notes for a in n.alerts)
    assert names == [("critical", "/"), ("warning", "/data")]


def test_inhibition_with_explicit_equal_labels() -> None:
    warn = alert("Slow", route="/a")
    crit = alert("Errors", sev="critical", route="/a")
    t = Timers(("alertname",), 0, 300, 3600)
    notes, _ = plan([warn, crit], {}, t, [], [Inhibit(equal=("route",))], 0)
    assert [n.alerts[0].labels["alertname"] for n in notes] == ["Errors"]
    notes, _ = plan([warn, crit], {}, t, [], [Inhibit()], 0)  # alertname differs: no mute
    assert len(notes) == 2


def test_silence_with_expiry() -> None:
    a = alert("A", x="1")
    s = Silence("s1", (Matcher("alertname", "=", "A"),), 0, 100, "ann", "deploy", 0)
    got = run([(0, [a]), (30, [a]), (99, [a]), (100, [a]), (130, [a])], silences=[s])
    assert [t for t, *_ in got] == [130]  # a new group once the silence ends: group_wait


def test_silence_matchers_and_regex() -> None:
    s = Silence("s", (Matcher("route", "=~", "/api/.*"),), 0, 10, "a", "r", 0)
    assert s.matches({"route": "/api/x"}) and not s.matches({"route": "/web"})
    assert not Silence("e", (), 0, 10, "a", "r", 0).matches({"x": "1"})  # never everything
    assert Silence.from_dict(s.as_dict()) == s


def test_inflight_group_is_not_planned_twice() -> None:
    a = alert("A", x="1")
    notes, groups = plan([a], {}, Timers(("alertname",), 0, 300, 3600), [], [], 0)
    assert len(notes) == 1
    again, groups = plan([a], groups, Timers(("alertname",), 0, 0.1, 3600), [], [], 5)
    assert again == []


def test_group_round_trip_and_note_status() -> None:
    a = alert("A", x="1")
    notes, groups = plan([a], {}, Timers(("alertname",), 0, 300, 3600), [], [], 0)
    n: Notification = notes[0]
    g = delivered(groups[n.group], n, True, {"slack_ts": "9.9"}, 1)
    assert Group.from_dict(g.as_dict()) == g and g.ref == {"slack_ts": "9.9"}
    assert n.status == "firing" and n.firing == [a] and n.resolved == []
