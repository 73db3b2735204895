"""The state machine, table-tested: each row is a run of (time, value) observations of
one instance against ``> 10`` and the state after each one."""

from __future__ import annotations

import pytest

from fastmango.agent.alerts.state import Instance, State, Timing, observation, step

N, P, F, R = State.INACTIVE, State.PENDING, State.FIRING, State.RESOLVED
GONE = None  # the instance's series is absent (its rule still has data)

CASES = [
    # name, for, keep_firing_for, clear, [(t, value)], expected states
    ("fires at once without for", 0, 0, None, [(0, 11)], [F]),
    (
        "pending until for has passed",
        60,
        0,
        None,
        [(0, 11), (30, 12), (59, 12), (60, 12)],
        [P, P, P, F],
    ),
    (
        "a dip while pending resets it",
        60,
        0,
        None,
        [(0, 11), (30, 5), (40, 11), (99, 11), (100, 11)],
        [P, N, P, P, F],
    ),
    ("resolves when the value drops", 0, 0, None, [(0, 11), (10, 5), (20, 5)], [F, R, R]),
    ("equal to the threshold is not over it", 0, 0, None, [(0, 10)], [N]),
    (
        "keep_firing_for holds through a dip",
        0,
        30,
        None,
        [(0, 11), (10, 5), (29, 5), (30, 5)],
        [F, F, F, R],
    ),
    (
        "keep_firing_for restarts when it holds again",
        0,
        30,
        None,
        [(0, 11), (20, 5), (30, 11), (55, 5), (61, 5)],
        [F, F, F, F, R],
    ),
    (
        "hysteresis: stays firing over the clear level",
        0,
        0,
        8.0,
        [(0, 11), (10, 9), (20, 8.5), (30, 7)],
        [F, F, F, R],
    ),
    ("hysteresis does not start an alert", 0, 0, 8.0, [(0, 9)], [N]),
    ("fires again after a resolve", 0, 0, None, [(0, 11), (10, 5), (20, 11)], [F, R, F]),
    (
        "a resolved alert waits for for again",
        30,
        0,
        None,
        [(0, 11), (30, 11), (40, 5), (50, 11), (79, 11), (80, 11)],
        [P, F, R, P, P, F],
    ),
    ("a vanished series resolves a firing alert", 0, 0, None, [(0, 11), (10, GONE)], [F, R]),
    ("a vanished series drops a pending one", 60, 0, None, [(0, 11), (10, GONE)], [P, N]),
    (
        "keep_firing_for covers a vanished series",
        0,
        30,
        None,
        [(0, 11), (10, GONE), (29, GONE), (31, GONE)],
        [F, F, F, R],
    ),
    ("NaN never holds", 0, 0, None, [(0, float("nan"))], [N]),
]


@pytest.mark.parametrize(
    ("name", "for_", "keep", "clear", "run", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_state_machine(
    name: str,
    for_: float,
    keep: float,
    clear: float | None,
    run: list[tuple[float, float | None]],
    expected: list[State],
) -> None:
    timing = Timing(for_, keep)
    inst: Instance | None = None
    got = []
    for t, value in run:
        obs = None if value is None else observation(">", value, 10.0, clear)
        inst = step(inst, obs, timing, float(t))
        got.append(inst.state)
    assert got == expected


def test_times_are_kept() -> None:
    timing = Timing(60, 0)
    inst = step(None, observation(">", 11, 10, None), timing, 100.0)
    inst = step(inst, observation(">", 12, 10, None), timing, 160.0)
    assert (inst.state, inst.active_at, inst.fired_at) == (F, 100.0, 160.0)
    inst = step(inst, observation(">", 3, 10, None), timing, 170.0)
    assert (inst.state, inst.resolved_at, inst.value, inst.threshold) == (R, 170.0, 3, 10)
    assert Instance.from_dict(inst.as_dict()) == inst


def test_lower_than_rules_use_the_clear_level_below() -> None:
    # disk avail < 0.1, clear at 0.12: a firing alert holds at 0.11
    timing = Timing(0, 0)
    inst = step(None, observation("<", 0.05, 0.1, 0.12), timing, 0)
    inst = step(inst, observation("<", 0.11, 0.1, 0.12), timing, 10)
    assert inst.state is F
    inst = step(inst, observation("<", 0.13, 0.1, 0.12), timing, 20)
    assert inst.state is R
