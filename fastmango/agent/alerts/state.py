"""The alert state machine: a pure function of the previous state, one observation and
the time, with Prometheus's rule semantics plus a separate clear threshold.

::

    inactive ──true──▶ pending ──true for `for`──▶ firing ──not holding for
        ▲                 │                          │      keep_firing_for──▶ resolved
        └────false────────┘                          └─ holding: still over the clear
                                                        threshold (hysteresis)
    no data (the rule reads no series at all) freezes every instance and is shown as
    the rule's own state, never as a silent OK.

``step()`` reads no clock and does no I/O: the caller passes ``now``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any


class State(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Timing:
    for_seconds: float = 0.0
    keep_firing_for: float = 0.0


@dataclass(frozen=True)
class Observation:
    """One evaluation of one instance: ``active`` = the condition holds; ``holding`` =
    a firing alert has not crossed its clear threshold yet (``active`` implies it)."""

    value: float
    threshold: float
    active: bool
    holding: bool


@dataclass(frozen=True)
class Instance:
    state: State
    active_at: float | None = None  # when the condition became true (pending since)
    fired_at: float | None = None
    last_holding_at: float | None = None  # for keep_firing_for
    resolved_at: float | None = None
    value: float | None = None
    threshold: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = str(self.state)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instance:
        times = {k: data.get(k) for k in cls.__dataclass_fields__ if k != "state"}
        return cls(State(data["state"]), **times)


INACTIVE = Instance(State.INACTIVE)


def step(prev: Instance | None, obs: Observation | None, timing: Timing, now: float) -> Instance:
    """The instance after one evaluation. ``obs`` None: the instance's series is gone
    while its rule still has data (Prometheus: the condition is false)."""
    prev = prev or INACTIVE
    new = _next(prev, obs, timing, now)
    if obs is None:  # the last values seen stay
        return new
    return replace(new, value=obs.value, threshold=obs.threshold)


def _next(prev: Instance, obs: Observation | None, timing: Timing, now: float) -> Instance:
    active = obs is not None and obs.active
    if prev.state is State.FIRING:
        if obs is not None and (obs.holding or obs.active):
            return replace(prev, last_holding_at=now)
        last = prev.last_holding_at if prev.last_holding_at is not None else prev.fired_at
        if last is not None and now - last < timing.keep_firing_for:
            return prev
        return replace(prev, state=State.RESOLVED, resolved_at=now)
    if prev.state is State.PENDING:
        if not active:
            return Instance(State.INACTIVE, value=prev.value, threshold=prev.threshold)
        assert prev.active_at is not None
        if now - prev.active_at >= timing.for_seconds:
            return replace(prev, state=State.FIRING, fired_at=now, last_holding_at=now)
        return prev
    # inactive or resolved
    if not active:
        return prev
    if timing.for_seconds <= 0:
        return Instance(State.FIRING, active_at=now, fired_at=now, last_holding_at=now)
    return Instance(State.PENDING, active_at=now)


def observation(op: str, value: float, threshold: float, clear: float | None) -> Observation:
    """The observation of one value against a threshold and an optional clear level:
    with ``> 0.05`` and clear 0.02 a firing alert holds while the value stays over 0.02."""
    from fastmango.agent.alerts.expr import holds

    active = holds(op, value, threshold)
    holding = active or (clear is not None and holds(op, value, clear))
    return Observation(value, threshold, active, holding)
