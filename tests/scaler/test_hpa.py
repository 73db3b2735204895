"""Each HPA rule against table cases shaped like the Kubernetes tests
(replica_calculator_test.go, horizontal_test.go)."""

from __future__ import annotations

import pytest

from fastmango.scaler import hpa
from fastmango.scaler.hpa import Behavior, Pod, RatePolicy, Rules, Tolerance

NOW = 10_000.0
OLD = NOW - 3600  # started long ago: past the CPU initialisation period


def pods(levels: list[float | None], ready: list[bool] | None = None,
         phases: list[str] | None = None, deleting: list[bool] | None = None,
         n: int = 0) -> list[Pod]:  # fmt: skip
    n = max(n, len(ready or []), len(phases or []), len(levels), len(deleting or []))
    out = []
    for i in range(n):
        level = levels[i] if i < len(levels) else None
        out.append(Pod(
            name=f"p{i}", phase=(phases or ["Running"] * n)[i],
            ready=(ready or [True] * n)[i], deleting=(deleting or [False] * n)[i],
            started_at=OLD, ready_changed_at=OLD,
            metrics={} if level is None else {"cpu": level}, sampled_at=NOW,
        ))  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("ratio", "within"),
    [(1.0, True), (1.05, True), (0.95, True), (1.1001, False), (0.8999, False), (2.0, False)],
)
def test_tolerance(ratio: float, within: bool) -> None:
    assert Tolerance().within(ratio) is within


def test_tolerance_per_direction() -> None:
    t = Tolerance(up=0.0, down=0.5)
    assert not t.within(1.01)
    assert t.within(0.6)


# (name, current, levels %, ready, phases, target %, expected replicas)
CPU_CASES = [
    ("ScaleUp", 3, [30, 50, 70], None, None, 30, 5),
    ("ScaleUpUnreadyLessScale", 3, [30, 50, 70], [False, True, True], None, 30, 4),
    ("ScaleUpUnreadyNoScale", 3, [40, 50, 70], [True, False, False], None, 30, 3),
    ("ScaleUpIgnoresFailedPods", 4, [50, 70], [True, True, False, False],
     ["Running", "Running", "Failed", "Failed"], 30, 4),
    ("ScaleUpPendingCountsAsUnready", 3, [50, 70], [True, True, False],
     ["Running", "Running", "Pending"], 30, 4),
    ("ScaleDown", 5, [10, 30, 50, 25, 25], None, None, 50, 3),
    ("ScaleDownIncludeUnreadyPods", 5, [10, 30, 50, 25, 25], [False, True, True, False, False],
     None, 50, 2),
    ("Tolerance", 3, [101, 103, 102], None, None, 100, 3),
    ("MissingMetricsNoChangeEq", 2, [100], None, None, 100, 2),
    ("MissingMetricsNoChangeGt", 2, [190], None, None, 100, 2),
    ("MissingMetricsNoChangeLt", 2, [60], None, None, 100, 2),
    ("MissingMetricsUnreadyChange", 3, [10, 45], [False, True, True], None, 50, 3),
    ("MissingMetricsUnreadyScaleUp", 3, [10, 200], [False, True, True], None, 50, 4),
    ("MissingMetricsUnreadyScaleDown", 4, [10, 10, 10], [False, True, True, True], None, 50, 3),
    ("MissingMetricsScaleUp", 4, [200, 200], None, None, 50, 8),
]  # fmt: skip


@pytest.mark.parametrize(
    ("current", "levels", "ready", "phases", "target", "expected"),
    [c[1:] for c in CPU_CASES],
    ids=[c[0] for c in CPU_CASES],
)
def test_cpu_replicas(current: int, levels: list[float], ready: list[bool] | None,
                      phases: list[str] | None, target: float, expected: int) -> None:  # fmt: skip
    ps = pods(levels, ready, phases, n=current)
    got, _ = hpa.pod_metric_replicas(current, ps, "cpu", target, NOW,
                                     resource=True, cpu=True)  # fmt: skip
    assert got == expected


def test_deleting_pods_are_ignored() -> None:
    ps = pods([50, 70], [True, True, True, True], deleting=[False, False, True, True])
    assert hpa.pod_metric_replicas(4, ps, "cpu", 30, NOW, resource=True, cpu=True)[0] == 4


def test_no_ready_metrics_is_an_error() -> None:
    with pytest.raises(hpa.MetricUnavailable, match="did not receive metrics"):
        hpa.pod_metric_replicas(2, pods([50, 50], [False, False]), "cpu", 50, NOW, cpu=True)


# CPU initialisation: within 5 min of start a sample taken less than one window after
# the pod turned ready is ignored; after it, only a pod that never became ready is
@pytest.mark.parametrize(
    ("started", "ready", "changed", "unready"),
    [
        (NOW - 60, True, NOW - 30, True),  # ready 30 s ago, window 60 s: not yet
        (NOW - 200, True, NOW - 100, False),  # a full window since ready
        (NOW - 200, False, NOW - 100, True),  # not ready within the init period
        (NOW - 900, False, NOW - 890, True),  # went unready 10 s after start: never ready
        (NOW - 900, False, NOW - 100, False),  # unready later: its metric counts
    ],
)
def test_cpu_initialisation(started: float, ready: bool, changed: float, unready: bool) -> None:
    pod = Pod("a", ready=ready, started_at=started, ready_changed_at=changed,
              metrics={"cpu": 50}, sampled_at=NOW)  # fmt: skip
    groups = hpa.group_pods([pod], "cpu", NOW, cpu=True)
    assert (groups.unready == ("a",)) is unready


def test_unready_is_cpu_only() -> None:
    pod = Pod("a", ready=False, started_at=NOW - 10, metrics={"gpu": 50})
    assert hpa.group_pods([pod], "gpu", NOW).ready == ("a",)


@pytest.mark.parametrize(
    ("current", "ready", "value", "target", "expected"),
    [
        (1, 1, 8600, 4400, 2),  # ScaleUpCMExternal
        (3, 3, 8600, 4400, 6),
        (5, 5, 4400, 8600, 3),  # scale down
        (3, 3, 4500, 4400, 3),  # within tolerance
        (0, 0, 8600, 4400, 2),  # from zero: ceil(ratio)
        (3, 2, 8600, 4400, 4),  # ready pods, not spec replicas
    ],
)
def test_value_replicas(current: int, ready: int, value: float, target: float,
                        expected: int) -> None:  # fmt: skip
    assert hpa.value_replicas(current, ready, value, target)[0] == expected


@pytest.mark.parametrize(
    ("status", "total", "per_pod", "expected"),
    [
        (3, 8600, 2150, 4),  # ScaleUpPerPodCMExternal
        (5, 8600, 2900, 3),  # ScaleDownPerPodCMExternal
        (3, 8600, 2800, 3),  # within tolerance (ratio 1.02)
        (0, 100, 150, 1),  # from zero
    ],
)
def test_average_value_replicas(status: int, total: float, per_pod: float, expected: int) -> None:
    assert hpa.average_value_replicas(status, total, per_pod)[0] == expected


@pytest.mark.parametrize(
    ("proposals", "failed", "current", "expected"),
    [
        ({"cpu": 3, "rps": 5}, [], 4, (5, "rps")),
        ({"cpu": 6}, ["rps"], 4, (6, "cpu")),  # a scale-up still happens
        ({"cpu": 4}, ["rps"], 4, (4, "cpu")),
    ],
)
def test_max_over_metrics(proposals: dict[str, int], failed: list[str], current: int,
                          expected: tuple[int, str]) -> None:  # fmt: skip
    assert hpa.max_over_metrics(proposals, failed, current) == expected


@pytest.mark.parametrize(("proposals", "failed"), [({"cpu": 2}, ["rps"]), ({}, ["cpu", "rps"])])
def test_missing_metric_never_shrinks(proposals: dict[str, int], failed: list[str]) -> None:
    with pytest.raises(hpa.MetricUnavailable):
        hpa.max_over_metrics(proposals, failed, 4)


# stabilization: (current, desired, recommendations (age s, replicas), expected)
STABILIZE = [
    ("up applies at once", 3, 6, [(10, 3), (100, 2)], 6),
    ("down holds the highest of 5 min", 6, 2, [(30, 5), (200, 4)], 5),
    ("down to the highest", 6, 2, [(30, 3), (200, 2)], 3),
    ("old recommendations forgotten", 6, 2, [(301, 6), (400, 9)], 2),
    ("no change", 4, 4, [(10, 8)], 4),
]


@pytest.mark.parametrize(
    ("current", "desired", "recs", "expected"),
    [c[1:] for c in STABILIZE],
    ids=[c[0] for c in STABILIZE],
)
def test_stabilize(current: int, desired: int, recs: list[tuple[float, int]],
                   expected: int) -> None:  # fmt: skip
    got, _, _, kept = hpa.stabilize(current, desired, [(NOW - a, r) for a, r in recs], NOW,
                                    Behavior())  # fmt: skip
    assert got == expected
    assert kept[-1] == (NOW, desired)
    assert all(ts > NOW - 300 for ts, _ in kept)


def test_stabilize_scale_up_window() -> None:
    beh = Behavior(scale_up=Rules(120, "Max", (RatePolicy("Pods", 4, 15),)))
    recs = [(NOW - 60, 3), (NOW - 30, 5)]
    # up: at least the lowest recent recommendation (3), so stays at current 3
    assert hpa.stabilize(3, 8, recs, NOW, beh)[0] == 3


UP = Rules(0, "Max", (RatePolicy("Pods", 4, 15), RatePolicy("Percent", 100, 15)))
# (current, up events (age, change), down events, rules, expected limit)
UP_LIMITS = [
    ("default from 1", 1, [], [], UP, 5),
    ("default from 10", 10, [], [], UP, 20),
    ("recent scale-up counted", 10, [(5, 4)], [], UP, 12),
    ("old scale-up forgotten", 10, [(20, 4)], [], UP, 20),
    ("recent scale-down counted", 6, [], [(5, 2)], UP, 16),
    ("min select", 10, [], [], Rules(0, "Min", UP.policies), 14),
    ("disabled", 10, [], [], Rules(0, "Disabled", UP.policies), 10),
    ("percent rounds up", 3, [], [], Rules(0, "Max", (RatePolicy("Percent", 10, 60),)), 4),
]


@pytest.mark.parametrize(
    ("current", "ups", "downs", "rules", "expected"),
    [c[1:] for c in UP_LIMITS],
    ids=[c[0] for c in UP_LIMITS],
)
def test_scale_up_limit(current: int, ups: list[tuple[float, int]],
                        downs: list[tuple[float, int]], rules: Rules,
                        expected: int) -> None:  # fmt: skip
    ev = [(NOW - a, c) for a, c in ups]
    dv = [(NOW - a, c) for a, c in downs]
    assert hpa.scale_up_limit(current, ev, dv, rules, NOW) == expected


DOWN = Rules(300, "Max", (RatePolicy("Percent", 100, 15),))
DOWN_LIMITS = [
    ("default: all at once", 10, [], [], DOWN, 0),
    ("pods policy", 10, [], [], Rules(0, "Max", (RatePolicy("Pods", 2, 60),)), 8),
    ("pods policy after a recent removal", 10, [], [(30, 2)],
     Rules(0, "Max", (RatePolicy("Pods", 2, 60),)), 10),
    ("percent rounds down", 5, [], [], Rules(0, "Max", (RatePolicy("Percent", 50, 60),)), 2),
    ("min select keeps the most", 10, [], [],
     Rules(0, "Min", (RatePolicy("Pods", 2, 60), RatePolicy("Percent", 50, 60))), 8),
    ("max select removes the most", 10, [], [],
     Rules(0, "Max", (RatePolicy("Pods", 2, 60), RatePolicy("Percent", 50, 60))), 5),
    ("disabled", 10, [], [], Rules(0, "Disabled", (RatePolicy("Pods", 2, 60),)), 10),
]  # fmt: skip


@pytest.mark.parametrize(
    ("current", "ups", "downs", "rules", "expected"),
    [c[1:] for c in DOWN_LIMITS],
    ids=[c[0] for c in DOWN_LIMITS],
)
def test_scale_down_limit(current: int, ups: list[tuple[float, int]],
                          downs: list[tuple[float, int]], rules: Rules,
                        expected: int) -> None:  # fmt: skip
    ev = [(NOW - a, c) for a, c in ups]
    dv = [(NOW - a, c) for a, c in downs]
    assert hpa.scale_down_limit(current, ev, dv, rules, NOW) == expected


# (current, desired, min, max, up events, expected, reason)
RATE = [
    ("within range", 3, 5, 1, 10, [], 5, "DesiredWithinRange"),
    ("scale-up limit", 2, 20, 1, 50, [], 6, "ScaleUpLimit"),
    ("too many", 3, 20, 1, 5, [], 5, "TooManyReplicas"),
    ("too few", 5, 1, 2, 10, [], 2, "TooFewReplicas"),
    ("limit after recent events", 8, 30, 1, 50, [(5, 4)], 8, "ScaleUpLimit"),
    ("limit after old events", 8, 30, 1, 50, [(20, 4)], 16, "ScaleUpLimit"),
]


@pytest.mark.parametrize(
    ("current", "desired", "lo", "hi", "ups", "expected", "reason"),
    [c[1:] for c in RATE],
    ids=[c[0] for c in RATE],
)
def test_limit_rate(current: int, desired: int, lo: int, hi: int, ups: list[tuple[float, int]],
                    expected: int, reason: str) -> None:  # fmt: skip
    got, why, _ = hpa.limit_rate(current, desired, lo, hi, [(NOW - a, c) for a, c in ups], [],
                                 Behavior(), NOW)  # fmt: skip
    assert (got, why) == (expected, reason)


def test_record_scale_event() -> None:
    ups, downs = hpa.record_scale_event([(NOW - 60, 2)], [], 3, 7, Behavior(), NOW)
    assert ups == ((NOW, 4),)  # the 60 s old event is past the 15 s period
    assert downs == ()
    ups, downs = hpa.record_scale_event(ups, downs, 7, 5, Behavior(), NOW + 1)
    assert downs == ((NOW + 1, 2),)
